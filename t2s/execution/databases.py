"""Your own databases: an SQLite file opened read-only after checking it is one, or CSV files as tables.

Each CSV becomes a table of an in-memory database, named after the file, its header row giving the column names;
column types are decided with SQLite's own numeric conversion (`CAST(x AS NUMERIC)`): INTEGER when every non-empty
cell is a plain integer, REAL when every one is a number, else TEXT (a code such as `007` stays text), and empty
cells become NULL. The database is then made read-only like any other: the user's files are never modified.
"""

from __future__ import annotations

from t2s.runtime import UserError

import csv
import re
import sqlite3
from pathlib import Path

from t2s.execution.sandbox import harden, open_database
from t2s.execution.sql_text import SQLITE_KEYWORDS, quote_identifier

SQLITE_MAGIC = b"SQLite format 3\x00"


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
