"""Schema-prefix caching against plain batched generation: same prompts, same batch size, same greedy settings.

    python -m bench.bench_prefix_cache --spider_adapter outputs/demo_spider/adapter --adapter outputs/demo/adapter

Spider dev (all 1,034 questions, 20 databases) and WikiSQL held-out dev tables (500 questions), each with its
fine-tuned demo adapter merged as in evaluation, greedy, stop at newline/EOS. Counts generated tokens (not the
padding of rows that stopped early), wall time, and how many answers are identical. Results go to
docs/benchmarks.md.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.report import write_section  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.generate import load_model_and_tokenizer  # noqa: E402
from t2s.generation import GenerationSettings, generate_sql, plan_batches  # noqa: E402


def generated_tokens(tokenizer, outputs) -> int:
    return sum(len(tokenizer(sql, add_special_tokens=False)["input_ids"]) + 1 for sql in outputs)  # + the stop


def measure(model, tokenizer, prompts, batch_size, max_new_tokens, prefix_cache):
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, prefix_cache=prefix_cache)
    start = time.perf_counter()
    outputs = [c[0] for c in generate_sql(model, tokenizer, prompts, settings)]
    return outputs, time.perf_counter() - start


def bench(name, dataset, adapter, batch_size, max_new_tokens, limit, split, extra):
    model, tokenizer = load_model_and_tokenizer(None, adapter, merge=True)
    ds = load_text2sql(dataset, split, limit=limit, **extra)
    prompts = list(ds["prompt"])
    prompt_tokens = sum(len(tokenizer(text=p)["input_ids"]) for p in prompts)
    plan = plan_batches(tokenizer, prompts, batch_size, True)
    cached_rows = sum(len(idx) for idx, prefix in plan if prefix is not None)
    measure(model, tokenizer, prompts[:4], 4, 8, True)  # warm-up
    plain, t_plain = measure(model, tokenizer, prompts, batch_size, max_new_tokens, False)
    cached, t_cached = measure(model, tokenizer, prompts, batch_size, max_new_tokens, True)
    tokens = generated_tokens(tokenizer, plain)
    same = sum(a == b for a, b in zip(plain, cached))
    print(
        f"{name}: plain {t_plain:.0f} s, cached {t_cached:.0f} s ({t_plain / t_cached:.2f}x), same {same}/{len(prompts)}"
    )
    row = (
        f"| {name} | {len(prompts):,} | {prompt_tokens / len(prompts):.0f} | {cached_rows:,} | {batch_size} | "
        f"{t_plain:.0f} | {tokens / t_plain:.1f} | {t_cached:.0f} | {tokens / t_cached:.1f} | "
        f"**{t_plain / t_cached:.2f}×** | {same}/{len(prompts)} |"
    )
    return row, adapter


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider_adapter", default="outputs/demo_spider/adapter")
    parser.add_argument("--adapter", default="outputs/demo/adapter", help="the WikiSQL adapter")
    parser.add_argument("--spider_batch_size", type=int, default=16)
    parser.add_argument("--wikisql_batch_size", type=int, default=32)
    parser.add_argument("--spider_limit", type=int, default=None, help="default: all 1,034 dev questions")
    parser.add_argument("--wikisql_limit", type=int, default=500)
    args = parser.parse_args()
    rows, adapters = [], []
    for run in (
        ("Spider dev", "spider", args.spider_adapter, args.spider_batch_size, 128, args.spider_limit, "dev", {}),
        (
            "WikiSQL dev, held-out tables",
            "local",
            args.adapter,
            args.wikisql_batch_size,
            96,
            args.wikisql_limit,
            "dev",
            {"table_split": "heldout"},
        ),
    ):
        row, adapter = bench(*run)
        rows.append(row)
        adapters.append(adapter)
    command = f"python -m bench.bench_prefix_cache --spider_adapter {args.spider_adapter} --adapter {args.adapter}" + (
        f" --spider_limit {args.spider_limit}" if args.spider_limit else ""
    )
    lines = [
        f"SmolLM2-135M-Instruct + the demos' adapters ({', '.join(adapters)}, merged as in evaluation), fp32, CPU "
        f"({os.cpu_count()} cores, torch {torch.__version__}), greedy, stop at newline/EOS, 128-token budget on "
        "Spider and 96 on WikiSQL (the demos' settings), the same batch size for both modes. Plain: prompts sorted by "
        "length, left padding. Prefix cache: questions on one database batched together, the database's shared "
        "prompt tokens prefilled once and their key/value cache reused (questions alone on their table go to plain "
        f"batches). Command: `{command}`.",
        "",
        "| data | questions | mean prompt tokens | questions served from a cache | batch | plain s | plain tokens/s "
        "| cached s | cached tokens/s | speed-up | same SQL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Target: at least 3× on Spider. Tokens/s counts generated SQL tokens (plus the stop), the same for both modes.",
        "",
        "Where the rest of the time goes: the cache removes the prefill of the schema (on Spider 317 of the 338 "
        "prompt tokens of a question, on average), not the decoding. A batch decodes until its last row stops, and the Spider "
        "adapter loops to the 128-token budget on about 3% of questions, so about 4 in 10 batches of 16 run all 128 "
        "steps. With prefill gone, those decoding steps are most of what is left, which bounds the speed-up near 2× "
        "here; fewer looping rows (a better model, constrained decoding, a smaller budget) or removing finished rows "
        "from a batch would raise it. On WikiSQL's held-out questions (1–5 per table) no table has a quarter of a "
        "batch of questions, so every question goes to plain batches and the two modes are the same computation: "
        "the difference is noise.",
    ]
    write_section("Schema-prefix caching in generation (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
