"""What a user sees from each command: help that renders, and user errors as one message without a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t2s.cli import COMMANDS

from .conftest import ROOT

COMMANDS_BY_SCRIPT = [
    ["t2s/sft.py"],
    ["t2s/grpo.py"],
    ["t2s/generate.py"],
    ["t2s/evaluate_sql.py"],
    ["t2s/push.py"],
    ["t2s/ask.py"],
    ["t2s/export.py"],
    ["t2s/app.py"],
]
# The installed console command (pyproject.toml entry point), beside the interpreter of this virtualenv.
T2S = str(Path(sys.executable).with_name("t2s"))


def _run(args, cwd=ROOT, program=sys.executable, **env):
    """A fresh Python process, as a user starts one: for what only a new process shows (entry points, import-time
    warnings). Each costs seconds of imports, so the message checks below run in this process instead."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **env)
    environment.pop("T2S_TRACEBACK", None)
    return subprocess.run([program, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture
def t2s_cli(capsys, monkeypatch):
    """`t2s ARGS…` in this process, through the same `main` as the console command: (exit status, stdout, stderr)."""
    from t2s.cli import main

    monkeypatch.delenv("T2S_TRACEBACK", raising=False)
    monkeypatch.chdir(ROOT)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main(list(args))
            status = 0
        except SystemExit as e:  # what the interpreter would do with it
            status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), status, out.out, out.err)

    return run


