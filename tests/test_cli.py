"""What a user sees from each command: help that renders, and user errors as one message without a traceback."""

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

COMMANDS = [
    ["t2s/sft.py"],
    ["t2s/grpo.py"],
    ["t2s/generate.py"],
    ["t2s/evaluate_sql.py"],
    ["t2s/push.py"],
    ["t2s/ask.py"],
    ["t2s/export.py"],
    ["-m", "t2s.demo_summary"],
    ["-m", "t2s.grpo_report"],
]


def _run(args, cwd=ROOT, **env):
    environment = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **env)
    environment.pop("T2S_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[-1])
def test_help_of_every_command_renders(command):
    out = _run([*command, "--help"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
    assert "gemm_4bit_forward" not in out.stdout + out.stderr  # the known bitsandbytes warning is filtered


def _assert_user_error(out, message):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert message in " ".join(out.stderr.split()), out.stderr[-2000:]


def test_recipe_typo_is_a_message_not_a_traceback(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "smollm2_cpu.yaml").read_text() + "lora_alpah: 8\n")
    _assert_user_error(_run(["t2s/sft.py", str(recipe)]), "unknown key 'lora_alpah' (did you mean 'lora_alpha'?)")


def test_gpu_recipe_on_cpu_is_a_message(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _assert_user_error(_run(["t2s/sft.py", "recipes/mistral_lora.yaml"]), "needs a CUDA GPU")


def test_data_errors_are_messages(tmp_path):
    (tmp_path / "dev.jsonl").write_text("{not json\n")
    (tmp_path / "dev.tables.jsonl").write_text("")
    out = _run(["t2s/generate.py", "--dataset_name", str(tmp_path), "--output", str(tmp_path / "p.jsonl")])
    _assert_user_error(out, "dev.jsonl:1: malformed JSON")
    out = _run(["t2s/evaluate_sql.py", "--dataset_name", "spider", "--table_split", "heldout"])
    _assert_user_error(out, "table_split does not apply to spider")


def test_compare_of_runs_on_other_questions_is_a_message(tmp_path):
    for name, ids in (("a", ["q1", "q2"]), ("b", ["q1", "q3"])):
        run = tmp_path / name
        run.mkdir()
        lines = [json.dumps({"example_id": i, "outcome": "correct"}) for i in ids]
        (run / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        (run / "metrics.json").write_text(json.dumps({"protocol": "p", "execution_accuracy": 1.0, "decoding": "g"}))
    out = _run(["t2s/evaluate_sql.py", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    _assert_user_error(out, "scored different questions")


def test_a_bug_still_shows_its_traceback(tmp_path):
    from t2s.errors import run_command

    def broken(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_command(broken, [])
