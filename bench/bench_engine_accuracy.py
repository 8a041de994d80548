"""A model's Spider dev accuracy on DuckDB beside SQLite's, on the same questions, with DuckDB's losses explained.

    python -m bench.bench_engine_accuracy [--limit 200] [--model embedded:smollm2-135m-spider]

Spider dev questions (`--limit`, seed 42). Each of their databases is copied to a DuckDB file (`t2s.data.copy_db`,
as `t2s copy-db` does) and each gold query transpiled from SQLite to DuckDB with sqlglot (`t2s.data.copy_db.transpile`,
as bench_engines does); the questions are written as a Spider layout whose `databases.json` names the DuckDB files,
so the prompts are in DuckDB's dialect (its types, its quoting). `t2s evaluate` scores the model on both layouts with
the prompt settings it learned, greedy (prefix cache, continuous batching), under Spider semantics. The DuckDB losses
on questions SQLite got right are split into: gold that does not carry over (it does not transpile, or its result on
DuckDB is not SQLite's), the model's query failing on DuckDB (a dialect error), and another result. Pairs are
compared with McNemar's exact test. Writes a section of docs/experiments.md and the per-question outcomes to
results/engines/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.data.copy_db import copy_sqlite, transpile  # noqa: E402
from t2s.evaluation.compare import mcnemar_exact  # noqa: E402
from t2s.execution.engines import open_engine  # noqa: E402
from t2s.execution.scoring import run_gold  # noqa: E402
from t2s.execution.semantics import spider_results_match  # noqa: E402

DOC = ROOT / "docs" / "experiments.md"
RECORDS = ROOT / "results" / "engines"


def evaluate(model: str, dataset: list[str], out: Path) -> tuple[list[dict], dict]:
    command = [sys.executable, "t2s/evaluate_sql.py", "--model", model, *dataset, "--output_dir", str(out),
               "--record_in_card", "never"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"evaluation failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return records, json.loads((out / "metrics.json").read_text())


def gold_carries_over(sqlite_engine, duck_engine, gold: str, transpiled: str | None) -> str:
    """'yes', or why DuckDB's gold is not SQLite's: it does not transpile, fails, or gives another result."""
    if transpiled is None:
        return "does not transpile"
    a = run_gold(sqlite_engine, gold, semantics="spider")
    b = run_gold(duck_engine, transpiled, semantics="spider")
    if b.execution.status != "ok":
        return f"fails on DuckDB ({b.execution.status})"
    same = spider_results_match(a.execution.rows, b.execution.rows, order_matters=a.order_matters)
    return "yes" if same else "another result on DuckDB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--model", default="embedded:smollm2-135m-spider")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="t2s-engine-accuracy-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work: Path) -> None:
    ds = load_text2sql("spider", "dev", limit=args.limit, seed=42)
    layout = work / "spider_duckdb"
    (layout / "db").mkdir(parents=True)
    databases, sqlite_engines, duck_engines = {}, {}, {}
    for db_id, path in sorted(set(zip(ds["db_id"], ds["db_path"]))):
        target = layout / "db" / f"{db_id}.duckdb"
        copy_sqlite(path, str(target))
        databases[db_id] = f"db/{db_id}.duckdb"
        sqlite_engines[db_id], duck_engines[db_id] = open_engine(path), open_engine(str(target))
    questions, carries = [], []
    for ex in ds:
        sqlite_engine = sqlite_engines[ex["db_id"]]
        names = {t.name for t in sqlite_engine.catalogue()} | {
            c.name for t in sqlite_engine.catalogue() for c in t.columns
        }
        try:
            transpiled = transpile(ex["gold_sql"], "duckdb", names)
        except ValueError:
            transpiled = None
        carries.append(gold_carries_over(sqlite_engine, duck_engines[ex["db_id"]], ex["gold_sql"], transpiled))
        questions.append({"db_id": ex["db_id"], "question": ex["question"], "query": transpiled or ex["gold_sql"]})
    for engine in (*sqlite_engines.values(), *duck_engines.values()):
        engine.close()
    (layout / "dev.json").write_text(json.dumps(questions, indent=1))
    (layout / "databases.json").write_text(json.dumps(databases, indent=1))

    sqlite, sqlite_metrics = evaluate(args.model, ["--dataset_name", "spider", "--split", "dev", "--limit", str(args.limit),
                                   "--seed", "42"], work / "sqlite")  # fmt: skip
    duck, duck_metrics = evaluate(args.model, ["--dataset_name", str(layout), "--split", "dev"], work / "duckdb")
    assert [r["question"] for r in duck] == [r["question"] for r in sqlite], "the two runs ask other questions"

    right = {"sqlite": sum(r["outcome"] == "correct" for r in sqlite),
             "duckdb": sum(r["outcome"] == "correct" for r in duck)}  # fmt: skip
    fixed = sum(a["outcome"] != "correct" and b["outcome"] == "correct" for a, b in zip(sqlite, duck))
    broken = Counter()
    for a, b, carry in zip(sqlite, duck, carries):
        if a["outcome"] == "correct" and b["outcome"] != "correct":
            if carry != "yes":
                broken[f"gold does not carry over ({carry})"] += 1
            elif b["outcome"] in ("exec_error", "rejected", "timeout", "too_large"):
                broken[f"the model's query {b['outcome'].replace('_', ' ')} on DuckDB"] += 1
            else:
                broken["the model's query gives another result on DuckDB"] += 1
    n_broken = sum(broken.values())
    carried = Counter(carries)
    n = len(sqlite)
    RECORDS.mkdir(parents=True, exist_ok=True)
    record = RECORDS / f"spider-dev-{args.limit}-seed42-sqlite-duckdb.json"
    record.write_text(json.dumps({
        "protocol": f"Spider dev, {n} of 1034 questions (seed 42); {args.model}; greedy, the prompt settings it "
                    "learned, prompts in each database's dialect; Spider semantics; gold transpiled SQLite → DuckDB",
        "command": f"python -m bench.bench_engine_accuracy --limit {args.limit} --model {args.model}",
        "questions": [
            {"example_id": a["example_id"], "sqlite": a["outcome"], "duckdb": b["outcome"], "gold_carries_over": c,
             "duckdb_prediction": b["prediction"]}
            for a, b, c in zip(sqlite, duck, carries)
        ],
    }, indent=1, ensure_ascii=False) + "\n")  # fmt: skip
    rows = "\n".join(f"| {why} | {k} |" for why, k in broken.most_common())
    body = f"""`python -m bench.bench_engine_accuracy --limit {args.limit} --model {args.model}`: Spider dev, {n} questions
