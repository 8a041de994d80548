"""Evaluation sharded over processes by accelerate (t2s/decoding/sharding.py): two CPU processes give the predictions
and metrics of one, and the main process alone writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from t2s.evaluate_sql import main as evaluate_main

from .conftest import FIXTURES, ROOT
from .tiny_model import save_tiny_model

TIMING = ("generation_seconds", "generation_processes")


@pytest.fixture(autouse=True)
def _on_the_cpu(monkeypatch):
    """The one-process baseline runs here, on the CPU as the launched processes do, whatever the machine has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _launch(args: list[str], *, module: bool = False) -> subprocess.CompletedProcess:
    """Two CPU processes over gloo on any machine (on a one-GPU machine two NCCL ranks could not share the GPU)."""
    with socket.socket() as s:  # a free port: a fixed one can still be in TIME_WAIT from an earlier run
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate_configs/multi_cpu.yaml"]
    launch += ["--num_processes", "2", "--main_process_port", str(port)]
    target = ["-m", "t2s.cli", "evaluate"] if module else ["t2s/evaluate_sql.py"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([*launch, *target, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _records(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_two_processes_decode_constrained_execution_guided_and_voting_as_one(tmp_path):
    """`t2s evaluate` under `accelerate launch`: the greedy, constrained and execution-guided SQL of every question is
    that of one process, and each question was voted on with its own samples; one process wrote."""
    model = save_tiny_model(tmp_path / "model", seed=1)  # seed 1: some of its queries fail, so beams are searched
    args = ["--model", str(model), "--dataset_name", str(FIXTURES), "--max_new_tokens", "16"]
    args += ["--constrained_decoding", "--execution_guided", "--num_samples", "3"]
    one = evaluate_main([*args, "--output_dir", str(tmp_path / "one")])
    done = _launch([*args, "--output_dir", str(tmp_path / "two")], module=True)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["generation_processes"] == 1 and two["generation_processes"] == 2
    assert "Generated on 2 processes (this one: process 1/2: 11 questions)" in done.stdout
    assert done.stdout.count("Wrote ") == 1  # the main process alone scores and writes
    a, b = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["example_id"] for r in b] == [r["example_id"] for r in a] and len(a) == 22
    for key in ("voted_with", "candidates", "eg_choice"):  # what precedes the vote: no random draws
        assert [r.get(key) for r in b] == [r.get(key) for r in a], key
    assert sum("candidates" in r for r in a) > 0  # execution-guided search ran
    assert all(len(r["samples"]) == 2 and r["vote"] for r in b)
    # Voting draws one random stream per process: process 2's samples are other draws of the same distribution.
    # Where they agree (this tiny model writes little), the scores do too.
    if [r["samples"] for r in b] == [r["samples"] for r in a]:
        assert [r["prediction"] for r in b] == [r["prediction"] for r in a]
        assert _untimed(two) == _untimed(json.loads(json.dumps(one)))


def test_two_processes_score_a_spider_sample_as_one(shared_spider, tmp_path):
    """The model that ships with t2s on 16 Spider dev questions, default decoding (prefix cache, continuous
    batching): the same predictions file and metrics from one process and from two."""
    args = ["--model", "embedded:smollm2-135m-spider", "--dataset_name", "spider", "--split", "dev", "--limit", "16"]
    args += ["--seed", "42", "--record_in_card", "never"]
    one = evaluate_main([*args, "--output_dir", str(tmp_path / "one")])
    _launch([*args, "--output_dir", str(tmp_path / "two")])
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (tmp_path / "two" / "predictions.jsonl").read_text() == (tmp_path / "one" / "predictions.jsonl").read_text()
    assert _untimed(two) == _untimed(json.loads(json.dumps(one)))
    assert one["outcomes"]["correct"] > 0  # real SQL, not a vacuous agreement


def test_a_launch_accelerate_did_not_join_is_refused(monkeypatch):
    """Two launched processes that each believe they are alone would both score and write: refused."""
    import accelerate

    from t2s.decoding import sharding

    class Alone:
        num_processes, distributed_type, device = 1, "NO", "cpu"

        def __init__(self, cpu=False):
            pass

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", Alone)
    with pytest.raises(RuntimeError, match="2 processes were launched .* accelerate joined 1"):
        sharding.process_state()


def test_one_process_needs_no_process_group(monkeypatch):
    from t2s.decoding.sharding import Shard, gather_in_order, is_main_process, shard_questions

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    shard = shard_questions(None, ["a", "b", "c"], 2, False)
    assert shard == Shard([0, 1, 2], 0, 1) and not shard.sharded and is_main_process()
    assert gather_in_order(shard, ["x", "y", "z"]) == ["x", "y", "z"]
