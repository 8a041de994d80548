"""Prompt + SQL lengths in tokens, per dataset and split, and what each recipe's max_length would truncate.

    python -m bench.bench_prompt_lengths          # writes its section of docs/benchmarks.md

Multi-table prompts carry a whole database schema, so `max_length` must be sized from measured lengths:
TRL cuts an example longer than `max_length` from the right, which removes its SQL, the only part trained on.
Lengths are counted as TRL counts them: the tokenized prompt, the completion, and the EOS token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.decoding.embedded import DEFAULT_EMBEDDED, resolve_model_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def lengths(dataset, tokenizer) -> list[int]:
    prompts = tokenizer(list(dataset["prompt"]))["input_ids"]
    completions = tokenizer(list(dataset["completion"]), add_special_tokens=False)["input_ids"]
    return [len(p) + len(c) + 1 for p, c in zip(prompts, completions)]


def percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv=None) -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_EMBEDDED)
    args = parser.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.model))
    sets = {
        "Spider dev": load_text2sql("spider", "dev"),
        "Spider train": load_text2sql("spider", "train", require_database=False),
        "WikiSQL dev": load_text2sql("local", "dev"),
    }
    measured = {name: lengths(ds, tokenizer) for name, ds in sets.items()}
    rows = ["| data | examples | median | p90 | p99 | max |", "|---|---|---|---|---|---|"]
    for name, values in measured.items():
        rows.append(
            f"| {name} | {len(values):,} | {statistics.median(values):.0f} | {percentile(values, 0.9):,} "
            f"| {percentile(values, 0.99):,} | {max(values):,} |"
        )
    recipes = [
        "| recipe | training data | max_length | drop_longer_than | examples over max_length |",
        "|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        data = "Spider train" if recipe.get("dataset_name") == "spider" else "WikiSQL dev"
        values = measured[data]
        limit, drop = recipe.get("max_length"), recipe.get("drop_longer_than")
        over = [v for v in values if limit and v > limit and not (drop and v > drop)]
        recipes.append(
            f"| `{path.relative_to(ROOT / 'recipes')}` | {data} (whole split) | {limit} | {drop or '–'} | "
            f"{len(over)} of {len(values):,}{' (after dropping longer ones)' if drop else ''} |"
        )
    body = (
        f"`python -m bench.bench_prompt_lengths` — tokens of prompt + SQL + EOS with {args.model}'s tokenizer, "
        "schema_format `types`.\n\n" + "\n".join(rows) + "\n\n"
        "What each recipe would truncate if it trained on the whole split (TRL cuts from the right, i.e. the SQL). "
        "The Mistral recipe reads WikiSQL train from the Hub, measured here on dev. Recipes that set "
        "`drop_longer_than` leave out longer examples instead (counted and reported at the start of the run).\n\n"
        + "\n".join(recipes)
    )
    print(body)
    write_section("Prompt lengths and max_length", body)


if __name__ == "__main__":
    main()
