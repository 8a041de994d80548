"""Training under `accelerate launch` with several processes: GRPO over two CPU processes, and the launches that would
not run as configured (sharded configs without CUDA, processes accelerate did not join) refused before anything
loads. SFT data parallel over two CPU processes is tested in tests/test_sft.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from .conftest import ROOT

RECIPES = ROOT / "tests" / "fixtures" / "recipes"


def _launch(config: str, script: str, args: list[str]) -> subprocess.CompletedProcess:
    with socket.socket() as s:  # a free port: a fixed one can still be in TIME_WAIT from an earlier run
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"accelerate_configs/{config}",
               "--num_processes", "2", "--main_process_port", str(port), script, *args]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # CPU processes over gloo on any machine, as the tests assert
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_grpo_on_two_processes_scores_each_process_completions_and_writes_once(tiny_model, tmp_path):
    out = tmp_path / "grpo"
    done = _launch(
        "multi_cpu.yaml",
        "t2s/grpo.py",
        [str(RECIPES / "tiny_grpo.yaml"), "--model_name_or_path", str(tiny_model), "--prescore_samples", "0",
         "--output_dir", str(out)],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["parallelism"] == "data parallel over 2 process(es) (gloo)" and run["global_step"] == 2
    # per_device_train_batch_size 4 × 2 steps on each process: each scored the completions it generated
    assert run["completions_scored_by_process"] == [8, 8]
    assert done.stdout.count("Saved the adapter") == 1
    assert len(json.loads((out / "trainer_state.json").read_text())["log_history"]) >= 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("fsdp.yaml", "error: fsdp.yaml shards the model over GPU processes"),  # t2s's refusal, in each process
        # accelerate's own, at launch: DeepSpeed is not a t2s dependency (docs/training.md); were it installed,
        # t2s's check would refuse ZeRO-3 without CUDA as it refuses FSDP
        ("zero3.yaml", "DeepSpeed is not installed"),
    ],
)
def test_a_sharded_config_without_cuda_is_refused_before_training(config, message, tiny_model, tmp_path):
    """accelerate runs FSDP and DeepSpeed on GPU processes only; on the CPU each process would train an unsharded
    copy under the sharded config's name. The config is loaded for real (accelerate launch sets its plugin's
    environment), and the run stops with the reason before a model loads."""
    out = tmp_path / "sharded"
    done = _launch(
        config,
        "t2s/sft.py",
        [str(RECIPES / "tiny.yaml"), "--model_name_or_path", str(tiny_model), "--output_dir", str(out),
         "--max_steps", "2"],
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr and not out.exists()


def test_processes_accelerate_did_not_join_are_refused(tiny_model, tmp_path):
    """Without CUDA and without use_cpu, accelerate leaves each launched process alone: each would train and write
    the same folder."""
    out = tmp_path / "alone"
    done = _launch(
        "multi_cpu.yaml",
        "t2s/sft.py",
        [str(RECIPES / "tiny.yaml"), "--model_name_or_path", str(tiny_model), "--output_dir", str(out),
         "--max_steps", "2", "--use_cpu", "false"],
    )  # fmt: skip
    assert done.returncode != 0
    assert "2 processes were launched (WORLD_SIZE) but accelerate joined 1" in done.stderr and not out.exists()
