"""`make gpu-check` on a machine without CUDA: a clear refusal, no traceback, nothing written; and the commands it
would run on a GPU name only options the t2s commands take, on files that exist."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.py"


def test_without_cuda_it_refuses_cleanly_and_writes_nothing(tmp_path):
    """On any machine: the script is shown no GPU (CUDA_VISIBLE_DEVICES empty)."""
    report = tmp_path / "gpu.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--report", str(report), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2
    assert "no CUDA device here" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert not report.exists() and not (tmp_path / "out").exists()


def test_every_command_it_would_run_takes_its_options(tmp_path):
    """Each SFT, GRPO and evaluation command's options are fields of that command's dataclasses; every file it names
    exists. `--print` lists every check, the vLLM ones too (run only where vLLM is installed)."""
    from t2s.evaluation.runner import EvaluateArguments
    from t2s.training.grpo_run import DATACLASSES as GRPO
    from t2s.training.sft_run import DATACLASSES as SFT

    done = subprocess.run([sys.executable, str(SCRIPT), "--print"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 8
    fields = {
        "t2s/sft.py": {f for cls in SFT for f in cls.__dataclass_fields__},
        "t2s/grpo.py": {f for cls in GRPO for f in cls.__dataclass_fields__},
        "t2s/evaluate_sql.py": set(EvaluateArguments.__dataclass_fields__),
    }
    launched = [argv[argv.index("--config_file") + 1] for argv in commands if "--config_file" in argv]
    assert {"accelerate_configs/multi_gpu.yaml", "accelerate_configs/fsdp.yaml"} <= set(launched)
    assert sum("vllm" in argv for argv in commands) == 1 and sum("--use_vllm" in argv for argv in commands) == 2
    for argv in commands:
        script = next(a for a in argv if a.startswith("t2s/"))
        if script in fields:
            options = [a[2:] for a in argv[argv.index(script) :] if a.startswith("--")]
            unknown = [o for o in options if o not in fields[script]]
            assert unknown == [], (script, unknown)
            if "--config_file" in argv:
                assert (ROOT / argv[argv.index("--config_file") + 1]).is_file()
        for path in [a for a in argv if a.endswith((".yaml", ".py")) and not a.startswith("-")]:
            assert (ROOT / path).exists() or path.startswith(sys.executable), path
