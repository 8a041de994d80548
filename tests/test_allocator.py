"""`T2S_MALLOC=mmap` pins glibc's mmap threshold when a t2s command starts (`t2s.runtime.prepare_process`), and `release_free_memory` (what
`release_memory_steps` calls between training steps) trims the heap: either way freed tensors go back to the system
instead of staying in a fragmented heap. The first is off by default (it slows training down; docs/benchmarks.md).
`scripts/with_jemalloc.sh` runs a command on jemalloc instead, and `allocator()` says which malloc a process runs on."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PROBE = """
import os

import torch

from t2s.runtime import prepare_process

prepare_process()  # what a command does first: applies T2S_MALLOC

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
if os.environ.get("PROBE_RELEASE"):
    from t2s.runtime import release_free_memory

    assert release_free_memory()
print(with_blocks - rss_mb())
"""


def _returned_mb(**env) -> float:
    environment = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "T2S_MALLOC")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the option is for glibc's malloc")
def test_t2s_malloc_mmap_returns_freed_tensor_memory_to_the_system():
    assert _returned_mb(T2S_MALLOC="mmap") > 300  # of the 400 MiB freed
    assert _returned_mb() < 100  # the default keeps glibc's behaviour: the heap keeps it


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_memory_returns_what_the_heap_kept():
    """What `release_memory_steps` calls between training steps: the same 400 MiB, freed into the heap, go back to the
    system without pinning the threshold."""
    assert _returned_mb() < 100
    assert _returned_mb(PROBE_RELEASE="1") > 300


def test_the_threshold_is_left_alone_where_the_environment_decides(monkeypatch):
    from t2s.runtime import apply_from_environment, fix_mmap_threshold

    monkeypatch.delenv("T2S_MALLOC", raising=False)
    assert apply_from_environment() is False
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False


ALLOCATOR_PROBE = "from t2s.runtime import allocator, release_free_memory; print(release_free_memory(), allocator())"
WRAPPER = str(ROOT / "scripts" / "with_jemalloc.sh")


def _without_preload() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "T2S_JEMALLOC")}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="names glibc")
def test_a_plain_process_runs_on_glibc():
    out = subprocess.run(
        [sys.executable, "-c", ALLOCATOR_PROBE],
        cwd=ROOT,
        env=_without_preload(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split()[-2:] == ["True", "glibc"]


@pytest.mark.jemalloc
def test_with_jemalloc_runs_the_command_on_jemalloc():
    """What `make full-wikisql` / `make full-spider` wrap the training in: libjemalloc2, which `make install` adds."""
    out = subprocess.run(
        ["bash", WRAPPER, sys.executable, "-c", ALLOCATOR_PROBE],
        cwd=ROOT,
        env=_without_preload(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "jemalloc"]  # glibc's heap trim has nothing to do there


def test_with_jemalloc_refuses_a_library_that_is_not_there_and_says_what_to_do(tmp_path):
    missing = tmp_path / "libjemalloc.so.2"
    out = subprocess.run(
        ["bash", WRAPPER, sys.executable, "-c", ALLOCATOR_PROBE],
        cwd=ROOT,
        env={**_without_preload(), "T2S_JEMALLOC": str(missing)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stdout == ""  # the command did not run
    assert f"T2S_JEMALLOC={missing} is not a file" in out.stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmRSS and VmHWM are Linux's")
def test_peak_memory_names_the_step_that_reached_it():
    """A one-step spike (what a sampler every few seconds misses) is the run's peak, named by its step; the callback
    only reads the kernel's figures, so what `/usr/bin/time -v` reports stays the process's whole peak."""
    from transformers import TrainerControl, TrainerState

    from t2s.runtime import peak_rss, resident_memory
    from t2s.training.callbacks import PeakMemoryCallback

    callback, state, control = PeakMemoryCallback(), TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control)
    spike_mib = (peak_rss() - resident_memory()) // 2**20 + 300  # past anything this process held before
    for step, mib in ((1, 0), (2, spike_mib), (3, 0)):
        spike = bytearray(mib * 2**20)  # zero-filled: every page is touched
        del spike
        state.global_step = step
        callback.on_step_end(None, state, control)
        state.log_history.append({"loss": 1.0, "step": step})
        callback.on_log(None, state, control, logs={"loss": 1.0})
    assert callback.highest["step"] == 2 and callback.highest["during"] == "training step"
    first, second, third = state.log_history
    assert second["peak_memory_gib"] - first["peak_memory_gib"] > 0.25  # GiB: the spike raised the peak
    assert third["peak_memory_gib"] == second["peak_memory_gib"]  # and it stays the process's peak
    assert third["memory_gib"] < second["peak_memory_gib"] - 0.25  # while what it holds fell back
    # the callback read the peak at the step's end, the log line a moment later: the same peak, give or take what
    # the process allocated in between (1.41 against 1.42 GiB on a loaded 2-core run), far below the 0.25 GiB spike
    assert abs(callback.highest["gib"] - second["peak_memory_gib"]) <= 0.02
    assert 0 < callback.highest["at_start_gib"] < callback.highest["gib"]
