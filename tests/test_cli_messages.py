"""What a person meets on the command line when they get something wrong: one line that names what is wrong and what
to do, never a traceback, and usage lines that name `t2s <command>`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .engines_setup import SHOP


def _t2s(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t2s.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evalute"], "unknown command 'evalute'; did you mean 'evaluate'?"),
        (["ask", "--db", str(SHOP), "--model", "/no/such/model", "How many?"], "/no/such/model: no such model folder"),
        (
            ["ask", "--db", str(SHOP), "--adapter", "/no/such/adapter", "How many?"],
            "/no/such/adapter: no such adapter",
        ),
        (["ask", "--db", str(SHOP), "  "], "the question is empty"),
        (["ask", "--db", "/no/such.sqlite", "How many?"], "/no/such.sqlite: no such file"),
        (["compare", "outputs/none-a", "/no/such"], "outputs/none-a: no such folder"),
        (["evaluate", "--eval_split", "dev"], "t2s evaluate: error: unrecognized arguments: --eval_split dev"),
        (["generate", "--limt", "5"], "t2s generate: error: unrecognized arguments: --limt 5"),
    ],
)
def test_a_mistake_gets_one_line_that_names_it(args, message):
    done = _t2s(*args)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr + done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("command", ["ask", "compare", "evaluate", "app", "copy-db"])
def test_each_usage_line_names_t2s_and_its_command(command):
    done = _t2s(command, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: t2s {command} "), done.stdout[:200]
    assert "python t2s/" not in done.stdout


def test_a_long_batch_says_it_is_still_generating(monkeypatch, capsys):
    """Constrained decoding of long prompts can spend minutes on one batch: the log says so while it runs."""
    import time

    from t2s.decoding import predict

    monkeypatch.setattr(predict, "HEARTBEAT_S", 0.3)

    def slow(model, tokenizer, prompts, settings, progress=None, **kwargs):
        time.sleep(1.2)  # one batch, four heartbeats long
        progress(len(prompts))
        return [["SELECT 1"] for _ in prompts]

    monkeypatch.setattr(predict, "generate_sql", slow)
    assert predict.generate_with_progress(None, None, ["q1", "q2"], None, "greedy") == [["SELECT 1"]] * 2
    out = capsys.readouterr().out
    assert out.count("greedy (batch after 0/2 still generating") >= 2 and "greedy: 2/2" in out


def test_help_says_each_default_once():
    done = _t2s("evaluate", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "(default: None)" not in text and "(default $T2S_SPIDER_DIR)." in text
    assert "$T2S_SPIDER_DIR). (default" not in text


@pytest.mark.parametrize("command", ["sft", "grpo"])
def test_training_help_shows_t2s_options_first_and_names_the_rest(command):
    """Several hundred TRL and transformers options would bury t2s's own: those come in full, the others by name, and
    --help_all gives all of them in full."""
    done = _t2s(command, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert text.startswith(f"usage: t2s {command} RECIPE.yaml")
    assert len(text.splitlines()) < 250
    own = text.index("t2s's options")
    assert own < text.index("--dataset_name DATASET_NAME") < text.index("--lora_top_layers LORA_TOP_LAYERS")
    config = "SFTConfig" if command == "sft" else "GRPOConfig"
    trl = text.index(f"{config}'s options")
    assert own < trl and "--learning_rate" in text[trl:] and "--learning_rate LEARNING_RATE" not in text
    assert "ModelConfig's options" in text and "--help_all" in text
    everything = _t2s(command, "--help_all")
    assert everything.returncode == 0 and "--learning_rate LEARNING_RATE" in everything.stdout
