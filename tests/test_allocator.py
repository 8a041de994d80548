"""t2s pins glibc's mmap threshold when imported: freed tensors go back to the system instead of staying in a
fragmented heap (the cause of 8.8 GB of idle heap in a GRPO run of a 135M model; docs/benchmarks.md)."""

import os
import platform
import subprocess
import sys

import pytest

from .conftest import ROOT

PROBE = """
import sys
if sys.argv[1] == "t2s":
    import t2s  # noqa: F401  (applies the fixed threshold)
import torch

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

big = torch.ones(16 * 2**20 // 4)  # a freed 16 MiB mmapped block: glibc then raises its threshold to 16 MiB
del big
keep, blocks = [], []
for _ in range(100):
    blocks.append(torch.ones(4 * 2**20 // 4))  # 4 MiB tensors, as activations are
    keep.append(bytearray(100_000))  # long-lived small blocks between them pin the heap
with_blocks = rss_mb()
blocks.clear()
print(with_blocks - rss_mb())
"""


def _returned_mb(mode: str, **env) -> float:
    environment = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "T2S_MALLOC")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the fix is for glibc's malloc")
def test_importing_t2s_returns_freed_tensor_memory_to_the_system():
    assert _returned_mb("t2s") > 300  # of the 400 MiB freed
    assert _returned_mb("plain") < 100  # glibc's default keeps it: the problem is real on this machine
    assert _returned_mb("t2s", T2S_MALLOC="default") < 100  # and the user can keep glibc's default


def test_the_fix_is_skipped_where_the_user_chose(monkeypatch):
    from t2s.allocator import fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("T2S_MALLOC", "default")
    assert fix_mmap_threshold() is False
