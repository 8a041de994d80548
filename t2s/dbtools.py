"""Put an SQLite database (Spider's, or your own) on another engine, and its SQL in that engine's dialect.

    t2s copy-db ../shared/spider/database/concert_singer/concert_singer.sqlite \
        'postgresql://admin:${PGPASSWORD}@localhost/concert_singer'
    t2s transpile --to postgres --db concert_singer.sqlite 'SELECT name FROM singer WHERE country = "France"'
    t2s copy-dataset ../shared/spider outputs/spider-duckdb --to duckdb

`copy-db` writes: give it an administrator's URL of an empty database you created for the copy (types mapped by
SQLite's affinity, keys kept where the data satisfies them; docs/engines.md). `transpile` writes SQLite SQL in
another dialect with sqlglot; with `--db`, double-quoted strings are first read as SQLite reads them. `copy-dataset`
does both for a whole Spider-layout dataset (DuckDB files), keeping the questions whose transpiled gold returns
SQLite's result there: data to train a model in that dialect (docs/engines.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from t2s.data.copy_db import TARGET_DIALECTS, copy_sqlite, transpile
from t2s.data.dialect_copy import COPYABLE_DIALECTS, catalogue_names, copy_spider_dialect
from t2s.data.spider import SpiderFormatError, resolve_spider_dir
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
            names = catalogue_names(engine)
    out = []
    for sql in queries:
        try:
            out.append(transpile(sql, args.to, names))
        except ValueError as e:
            raise UserError(f"{sql!r}: {e}") from None
        print(out[-1])
    return out


def copy_dataset_main(argv=None):
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    parser = argparse.ArgumentParser(
        prog="t2s copy-dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="a Spider-layout folder (tables.json, database/, split files), or 'spider'")
    parser.add_argument("out", help="a new folder for the copy")
    parser.add_argument("--to", default="duckdb", choices=COPYABLE_DIALECTS, help="the target engine")
    parser.add_argument(
        "--splits", nargs="+", default=["train", "dev"], help="the splits to copy (default: train dev)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    source = resolve_spider_dir(args.source)
    if source is None:
        raise UserError(f"{args.source}: not a Spider-layout folder (tables.json or database/ with split files)")
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"Copying {source.name} onto {args.to}", total=None)
        try:
            report = copy_spider_dialect(
                source, Path(args.out), dialect=args.to, splits=args.splits, on_question=lambda: bar.advance(task)
            )
        except (FileExistsError, FileNotFoundError, SpiderFormatError) as e:
            raise UserError(str(e)) from None
    for name, kept in report.kept.items():
        console.print(f"{name}: {kept:,} questions kept")
    for reason, count in report.reasons().most_common():
        console.print(f"  [yellow]left out:[/] {count:,} ({reason})")
    console.print(f"[green]{report.databases} databases copied; the layout is {args.out}[/]")
    return report


if __name__ == "__main__":
    run_command(copy_main)
