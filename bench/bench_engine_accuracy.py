"""A model's Spider dev accuracy on DuckDB, PostgreSQL and MySQL beside SQLite's, on the same questions, with each
engine's losses explained.

    python -m bench.bench_engine_accuracy [--limit 200] [--engines duckdb postgresql mysql]
        [--model embedded:smollm2-135m-spider | --adapter RUN] [--decoding greedy|scoped] [--label NAME]
        [--against LABEL]

Spider dev questions (`--limit`, seed 42). Each of their databases is copied onto each engine (`t2s.data.copy_db`, as
`t2s copy-db` does: a DuckDB file; a database on a private PostgreSQL or MariaDB server started from the installed
packages, tests/servers.py, queried as a read-only account) and each gold query transpiled from SQLite with sqlglot
(`t2s.data.dialect_copy`, as bench_engines and `t2s copy-dataset` do); the questions are written as a Spider layout whose
`databases.json` names the copies, so the prompts are in that engine's dialect (its types, its quoting). `t2s evaluate`
scores the model on each layout and on SQLite with the prompt settings it learned, greedy (prefix cache, continuous
batching) or, with `--decoding scoped`, column-scoped constrained greedy under each engine's grammar (its quoting,
its strings, its functions: `t2s.decoding.constrained.schema_grammar`), under Spider semantics. Each engine's losses on questions SQLite got right are split into: gold that does
not carry over (it does not transpile, or its result there is not SQLite's), the model's query failing there (a
dialect error), and another result. Pairs are compared with McNemar's exact test. Writes a section of
docs/experiments.md and the per-question outcomes to results/engines/<label>/ (`--label`, by default the model's name;
a shipped model's records also hold the digest of the weights they scored, as the weights behind a name change).
`--against LABEL` pairs each engine's outcomes with another model's records there (same questions and decoding), with
McNemar's test: how a change of training data or recipe moved the score on each engine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmarks_page import write_section  # noqa: E402
from bench.engine_copies import copy_onto  # noqa: E402
from t2s.data import load_text2sql  # noqa: E402
from t2s.data.copy_db import sqlite_double_quotes  # noqa: E402
from t2s.data.dialect_copy import CarryOver, catalogue_names, gold_carries_over, transpile_or_none  # noqa: E402
from t2s.decoding.embedded import EMBEDDED_PREFIX, SHIPPED_DIR, sha256_of  # noqa: E402
from t2s.evaluation.compare import mcnemar_exact  # noqa: E402
from t2s.execution.engines import open_engine  # noqa: E402
from t2s.execution.scoring import run_gold  # noqa: E402

DOC = ROOT / "docs" / "experiments.md"
RECORDS = ROOT / "results" / "engines"


DISPLAY = {"duckdb": "DuckDB", "postgresql": "PostgreSQL", "mysql": "MySQL (MariaDB)"}
DIALECTS = {"duckdb": "duckdb", "postgresql": "postgres", "mysql": "mysql"}
FAILED = ("exec_error", "rejected", "timeout", "too_large")
DECODINGS = {"greedy": [], "scoped": ["--constrained_decoding", "--scoped_columns"]}
DECODING_LABELS = {"greedy": "greedy", "scoped": "column-scoped constrained greedy in each engine's grammar"}


def evaluate(model: list[str], dataset: list[str], out: Path) -> tuple[list[dict], dict]:
    command = [sys.executable, "t2s/evaluate_sql.py", *model, *dataset, "--output_dir", str(out),
               "--record_in_card", "never"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"evaluation failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return records, json.loads((out / "metrics.json").read_text())


def adapter_weights(args) -> str | None:
    """The SHA-256 of the adapter weights scored: `--adapter`'s, or a shipped model's (None for any other model)."""
    if args.adapter:
        weights = Path(args.adapter) / "adapter_model.safetensors"
    else:
        weights = SHIPPED_DIR / args.model.removeprefix(EMBEDDED_PREFIX) / "adapter_model.safetensors"
        if not args.model.startswith(EMBEDDED_PREFIX):
            return None
    return sha256_of([weights]) if weights.is_file() else None


def command(args) -> str:
    engines = f" --engines {' '.join(args.engines)}" if args.engines != list(DIALECTS) else ""
    against = f" --against {args.against}" if args.against else ""
    return (f"python -m bench.bench_engine_accuracy --limit {args.limit}{engines} {shlex.join(args.scored)} --decoding "
            f"{args.decoding} --label {args.label}{against}")  # fmt: skip


def paired_row(args, engine: str, outcomes: dict[str, str], record_kind: str) -> str:
    """One table row: this run's outcomes on `engine` against `--against`'s record of the same questions there (its
    record for `record_kind`, which also holds SQLite's outcomes)."""
    path = RECORDS / args.against / f"spider-dev-{args.limit}-seed42-sqlite-{record_kind}-{args.decoding}.json"
    if not path.is_file():
        sys.exit(
            f"--against {args.against}: no record {path.relative_to(ROOT)} (run that model with the same --limit and --decoding)"
        )
    theirs = {q["example_id"]: q[engine] for q in json.loads(path.read_text())["questions"]}
    if theirs.keys() != outcomes.keys():
        sys.exit(f"{path.relative_to(ROOT)} holds other questions than this run: it cannot be paired")
    ours_only = sum(outcomes[i] == "correct" and theirs[i] != "correct" for i in outcomes)
    theirs_only = sum(theirs[i] == "correct" and outcomes[i] != "correct" for i in outcomes)
    right, right_theirs = (sum(v == "correct" for v in d.values()) for d in (outcomes, theirs))
    name = "SQLite" if engine == "sqlite" else DISPLAY[engine]
    return (f"| {name} | {right} | {right_theirs} | {ours_only} / {theirs_only} | "
            f"{mcnemar_exact(ours_only, theirs_only):.2g} |")  # fmt: skip


def copies(kind: str, paths: dict[str, str], work: Path, servers: list) -> dict[str, str]:
    """Each database copied onto `kind` (a server started for it): db_id → what `databases.json` names."""
    server = None
    if kind != "duckdb":
        from tests.servers import start_mariadb, start_postgres

        server = start_postgres() if kind == "postgresql" else start_mariadb(work / "mariadb")
        servers.append(server)
    return copy_onto(kind, paths, work, server)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--engines", nargs="+", default=list(DIALECTS), choices=list(DIALECTS))
    parser.add_argument("--model", default="embedded:smollm2-135m-spider", help="a model, or --adapter's base")
    parser.add_argument("--adapter", help="a LoRA adapter folder (a finished run, a shipping candidate)")
    parser.add_argument("--decoding", default="greedy", choices=list(DECODINGS))
    parser.add_argument("--label", help="the records' folder in results/engines/ (default: the model's name)")
    parser.add_argument("--against", help="pair with another model's records: its folder in results/engines/")
    args = parser.parse_args()
    args.label = args.label or Path(args.adapter or args.model.removeprefix(EMBEDDED_PREFIX)).name
    if args.adapter:
        args.model = None if args.model == parser.get_default("model") else args.model  # the adapter's base
    args.scored = [a for k, v in (("model", args.model), ("adapter", args.adapter)) if v for a in (f"--{k}", v)]
    work = Path(tempfile.mkdtemp(prefix="t2s-engine-accuracy-"))
    servers: list = []
    try:
        measure(args, work, servers)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work: Path, servers: list) -> None:
    ds = load_text2sql("spider", "dev", limit=args.limit, seed=42)
    paths = dict(sorted(set(zip(ds["db_id"], ds["db_path"]))))
    sqlite_engines = {db_id: open_engine(path) for db_id, path in paths.items()}
    names = {db_id: catalogue_names(e) for db_id, e in sqlite_engines.items()}
    # SQLite's gold results, once: each engine's transpiled gold is compared with them
    sqlite_golds = [run_gold(sqlite_engines[ex["db_id"]], ex["gold_sql"], semantics="spider") for ex in ds]
    model = args.scored
    sqlite, sqlite_metrics = evaluate(model, ["--dataset_name", "spider", "--split", "dev", "--limit", str(args.limit),
                                   "--seed", "42", *DECODINGS[args.decoding]], work / "sqlite_run")  # fmt: skip
    n = len(sqlite)
    right_sqlite = sum(r["outcome"] == "correct" for r in sqlite)
    table = [f"| SQLite | {right_sqlite / n:.1%} ({right_sqlite}) | {sqlite_metrics['execution_accuracy']:.1%} of "
             f"{sqlite_metrics['num_scored']} | | | |"]  # fmt: skip
    causes_rows, records, pairs = [], [], []
    folder = RECORDS / args.label
    folder.mkdir(parents=True, exist_ok=True)
    weights = adapter_weights(args)
    for kind in args.engines:
        named = copies(kind, paths, work, servers)
        layout = work / f"spider_{kind}"
        layout.mkdir(parents=True, exist_ok=True)
        engines = {db_id: open_engine(where) for db_id, where in named.items()}
        questions, carries = [], []
        for ex, sqlite_gold in zip(ds, sqlite_golds):
            transpiled = transpile_or_none(ex["gold_sql"], DIALECTS[kind], names[ex["db_id"]])
            carries.append(gold_carries_over(sqlite_gold, engines[ex["db_id"]], transpiled).value)
            questions.append({"db_id": ex["db_id"], "question": ex["question"], "query": transpiled or ex["gold_sql"]})
        for engine in engines.values():
            engine.close()
        (layout / "dev.json").write_text(json.dumps(questions, indent=1))
        (layout / "databases.json").write_text(json.dumps(named, indent=1))
        other, metrics = evaluate(
            model,
            ["--dataset_name", str(layout), "--split", "dev", *DECODINGS[args.decoding]],
            work / f"{kind}_run",
        )
        assert [r["question"] for r in other] == [r["question"] for r in sqlite], "the runs ask other questions"
        right = sum(r["outcome"] == "correct" for r in other)
        fixed = sum(a["outcome"] != "correct" and b["outcome"] == "correct" for a, b in zip(sqlite, other))
        broken = Counter()
        for a, b, carry in zip(sqlite, other, carries):
            if a["outcome"] == "correct" and b["outcome"] != "correct":
                if carry != CarryOver.YES.value:
                    broken["gold"] += 1
                elif b["outcome"] in FAILED:
                    broken["fails"] += 1
                else:
                    broken["other result"] += 1
        lost = sum(broken.values())
        carried = Counter(carries)[CarryOver.YES.value]
        table.append(
            f"| {DISPLAY[kind]} | {right / n:.1%} ({right}) | {metrics['execution_accuracy']:.1%} of "
            f"{metrics['num_scored']} | {carried} | {fixed} / {lost} | {mcnemar_exact(fixed, lost):.2g} |"
        )
        failing = [(ex, b) for ex, b in zip(ds, other) if b["outcome"] in FAILED]
        quoted = sum(sqlite_double_quotes(b["prediction"], names[ex["db_id"]]) != b["prediction"] for ex, b in failing)
        causes_rows.append(
            f"| {DISPLAY[kind]} | {broken['gold']} | {broken['fails']} | {broken['other result']} | {len(failing)} "
            f"({quoted}) |"
        )
        record = folder / f"spider-dev-{args.limit}-seed42-sqlite-{kind}-{args.decoding}.json"
        record.write_text(json.dumps({
            "protocol": f"Spider dev, {n} of 1034 questions (seed 42); {args.adapter or args.model}; {DECODING_LABELS[args.decoding]}, the prompt settings it "
                        f"learned, prompts in each database's dialect; Spider semantics; gold transpiled SQLite → {DISPLAY[kind]}",
            "command": command(args),
            "weights_sha256": weights,
            "questions": [
                {"example_id": a["example_id"], "sqlite": a["outcome"], kind: b["outcome"], "gold_carries_over": c,
                 f"{kind}_prediction": b["prediction"], f"{kind}_error": b.get("error")}
                for a, b, c in zip(sqlite, other, carries)
            ],
        }, indent=1, ensure_ascii=False) + "\n")  # fmt: skip
        records.append(record.relative_to(ROOT))
        if args.against:
            if not pairs:
                pairs.append(paired_row(args, "sqlite", {r["example_id"]: r["outcome"] for r in sqlite}, kind))
            # the layout numbers its questions afresh: SQLite's run names them as the record does
            pairs.append(paired_row(args, kind, {a["example_id"]: b["outcome"] for a, b in zip(sqlite, other)}, kind))
    for engine in sqlite_engines.values():
        engine.close()
    links = ", ".join(f"[{r.name}](../{r})" for r in records)
    body = f"""`{command(args)}`: Spider
dev, {n} questions (seed 42), {DECODING_LABELS[args.decoding]}, with the prompt settings the model learned; each database copied onto the engine (`t2s copy-db`),
gold transpiled from SQLite with sqlglot, prompts in the engine's dialect; Spider semantics. Per-question outcomes:
{links}.

| engine | correct, of the {n} questions | the metric's accuracy (gold that fails there left out) | gold carried over | right there only / on SQLite only | McNemar p |
|---|---|---|---|---|---|
{chr(10).join(table)}

Why questions right on SQLite are not right on the engine (the first three columns), and every query of the model that fails there:

| engine | gold does not carry over | the model's query fails there | the model's query gives another result | of all {n}: the model's queries failing there (with a double-quoted string, as SQLite reads `"…"`) |
|---|---|---|---|---|
{chr(10).join(causes_rows)}
"""
    if pairs:
        body += f"""
Paired with `{args.against}` on the same questions ({DECODING_LABELS[args.decoding]}; its records in
results/engines/{args.against}/):

| engine | {args.label} | {args.against} | right with {args.label} only / with {args.against} only | McNemar p |
|---|---|---|---|---|
{chr(10).join(pairs)}
"""
    print(body)
    title = f"A model on other engines beside SQLite (Spider dev): {args.label}, {DECODING_LABELS[args.decoding]}"
    write_section(title, body, DOC)


if __name__ == "__main__":
    main()
