"""Evaluate a model end to end: generate (or read) SQL for dataset questions, score it by execution, explain it.

An evaluation writes `predictions.jsonl` (one line per question, with its outcome), `metrics.json` (scores with
their protocol: data, subset, schema format, decoding, semantics), `analysis.{md,json,png}`, and records the score in
the adapter's model card. The scores come from the `evaluate` metric (t2s/metrics/execution_accuracy), so they are
the numbers anyone loading that metric gets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from t2s.data import HARDNESS_LEVELS, has_databases
from t2s.data.common import read_jsonl, write_jsonl
from t2s.data.sources import dataset_reference, is_folder
from t2s.decoding.decoding_arguments import DecodingArguments
from t2s.decoding.embedded import DEFAULT_EMBEDDED, SHIPPED_DIR
from t2s.decoding.predict import prediction_record, run_predictions
from t2s.decoding.sharding import is_main_process, launched_processes
from t2s.evaluation.analysis import analyse, print_summary, write_reports
from t2s.evaluation.records import keep_outcomes
from t2s.execution.scoring import dataset_semantics
from t2s.publish.card import record_scores
from t2s.runtime import UserError

console = Console()


@dataclass
class EvaluateArguments(DecodingArguments):
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where predictions, metrics and analysis go."})
    predictions: str | None = field(
        default=None,
        metadata={
            "help": "Score this predictions.jsonl instead of generating (same dataset options). With "
            "--execution_guided: its predictions are the greedy ones, and only the failing ones are searched again; "
            "with --num_samples: they are the answers the samples vote with."
        },
    )
    other_run: str | None = field(
        default=None, metadata={"help": "Another run's output_dir (other seed/model): adds agreement to the analysis."}
    )
    run_name: str | None = field(default=None, metadata={"help": "Name of this evaluation in the model card."})
    record_in_card: str = field(
        default="auto",
        metadata={
            "help": "Record the score in the adapter's run record and model card, which t2s/push.py publishes: "
            "'auto' records scores on the public benchmarks (WikiSQL or Spider from their configured copies or the "
            "Hub) and not on data from a folder you name (private or held-out data stays off the Hub unless asked); "
            "'always'; 'never'.",
            "choices": ["auto", "always", "never"],
        },
    )
    keep_outcomes: str | None = field(
        default=None,
        metadata={
            "help": "Also keep this evaluation as a run record for later pairing: RECORD.jsonl (each question's "
            "outcome) and RECORD.protocol.json (what it was measured on), e.g. "
            "results/full/<model>/spider-dev-300-seed42-greedy (results/README.md)."
        },
    )
    timeout: float = field(default=2.0, metadata={"help": "Seconds each query may run."})
    keep_distinct: bool = field(
        default=False,
        metadata={"help": "Spider semantics: keep DISTINCT in both queries (the official evaluator removes it)."},
    )


def load_metric():
    import evaluate

    from t2s.metrics import EXECUTION_ACCURACY

    return evaluate.load(EXECUTION_ACCURACY)


_LEGACY_WIKISQL_ID = re.compile(r"^.*[/\\](?P<stem>[^/\\]+)\.jsonl:(?P<line>\d+)$")


def _location_free(example_id: str) -> str:
    """WikiSQL ids of older prediction files (`/path/dev.jsonl:10`, a line number) as ids are now (`dev[9]`)."""
    match = _LEGACY_WIKISQL_ID.match(str(example_id))
    return f"{match['stem']}[{int(match['line']) - 1}]" if match else example_id


def align_predictions(dataset, records: list[dict], path: str) -> list:
    """Predictions in dataset order, matched by example_id; refuses a file for other questions."""
    by_id = {}
    for i, r in enumerate(records, 1):
        if "example_id" not in r or "prediction" not in r:
            raise UserError(f"{path}:{i}: a prediction record needs 'example_id' and 'prediction'")
        by_id[_location_free(r["example_id"])] = r["prediction"]
    missing = [eid for eid in dataset["example_id"] if eid not in by_id]
    if missing:
        raise UserError(
            f"{path} has no prediction for {len(missing)} of {len(dataset)} questions (first: {missing[0]}); "
            "pass the same dataset options (split, table_split, limit, seed) as when it was generated"
        )
    return [by_id[eid] for eid in dataset["example_id"]]


def prompt_differences(args: EvaluateArguments) -> list[str]:
    """How this evaluation's prompt settings differ from those the adapter was trained with (its `t2s_run.json`):
    an adapter asked with another prompt than it learned scores lower without any error, so the run says so."""
    trained = args.learned_prompt
    if trained is None:
        return []
    return [f"{name}: trained {a!r}, evaluated {b!r}" for name, a, b in trained.differences(args.prompt_settings())]


def score_predictions(dataset, predictions: list[str], args: EvaluateArguments) -> dict:
    """The execution-accuracy metric's result for `predictions` in dataset order, with per-question details."""
    database = (
        {"databases": list(dataset["db_path"])} if has_databases(dataset) else {"tables": list(dataset["table"])}
    )
    return load_metric().compute(
        predictions=predictions,
        references=list(dataset["gold_sql"]),
        semantics=dataset_semantics(dataset["semantics"]),  # what the dataset's reader declared
        timeout=args.timeout,
        keep_distinct=args.keep_distinct,
        return_details=True,
        **database,
    )


