"""Ask questions about your own database: canonical prompt from its schema → SQL → result, in the sandbox.

    python t2s/ask.py --adapter outputs/demo_spider/adapter --db my.sqlite "How many orders shipped in May?"
    python t2s/ask.py --adapter outputs/demo_spider/adapter --csv orders.csv --csv customers.csv "Top 3 customers?"
    python t2s/ask.py --model embedded:smollm2-135m-instruct --db my.sqlite      # no question: interactive

The prompt is built exactly as in training, from the database's own schema (tables, types, primary and foreign
keys, read from its catalogue). Generation is greedy and stops at the first newline. The SQL runs in the metric's
sandbox on a read-only connection: your files are never modified. Each CSV becomes a table of an in-memory
database, named after the file, its header row giving the column names; column types are decided with SQLite's own
numeric conversion (`CAST(x AS NUMERIC)`): INTEGER when every non-empty cell is a plain integer, REAL when every
one is a number, else TEXT (a code such as `007` stays text), and empty cells become NULL.
"""

from __future__ import annotations

import t2s.quiet  # noqa: F401  (first: before bitsandbytes is imported)

import argparse
import csv
import re
import sqlite3
import sys
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from t2s.data.schema import SQLITE_KEYWORDS, DatabaseSchema, describe_connection, quote_identifier
from t2s.data.spider import SQLITE_MAGIC
from t2s.errors import UserError, run_command
from t2s.execution import harden, open_database, run_query
from t2s.prompt import SCHEMA_FORMATS, fill_prompt, render_schema

MAX_SHOWN_ROWS = 50
console = Console()


# --------------------------------------------------------------------------- databases


def open_sqlite(path: str | Path) -> sqlite3.Connection:
    """Your SQLite file, read-only (`mode=ro`, `query_only`), after checking it is one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such file; --db takes an SQLite database file")
    with path.open("rb") as f:
        if f.read(16) != SQLITE_MAGIC:
            raise UserError(f"{path}: not an SQLite database (its header is not 'SQLite format 3'); for CSV use --csv")
    return open_database(str(path))


def table_name_for(path: Path, taken: set[str]) -> str:
    name = re.sub(r"\W+", "_", path.stem).strip("_") or "table"
    if name[0].isdigit() or name.upper() in SQLITE_KEYWORDS:
        name = f"t_{name}"
    base, n = name, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name.lower())
    return name


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows; a row of the wrong width or an unreadable file is an error naming the line."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; --csv takes a CSV file with a header row")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the CSV as UTF-8") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text.splitlines(), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{path}: empty file; a CSV needs a header row") from None
    header = [h.strip() for h in header]
    if not all(header) or len({h.lower() for h in header}) != len(header):
        raise UserError(f"{path}:1: the header needs a distinct, non-empty name for every column; got {header}")
    rows = []
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{path}:{reader.line_num}: {len(row)} fields for {len(header)} columns; fix the row "
                    "(quote fields that contain the delimiter)"
                )
            rows.append(row)
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return header, rows


def _column_type(conn: sqlite3.Connection, table: str, column: str) -> str:
    """INTEGER when every non-empty cell is an integer written plainly; REAL when every one is a number SQLite
    converts (`CAST(x AS NUMERIC)`), written with digits, sign, point or exponent only; else TEXT. A leading zero
    (`007`, a code rather than a quantity) keeps the column TEXT."""
    col = quote_identifier(column)
    checks = {
        "INTEGER": f"CAST(CAST({col} AS INTEGER) AS TEXT) = {col}",
        "REAL": (
            f"typeof(CAST({col} AS NUMERIC)) IN ('integer', 'real') AND {col} NOT GLOB '*[^0-9.eE+-]*' "
            f"AND {col} NOT GLOB '0[0-9]*' AND {col} NOT GLOB '-0[0-9]*'"
        ),
    }
    for sql_type, check in checks.items():
        bad = conn.execute(f"SELECT count(*) FROM {table} WHERE {col} IS NOT NULL AND NOT ({check})").fetchone()[0]
        if not bad:
            return sql_type
    return "TEXT"


def load_csvs(paths: list[str]) -> sqlite3.Connection:
    """An in-memory database with one table per CSV, then made read-only like any other."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    taken: set[str] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        header, rows = read_csv(path)
        name = quote_identifier(table_name_for(path, taken))
        staging = quote_identifier("_t2s_staging")
        columns = ", ".join(f"{quote_identifier(h)} TEXT" for h in header)
        conn.execute(f"CREATE TABLE {staging} ({columns})")
        marks = ", ".join("?" * len(header))
        conn.executemany(
            f"INSERT INTO {staging} VALUES ({marks})", [[c if c.strip() else None for c in r] for r in rows]
        )
        typed = ", ".join(f"{quote_identifier(h)} {_column_type(conn, staging, h)}" for h in header)
        conn.execute(f"CREATE TABLE {name} ({typed})")
        conn.execute(f"INSERT INTO {name} SELECT * FROM {staging}")
        conn.execute(f"DROP TABLE {staging}")
    conn.commit()
    conn.execute("PRAGMA query_only = ON")
    return harden(conn)


