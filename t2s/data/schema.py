"""One model of a database schema, produced by every dataset reader and rendered by the prompt.

A WikiSQL table, a Spider database described by `tables.json`, and a user's own SQLite file all
become a `DatabaseSchema`: tables, their columns with types, primary keys and foreign keys. The
prompt renders it as `CREATE TABLE` statements, so a model sees the same kind of schema whatever
the data came from, and the relations it needs to write joins are always there.

Column types use Spider's coarse vocabulary (`text`, `number`, `time`, `boolean`, `others`;
WikiSQL keeps its own `text`/`real`), whether they come from `tables.json` or from SQLite's
declared types (`coarse_type` maps `varchar(20)`, `INTEGER`, `DATETIME`… by keyword), so a model
trained on Spider sees the same words when it is later asked about a user's database.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2s.execution.engines import Engine
from t2s.execution.sandbox import database_uri
from t2s.execution.sql_text import SQLITE_KEYWORDS, quote_identifier
from t2s.runtime import UserError

DIALECT_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}


class SchemaError(UserError, ValueError):
    """A schema description is inconsistent (the message names the database and the field)."""


@dataclass
class Column:
    name: str
    type: str = "text"


@dataclass
class ForeignKey:
    column: str
    ref_table: str
    ref_column: str


@dataclass
class TableSchema:
    name: str
    columns: list[Column]
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)


@dataclass
class DatabaseSchema:
    db_id: str
    tables: list[TableSchema]
    dialect: str = "sqlite"  # sqlglot's name: sqlite, postgres, mysql, duckdb

    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]

    def column_names(self) -> list[str]:
        return [c.name for t in self.tables for c in t.columns]


def coarse_type(declared: str | None) -> str:
    """A declared SQLite type in Spider's coarse vocabulary, by keyword (text first: `varchar` is text)."""
    t = (declared or "").lower()
    if any(k in t for k in ("char", "text", "var", "clob")):
        return "text"
    if any(k in t for k in ("int", "numeric", "decimal", "number", "real", "double", "float", "id")):
        return "number"
    if any(k in t for k in ("date", "time", "year")):
        return "time"
    if any(k in t for k in ("bool", "bit")):
        return "boolean"
    return "others" if t else "text"


# --------------------------------------------------------------------------- readers


def from_wikisql_table(table: Mapping[str, Any]) -> DatabaseSchema:
    """A WikiSQL table dict: one table, its (de-duplicated) header and `text`/`real` types, no keys."""
    from t2s.execution.tables import column_names, column_types, table_name

    columns = [Column(n, t) for n, t in zip(column_names(table["header"]), column_types(table))]
    return DatabaseSchema(db_id=str(table["id"]), tables=[TableSchema(table_name(table["id"]), columns)])


def from_tables_json(entry: Mapping[str, Any], where: str = "tables.json") -> DatabaseSchema:
    """Spider's `tables.json` entry: original names, coarse types, primary keys, foreign-key pairs."""
    try:
        db_id = str(entry["db_id"])
        table_names = list(entry["table_names_original"])
        column_names = list(entry["column_names_original"])
        column_types = list(entry["column_types"])
        primary_keys = list(entry.get("primary_keys") or [])
        foreign_keys = list(entry.get("foreign_keys") or [])
    except (KeyError, TypeError) as e:
        raise SchemaError(f"{where}: database entry is missing the field {e}") from None
    if len(column_types) != len(column_names):
        raise SchemaError(
            f"{where}: {db_id}: {len(column_types)} column_types for {len(column_names)} column_names_original"
        )
    tables = [TableSchema(name=str(n), columns=[]) for n in table_names]
    owner: dict[int, tuple[TableSchema, str]] = {}
    for i, (pair, ctype) in enumerate(zip(column_names, column_types)):
        table_index, name = pair
        if table_index < 0:  # the "*" pseudo-column
            continue
        if table_index >= len(tables):
            raise SchemaError(f"{where}: {db_id}: column {name!r} names table index {table_index} (out of range)")
        tables[table_index].columns.append(Column(str(name), str(ctype)))
        owner[i] = (tables[table_index], str(name))

    def column(i: Any) -> tuple[TableSchema, str]:
        if i not in owner:
            raise SchemaError(f"{where}: {db_id}: key refers to column index {i}, which is not a column")
        return owner[i]

    for key in primary_keys:
        # Composite keys appear as lists in later Spider-style releases; 1.0 lists one column per table.
        for i in key if isinstance(key, list) else [key]:
            table, name = column(i)
            table.primary_key.append(name)
    for pair in foreign_keys:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise SchemaError(f"{where}: {db_id}: foreign_keys entry {pair!r} must be [column_index, column_index]")
        child_table, child = column(pair[0])
        parent_table, parent = column(pair[1])
        child_table.foreign_keys.append(ForeignKey(child, parent_table.name, parent))
    return DatabaseSchema(db_id=db_id, tables=tables)


