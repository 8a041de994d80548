"""SQLite as an engine: the sandbox of `t2s.execution.sandbox` (authorizer, progress handler, read-only immutable
file) behind the same interface as the server engines, and the SQLite catalogue read through its pragmas."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from t2s.execution.engines.base import CatalogueColumn, CatalogueTable, Engine
from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Execution, open_database, run_query
from t2s.execution.sql_text import quote_identifier
from t2s.execution.tables import materialize_table


def sqlite_catalogue(conn: sqlite3.Connection) -> list[CatalogueTable]:
    """Tables in creation order, declared types, primary keys in key order, foreign keys (`REFERENCES parent`
    without a column means the parent's primary key)."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        )
    ]
    tables, primary_keys = [], {}
    for name in names:
        info = conn.execute(f"PRAGMA table_info({quote_identifier(name)})").fetchall()
        pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        primary_keys[name.lower()] = pk
        tables.append(CatalogueTable(name, [CatalogueColumn(r[1], r[2] or "") for r in info], pk))
    for table in tables:
        for r in conn.execute(f"PRAGMA foreign_key_list({quote_identifier(table.name)})"):
            parent_pk = primary_keys.get(str(r[2]).lower()) or [r[3]]
            table.foreign_keys.append((r[3], r[2], r[4] if r[4] is not None else parent_pk[0]))
    return tables


class SQLiteEngine(Engine):
    kind = "sqlite"
    dialect = "sqlite"
    display = "SQLite"

    def __init__(
        self,
        name: str,
        connection: sqlite3.Connection | None = None,
        *,
        rewrite_double_quotes: bool = False,
        owns_connection: bool = True,
    ) -> None:
        super().__init__(name)
        self.path = name
        self.conn = connection if connection is not None else open_database(name)
        # False: double quotes left to SQLite, as Spider's semantics and your own SQL expect; True for a WikiSQL
        # table, whose names t2s writes in double quotes (`table_engine`).
        self.rewrite_double_quotes = rewrite_double_quotes
        self.owns_connection = owns_connection

    def run(self, sql: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS) -> Execution:
        return run_query(
            self.conn, sql, timeout_s=timeout_s, max_rows=max_rows, rewrite_double_quotes=self.rewrite_double_quotes
        )

    def catalogue(self) -> list[CatalogueTable]:
        return sqlite_catalogue(self.conn)

    def sample_rows(self, table: str, n: int) -> list[tuple]:
        return self.conn.execute(f"SELECT * FROM {quote_identifier(table)} LIMIT {int(n)}").fetchall()

    def close(self) -> None:
        if self.owns_connection:
            self.conn.close()


def table_engine(table: Mapping[str, Any]) -> SQLiteEngine:
    """A WikiSQL table as the official evaluator's database holds it (`t2s.execution.tables`), as an engine: the
    in-memory database is shared through the table cache (closing the engine leaves it there), and double-quoted
    names are read as names (t2s writes WikiSQL's names in double quotes)."""
    name = f"WikiSQL table {table.get('id', '?')}"
    return SQLiteEngine(name, materialize_table(table), rewrite_double_quotes=True, owns_connection=False)
