"""Your own SQLite file, opened read-only after checking it is one, and the table name a data file gets.

(CSV and Parquet files are read by DuckDB: t2s.execution.engines.duckdb.from_files.)
"""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path

from t2s.execution.sandbox import open_database
from t2s.execution.sql_text import SQLITE_KEYWORDS
from t2s.runtime import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"


def open_sqlite(path: str | Path) -> sqlite3.Connection:
    """Your SQLite file, read-only (`mode=ro`, `query_only`), after checking it is one."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an SQLite database file")
    if not path.is_file():
        raise UserError(f"{path}: no such file; give an SQLite database file (or a DuckDB file, or a URL)")
    with path.open("rb") as f:
        if f.read(16) != SQLITE_MAGIC:
            raise UserError(
                f"{path}: not an SQLite database (its header is not 'SQLite format 3'); CSV and Parquet files are read "
                "as data files (t2s ask --csv/--parquet, or uploaded on the page)"
            )
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


def check_csv(path: Path) -> str:
    """The CSV's delimiter, after checking its header names distinct columns and every row is as wide: DuckDB's
    sniffer would otherwise read a ragged file as one column, or rename a duplicate name, without a word."""
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
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{path}:{reader.line_num}: {len(row)} fields for {len(header)} columns; fix the row "
                    "(quote fields that contain the delimiter)"
                )
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return dialect.delimiter