def test_a_script_run_by_path_shows_help_without_library_noise():
    out = _run(["t2s/sft.py", "--help"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
    assert "gemm_4bit_forward" not in out.stdout + out.stderr  # the known bitsandbytes warning is filtered


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_every_command_renders(name, t2s_cli):
    out = t2s_cli(name, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout + out.stderr


def test_console_command_lists_every_subcommand(tmp_path):
    out = _run(["--help"], program=T2S, cwd=tmp_path)  # from any directory: no file paths needed
    assert out.returncode == 0, out.stderr[-2000:]
    for name in COMMANDS:
        assert f"  {name} " in out.stdout
    assert set(COMMANDS) == {
        *(c[0].removeprefix("t2s/").removesuffix(".py").removesuffix("_sql") for c in COMMANDS_BY_SCRIPT),
        "compare",
        "grpo-report",
        "copy-db",
        "transpile",
        "copy-dataset",
    }
    unknown = _run(["trian"], program=T2S, cwd=tmp_path)
    assert unknown.returncode != 0 and "unknown command 'trian'" in unknown.stderr


def test_console_command_runs_the_script_it_names(tmp_path):
    """`t2s compare` is `evaluate_sql.py compare`: the same message for the same bad input."""
    for name, ids in (("a", ["q1"]), ("b", ["q2"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.jsonl").write_text(json.dumps({"example_id": ids[0], "outcome": "correct"}))
        # a metrics.json always names its protocol
        (tmp_path / name / "metrics.json").write_text(json.dumps({"protocol": "dev, 1 question"}))
    _assert_user_error(_run(["compare", str(tmp_path / "a"), str(tmp_path / "b")], program=T2S), "different questions")


def test_every_option_has_help(t2s_cli):
    """Each option a user can pass says what it does; `--no_X` switches say so in one line."""
    import argparse

    from t2s.ask import parse_args
    from t2s.evaluation.runner import EvaluateArguments
    from t2s.generate import GenerateArguments
    from t2s.runtime import dataclass_parser
    from t2s.training.training_arguments import GRPOArguments

    parsers = [
        dataclass_parser(GenerateArguments),
        dataclass_parser(EvaluateArguments),
        dataclass_parser(GRPOArguments),
    ]
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), action.option_strings
            if any(o.startswith("--no_") for o in action.option_strings):
                assert action.help.startswith("Turn --"), action.help
    evaluate_help = t2s_cli("evaluate", "--help").stdout
    assert "--output " not in evaluate_help and "--output_dir" in evaluate_help  # no option without a meaning
    assert "t2s compare outputs/eval/zero_shot" in evaluate_help  # the compare command is documented
    for name in ("ask", "export", "push"):
        text = t2s_cli(name, "--help").stdout
        options = [line for line in text.splitlines() if line.strip().startswith("--")]
        assert options and all(len(line.split(None, 2)) >= 2 for line in options), (name, options)
    assert parse_args(["--db", "x.sqlite"]).max_new_tokens == 128


def _assert_user_error(out, message):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert message in " ".join(out.stderr.split()), out.stderr[-2000:]


def test_recipe_typo_is_a_message_not_a_traceback(tmp_path, t2s_cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "smollm2-135m" / "wikisql" / "sft_cpu.yaml").read_text() + "lora_alpah: 8\n")
    _assert_user_error(t2s_cli("sft", str(recipe)), "unknown key 'lora_alpah' (did you mean 'lora_alpha'?)")


def test_gpu_recipe_on_cpu_is_a_message(t2s_cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _assert_user_error(t2s_cli("sft", "recipes/mistral_lora.yaml"), "needs a CUDA GPU")


def test_data_errors_are_messages(tmp_path, t2s_cli):
    (tmp_path / "dev.jsonl").write_text("{not json\n")
    (tmp_path / "dev.tables.jsonl").write_text("")
    out = t2s_cli("generate", "--dataset_name", str(tmp_path), "--output", str(tmp_path / "p.jsonl"))
    _assert_user_error(out, "dev.jsonl:1: malformed JSON")
    out = t2s_cli("evaluate", "--dataset_name", "spider", "--table_split", "heldout")
    _assert_user_error(out, "table_split does not apply to spider")


def test_a_missing_adapter_is_a_message_before_anything_loads(tmp_path, t2s_cli):
    _assert_user_error(t2s_cli("evaluate", "--adapter", str(tmp_path / "no_such_dir")), "no such adapter")
    (tmp_path / "not_an_adapter").mkdir()
    _assert_user_error(t2s_cli("evaluate", "--adapter", str(tmp_path / "not_an_adapter")), "adapter_config")


def test_compare_of_runs_on_other_questions_is_a_message(tmp_path, t2s_cli):
    for name, ids in (("a", ["q1", "q2"]), ("b", ["q1", "q3"])):
        run = tmp_path / name
        run.mkdir()
        lines = [json.dumps({"example_id": i, "outcome": "correct"}) for i in ids]
        (run / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        (run / "metrics.json").write_text(json.dumps({"protocol": "p", "execution_accuracy": 1.0, "decoding": "g"}))
    out = t2s_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    _assert_user_error(out, "scored different questions")


def test_compare_on_shared_questions_pairs_only_those(tmp_path):
    from t2s.evaluation.compare import compare

    runs = {"all": {"q1": 1, "q2": 0, "q3": 1, "q4": 1}, "subset": {"q2": 1, "q3": 0, "q4": 0}}
    for name, outcomes in runs.items():
        (tmp_path / name).mkdir()
        lines = [
            json.dumps({"example_id": i, "outcome": "correct" if ok else "wrong_result"}) for i, ok in outcomes.items()
        ]
        (tmp_path / name / "predictions.jsonl").write_text("\n".join(lines) + "\n")
        meta = {"protocol": name, "execution_accuracy": sum(outcomes.values()) / len(outcomes), "decoding": "g"}
        (tmp_path / name / "metrics.json").write_text(json.dumps(meta))
    result = compare(str(tmp_path / "all"), str(tmp_path / "subset"), shared_questions=True)
    assert (result["n"], result["fixed"], result["broken"], result["both_correct"]) == (3, 1, 2, 0)
    assert (result["accuracy_a"], result["accuracy_b"]) == (2 / 3, 1 / 3)  # on q2–q4, not on each run's own set
    assert result["protocol"] == "subset" and (result["questions_a"], result["questions_b"]) == (4, 3)


def test_a_bug_still_shows_its_traceback(tmp_path):
    from t2s.runtime import run_command

    def broken(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_command(broken, [])


def test_training_and_evaluating_an_adapter_raise_no_future_warning(tiny_model, tmp_path):
    """`-W error::FutureWarning` turns any FutureWarning t2s does not deliberately drop (three library-internal ones,
    t2s/runtime.py) into a crash: a deprecated call or default of t2s's own fails here."""
    out = tmp_path / "adapter"
    recipe = ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml"
    train = _run(
        ["-W", "error::FutureWarning", "t2s/sft.py", str(recipe), "--model_name_or_path", str(tiny_model)]
        + ["--output_dir", str(out), "--max_steps", "1", "--eval_steps", "1"]
    )
    assert train.returncode == 0, train.stderr[-3000:]
    evaluate = _run(
        ["-W", "error::FutureWarning", "t2s/evaluate_sql.py", "--adapter", str(out), "--dataset_name"]
        + [str(ROOT / "tests" / "fixtures" / "wikisql"), "--max_new_tokens", "4", "--output_dir", str(tmp_path / "e")]
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "FutureWarning" not in train.stderr + evaluate.stderr


# A command run as one process of a launch: a gloo group of one, joined as torchrun's environment says.
_LEAVES_ITS_GROUP = """
import os, socket, sys
import torch.distributed as dist
from t2s.runtime import UserError, run_command

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(s.getsockname()[1]), RANK="0", WORLD_SIZE="1")
dist.init_process_group("gloo")

def ok(argv):
    assert dist.is_initialized()

def refused(argv):
    raise UserError("wrong recipe")

run_command(ok, [])
print("after a command:", dist.is_initialized())
dist.init_process_group("gloo")
try:
    run_command(refused, [])
except SystemExit as e:
    print("after a refusal:", e.code, dist.is_initialized())
"""


def test_a_launched_command_leaves_its_process_group_before_it_exits():
    """A gloo group alive at interpreter exit can abort the process (t2s/runtime.py), and torchrun then stops the main
    process while it writes: every command leaves its group at its end, whether it finished or refused."""
    done = _run(["-c", _LEAVES_ITS_GROUP])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "after a command: False" in done.stdout
    assert "after a refusal: 2 False" in done.stdout


def test_a_command_that_never_used_torch_imports_nothing_to_end():
    done = _run(["-c", "import sys\nfrom t2s.runtime import run_command\nrun_command(lambda argv: None, [])\n"
                 "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
