"""Accuracy and time per question of each decoding `t2s ask` and the page offer, asked as they ask.

    python -m bench.bench_ask_decoding --limit 100 --seed 42

Each question of a Spider dev subset is asked one at a time through `t2s.decoding.asker.Asker` (the code path of
`t2s ask` and the page: the prompt the model learned, built from the database's catalogue; batch size 1), once per
decoding of `ASK_CHOICES`. The time is from the question to its executed result, the model already loaded (loading is
timed apart; the first question on each database reads its values for linking before the clock starts, and the
decodings take turns going first, so no decoding pays the warm-up of the others). Each answer is scored by Spider's official execution match (`t2s.execution.scoring`, the metric's
semantics), each decoding is paired with greedy decoding on the same questions by McNemar's exact test, and the
greedy and column-scoped outcomes are checked against `t2s evaluate`'s on the same questions when a run record of
those is given (`--evaluated`). Writes the table into docs/benchmarks.md and the per-question outcomes to `--output`.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_spider  # noqa: E402
from t2s.data.schema import from_engine  # noqa: E402
from t2s.decoding.asker import ASK_CHOICES, Asker  # noqa: E402
from t2s.decoding.embedded import DEFAULT_ASK_MODEL  # noqa: E402
from t2s.decoding.models import load_model_and_tokenizer, trained_prompt_settings  # noqa: E402
from t2s.evaluation.compare import mcnemar_exact  # noqa: E402
from t2s.evaluation.records import read_outcomes  # noqa: E402
from t2s.execution.engines import open_engine  # noqa: E402
from t2s.execution.scoring import ScoringOptions, score_example  # noqa: E402
from t2s.runtime import run_command  # noqa: E402

console = Console()
ROOT = Path(__file__).resolve().parents[1]
SPIDER = ScoringOptions("spider")


def run(args) -> dict:
    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(args.model)
    load_s = time.perf_counter() - start
    settings = trained_prompt_settings(args.model)
    dev = load_spider(None, "dev", limit=args.limit, seed=args.seed)
    choices = args.choices or list(ASK_CHOICES)
    askers, golds = {}, {}
    outcomes = {name: [] for name in choices}
    seconds = {name: [] for name in choices}
    for i, ex in enumerate(dev):
        path = ex["db_path"]
        if path not in askers:
            engine = open_engine(path)
            askers[path] = Asker(model, tokenizer, engine, from_engine(engine, ex["db_id"]), prompt_settings=settings)
            golds[path] = open_engine(path)  # a second engine: the scoring's own, as the metric opens it
            askers[path].prompt(ex["question"])  # reads the database's values for linking once, untimed
        asker = askers[path]
        for name in choices[i % len(choices) :] + choices[: i % len(choices)]:  # no decoding always goes first
            asker.decoding = ASK_CHOICES[name]
            t0 = time.perf_counter()
            sql, _ = asker.ask(ex["question"])
            seconds[name].append(time.perf_counter() - t0)
            outcomes[name].append(score_example(golds[path], sql, ex["gold_sql"], SPIDER).outcome.value)
        console.print(
            f"{i + 1}/{len(dev)} " + " ".join(f"{n[:12]}: {seconds[n][-1]:.1f} s {outcomes[n][-1]};" for n in choices)
        )
    for asker in askers.values():
        asker.engine.close()
    for conn in golds.values():
        conn.close()
    return {
        "model": args.model,
        "protocol": f"Spider dev, {len(dev)} of 1034 questions (seed {args.seed}), asked one at a time as `t2s ask` "
        "asks (the prompt the model learned; batch 1); official Spider execution match",
        "prompt_settings": vars(settings) if settings else None,
        "load_seconds": round(load_s, 1),
        "example_ids": list(dev["example_id"]),
        "outcomes": outcomes,
        "seconds": {n: [round(s, 3) for s in v] for n, v in seconds.items()},
    }


def table(record: dict) -> str:
    names = list(record["outcomes"])
    greedy = next((n for n in names if n == "greedy"), names[0])
    base = [o == "correct" for o in record["outcomes"][greedy]]
    lines = [
        "| decoding | execution accuracy | vs greedy: fixed / broken, McNemar p | seconds per question: median / "
        "mean / 90th pct / max |",
        "|---|---|---|---|",
    ]
    for name in names:
        right = [o == "correct" for o in record["outcomes"][name]]
        s = sorted(record["seconds"][name])
        fixed = sum(r and not b for r, b in zip(right, base))
        broken = sum(b and not r for r, b in zip(right, base))
        paired = "" if name == greedy else f"{fixed} / {broken}, p = {mcnemar_exact(fixed, broken):.2g}"
        p90 = s[min(len(s) - 1, int(0.9 * len(s)))]
        lines.append(
            f"| {name} | {sum(right) / len(right):.1%} ({sum(right)}/{len(right)}) | {paired} | "
            f"{statistics.median(s):.1f} / {statistics.mean(s):.1f} / {p90:.1f} / {s[-1]:.1f} |"
        )
    return "\n".join(lines)


def check_against(record: dict, evaluated: list[str]) -> list[str]:
    """Agreement of the asked outcomes with `t2s evaluate`'s (a results/ outcome file per decoding: greedy, scoped)."""
    notes = []
    for spec in evaluated:
        name, path = spec.split("=", 1)
        by_id = read_outcomes(path)
        asked = dict(zip(record["example_ids"], record["outcomes"][name]))
        same = sum(by_id.get(eid) == outcome for eid, outcome in asked.items())
        notes.append(f"{name}: {same} of {len(asked)} outcomes as `t2s evaluate` scored them ({path})")
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_ASK_MODEL)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--choices", nargs="*", choices=list(ASK_CHOICES), help="default: every choice")
    parser.add_argument(
        "--evaluated",
        nargs="*",
        default=[],
        help="NAME=OUTCOMES.jsonl: `t2s evaluate`'s outcomes for a decoding, to check the asked ones against",
    )
    parser.add_argument("--output", default=str(ROOT / "results" / "ask_decoding" / "spider-dev-100-seed42.json"))
    args = parser.parse_args(argv)
    record = run(args)
    notes = check_against(record, args.evaluated)
    record["agreement_with_evaluate"] = notes
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    body = (
        f"`python -m bench.bench_ask_decoding --limit {args.limit} --seed {args.seed}`: {record['protocol']}. "
        f"Model `{args.model}` (loaded in {record['load_seconds']} s, not counted below). Time: from the question to "
        f"its executed result, on 2 CPU cores. Per-question outcomes: "
        f"[{os.path.relpath(out, ROOT)}]({os.path.relpath(out, ROOT / 'docs')}).\n\n" + table(record)
    )
    if notes:
        body += "\n\n" + "\n".join(f"- {n}" for n in notes)
    write_section("Decoding for ask and the page", body)
    console.print(table(record))
    for n in notes:
        console.print(n)


if __name__ == "__main__":
    run_command(main)
