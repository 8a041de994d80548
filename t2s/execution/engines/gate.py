"""The statement gate of the server engines: a query is parsed in its dialect (sqlglot) and checked before it is sent.

What passes: one statement whose root is a query (SELECT, WITH, UNION/INTERSECT/EXCEPT, VALUES) and which contains,
anywhere in its tree, nothing that writes or changes state (a data-modifying CTE, `SELECT … INTO`, `FOR UPDATE`,
`SET`, `COPY`, `ATTACH`, a variable assignment), reads only tables of the database's own catalogue (or the query's
CTEs: `pg_catalog`, `information_schema`, `mysql.user`, a file path in DuckDB's `FROM 'x.csv'` are refused), and calls
only functions sqlglot knows as portable SQL functions or ones on the dialect's allowlist (`functions.py`). A function
outside the allowlist (`pg_read_file`, `lo_import`, `dblink`, `set_config`, `query_to_xml`, `LOAD_FILE`,
`read_csv`, `glob`, `query`…) is refused by name, so a function that runs SQL text cannot smuggle a query past the
gate. The server's own guards (a read-only transaction, a time limit, a locked configuration) come on top: the gate is
not the only line.

A query sqlglot cannot parse in the dialect is not sent: it is reported as a syntax error of that dialect. What is
sent is sqlglot's rendering of the checked tree, without comments, never the text as written: the server runs exactly
what was checked, whatever its parser would make of the rest (MySQL executes `/*! … */` comments, for one, and
tokenizers disagree on escapes).
"""

from __future__ import annotations

from collections.abc import Iterable

from t2s.execution.engines.functions import allowed_functions

# Nodes that write, lock, change session or server state, or reach files, whichever statement they appear in.
_STATE_NODES = tuple(
    node
    for node in (
        getattr(__import__("sqlglot").exp, name, None)
        for name in (
            "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "Command", "Copy",
            "Set", "SetItem", "Pragma", "Into", "Lock", "Transaction", "Commit", "Rollback", "Use", "Attach", "Detach",
            "Install", "Export", "LoadData", "Kill", "Grant", "Revoke", "Cache", "Uncache", "Refresh", "TruncateTable",
            "Describe", "Show", "Summarize", "Analyze", "PropertyEQ", "Parameter", "SessionParameter", "Placeholder",
        )
    )
    if node is not None
)  # fmt: skip
# Typed functions refused: reading files, advancing sequences, and building a value of any size from a small query
# (`repeat('x', 1e9)`, `lpad`/`rpad`, `space`, format widths: the SQLite sandbox caps values at 1 MB; these are refused).
_DENIED_TYPED = ("ReadCSV", "ReadParquet", "ToFile", "NextValueFor", "Repeat", "Pad", "Space", "Format")


class GateError(Exception):
    """Why a query may not run: `status` is `rejected` (not a reading query) or `exec_error` (not valid SQL)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_query(sql: str, dialect: str, tables: Iterable[str], schema: str | None = None) -> str:
    """The query to send: `sql` re-rendered from its checked tree. Raises `GateError` unless `sql` is one read-only
    query over `tables` using allowed functions only."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GateError("exec_error", f"syntax error ({dialect}): {first}") from None
    except RecursionError:
        raise GateError("rejected", "the query is nested too deeply to be checked") from None
    if not statements:
        raise GateError("exec_error", "no SQL statement")
    if len(statements) > 1:
        raise GateError("rejected", "more than one statement")
    root = statements[0]
    if not isinstance(root, (exp.Query, exp.Values)):
        raise GateError("rejected", f"{root.key.upper()} statement: only SELECT/WITH queries are evaluated")
    known = {t.lower() for t in tables}
    known_schema = (schema or "").lower()
    ctes = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    allowed = allowed_functions(dialect)
    for node in root.walk():
        if isinstance(node, _STATE_NODES):
            raise GateError("rejected", f"{node.key.upper()} is not allowed: only reading queries are evaluated")
        if isinstance(node, exp.Func):
            if isinstance(node, exp.Anonymous):
                name = node.name.lower()
                if name not in allowed:
                    raise GateError("rejected", f"function {node.name}() is not allowed in the {dialect} sandbox")
            elif type(node).__name__ in _DENIED_TYPED:
                raise GateError("rejected", f"function {node.sql_name()}() is not allowed in the {dialect} sandbox")
        elif isinstance(node, exp.Table) and not isinstance(node.this, exp.Func):
            name = node.name.lower()
            qualifier = (node.db or "").lower()
            if node.catalog or (qualifier and qualifier != known_schema):
                raise GateError("rejected", f"table {node.sql(dialect=dialect)} is outside the database's own tables")
            if name not in known and not (name in ctes and not qualifier):
                raise GateError("exec_error", f"no such table: {node.name}")
    try:
        return root.sql(dialect=dialect, comments=False)
    except Exception as e:  # noqa: BLE001 - sqlglot cannot write back what it parsed: not sent
        raise GateError("rejected", f"the query cannot be checked ({type(e).__name__})") from None
