"""Put an SQLite database (Spider's, or your own) on another engine, and its SQL in that engine's dialect.

    t2s copy-db ../shared/spider/database/concert_singer/concert_singer.sqlite \
        'postgresql://admin:${PGPASSWORD}@localhost/concert_singer'
    t2s transpile --to postgres --db concert_singer.sqlite 'SELECT name FROM singer WHERE country = "France"'

`copy-db` writes: give it an administrator's URL of an empty database you created for the copy (types mapped by
SQLite's affinity, keys kept where the data satisfies them; docs/engines.md). `transpile` writes SQLite SQL in
another dialect with sqlglot; with `--db`, double-quoted strings are first read as SQLite reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from t2s.data.copy_db import TARGET_DIALECTS, copy_sqlite, transpile
from t2s.execution.engines import open_engine, redact
from t2s.runtime import UserError, run_command

console = Console()


def copy_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="t2s copy-db", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="the SQLite database file to copy")
    parser.add_argument("target", help="postgresql://… or mysql+pymysql://… (an empty database), or a .duckdb file")
    parser.add_argument("--replace", action="store_true", help="drop tables of the same names in the target first")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not Path(args.source).is_file():
        raise UserError(f"{args.source}: no such SQLite file")
    report = copy_sqlite(args.source, args.target, replace=args.replace)
    console.print(f"[green]Copied {report.tables} tables, {report.rows:,} rows into {redact(args.target)}[/]")
    for column in report.as_text:
        console.print(f"  {column}: copied as text (its values do not all fit its declared type)")
    for key in report.dropped_keys:
        console.print(f"  [yellow]key left out:[/] {key}")
    return report


def transpile_main(argv=None):
    parser = argparse.ArgumentParser(
        prog="t2s transpile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sql", nargs="*", help="SQLite queries (default: one per line on standard input)")
    parser.add_argument("--to", required=True, choices=sorted(set(TARGET_DIALECTS.values())), help="target dialect")
    parser.add_argument("--db", help="the SQLite database the queries are for (reads double-quoted strings right)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    queries = args.sql or [line for line in sys.stdin.read().splitlines() if line.strip()]
    names = None
    if args.db:
        with open_engine(args.db) as engine:
            names = {t.name for t in engine.catalogue()} | {c.name for t in engine.catalogue() for c in t.columns}
    out = []
    for sql in queries:
        try:
            out.append(transpile(sql, args.to, names))
        except ValueError as e:
            raise UserError(f"{sql!r}: {e}") from None
        print(out[-1])
    return out


if __name__ == "__main__":
    run_command(copy_main)