(seed 42), greedy with the prompt settings the model learned; each database copied to DuckDB (`t2s copy-db`), gold
transpiled from SQLite with sqlglot, prompts in DuckDB's dialect; Spider semantics. Per-question outcomes:
[{record.relative_to(ROOT)}](../{record.relative_to(ROOT)}).

| | SQLite | DuckDB |
|---|---|---|
| correct, of the {n} questions | {right["sqlite"] / n:.1%} ({right["sqlite"]}) | {right["duckdb"] / n:.1%} ({right["duckdb"]}) |
| the metric's execution accuracy (questions whose gold fails left out) | {sqlite_metrics["execution_accuracy"]:.1%} of {sqlite_metrics["num_scored"]} | {duck_metrics["execution_accuracy"]:.1%} of {duck_metrics["num_scored"]} |

Paired: {fixed} right on DuckDB only, {n_broken} right on SQLite only (McNemar p = {mcnemar_exact(fixed, n_broken):.2g}).
Gold carried over on {carried["yes"]} of {n} questions ({", ".join(f"{k}: {v}" for k, v in carried.items() if k != "yes") or "all"}).
Why the {n_broken} questions right on SQLite are not on DuckDB:

| cause | questions |
|---|---|
{rows or "| (none) | 0 |"}
"""
    print(body)
    write_section("A model on DuckDB beside SQLite (Spider dev)", body, DOC)


if __name__ == "__main__":
    main()
