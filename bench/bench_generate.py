"""Generation throughput on CPU: batched (left padding) against one prompt at a time, greedy, embedded model.

    python -m bench.bench_generate [--prompts 64] [--batch_sizes 16 32] [--adapter DIR]

Same prompts (WikiSQL dev, held-out tables), same greedy settings as evaluation (stop at newline/EOS, 96-token
budget). Counts generated tokens (padding after a row stopped is not counted); checks both modes return identical SQL.
Results go to docs/benchmarks.md.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_wikisql  # noqa: E402
from t2s.decoding.answer import answer_sql  # noqa: E402
from t2s.decoding.models import load_model_and_tokenizer  # noqa: E402
from t2s.decoding.settings import GenerationSettings, generate_kwargs, prepare_tokenizer  # noqa: E402


@torch.no_grad()
def run(model, tokenizer, prompts, batch_size, settings):
    outputs, tokens = [], 0
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        kwargs = generate_kwargs(tokenizer, settings, batch["input_ids"].shape[1])
        out = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
        # generated tokens per row: everything before the padding that fills rows which stopped early
        for row in out:
            real = (row != tokenizer.pad_token_id).nonzero()
            tokens += int(real[-1]) + 1 if len(real) else 0
        outputs += [answer_sql(t) for t in tokenizer.batch_decode(out, skip_special_tokens=True)]
    return outputs, tokens, time.perf_counter() - start


def linear_microseconds(in_features: int, out_features: int, rows: int, repeats: int = 300) -> float:
    """Time of one fp32 linear layer on `rows` tokens: the cost of one decoding step scales with this, not with rows."""
    weight, x = torch.randn(out_features, in_features), torch.randn(rows, in_features)
    for _ in range(10):
        torch.nn.functional.linear(x, weight)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, weight)
    return (time.perf_counter() - start) / repeats * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--adapter", default=None, help="optional adapter: outputs look like real SQL")
    args = parser.parse_args()
    model, tokenizer = load_model_and_tokenizer(None, args.adapter, merge=args.adapter is not None)
    prepare_tokenizer(tokenizer)
    ds = load_wikisql(None, "dev", table_split="heldout", limit=args.prompts, seed=3)
    prompts = sorted(ds["prompt"], key=len)  # as generate_sql does
    settings = GenerationSettings(max_new_tokens=96)
    run(model, tokenizer, prompts[:2], 2, settings)  # warm-up
    single, tok_s, t_s = run(model, tokenizer, prompts, 1, settings)
    rows = [f"| one prompt at a time | {tok_s} | {t_s:.1f} | {tok_s / t_s:.1f} | 1.0× | |"]
    speedups = {}
    for batch_size in args.batch_sizes:
        batched, tok_b, t_b = run(model, tokenizer, prompts, batch_size, settings)
        same = sum(a == b for a, b in zip(batched, single))
        speedups[batch_size] = (tok_b / t_b) / (tok_s / t_s)
        rows.append(
            f"| batch {batch_size}, left padding | {tok_b} | {t_b:.1f} | {tok_b / t_b:.1f} | "
            f"**{speedups[batch_size]:.1f}×** | {same}/{len(prompts)} |"
        )
        print(
            f"batch {batch_size}: {tok_b / t_b:.1f} tok/s, {speedups[batch_size]:.1f}x; same SQL {same}/{len(prompts)}"
        )
    print(f"one by one: {tok_s / t_s:.1f} tok/s ({t_s:.0f} s)")
    mlp = model.config.hidden_size, model.config.intermediate_size
    gemm = {n: linear_microseconds(*mlp, n) for n in (1, 4, 16, 32)}
    model_name = (
        f"SmolLM2-135M-Instruct + adapter {args.adapter} (merged, as in evaluation)"
        if args.adapter
        else "SmolLM2-135M-Instruct (embedded, no adapter)"
    )
    lines = [
        f"{model_name}, fp32, CPU ({os.cpu_count()} cores, torch {torch.__version__}), {len(prompts)} WikiSQL prompts "
        "(held-out dev tables), greedy, stop at newline/EOS, 96-token budget, prompts sorted by length as in "
        f"evaluation. Command: `python -m bench.bench_generate{' --adapter ' + args.adapter if args.adapter else ''}`.",
        "",
        "| mode | generated tokens | seconds | tokens/s | vs one at a time | same SQL as one at a time |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "What bounds the gain: one decoding step costs about as much for 16 rows as for 4, but far from 16 times the",
        f"cost of one. The model's MLP up-projection ({mlp[0]}→{mlp[1]}, fp32) takes "
        + ", ".join(f"{us:.0f} µs for {n} row{'s' if n > 1 else ''}" for n, us in gemm.items())
        + f" on this CPU (MKL): from 1 row to 16 its cost per token falls {16 * gemm[1] / gemm[16]:.1f}×, not 16×. "
        "On top of that, the prompt (about 110 tokens, prefilled at the same cost per token in both modes) and the rows "
        "that stopped early while the longest row of their batch still decodes take their share. Target: ≥ 4× at "
        f"batch 16; measured {speedups.get(16, float('nan')):.2f}×.",
    ]
    write_section("Generation throughput (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
