"""Peak resident memory of the demos' heavy steps, with glibc's default malloc and with `T2S_MALLOC=mmap`.

    python -m bench.bench_memory [--steps 40] [--only GRPO]

Each step runs in its own process, as in the demos, once as t2s runs by default (glibc's dynamic mmap threshold) and
once with `T2S_MALLOC=mmap` (the threshold pinned at 128 KiB, t2s/runtime.py). Steps: SFT with the WikiSQL CPU
recipe and with the Spider CPU recipe (`--steps` optimizer steps, evaluations halfway and at the end), GRPO with its CPU recipe
(8 steps, no pre-scoring; needs the demo's SFT adapter in outputs/demo/adapter), and evaluation of that adapter on
100 held-out WikiSQL questions. Reported: peak RSS of the process (`wait4`'s ru_maxrss) and wall time. Results go to
docs/benchmarks.md.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.benchmarks_page import write_section

ADAPTER = "outputs/demo/adapter"


def steps(n: int, out: Path) -> list[tuple[str, list[str]]]:
    short = ["--max_steps", str(n), "--eval_steps", str(n // 2), "--save_strategy", "no"]
    short += ["--load_best_model_at_end", "false", "--early_stopping_patience", "0", "--overwrite_output_dir", "true"]
    return [
        (
            "SFT, recipes/smollm2-135m/wikisql/sft_cpu.yaml",
            ["t2s/sft.py", "recipes/smollm2-135m/wikisql/sft_cpu.yaml", *short, "--output_dir", str(out / "w")],
        ),
        (
            "SFT, recipes/smollm2-135m/spider/sft_cpu.yaml",
            ["t2s/sft.py", "recipes/smollm2-135m/spider/sft_cpu.yaml", *short, "--output_dir", str(out / "s")],
        ),
        (
            "GRPO, recipes/smollm2-135m/wikisql/grpo_cpu.yaml (8 steps)",
            [
                "t2s/grpo.py",
                "recipes/smollm2-135m/wikisql/grpo_cpu.yaml",
                "--max_steps",
                "8",
                "--prescore_samples",
                "0",
            ]
            + [
                "--train_limit",
                "16",
                "--save_strategy",
                "no",
                "--sft_adapter",
                ADAPTER,
                "--output_dir",
                str(out / "g"),
                "--overwrite_output_dir",  # the second variant writes where the first did
                "true",
            ],
        ),
        (
            "evaluation, 100 held-out WikiSQL questions (merged adapter)",
            ["t2s/evaluate_sql.py", "--adapter", ADAPTER, "--merge_adapter", "--table_split", "heldout"]
            + ["--limit", "100", "--batch_size", "32", "--output_dir", str(out / "e")],
        ),
    ]


def run(args: list[str], malloc: str, log: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env.pop("T2S_MALLOC", None)
    env.update(
        HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **({"T2S_MALLOC": "mmap"} if malloc == "mmap" else {})
    )
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"{' '.join(args)} failed:\n{tail}")
    return usage.ru_maxrss / 2**20, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def _num(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--only", default=None, help="measure only the steps whose name contains this text")
    parser.add_argument("--malloc", choices=["both", "default", "mmap"], default="both", help="which variants to run")
    cli = parser.parse_args()
    if not (Path(ADAPTER) / "adapter_config.json").exists():
        raise SystemExit(f"{ADAPTER} is missing: run `make demo` first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, args in steps(cli.steps, out):
            if cli.only and cli.only not in name:
                continue
            result = {}
            for malloc in ("default", "mmap") if cli.malloc == "both" else (cli.malloc,):
                result[malloc] = run(args, malloc, out / f"{len(rows)}_{malloc}.log")
                print(f"{name} [{malloc}]: {result[malloc][0]:.2f} GiB, {result[malloc][1]:.0f} s", flush=True)
            (gd, td), (gf, tf) = result.get("default", (None, None)), result.get("mmap", (None, None))
            less = f"{1 - gf / gd:.0%}" if gd and gf else "–"
            rows.append(
                f"| {name} | {_num(gd, '.2f')} | {_num(td, '.0f')} | {_num(gf, '.2f')} | {_num(tf, '.0f')} | {less} |"
            )
    lines = [
        f"Peak resident memory (GiB) of each demo step in its own process, CPU ({os.cpu_count()} cores); SFT steps "
        f"run {cli.steps} optimizer steps with two evaluations. 'default': glibc's malloc as it comes. 'mmap': "
        "`T2S_MALLOC=mmap`, the mmap threshold pinned at 128 KiB when t2s is imported (t2s/runtime.py). Command: "
        f"`python -m bench.bench_memory{' --only ' + repr(cli.only) if cli.only else ''}"
        f"{' --malloc ' + cli.malloc if cli.malloc != 'both' else ''}`.",
        "",
        "| step | peak, default | seconds | peak, mmap | seconds | less memory |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("Memory: glibc's default against T2S_MALLOC=mmap", "\n".join(lines))


if __name__ == "__main__":
    main()
