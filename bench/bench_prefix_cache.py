"""Generation speed on long prompts: plain batches against the prefix cache and continuous batching.

    python -m bench.bench_prefix_cache --spider_adapter outputs/demo_spider/adapter --adapter outputs/demo/adapter

Spider dev (all 1,034 questions, 20 databases) and WikiSQL held-out dev tables (500 questions), each with its
fine-tuned demo adapter merged as in evaluation, greedy, stop at newline/EOS, the same batch size for every mode:
- plain: generate() on length-sorted, left-padded batches with transformers' own DynamicCache (no preallocated buffers);
- prefix cache: each database's schema prefilled once (t2s.decoding.generation), generate() batches, preallocated keys/values;
- + continuous batching: rows that stop are replaced by the next questions (t2s.decoding.continuous), the new default.
Counts generated tokens (not the padding of rows that stopped early), wall time, and how many answers are identical
to plain's. Results go to docs/benchmarks.md.
"""

import argparse
import os
import time
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import t2s.decoding.generation  # noqa: E402
from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.decoding.generation import generate_sql  # noqa: E402
from t2s.decoding.models import load_model_and_tokenizer  # noqa: E402
from t2s.decoding.prefix_cache import plan_batches  # noqa: E402
from t2s.decoding.settings import GenerationSettings  # noqa: E402

MODES = {
    "plain (transformers' DynamicCache)": {},
    "prefix cache": {"prefix_cache": True},
    "prefix cache + continuous batching": {"prefix_cache": True, "continuous_batching": True},
}


@contextmanager
def transformers_cache():
    """Plain batches: generate() builds its own DynamicCache (no preallocated buffers)."""
    real = t2s.decoding.generation.preallocated_cache
    t2s.decoding.generation.preallocated_cache = lambda model, capacity: None
    try:
        yield
    finally:
        t2s.decoding.generation.preallocated_cache = real


def generated_tokens(tokenizer, outputs) -> int:
    return sum(len(tokenizer(sql, add_special_tokens=False)["input_ids"]) + 1 for sql in outputs)  # + the stop


def measure(model, tokenizer, prompts, batch_size, max_new_tokens, mode):
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, **MODES[mode])
    start = time.perf_counter()
    if MODES[mode]:
        outputs = [c[0] for c in generate_sql(model, tokenizer, prompts, settings)]
    else:
        with transformers_cache():
            outputs = [c[0] for c in generate_sql(model, tokenizer, prompts, settings)]
    return outputs, time.perf_counter() - start


def bench(name, dataset, adapter, batch_size, max_new_tokens, limit, split, extra, modes):
    model, tokenizer = load_model_and_tokenizer(None, adapter, merge=True)
    ds = load_text2sql(dataset, split, limit=limit, **extra)
    prompts = list(ds["prompt"])
    prompt_tokens = sum(len(tokenizer(text=p)["input_ids"]) for p in prompts)
    plan = plan_batches(tokenizer, prompts, batch_size, True)
    cached_rows = sum(len(idx) for idx, prefix in plan if prefix is not None)
    for mode in modes:
        measure(model, tokenizer, prompts[:4], 4, 8, mode)  # warm-up
    runs = {mode: measure(model, tokenizer, prompts, batch_size, max_new_tokens, mode) for mode in modes}
    plain, t_plain = runs[modes[0]]
    tokens = generated_tokens(tokenizer, plain)
    rows = []
    for mode, (outputs, seconds) in runs.items():
        same = sum(a == b for a, b in zip(plain, outputs))
        print(f"{name}, {mode}: {seconds:.0f} s ({t_plain / seconds:.2f}x), same SQL {same}/{len(prompts)}")
        rows.append(
            f"| {name} | {len(prompts):,} | {prompt_tokens / len(prompts):.0f} | {cached_rows:,} | {batch_size} | "
            f"{mode} | {seconds:.0f} | {tokens / seconds:.1f} | **{t_plain / seconds:.2f}×** | {same}/{len(prompts)} |"
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider_adapter", default="outputs/demo_spider/adapter")
    parser.add_argument("--adapter", default="outputs/demo/adapter", help="the WikiSQL adapter")
    parser.add_argument("--spider_batch_size", type=int, default=16)
    parser.add_argument("--wikisql_batch_size", type=int, default=32)
    parser.add_argument("--spider_limit", type=int, default=None, help="default: all 1,034 dev questions")
    parser.add_argument("--wikisql_limit", type=int, default=500)
    args = parser.parse_args()
    plain, cached, continuous = MODES
    rows = bench(
        "Spider dev", "spider", args.spider_adapter, args.spider_batch_size, 128, args.spider_limit, "dev", {},
        [plain, cached, continuous],
    )  # fmt: skip
    rows += bench(
        "WikiSQL dev, held-out tables", "local", args.adapter, args.wikisql_batch_size, 96, args.wikisql_limit, "dev",
        {"table_split": "heldout"}, [plain, continuous],
    )  # fmt: skip
    adapters = [args.spider_adapter, args.adapter]
    command = f"python -m bench.bench_prefix_cache --spider_adapter {args.spider_adapter} --adapter {args.adapter}" + (
        f" --spider_limit {args.spider_limit}" if args.spider_limit else ""
    )
    lines = [
        f"SmolLM2-135M-Instruct + the demos' adapters ({', '.join(adapters)}, merged as in evaluation), fp32, CPU "
        f"({os.cpu_count()} cores, torch {torch.__version__}), greedy, stop at newline/EOS, 128-token budget on "
        "Spider and 96 on WikiSQL (the demos' settings), the same batch size (rows decoded at once) in every mode, "
        "nothing else running. Plain: prompts sorted by length, left padding, transformers' DynamicCache (no preallocated "
        "buffers). Prefix cache: questions on one database batched together, the database's shared prompt tokens "
        "prefilled once and their keys/values reused, written into preallocated buffers (`t2s/decoding/kv_cache.py`) instead of "
        "concatenated at every step; questions alone on their table go to plain batches. Continuous batching "
        "(`t2s/decoding/continuous.py`, greedy only): a row that stops is replaced by the next questions, so the batch stays "
        f"full instead of decoding until its longest answer ends. Command: `{command}`.",
        "",
        "| data | questions | mean prompt tokens | questions served from a prefix cache | batch | mode | seconds "
        "| tokens/s | speed-up over plain | same SQL as plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Target: at least 3× on Spider. Tokens/s counts generated SQL tokens (plus the stop), the same "
        "for every mode. Where the time goes: the prefix cache removes the prefill of the schema (most of a Spider "
        "prompt), leaving decoding; a generate() batch decodes until its last row stops, and a few looping rows keep "
        "batches running to the budget, while a CPU decoding step costs nearly as much for 2 live rows as for 16 "
        "(the weights are read once per step). Continuous batching removes those steps. Its answers can differ from "
        "plain batches by float rounding only (matrix products of other shapes); the last column counts it. "
        "WikiSQL's held-out tables have 1–5 questions each, too few to share a prefix: there only continuous "
        "batching changes the computation.",
    ]
    write_section("Generation: schema-prefix caching and continuous batching (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
