"""Copy an SQLite database into PostgreSQL, MySQL/MariaDB or DuckDB, and transpile SQLite SQL into their dialects.

Used to put Spider (or any SQLite database) on another engine and measure how its SQLite gold queries fare there
(`t2s copy-db`, `bench/bench_engines.py`). Types are mapped by SQLite's column affinity: INTEGER → BIGINT, REAL →
DOUBLE PRECISION (DOUBLE), anything else → TEXT (VARCHAR(255) for MySQL key columns, which cannot index TEXT).
SQLite does not enforce declared types, so a column whose values do not all fit its mapped type (text in an `INT`
column) is copied as TEXT, and the copy reports it. Dates stay text, as SQLite stores them. Table and column names are
lower-cased for PostgreSQL and MySQL, which fold or compare unquoted names in lower case, so the SQLite queries'
unquoted names still find them. Primary and foreign keys are declared where the data satisfies them; a key the data
violates (duplicate keys, dangling references, both common in Spider) is left out and reported.

This writes: it takes an administrator's URL of a database you created for it, never a sandboxed connection.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2s.execution.engines import engine_kind, expand_env, redact
from t2s.execution.engines.base import EngineError
from t2s.execution.engines.sqlite import sqlite_catalogue
from t2s.execution.sql_text import SQL_TOKEN_RE, quote_identifier, quote_string

TARGET_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}
_SQL_TYPES = {
    "postgresql": {"integer": "BIGINT", "real": "DOUBLE PRECISION", "text": "TEXT", "key_text": "TEXT"},
    "mysql": {"integer": "BIGINT", "real": "DOUBLE", "text": "TEXT", "key_text": "VARCHAR(255)"},
    "duckdb": {"integer": "BIGINT", "real": "DOUBLE", "text": "VARCHAR", "key_text": "VARCHAR"},
}


@dataclass
class CopyReport:
    tables: int = 0
    rows: int = 0
    as_text: list[str] = field(default_factory=list)  # table.column copied as TEXT against its declared type
    dropped_keys: list[str] = field(default_factory=list)


def affinity(declared: str) -> str:
    """SQLite's column affinity (sqlite.org/datatype3.html §3.1): integer, text, blob, real or numeric."""
    t = (declared or "").upper()
    if "INT" in t:
        return "integer"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not t or "BLOB" in t:
        return "blob"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def _fits(conn: sqlite3.Connection, table: str, column: str, kind: str) -> bool:
    allowed = {"integer": "('integer')", "real": "('integer', 'real')"}[kind]
    sql = (
        f"SELECT count(*) FROM {quote_identifier(table)} WHERE {quote_identifier(column)} IS NOT NULL "
        f"AND typeof({quote_identifier(column)}) NOT IN {allowed}"
    )
    return conn.execute(sql).fetchone()[0] == 0


def _column_kind(conn: sqlite3.Connection, table: str, column: str, declared: str) -> str:
    kind = affinity(declared)
    if kind in ("numeric", "blob"):  # DECIMAL, DATE, BOOLEAN, untyped…: whatever the values are
        for candidate in ("integer", "real"):
            if _fits(conn, table, column, candidate):
                return candidate
        return "text"
    if kind in ("integer", "real") and not _fits(conn, table, column, kind):
        return "real" if kind == "integer" and _fits(conn, table, column, "real") else "text"
    return kind


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        return repr(value)  # as SQLite shows a REAL stored in a TEXT column
    return str(value).replace("\x00", "")


_CONVERT = {"integer": int, "real": float, "text": _text, "key_text": _text}


class _Target:
    """The writing side: an administrator's connection, its quoting and how it takes many rows."""

    def __init__(self, url: str) -> None:
        self.kind = engine_kind(url)
        if self.kind not in TARGET_DIALECTS:
            raise EngineError(f"{redact(url)}: copy to postgresql://, mysql+pymysql:// or a DuckDB file")
        self.lower = self.kind in ("postgresql", "mysql")
        expanded = expand_env(url)
        if self.kind == "postgresql":
            import psycopg
            from sqlalchemy.engine import make_url

            conninfo = make_url(expanded).set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = psycopg.connect(conninfo, autocommit=True)
            self.mark = "%s"
        elif self.kind == "mysql":
            import pymysql
            from sqlalchemy.engine import make_url

            u = make_url(expanded)
            self.conn = pymysql.connect(
                host=u.host or "localhost", port=u.port or 3306, user=u.username, password=u.password or "",
                database=u.database, charset="utf8mb4", autocommit=True,
                unix_socket=dict(u.query).get("unix_socket"),
            )  # fmt: skip
            self.mark = "%s"
        else:
            import duckdb

            from t2s.execution.engines.duckdb import duckdb_path

            self.conn = duckdb.connect(duckdb_path(expanded))
            self.mark = "?"

    def name(self, name: str) -> str:
        name = name.lower() if self.lower else name
        if self.kind == "mysql":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def execute(self, sql: str, rows: list | None = None) -> None:
        if self.kind in ("mysql", "postgresql"):
            with self.conn.cursor() as cursor:
                cursor.executemany(sql, rows) if rows is not None else cursor.execute(sql)
        else:
            self.conn.executemany(sql, rows) if rows is not None else self.conn.execute(sql)

    def insert(self, table: str, width: int, rows: list[tuple]) -> None:
        if self.kind == "duckdb":  # DuckDB's executemany runs row by row; an Arrow table goes in at once
            import pyarrow as pa

            data = pa.Table.from_arrays(
                [pa.array([r[i] for r in rows]) for i in range(width)], names=[f"c{i}" for i in range(width)]
            )
            self.conn.register("t2s_rows", data)
            try:
                self.conn.execute(f"INSERT INTO {self.name(table)} SELECT * FROM t2s_rows")
            finally:
                self.conn.unregister("t2s_rows")
            return
        marks = ", ".join([self.mark] * width)
        self.execute(f"INSERT INTO {self.name(table)} VALUES ({marks})", rows)

    def close(self) -> None:
        self.conn.close()


