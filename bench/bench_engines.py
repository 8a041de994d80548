"""Spider dev's SQLite gold queries on PostgreSQL, MariaDB and DuckDB: how many transpile, run, and give SQLite's result.

    python -m bench.bench_engines [--spider ../shared/spider] [--limit N]

Every Spider dev database is copied onto each engine (`t2s.data.copy_db`: types by SQLite affinity, keys
where the data holds them, names lower-cased for PostgreSQL and MySQL); PostgreSQL and MariaDB are private instances
started from the installed packages (tests/servers.py; MariaDB with lower_case_table_names=1). Each gold query is
transpiled from SQLite with sqlglot, run in the engine's sandbox, and compared with the same query's result on SQLite
under the metric's Spider semantics (DISTINCT removed, columns permuted, order only with ORDER BY). A gold query that
does not give SQLite's result on an engine is a question on which a model trained on SQLite gold would be misjudged
there, even when it writes the gold query. Writes the table and the main causes into docs/experiments.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmarks_page import write_section  # noqa: E402
from bench.engine_copies import copy_onto  # noqa: E402
from t2s.data import load_spider  # noqa: E402
from t2s.data.copy_db import transpile  # noqa: E402
from t2s.data.dialect_copy import catalogue_names  # noqa: E402
from t2s.execution.engines import open_engine  # noqa: E402
from t2s.execution.semantics import spider_normalize, spider_results_match  # noqa: E402
from tests.servers import start_mariadb, start_postgres  # noqa: E402

DOC = ROOT / "docs" / "experiments.md"
DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}
# Causes, by the first pattern that matches the error (or, for a different result, the query).
ERROR_CAUSES = [
    (
        "strict GROUP BY (a selected column neither grouped nor aggregated)",
        r"must appear in the GROUP BY|GROUP BY clause|only_full_group_by|must appear in|is not in GROUP BY",
    ),
    (
        "text compared with a number (no implicit cast)",
        r"operator does not exist: (text|character varying) [=<>!]+ (integer|bigint|numeric|double)|operator does not exist: (integer|bigint|double precision|numeric) [=<>!]+ (text|character varying)|Cannot compare values of type|Could not convert string|Conversion Error",
    ),
    (
        "a function or operator the engine lacks",
        r"function .* does not exist|No function matches|Scalar Function with name|FUNCTION .* does not exist|Catalog Error",
    ),
    (
        "a column or table name resolved differently (case, quoting, ambiguity)",
        r"does not exist|not found|Unknown column|ambiguous|Referenced column|Referenced table|no such table",
    ),
    (
        "set operation or subquery rules (ORDER BY/LIMIT placement, types)",
        r"UNION|INTERSECT|EXCEPT|each .* query must have the same number|types .* cannot be matched",
    ),
    ("syntax the engine refuses", r"syntax error|Parser Error|You have an error in your SQL syntax"),
    ("refused by the sandbox's gate", r"not allowed|outside the database"),
]
DOUBLE_QUOTED = re.compile(r'"[^"]*"')
RESULT_CAUSES = [
    ("division (`/` on integers: SQLite and PostgreSQL truncate, MySQL and DuckDB do not)", r"/"),
    ("ties under ORDER BY … LIMIT (engines break them differently)", r"order\s+by.*limit"),
    ("case-sensitive text comparison or LIKE differs", r"like|=\s*'"),
]


def cause(patterns, text: str) -> str:
    for name, pattern in patterns:
        if re.search(pattern, text or "", re.IGNORECASE | re.DOTALL):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider", default=None, help="Spider folder (default: $T2S_SPIDER_DIR)")
    parser.add_argument("--limit", type=int, default=None, help="first N dev questions (default: all 1,034)")
    args = parser.parse_args()

    ds = load_spider(args.spider, "dev", limit=args.limit)
    databases = sorted({ex["db_path"] for ex in ds if ex["db_path"]})
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="t2s-bench-engines-"))
    postgres, mariadb = start_postgres(), start_mariadb(work / "mariadb")

    names: dict[str, dict[str, str]] = defaultdict(dict)
    copy_notes = Counter()
    try:
        by_name = {Path(path).stem: path for path in databases}
        for kind, server in (("postgresql", postgres), ("mysql", mariadb), ("duckdb", None)):
            opened_as, reports = copy_onto(kind, by_name, work, server)
            for report in reports:
                copy_notes[kind, "as_text"] += len(report.as_text)
                copy_notes[kind, "dropped_keys"] += len(report.dropped_keys)
            for name, path in by_name.items():
                names[path][kind] = opened_as[name]
        copy_seconds = time.perf_counter() - started

        sqlite_engines = {path: open_engine(path) for path in databases}
        database_names = {path: catalogue_names(e) for path, e in sqlite_engines.items()}
        engines = {(path, kind): open_engine(url) for path in databases for kind, url in names[path].items()}
        counts = {kind: Counter() for kind in DIALECTS}
        causes = {kind: Counter() for kind in DIALECTS}
        examples: dict[tuple[str, str], str] = {}
        by_hardness = {kind: Counter() for kind in DIALECTS}
        totals = Counter()
        for ex in ds:
            if not ex["db_path"]:
                continue
            gold = spider_normalize(ex["gold_sql"])
            reference = sqlite_engines[ex["db_path"]].run(gold)
            if reference.status != "ok":
                totals["gold fails on SQLite"] += 1
                continue
            totals["questions"] += 1
            totals[ex["hardness"]] += 1
            order = "order by" in gold.lower()
            names = database_names[ex["db_path"]]
            for kind, dialect in DIALECTS.items():
                try:
                    plain = transpile(gold, dialect)
                    result = engines[ex["db_path"], kind].run(plain, timeout_s=10)
                    if result.status == "ok" and spider_results_match(
                        reference.rows, result.rows, order_matters=order
                    ):
                        counts[kind]["same, sqlglot alone"] += 1
                    sql = transpile(gold, dialect, names)
                except Exception as e:  # noqa: BLE001 - any sqlglot failure is a transpilation failure
                    causes[kind][f"sqlglot cannot transpile ({type(e).__name__})"] += 1
                    continue
                counts[kind]["transpiled"] += 1
                result = engines[ex["db_path"], kind].run(sql, timeout_s=10)
                if result.status != "ok":
                    why = cause(ERROR_CAUSES, result.error)
                    if DOUBLE_QUOTED.search(ex["gold_sql"]) and why.startswith("a column or table name"):
                        why = "a double-quoted string (SQLite reads it as text) read as a name"
                    causes[kind][why] += 1
                    examples.setdefault((kind, why), f"`{sql}` → {result.error}")
                    continue
                counts[kind]["ran"] += 1
                if spider_results_match(reference.rows, result.rows, order_matters=order):
                    counts[kind]["same"] += 1
                    by_hardness[kind][ex["hardness"]] += 1
                else:
                    why = "different result: " + cause(RESULT_CAUSES, sql)
                    causes[kind][why] += 1
                    examples.setdefault((kind, why), f"`{sql}`")
        elapsed = time.perf_counter() - started
    finally:
        postgres.stop()
        mariadb.stop()

    n = totals["questions"]
    lines = [
        f"Spider dev, {n:,} gold queries that run on SQLite ({totals['gold fails on SQLite']} that do not are left "
        f"out), on {len(databases)} databases; command: `python -m bench.bench_engines` ({elapsed:.0f} s on this "
        f"machine, {copy_seconds:.0f} s of it copying the databases). Engines: PostgreSQL 15 and MariaDB 10.11 "
        "(Debian packages), DuckDB (the `duckdb` wheel). Queries transpiled from SQLite by `t2s transpile` (sqlglot, "
        "after SQLite's double-quoted strings are made single-quoted; the last column: sqlglot alone); results "
        "compared under Spider's execution match. Counts that involve ties under `ORDER BY … LIMIT` can move by one "
        "between runs (an engine may break a tie differently each time).",
        "",
        "| engine | transpiled | ran | same result as SQLite | easy | medium | hard | extra | sqlglot alone |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in DIALECTS:
        c, h = counts[kind], by_hardness[kind]
        cells = [
            f"{c['transpiled']:,}",
            f"{c['ran']:,} ({c['ran'] / n:.1%})",
            f"**{c['same']:,} ({c['same'] / n:.1%})**",
        ]
        cells += [f"{h[x]}/{totals[x]}" for x in ("easy", "medium", "hard", "extra")]
        cells.append(f"{c['same, sqlglot alone']:,} ({c['same, sqlglot alone'] / n:.1%})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Copies: columns copied as text against their declared type, keys left out (the data violates them):",
    ]
    lines.append(
        ", ".join(f"{kind} {copy_notes[kind, 'as_text']} / {copy_notes[kind, 'dropped_keys']}" for kind in DIALECTS)
    )
    for kind in DIALECTS:
        lines += ["", f"**{kind}**: why the other {n - counts[kind]['same']} differ", ""]
        lines += ["| cause | questions | first example |", "|---|---|---|"]
        for why, count in causes[kind].most_common():
            example = examples.get((kind, why), "").replace("|", "\\|")
            lines.append(f"| {why} | {count} | {example[:300]} |")
    write_section("Spider dev gold queries on other engines", "\n".join(lines), path=DOC)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
