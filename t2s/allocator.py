"""An opt-in for CPU runs short of memory: keep resident memory close to what the tensors use, at a cost in speed.

glibc's malloc serves blocks above its mmap threshold with mmap (returned to the system when freed) and smaller ones
from its heap. The threshold starts at 128 KiB but rises, up to 32 MiB, each time a large mmapped block is freed.
PyTorch on a CPU frees large blocks all the time (activations, logits), so after a few steps tensors of a few MiB
come from the heap; interleaved with longer-lived ones they fragment it, and a heap is only returned from its top.
A GRPO run of the 135M model held 8.8 GB of heap here. Pinning the threshold (what `MALLOC_MMAP_THRESHOLD_` sets
before a process starts, `mallopt` after) keeps every larger block on mmap.

Measured (docs/benchmarks.md, "Memory"): it lowers peaks and, more, the memory a run holds between its peaks, but
every large tensor then costs fresh pages from the kernel: 40 SFT steps took 373 s instead of 227 s. So it is off by
default; `T2S_MALLOC=mmap` turns it on for every t2s command. It changes where memory comes from, never a result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold; False where there is no glibc or `MALLOC_MMAP_THRESHOLD_` already decides."""
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def apply_from_environment() -> bool:
    """`T2S_MALLOC=mmap`: pin the threshold for this process (t2s/__init__ calls this at import)."""
    return os.environ.get("T2S_MALLOC") == "mmap" and fix_mmap_threshold()