def from_sqlite(path: str | Path, db_id: str | None = None) -> DatabaseSchema:
    """Describe an SQLite file from its own catalogue (tables, declared types, primary and foreign keys).

    Opened read-only through its engine; the file is never modified.
    """
    from t2s.execution.engines.sqlite import SQLiteEngine

    path = Path(path)
    try:
        with SQLiteEngine(str(path)) as engine:
            return from_engine(engine, db_id or path.stem)
    except (sqlite3.DatabaseError, FileNotFoundError) as e:
        raise SchemaError(f"{path}: not a readable SQLite database ({e})") from None


def from_engine(engine: Engine, db_id: str) -> DatabaseSchema:
    """The schema of a database on any engine. SQLite keeps Spider's coarse types (its prompts are unchanged); the
    other engines show their own types (`BIGINT`, `VARCHAR(40)`, `DOUBLE PRECISION`), as a user of them writes."""
    coarse = engine.kind == "sqlite"
    tables = [
        TableSchema(
            t.name,
            [Column(c.name, coarse_type(c.type) if coarse else c.type) for c in t.columns],
            list(t.primary_key),
            [ForeignKey(*fk) for fk in t.foreign_keys],
        )
        for t in engine.catalogue()
    ]
    return DatabaseSchema(db_id=db_id, tables=tables, dialect=engine.dialect)


def dialect_quote(name: str, dialect: str, always: bool = False) -> str:
    """An identifier quoted as the dialect writes it, where it must be: MySQL backticks, double quotes elsewhere;
    PostgreSQL folds unquoted names to lower case, so a name with a capital letter must be quoted there."""
    name = str(name)
    if dialect == "sqlite":
        return quote_identifier(name, always=always)
    bare = _BARE.fullmatch(name) and name.upper() not in SQLITE_KEYWORDS
    if dialect == "postgres" and name != name.lower():
        bare = False
    if bare and not always:
        return name
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- rendering


def render_create_tables(
    schema: DatabaseSchema,
    *,
    with_types: bool = True,
    quote_all: bool = False,
    sample_rows: Mapping[str, Sequence[Sequence[Any]]] | None = None,
) -> str:
    """`CREATE TABLE` statements with keys; `sample_rows` (table → rows) adds a comment after each table."""

    def q(name: str) -> str:
        return dialect_quote(name, schema.dialect, always=quote_all)

    statements = []
    if schema.dialect != "sqlite":
        # The only line that differs from a SQLite schema: which SQL to write (WikiSQL and Spider prompts unchanged).
        statements.append(f"-- {DIALECT_NAMES.get(schema.dialect, schema.dialect)} database: write its SQL dialect.")
    for table in schema.tables:
        lines = [f"{q(c.name)} {c.type.upper()}" if with_types else q(c.name) for c in table.columns]
        if table.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})")
        for fk in table.foreign_keys:
            lines.append(f"FOREIGN KEY ({q(fk.column)}) REFERENCES {q(fk.ref_table)}({q(fk.ref_column)})")
        statement = f"CREATE TABLE {q(table.name)} (\n  " + ",\n  ".join(lines) + "\n);"
        rows = (sample_rows or {}).get(table.name)
        if rows:
            statement += f"\n/* {len(rows)} example rows:\n" + "\n".join(_row_text(r) for r in rows) + "\n*/"
        statements.append(statement)
    return "\n".join(statements)


def _row_text(row: Sequence[Any]) -> str:
    """A row as it may appear inside the `/* … */` comment: one line, no comment terminator."""
    return " | ".join("" if c is None else " ".join(str(c).split()).replace("*/", "* /") for c in row)


def sample_rows(database: str | Path | Engine, schema: DatabaseSchema, n: int) -> dict[str, list[tuple]]:
    """The first `n` rows of every table, for `schema_format='rows'`: from an engine, or an SQLite file (opened
    read-only; text that is not UTF-8 shown with replacement characters, as prompts have always shown it)."""
    if n <= 0:
        return {}
    if isinstance(database, Engine):
        return {t.name: database.sample_rows(t.name, n) for t in schema.tables}
    conn = sqlite3.connect(database_uri(database), uri=True)
    conn.text_factory = lambda b: b.decode(errors="replace")
    try:
        return {
            t.name: conn.execute(f"SELECT * FROM {quote_identifier(t.name)} LIMIT {int(n)}").fetchall()
            for t in schema.tables
        }
    finally:
        conn.close()