def evaluate_run(args: EvaluateArguments) -> dict | None:
    """The metrics of one evaluation; under `accelerate launch --num_processes N` every process generates its shard
    of the questions and the main process alone scores and writes (the others return None)."""
    out = Path(args.output_dir)
    main = is_main_process()
    differences = prompt_differences(args)
    if main and differences:
        console.print(
            "[bold yellow]warning:[/] the model was trained with other prompts: "
            + "; ".join(differences)
            + " (the settings given override what it learned; leave them out to evaluate what it learned)"
        )
    elif main and args.learned_prompt is not None:
        console.print(f"Prompts as the model learned them (its run record): {args.prompt_settings().describe()}")
    if args.predictions and (args.execution_guided or args.num_samples > 1):
        dataset = args.load_questions()
        greedy = align_predictions(dataset, read_jsonl(args.predictions), args.predictions)
        dataset, records, elapsed = run_predictions(args, dataset, greedy)
        predictions = [r["prediction"] for r in records]
    elif args.predictions:
        if not main:  # nothing to generate: the main process scores the file
            return None
        dataset = args.load_questions()
        predictions = align_predictions(dataset, read_jsonl(args.predictions), args.predictions)
        records = [prediction_record(ex, p) for ex, p in zip(dataset, predictions)]
        elapsed = None
    else:
        dataset, records, elapsed = run_predictions(args)
        predictions = [r["prediction"] for r in records]
    if not main:
        return None

    databases = has_databases(dataset)
    result = score_predictions(dataset, predictions, args)
    details = result.pop("details")
    for record, detail in zip(records, details):
        record["outcome"], record["error"] = detail["outcome"], detail["error"]
        # Both results (their first rows), so a reader of the run sees what each query returned without a database.
        for key in ("prediction_rows", "gold_rows", "prediction_columns", "gold_columns"):
            record[key] = detail[key]
    write_jsonl(out / "predictions.jsonl", records)

    model_label = args.adapter or args.model or DEFAULT_EMBEDDED
    metrics = {
        **result,
        "protocol": dataset.info.description,
        "schema_format": args.schema_format,
        **({"link_values": True} if args.link_values else {}),
        **({"prune_tables": args.prune_tables} if args.prune_tables else {}),
        **({"schema_max_chars": args.schema_max_chars} if args.schema_max_chars else {}),
        "decoding": args.decoding_label(),
        **({"prompt_differs_from_training": differences} if differences else {}),
        "dataset": dataset_reference(args.dataset_name, "spider" if databases else "wikisql"),
        "model": args.model,
        "adapter": args.adapter,
        "generation_seconds": round(elapsed, 1) if elapsed is not None else None,
        "generation_processes": launched_processes(),  # accelerate launch --num_processes (t2s.decoding.sharding)
        "prefix_cache": args.prefix_cache,  # speed only: the SQL is that of plain batched generation
        "continuous_batching": args.continuous_batching,  # speed; the SQL up to float rounding (docs/benchmarks.md)
        "headline": HEADLINES[result["semantics"]],
        **breakdowns(records, details),
    }
    if args.execution_guided:
        chosen = [r.get("eg_choice", 0) for r in records]
        metrics["eg_searched"] = sum("candidates" in r for r in records)
        metrics["eg_replaced_greedy"] = sum(c > 0 for c in chosen)
        metrics["eg_fallbacks_to_greedy"] = sum(c == -1 for c in chosen)
    if args.num_samples > 1:
        metrics["sc_chose_a_sample"] = sum(r.get("vote", {}).get("choice") == "sample" for r in records)
        metrics["sc_no_candidate_ran"] = sum(r.get("vote", {}).get("choice", "").endswith("ran)") for r in records)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    other = None
    if args.other_run:
        other = {r["example_id"]: r["outcome"] for r in read_jsonl(Path(args.other_run) / "predictions.jsonl")}
    analysis = analyse(list(dataset), predictions, details, other_outcomes=other)
    title = f"{model_label}, {metrics['decoding']}"
    write_reports(analysis, out, title, metrics["protocol"])

    print_metrics(metrics, title)
    print_summary(analysis, title)
    record, why = card_decision(args)
    if record:
        name = args.run_name or f"{metrics['protocol']}; {metrics['decoding']}"
        record_scores(
            args.adapter,
            name,
            {
                k: metrics[k]
                for k in (
                    "execution_accuracy",
                    "execution_accuracy_nonempty_gold",
                    "num_scored",
                    "protocol",
                    "dataset",
                    "semantics",
                    "decoding",
                    "schema_format",
                )
            },
        )
    if args.adapter and Path(args.adapter).is_dir():
        verb = "Recorded the score in" if record else "Did not record the score in"
        console.print(f"{verb} {Path(args.adapter) / 'README.md'} ({why})")
    console.print(f"Wrote {out}/predictions.jsonl, metrics.json, analysis.md, analysis.json, analysis.png")
    if args.keep_outcomes:
        console.print(f"Kept the run record {keep_outcomes(out, args.keep_outcomes)}")
    return metrics


