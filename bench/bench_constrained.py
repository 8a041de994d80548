"""What schema-constrained decoding costs: generation speed with and without it, through evaluation's own code path.

    python -m bench.bench_constrained [--adapter outputs/demo/adapter] [--spider_adapter outputs/demo_spider/adapter]
                                      [--prompts 32] [--batch_sizes 1 32]

Same prompts, same greedy settings as evaluation (stop at newline/EOS), `t2s.decoding.generation.generate_sql` with and
without one grammar per prompt (`t2s.decoding.constrained`), on WikiSQL held-out dev prompts and Spider dev prompts.
Tokens are counted from the generated SQL (its tokens plus the stop token). Results go to docs/benchmarks.md.
Target: constrained under 10% slower.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.decoding.constrained import grammar_for  # noqa: E402
from t2s.decoding.generation import generate_sql  # noqa: E402
from t2s.decoding.models import load_model_and_tokenizer  # noqa: E402
from t2s.decoding.settings import GenerationSettings  # noqa: E402


def timed(model, tokenizer, prompts, settings, grammars):
    start = time.perf_counter()
    outputs = [c[0] for c in generate_sql(model, tokenizer, prompts, settings, grammars=grammars)]
    seconds = time.perf_counter() - start
    tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) + 1 for o in outputs)
    return outputs, tokens, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=None, help="for the WikiSQL prompts (default: the embedded model)")
    parser.add_argument("--spider_adapter", default=None, help="for the Spider prompts (default: the embedded model)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    torch.manual_seed(0)
    data = {
        "WikiSQL (held-out dev tables)": (
            load_text2sql("local", "dev", table_split="heldout", limit=args.prompts, seed=3),
            args.adapter,
        ),
        "Spider dev": (load_text2sql("spider", "dev", limit=args.prompts, seed=3), args.spider_adapter),
    }
    rows, notes = [], []
    for name, (ds, adapter) in data.items():
        model, tokenizer = load_model_and_tokenizer(None, adapter, merge=adapter is not None)
        prompts = list(ds["prompt"])
        start = time.perf_counter()
        grammars = [grammar_for(ex) for ex in ds]
        build = time.perf_counter() - start
        max_new = 96 if name.startswith("WikiSQL") else 128
        for batch_size in args.batch_sizes:
            settings = GenerationSettings(max_new_tokens=max_new, batch_size=batch_size)
            timed(model, tokenizer, prompts[:2], settings, None)  # warm-up
            plain, tok_p, s_p = timed(model, tokenizer, prompts, settings, None)
            constrained, tok_c, s_c = timed(model, tokenizer, prompts, settings, grammars)
            same = sum(a == b for a, b in zip(plain, constrained))
            slower = (tok_p / s_p) / (tok_c / s_c) - 1
            rows.append(
                f"| {name} | {adapter or 'zero-shot'} | {batch_size} | {tok_p / s_p:.1f} | {tok_c / s_c:.1f} | {slower:+.0%} | {same}/{len(prompts)} |"
            )
            print(rows[-1])
        notes.append(f"{name}: grammar text built in {build * 1000 / len(prompts):.1f} ms per example")
    command = "python -m bench.bench_constrained" + "".join(
        f" --{k} {v}" for k, v in (("adapter", args.adapter), ("spider_adapter", args.spider_adapter)) if v
    )
    lines = [
        f"SmolLM2-135M-Instruct (adapters merged), fp32, CPU ({os.cpu_count()} cores), {args.prompts} prompts per "
        f"dataset, greedy. Command: `{command}`.",
        "",
        "| data | adapter | batch | tokens/s plain | tokens/s constrained | constrained slower by | same SQL as plain |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Target: under 10% slower. 'Same SQL' counts answers the constraint did not change (where the model already "
        "wrote valid SQL over its schema, greedy picks the same tokens). " + "; ".join(notes) + ".",
    ]
    write_section("Constrained decoding cost (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
