"""The demo adapter as GGUF, run by llama.cpp itself: agreement with t2s's own greedy SQL, execution accuracy, speed.

    # builds llama.cpp from its source distribution (minutes on 2 cores); see docs/export.md for the CMAKE_ARGS
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" pip install llama-cpp-python
    python -m bench.bench_gguf [--adapter outputs/demo_spider/adapter] [--limit 100]

Exports the adapter with `t2s export --format gguf` in f16 and q8_0 (each file read back and checked by transformers
first), then answers the same Spider dev questions (subset seed 42) three ways: t2s's greedy decoding of
the merged model (transformers), and llama.cpp (`llama-cpp-python`, greedy, stop at the newline) on each file. Writes
the agreement of each with t2s's SQL, the execution accuracy of each (Spider semantics), and their speed into the
"GGUF in llama.cpp" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmarks_page import write_section  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def llama_worker(model_path: str, prompts_file: str, out_file: str, threads: int) -> None:
    """llama.cpp on its own, in a process without torch (the two in one process crashed here: both bring OpenMP)."""
    import llama_cpp

    prompts = json.loads(Path(prompts_file).read_text())
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=4096, n_threads=threads, verbose=False, seed=0)
    answers, generated = [], 0
    started = time.perf_counter()
    for prompt in prompts:
        out = llm.create_completion(prompt, max_tokens=128, temperature=0.0, top_k=1, stop=["\n"])
        answers.append(out["choices"][0]["text"].split("\n", 1)[0].strip())
        generated += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    result = {"answers": answers, "seconds": seconds, "tokens": generated, "version": llama_cpp.__version__}
    Path(out_file).write_text(json.dumps(result))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--llama-worker":
        return llama_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="outputs/demo_spider/adapter")
    parser.add_argument("--limit", type=int, default=100, help="Spider dev questions (seed 42)")
    parser.add_argument("--out", default="outputs/gguf_bench")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama-cpp-python is not installed: pip install llama-cpp-python (builds llama.cpp)")

    import evaluate

    from t2s.data import load_spider
    from t2s.decoding.models import load_model_and_tokenizer
    from t2s.metrics import EXECUTION_ACCURACY
    from t2s.publish.card import load_run
    from t2s.publish.standalone import export, greedy_sql

    ds = load_spider(None, "dev", limit=args.limit, seed=42)
    prompts, metric = list(ds["prompt"]), evaluate.load(EXECUTION_ACCURACY)

    def accuracy(predictions: list[str]) -> float:
        return metric.compute(
            predictions=predictions, references=list(ds["gold_sql"]), databases=list(ds["db_path"]), semantics="spider"
        )["execution_accuracy"]

    merged, tokenizer = load_model_and_tokenizer(adapter=args.adapter, merge=True)
    started = time.perf_counter()
    reference = greedy_sql(merged, tokenizer, prompts, max_new_tokens=128)
    rows = [("t2s (transformers, fp32 merge)", 1.0, accuracy(reference), time.perf_counter() - started, None)]
    for gguf_type in ("f16", "q8_0"):
        folder = Path(args.out) / gguf_type
        if not (folder / f"model-{gguf_type}.gguf").exists():
            export(args.adapter, str(folder), fmt="gguf", gguf_type=gguf_type)
        check = load_run(folder).gguf
        prompts_file, out_file = Path(args.out) / "prompts.json", folder / "llama_cpp_answers.json"
        prompts_file.write_text(json.dumps(prompts))
        worker = [sys.executable, "-m", "bench.bench_gguf", "--llama-worker", str(folder / check["file"]),
                  str(prompts_file), str(out_file), str(args.threads)]  # fmt: skip
        subprocess.run(worker, check=True, cwd=ROOT)
        result = json.loads(out_file.read_text())
        answers, seconds, generated = result["answers"], result["seconds"], result["tokens"]
        version = result["version"]
        agreement = sum(a == b for a, b in zip(answers, reference)) / len(prompts)
        rows.append((f"llama.cpp, {gguf_type} ({check['bytes'] / 1e6:.0f} MB)", agreement, accuracy(answers), seconds,
                     generated / seconds))  # fmt: skip
    lines = [
        f"{args.limit} Spider dev questions (subset seed 42), the demo adapter "
        f"(`{args.adapter}`) merged; greedy, stop at the newline, 128 new tokens at most; {args.threads} CPU threads. "
        f"Command: `python -m bench.bench_gguf --limit {args.limit}` (llama-cpp-python {version}, built "
        "from its source distribution here). Agreement: the same SQL string as t2s's own greedy decoding of the "
        "merged model; accuracy: execution accuracy, Spider semantics. Nothing else ran on the machine.",
        "",
        "| decoder | same SQL as t2s | execution accuracy | time (one question at a time) | new tokens/s |",
        "|---|---|---|---|---|",
    ]
    for name, agreement, acc, seconds, speed in rows:
        tps = f"{speed:.0f}" if speed else "not counted"
        per = seconds / len(prompts)
        lines.append(f"| {name} | {agreement:.0%} | {acc:.1%} | {seconds:.0f} s ({per:.2f} s/question) | {tps} |")
    write_section("GGUF in llama.cpp", "\n".join(lines), path=DOC)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