def card_decision(args: EvaluateArguments) -> tuple[bool, str]:
    """(whether this evaluation goes into the adapter's model card, the reason to print)."""
    if not (args.adapter and Path(args.adapter).is_dir()):
        return False, "not a local adapter folder"
    if args.record_in_card != "auto":
        return args.record_in_card == "always", f"--record_in_card {args.record_in_card}"
    if Path(args.adapter).resolve().is_relative_to(SHIPPED_DIR):
        # Its card holds the scores `make ship-spider` measured; a partial or other run would stand beside them.
        return False, "the model that ships with t2s: --record_in_card always to record it"
    if is_folder(args.dataset_name):
        return False, "data from a folder you named: --record_in_card always to record it"
    return True, "a public benchmark: --record_in_card never to keep it out"


HEADLINES = {
    "wikisql": "execution_accuracy (official WikiSQL protocol: empty-gold examples included; text compared "
    "case-insensitively)",
    "spider": "execution_accuracy (official Spider execution match, test-suite-sql-eval defaults: DISTINCT removed, "
    "rows as multisets, ordered only if the gold has ORDER BY, any column order, exact values)",
}


def breakdowns(records: list[dict], details: list[dict]) -> dict:
    """Accuracy by hardness (Spider) and without the examples whose gold result has a known data caveat."""
    out: dict = {}
    scored = [(r, d) for r, d in zip(records, details) if d["outcome"] != "gold_error"]
    if any("hardness" in r for r, _ in scored):
        by = {}
        for level in (*HARDNESS_LEVELS, "unknown"):
            items = [d for r, d in scored if r.get("hardness") == level]
            if items:
                right = sum(d["outcome"] == "correct" for d in items)
                by[level] = {"n": len(items), "correct": right, "execution_accuracy": right / len(items)}
        out["by_hardness"] = by
    flagged = [(r, d) for r, d in scored if r.get("caveat")]
    if flagged:
        clean = [d for r, d in scored if not r.get("caveat")]
        caveats: dict[str, dict] = {}
        for r, d in flagged:
            entry = caveats.setdefault(r["caveat"], {"n": 0, "correct": 0})
            entry["n"] += 1
            entry["correct"] += d["outcome"] == "correct"
        out["caveat_examples"] = caveats
        out["execution_accuracy_without_caveats"] = (
            sum(d["outcome"] == "correct" for d in clean) / len(clean) if clean else 0.0
        )
        out["num_without_caveats"] = len(clean)
    return out


def print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=f"Execution accuracy: {title}", show_header=False)
    table.add_row("protocol", metrics["protocol"])
    table.add_row("schema in prompt", metrics["schema_format"])
    table.add_row("decoding", metrics["decoding"])
    table.add_row(
        "execution accuracy",
        f"[bold]{metrics['execution_accuracy']:.1%}[/] ({metrics['outcomes']['correct']}/{metrics['num_scored']})",
    )
    table.add_row(
        "without empty-gold",
        f"{metrics['execution_accuracy_nonempty_gold']:.1%} ({metrics['num_empty_gold']} empty-gold left out)",
    )
    table.add_row("outcomes", ", ".join(f"{k} {v}" for k, v in metrics["outcomes"].items()))
    if metrics.get("gold_errors"):
        table.add_row("gold errors (excluded)", str(metrics["gold_errors"]))
    for level, e in metrics.get("by_hardness", {}).items():
        table.add_row(f"  {level}", f"{e['execution_accuracy']:.1%} ({e['correct']}/{e['n']})")
    if "caveat_examples" in metrics:
        n = sum(e["n"] for e in metrics["caveat_examples"].values())
        table.add_row(
            "without data caveats",
            f"{metrics['execution_accuracy_without_caveats']:.1%} ({metrics['num_without_caveats']} examples; "
            f"{n} with a known problem in their gold result are reported apart in metrics.json)",
        )
    if metrics.get("generation_seconds") is not None:
        table.add_row("generation time", f"{metrics['generation_seconds']:.0f} s")
    console.print(table)