# --------------------------------------------------------------------------- asking


class Asker:
    """A model and a database; `ask(question)` returns the SQL and its execution."""

    def __init__(self, model, tokenizer, conn: sqlite3.Connection, schema: DatabaseSchema, args) -> None:
        self.model, self.tokenizer, self.conn, self.args = model, tokenizer, conn, args
        # Rendered once for every question; sample rows (schema_format rows) come from the open connection, so
        # they are there for CSVs too.
        self.schema_text = render_schema(schema, args.schema_format, database=conn)

    def ask(self, question: str):
        from t2s.generation import GenerationSettings, generate_sql

        prompt = fill_prompt(self.schema_text, question)
        settings = GenerationSettings(max_new_tokens=self.args.max_new_tokens, batch_size=1)
        sql = generate_sql(self.model, self.tokenizer, [prompt], settings)[0][0]
        return sql, run_query(self.conn, sql, timeout_s=self.args.timeout, rewrite_double_quotes=False)


def show(question: str, sql: str, result) -> None:
    console.print(f"[bold]Q:[/] {question}")
    console.print(Syntax(sql or "(no SQL)", "sql", word_wrap=True))
    if result.status != "ok":
        console.print(f"[red]{result.status}:[/] {result.error}")
        return
    table = Table(*(result.columns or []), title=f"{len(result.rows)} row(s)")
    for row in result.rows[:MAX_SHOWN_ROWS]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    if len(result.rows) > MAX_SHOWN_ROWS:
        console.print(f"(first {MAX_SHOWN_ROWS} of {len(result.rows)} rows)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="*", help="the question; none opens an interactive prompt")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", help="an SQLite database file (opened read-only)")
    source.add_argument("--csv", action="append", help="a CSV file with a header row; repeat for several tables")
    parser.add_argument("--adapter", help="a t2s LoRA adapter folder or Hub id")
    parser.add_argument("--model", help="base or merged model (default: the adapter's base, else the embedded model)")
    parser.add_argument("--schema_format", default="types", choices=SCHEMA_FORMATS)
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds the query may run")
    return parser.parse_args(argv)


def main(argv=None):
    from t2s.generate import load_model_and_tokenizer

    args = parse_args(sys.argv[1:] if argv is None else argv)
    conn = open_sqlite(args.db) if args.db else load_csvs(args.csv)
    name = Path(args.db).stem if args.db else "csv"
    schema = describe_connection(conn, name)
    if not schema.tables:
        raise UserError(f"{args.db or args.csv}: the database has no tables")
    model, tokenizer = load_model_and_tokenizer(args.model, args.adapter, merge=args.adapter is not None)
    asker = Asker(model, tokenizer, conn, schema, args)
    if args.question:
        question = " ".join(args.question)
        sql, result = asker.ask(question)
        show(question, sql, result)
        return sql, result
    console.print(f"Tables: {', '.join(schema.table_names())}. Ask a question (empty line or Ctrl-D to quit).")
    while True:
        try:
            question = input("question> ").strip()
        except EOFError:
            break
        if not question:
            break
        show(question, *asker.ask(question))
    return None


if __name__ == "__main__":
    run_command(main)
