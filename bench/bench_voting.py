"""Self-consistency by execution at every vote size, from one evaluation with the largest.

    python -m bench.bench_voting outputs/full_wikisql/sc16 --sizes 1 4 8 16 --output voting.json \
        --dataset_name local --split dev --table_split heldout --limit 500

RUN is an `evaluate` output folder written with `--num_samples N` (each record keeps its samples). For each k in
`--sizes`, the answer is the vote among the answer the samples voted with (greedy, or what execution-guided decoding
chose) and the run's first k − 1 samples (`t2s.decoding.voting.votes_by_size`): samples are independent draws, so
these are a k-candidate vote's own samples, drawn with another random stream than a separate `--num_samples k` run.
Every answer is scored by the execution-accuracy metric with the run's semantics, each size is compared with k = 1 by
McNemar's test, and the run's generation time is for its N. The dataset options after RUN must select the run's
questions (the same as when it was evaluated). Records written before `voted_with` existed take it from `--first`
(the `--predictions` file the run voted with).
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from t2s.data.common import read_jsonl  # noqa: E402
from t2s.decoding.voting import votes_by_size  # noqa: E402
from t2s.evaluation.compare import mcnemar_exact  # noqa: E402
from t2s.evaluation.runner import EvaluateArguments, align_predictions, breakdowns, score_predictions  # noqa: E402
from t2s.runtime import UserError, dataclass_parser, run_command  # noqa: E402


def voting_curve(
    run: Path, dataset, args: EvaluateArguments, sizes: list[int], first: list[str] | None = None
) -> dict:
    by_id = {r["example_id"]: r for r in read_jsonl(run / "predictions.jsonl")}
    records = []
    for eid in dataset["example_id"]:
        if eid not in by_id:
            raise UserError(f"{run}/predictions.jsonl has no record for {eid}: pass the run's dataset options")
        records.append(by_id[eid])
    drawn = min(len(r.get("samples", [])) for r in records)
    if max(sizes) > drawn + 1:
        raise UserError(f"{run} drew {drawn} samples per question: vote sizes go up to {drawn + 1}, not {max(sizes)}")
    if first is None:
        if any("voted_with" not in r for r in records):
            raise UserError(f"{run}'s records do not say what the samples voted with: pass --first PREDICTIONS")
        first = [r["voted_with"] for r in records]
    examples = list(dataset)
    chosen = {k: [] for k in sizes}
    for example, record, answer in zip(examples, records, first):
        for k, sql in votes_by_size([answer, *record["samples"]], example, sizes, args.vote_rows_first).items():
            chosen[k].append(sql)
    correct, rows = {}, []
    for k in sizes:
        result = score_predictions(dataset, chosen[k], args)
        details = result["details"]
        correct[k] = [d["outcome"] == "correct" for d in details]
        base = correct[sizes[0]]
        fixed = sum(b and not a for a, b in zip(base, correct[k]))
        broken = sum(a and not b for a, b in zip(base, correct[k]))
        row = {
            "num_candidates": k,
            "execution_accuracy": result["execution_accuracy"],
            "correct": sum(correct[k]),
            "execution_accuracy_nonempty_gold": result["execution_accuracy_nonempty_gold"],
            "outcomes": result["outcomes"],
            f"vs_{sizes[0]}": {"fixed": fixed, "broken": broken, "mcnemar_p": mcnemar_exact(fixed, broken)},
        }
        rows.append({**row, **breakdowns(examples, details)})  # by hardness on Spider, as evaluate reports it
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "run": str(run),
        "protocol": metrics.get("protocol"),
        "decoding_of_run": metrics.get("decoding"),
        "semantics": metrics.get("semantics"),
        "generation_seconds_of_run": metrics.get("generation_seconds"),
        "questions": len(records),
        "sizes": rows,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="an evaluate output folder written with --num_samples N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16], help="vote sizes k (1 = no vote)")
    parser.add_argument("--first", default=None, help="the --predictions file the run voted with (older runs)")
    parser.add_argument("--output", default=None, help="also write the curve to this JSON file")
    own, rest = parser.parse_known_args(argv)
    (args,) = dataclass_parser(EvaluateArguments).parse_args_into_dataclasses(rest)
    dataset = args.load_questions()
    first = align_predictions(dataset, read_jsonl(own.first), own.first) if own.first else None
    result = voting_curve(own.run, dataset, args, sorted(set(own.sizes)), first)
    result["first_answers"] = own.first or f"{own.run}/predictions.jsonl (voted_with)"
    table = Table(title=f"{result['protocol']}\nvotes from {own.run} ({result['decoding_of_run']})")
    base = result["sizes"][0]["num_candidates"]
    for column in ("candidates", "execution accuracy", f"vs {base}", "fail to run (error, time-out, rejected)"):
        table.add_column(column)
    for row in result["sizes"]:
        paired = row[f"vs_{base}"]
        table.add_row(
            str(row["num_candidates"]),
            f"{row['execution_accuracy']:.1%} ({row['correct']}/{result['questions']})",
            f"{paired['fixed']} fixed / {paired['broken']} broken, p = {paired['mcnemar_p']:.2g}",
            str(row["outcomes"]["exec_error"] + row["outcomes"]["timeout"] + row["outcomes"]["rejected"]),
        )
    Console().print(table)
    if own.output:
        Path(own.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    run_command(main)