def copy_sqlite(source: str | Path, url: str, *, replace: bool = False) -> CopyReport:
    """Every table of the SQLite file `source` into the database `url` (which must exist); see the module docstring."""
    source_conn = sqlite3.connect(Path(source).resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
    source_conn.text_factory = lambda b: b.decode(errors="replace")
    target = _Target(url)
    report = CopyReport()
    try:
        catalogue = sqlite_catalogue(source_conn)
        types = _SQL_TYPES[target.kind]
        # Columns in a key (MySQL can index VARCHAR, not TEXT), lower-cased: SQLite compares names without case.
        keys = (
            {(t.name.lower(), c.lower()) for t in catalogue for c in t.primary_key}
            | {(t.name.lower(), fk[0].lower()) for t in catalogue for fk in t.foreign_keys}
            | {(str(fk[1]).lower(), str(fk[2]).lower()) for t in catalogue for fk in t.foreign_keys}
        )
        if replace:
            for table in reversed(catalogue):
                cascade = " CASCADE" if target.kind == "postgresql" else ""
                target.execute(f"DROP TABLE IF EXISTS {target.name(table.name)}{cascade}")
        primary = {t.name: t.primary_key for t in catalogue if t.primary_key and _pk_holds(source_conn, t)}
        foreign = {
            t.name: [fk for fk in t.foreign_keys if _fk_holds(source_conn, t.name, fk, primary)] for t in catalogue
        }
        for t in catalogue:
            if t.primary_key and t.name not in primary:
                report.dropped_keys.append(f"{t.name} PRIMARY KEY (duplicate or NULL keys)")
            for fk in t.foreign_keys:
                if fk not in foreign[t.name]:
                    report.dropped_keys.append(
                        f"{t.name}.{fk[0]} → {fk[1]}.{fk[2]} (dangling references, or the parent column is not a key)"
                    )
        kinds = {
            (t.name.lower(), c.name.lower()): _column_kind(source_conn, t.name, c.name, c.type)
            for t in catalogue
            for c in t.columns
        }
        for t in catalogue:
            for fk in list(foreign[t.name]):
                if target.kind == "duckdb" and str(fk[1]).lower() == t.name.lower():
                    foreign[t.name].remove(fk)  # DuckDB checks a batch against the table as it was before it
                    report.dropped_keys.append(f"{t.name}.{fk[0]} → {fk[1]}.{fk[2]} (DuckDB: a self-reference)")
                elif kinds.get((t.name.lower(), fk[0].lower())) != kinds.get((str(fk[1]).lower(), str(fk[2]).lower())):
                    foreign[t.name].remove(fk)
                    report.dropped_keys.append(f"{t.name}.{fk[0]} → {fk[1]}.{fk[2]} (the two columns' types differ)")
        created: set[str] = set()
        for table in _parents_first(catalogue, foreign):
            created.add(table.name.lower())
            for fk in [fk for fk in foreign[table.name] if str(fk[1]).lower() not in created]:
                foreign[table.name].remove(fk)  # a cycle of references: one key of it cannot be declared first
                report.dropped_keys.append(f"{table.name}.{fk[0]} → {fk[1]}.{fk[2]} (a cycle of foreign keys)")
            columns = []
            for column in table.columns:
                kind = kinds[table.name.lower(), column.name.lower()]
                if kind == "text" and affinity(column.type) in ("integer", "real"):
                    report.as_text.append(f"{table.name}.{column.name}")
                if kind == "text" and (table.name.lower(), column.name.lower()) in keys:
                    kind = "key_text"
                columns.append(f"{target.name(column.name)} {types[kind]}")
            constraints = []
            if table.name in primary:
                constraints.append(f"PRIMARY KEY ({', '.join(target.name(c) for c in primary[table.name])})")
            for column, parent, parent_column in foreign[table.name]:
                constraints.append(
                    f"FOREIGN KEY ({target.name(column)}) REFERENCES {target.name(parent)} ({target.name(parent_column)})"
                )
            body = ", ".join(columns + constraints)
            # MySQL: Unicode whatever the database's default character set (MariaDB's is latin1); its default
            # collation, case-insensitive as most MySQL databases are, is kept (docs/engines.md measures it).
            options = " DEFAULT CHARSET=utf8mb4" if target.kind == "mysql" else ""
            target.execute(f"CREATE TABLE {target.name(table.name)} ({body}){options}")
            quoted = quote_identifier(table.name)
            convert = [_CONVERT[kinds[table.name.lower(), c.name.lower()]] for c in table.columns]
            rows = [
                tuple(None if v is None else f(v) for f, v in zip(convert, row))
                for row in source_conn.execute(f"SELECT * FROM {quoted}")
            ]
            if rows:
                target.insert(table.name, len(table.columns), rows)
            report.tables += 1
            report.rows += len(rows)
    finally:
        source_conn.close()
        target.close()
    return report


def _pk_holds(conn: sqlite3.Connection, table) -> bool:
    cols = ", ".join(quote_identifier(c) for c in table.primary_key)
    name = quote_identifier(table.name)
    nulls = " OR ".join(f"{quote_identifier(c)} IS NULL" for c in table.primary_key)
    duplicates = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {name} GROUP BY {cols} HAVING count(*) > 1)")
    return (
        not duplicates.fetchone()[0] and not conn.execute(f"SELECT count(*) FROM {name} WHERE {nulls}").fetchone()[0]
    )


