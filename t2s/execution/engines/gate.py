"""The statement gate of the server engines: a query is read by the engine's own parser, checked, and then sent to the
engine exactly as it was checked.

Reading: PostgreSQL's own parser (libpg_query, through `pglast`) for PostgreSQL, DuckDB's own parser
(`extract_statements`, `json_serialize_sql`) for DuckDB, and sqlglot for MySQL/MariaDB, which publish no parser of
their own; there a round trip must show that sqlglot read every token the server will (`parse_mysql.py`). What each
reader reports is one `Reading`: the relations the query reads, the functions it calls, its CTEs, or why it is not a
single reading query. A parser that meets anything it was not written for refuses it: every check is an allowlist.

What passes: one statement that only reads (SELECT, WITH, UNION/INTERSECT/EXCEPT, VALUES), with nothing that writes,
locks, changes settings or reaches files anywhere in it; reading only the database's own tables and views (in the
connection's own schema) and the query's CTEs; calling only functions on the dialect's allowlist (`functions.py`)
that the database has not shadowed with a function of its own.

What is sent is the checked text itself, byte for byte (`normalize` only trims surrounding blanks and trailing
semicolons, before the check). A regenerated query is never sent: a parser writing back a node it did not understand
is how the earlier gate was walked around.
"""

from __future__ import annotations

from collections.abc import Iterable

from t2s.execution.engines.functions import allowed_functions
from t2s.execution.engines.reading import GateError, Reading

__all__ = ["GateError", "Reading", "check_query", "check_reading", "normalize"]


def normalize(sql: str) -> str:
    """The text that is checked and sent: without surrounding blanks and trailing semicolons."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def check_query(
    sql: str,
    dialect: str,
    tables: Iterable[str],
    schema: str | None = None,
    *,
    denied_functions: Iterable[str] = (),
) -> str:
    """The text to send: `sql` as checked (`normalize`d). Raises `GateError` unless it is one read-only query over
    `tables` (of `schema`) calling only allowed functions, as the engine's own parser reads it."""
    text = normalize(sql)
    if not text:
        raise GateError("empty", "no SQL")
    if dialect == "postgres":
        from t2s.execution.engines.parse_postgres import read_postgres as read
    elif dialect == "duckdb":
        from t2s.execution.engines.parse_duckdb import read_duckdb as read
    elif dialect == "mysql":
        from t2s.execution.engines.parse_mysql import read_mysql as read
    else:
        raise ValueError(f"no statement gate for the {dialect} dialect")
    try:
        reading = read(text)
    except RecursionError:
        raise GateError("rejected", "the query is nested too deeply to be checked") from None
    check_reading(reading, dialect, tables, schema, denied_functions)
    return text


def check_reading(
    reading: Reading, dialect: str, tables: Iterable[str], schema: str | None, denied_functions: Iterable[str]
) -> None:
    """The allowlists every dialect shares: relations of the database's own schema or the query's CTEs, functions
    on the dialect's list and not shadowed by the database."""
    known = {t.lower() for t in tables}
    known_schema = (schema or "").lower()
    ctes = {c.lower() for c in reading.ctes}
    for qualifier, name in reading.relations:
        shown = f"{qualifier}.{name}" if qualifier else name
        if qualifier and qualifier != known_schema:
            raise GateError("rejected", f"table {shown} is outside the database's own tables")
        if name.lower() not in known and not (name.lower() in ctes and not qualifier):
            raise GateError("exec_error", f"no such table: {name}")
    allowed = allowed_functions(dialect)
    denied = {f.lower() for f in denied_functions}
    for name in reading.functions:
        lowered = name.lower()
        if lowered in denied:
            raise GateError(
                "rejected",
                f"function {name}() is defined by this database or one of its extensions, not the engine: it is not "
                f"allowed in the {dialect} sandbox",
            )
        if lowered not in allowed:
            raise GateError("rejected", f"function {name}() is not allowed in the {dialect} sandbox")
