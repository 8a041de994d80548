"""Keep a CPU run's resident memory close to what its tensors use.

glibc's malloc serves blocks above its mmap threshold with mmap (returned to the system when freed) and smaller ones
from its heap. The threshold starts at 128 KiB but rises, up to 32 MiB, each time a large mmapped block is freed.
PyTorch on a CPU frees large blocks all the time (activations, logits), so after a few steps tensors of a few MiB
come from the heap; interleaved with longer-lived ones they fragment it, and a heap is only returned from its top.
Measured here: a GRPO run of the 135M model held 8.8 GB of heap, and its tensors needed a fraction of that
(docs/benchmarks.md, "Memory"). A fixed threshold (what `MALLOC_MMAP_THRESHOLD_` sets before a process starts,
`mallopt` after) keeps every larger block on mmap.

t2s applies it when imported, unless the environment already sets `MALLOC_MMAP_THRESHOLD_` or `T2S_MALLOC=default`.
It changes where memory comes from, never a result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold; False where there is no glibc or the user chose otherwise."""
    if not sys.platform.startswith("linux"):
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("T2S_MALLOC") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