def _fk_holds(conn: sqlite3.Connection, table: str, fk: tuple[str, str, str], primary: dict) -> bool:
    """Every non-NULL child value exists in the parent, whose referenced column is its whole (kept) primary key."""
    column, parent, parent_column = fk
    parent_name = next((p for p in primary if p.lower() == str(parent).lower()), None)
    if parent_name is None or [c.lower() for c in primary[parent_name]] != [str(parent_column).lower()]:
        return False
    child, pcol = quote_identifier(column), quote_identifier(parent_column)
    missing = conn.execute(
        f"SELECT count(*) FROM {quote_identifier(table)} WHERE {child} IS NOT NULL AND {child} NOT IN "
        f"(SELECT {pcol} FROM {quote_identifier(parent_name)})"
    ).fetchone()[0]
    return missing == 0


def _parents_first(catalogue, foreign: dict) -> list:
    """Tables ordered so that each comes after the tables its kept foreign keys reference (cycles keep file order)."""
    by_lower = {t.name.lower(): t for t in catalogue}
    ordered, placed = [], set()

    def place(table, seen: frozenset) -> None:
        if table.name in placed or table.name in seen:
            return
        for _, parent, _ in foreign[table.name]:
            parent_table = by_lower.get(str(parent).lower())
            if parent_table is not None and parent_table is not table:
                place(parent_table, seen | {table.name})
        if table.name not in placed:
            placed.add(table.name)
            ordered.append(table)

    for table in catalogue:
        place(table, frozenset())
    return ordered


def _short(error: Exception) -> str:
    return re.sub(r"\s+", " ", str(error)).strip()[:120]


def sqlite_double_quotes(sql: str, names: set[str]) -> str:
    """SQLite's legacy rule made explicit: a `"…"` token that names no table or column of the database is a string.

    SQLite reads `name = "Paris"` as a comparison with the text 'Paris' when no column is called Paris (Spider's gold
    SQL relies on it in 213 of 1,034 dev queries); every other engine reads `"Paris"` as a name. Rewritten to
    `'Paris'` before transpiling, such queries mean on the other engine what they meant on SQLite.
    """
    lowered = {n.lower() for n in names}
    out, pos = [], 0
    for match in SQL_TOKEN_RE.finditer(sql):
        token = match.group(0)
        out.append(sql[pos : match.start()])
        if token.startswith('"') and token[1:-1].replace('""', '"').lower() not in lowered:
            token = quote_string(token[1:-1].replace('""', '"'))
        out.append(token)
        pos = match.end()
    out.append(sql[pos:])
    return "".join(out)


def transpile(sql: str, dialect: str, names: set[str] | None = None) -> str:
    """SQLite SQL written in another dialect (sqlglot); with the database's table and column `names`, double-quoted
    strings are first made single-quoted as SQLite reads them (`sqlite_double_quotes`). Raises `ValueError`."""
    import sqlglot

    if names is not None:
        sql = sqlite_double_quotes(sql, names)
    try:
        statements = sqlglot.transpile(sql, read="sqlite", write=dialect)
    except sqlglot.errors.SqlglotError as e:
        raise ValueError(f"sqlglot cannot transpile it: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ValueError(f"{len(statements)} statements; transpile one query at a time")
    return statements[0]
