"""Generation throughput on CPU: batched (left padding) against one prompt at a time, greedy, embedded model.

    python -m bench.bench_generate [--prompts 32] [--batch_size 16]

Same prompts (WikiSQL dev, held-out tables), same greedy settings as evaluation (stop at newline/EOS, 96-token
budget). Counts generated tokens (padding after a row stopped is not counted); checks both modes return identical SQL.
Results go to docs/benchmarks.md.
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.report import write_section  # noqa: E402
from t2s.data import load_wikisql  # noqa: E402
from t2s.generate import load_model_and_tokenizer  # noqa: E402
from t2s.generation import GenerationSettings, _generate_kwargs, first_line, prepare_tokenizer  # noqa: E402


@torch.no_grad()
def run(model, tokenizer, prompts, batch_size, settings):
    kwargs = _generate_kwargs(tokenizer, settings)
    outputs, tokens = [], 0
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        out = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
        # generated tokens per row: everything before the padding that fills rows which stopped early
        for row in out:
            real = (row != tokenizer.pad_token_id).nonzero()
            tokens += int(real[-1]) + 1 if len(real) else 0
        outputs += [first_line(t) for t in tokenizer.batch_decode(out, skip_special_tokens=True)]
    return outputs, tokens, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--adapter", default=None, help="optional adapter: outputs look like real SQL")
    args = parser.parse_args()
    model, tokenizer = load_model_and_tokenizer(None, args.adapter, merge=args.adapter is not None)
    prepare_tokenizer(tokenizer)
    ds = load_wikisql(None, "dev", table_split="heldout", limit=args.prompts, seed=3)
    prompts = sorted(ds["prompt"], key=len)  # as generate_sql does
    settings = GenerationSettings(max_new_tokens=96)
    run(model, tokenizer, prompts[:2], 2, settings)  # warm-up
    batched, tok_b, t_b = run(model, tokenizer, prompts, args.batch_size, settings)
    single, tok_s, t_s = run(model, tokenizer, prompts, 1, settings)
    same = sum(a == b for a, b in zip(batched, single))
    print(
        f"batched: {tok_b / t_b:.1f} tok/s ({t_b:.0f} s); one by one: {tok_s / t_s:.1f} tok/s ({t_s:.0f} s); same {same}/{len(prompts)}"
    )
    model_name = (
        f"SmolLM2-135M-Instruct + adapter {args.adapter} (merged, as in evaluation)"
        if args.adapter
        else "SmolLM2-135M-Instruct (embedded, no adapter)"
    )
    lines = [
        f"{model_name}, fp32, CPU ({os.cpu_count()} cores), {len(prompts)} WikiSQL prompts (held-out dev tables), greedy, "
        f"stop at newline/EOS, 96-token budget. Command: `python -m bench.bench_generate"
        f"{' --adapter ' + args.adapter if args.adapter else ''}`.",
        "",
        "| mode | generated tokens | seconds | tokens/s |",
        "|---|---|---|---|",
        f"| batch {args.batch_size}, left padding | {tok_b} | {t_b:.1f} | {tok_b / t_b:.1f} |",
        f"| one prompt at a time | {tok_s} | {t_s:.1f} | {tok_s / t_s:.1f} |",
        "",
        f"Batched generation: **{(tok_b / t_b) / (tok_s / t_s):.1f}×** the tokens/s of one prompt at a time (target ≥ 4× "
        f"at batch 16). Identical SQL in both modes for {same} of {len(prompts)} prompts.",
    ]
    write_section("Generation throughput (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
