"""Sharded evaluation's speed-up: `t2s evaluate` in one process against `accelerate launch --num_processes N`.

    python -m bench.bench_sharding [--limit 60] [--processes 2] [--model embedded:smollm2-135m-spider]

Spider dev, `--limit` questions drawn with seed 42, the model that ships with t2s, default decoding (greedy,
prefix cache, continuous batching), the metric's Spider semantics. Each run is a fresh command (model loading
included in the wall time; generation time is the slowest process's). Reports both times, the speed-up, the
threads each process had, and whether the predictions files are identical. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.benchmarks_page import write_section

ROOT = Path(__file__).resolve().parents[1]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run(args: list[str], out: Path, processes: int) -> dict:
    if processes == 1:
        command = [sys.executable, "t2s/evaluate_sql.py"]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   "accelerate_configs/multi_cpu.yaml", "--num_processes", str(processes),
                   "--main_process_port", _port(), "t2s/evaluate_sql.py"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([*command, *args, "--output_dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{processes}-process run failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": wall, "generation": metrics["generation_seconds"], "accuracy": metrics["execution_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--model", default="embedded:smollm2-135m-spider")
    args = parser.parse_args()
    common = ["--model", args.model, "--dataset_name", "spider", "--split", "dev", "--limit", str(args.limit),
              "--seed", "42", "--record_in_card", "never"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        one = run(common, Path(tmp) / "one", 1)
        many = run(common, Path(tmp) / "many", args.processes)
        same = (Path(tmp) / "one" / "predictions.jsonl").read_bytes() == (
            Path(tmp) / "many" / "predictions.jsonl"
        ).read_bytes()
    cores = os.cpu_count()
    body = f"""`python -m bench.bench_sharding --limit {args.limit} --processes {args.processes}`: {args.model}, Spider dev,
{args.limit} questions (seed 42), greedy with the prefix cache and continuous batching, Spider semantics; {cores} CPU
cores, torch threads per process as accelerate sets them (cores / processes). One run each.

| processes | wall (command) | generation (slowest process) | execution accuracy |
|---|---|---|---|
| 1 | {one["wall"]:.1f} s | {one["generation"]:.1f} s | {one["accuracy"]:.1%} |
| {args.processes} | {many["wall"]:.1f} s | {many["generation"]:.1f} s | {many["accuracy"]:.1%} |

Speed-up of generation: {one["generation"] / many["generation"]:.2f}×; of the command: {one["wall"] / many["wall"]:.2f}×.
Predictions files identical: {"yes" if same else "**no**"}.
"""
    print(body)
    write_section("Sharded evaluation (accelerate launch)", body)


if __name__ == "__main__":
    main()
