"""A MySQL/MariaDB query read by sqlglot, with proof that sqlglot read what the server will read.

MySQL and MariaDB publish no parser of their own as a library, so sqlglot reads the query, and three checks must show
that it read every part of it, since the server is sent the text itself and not sqlglot's version of it:

1. coverage: every character of the text belongs to a token of sqlglot's MySQL tokenizer or is a blank between two;
   a comment anywhere is refused (MySQL runs the text of `/*! … */` comments; `#` and `-- ` are comments there);
2. a stable tree: sqlglot's rendering of the tree parses back to the same tree, so no node was written back as raw
   text it did not understand (the trick that walked around the earlier gate: `EXTRACT(`…`)`);
3. the same literals: every string and number of the text is in the rendering, and every quoted name is a name
   there.

The engine sets a session `sql_mode` without `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES`, the tokenizer's own
assumptions (`"…"` is a string, `\\'` an escaped quote).
"""

from __future__ import annotations

from collections import Counter

from t2s.execution.engines.reading import GateError, Reading, refuse

# Nodes that write, lock, change session or server state, or reach files, whichever statement they appear in.
_STATE_NODES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "Command", "Copy", "Set",
    "SetItem", "Pragma", "Into", "Lock", "Transaction", "Commit", "Rollback", "Use", "Attach", "Detach", "Install",
    "Export", "LoadData", "Kill", "Grant", "Revoke", "Cache", "Uncache", "Refresh", "TruncateTable", "Describe", "Show",
    "Summarize", "Analyze", "PropertyEQ", "Parameter", "SessionParameter", "Placeholder", "UserDefinedFunction",
)  # fmt: skip
# Typed functions refused: reading files, advancing sequences; building a value of any size from a small query
# (`repeat`, `lpad`/`rpad`, `space`, format widths); substring searches that MariaDB runs in quadratic time without
# looking at its time limit (`LOCATE`/`INSTR`/`POSITION`, `REPLACE`, `SUBSTRING_INDEX`); and who and where the query
# runs (`CURRENT_USER()`, `DATABASE()`, `VERSION()`).
_DENIED_TYPED = (
    "ReadCSV", "ReadParquet", "ToFile", "NextValueFor", "Repeat", "Pad", "Space", "Format", "StrPosition", "Replace",
    "SubstringIndex", "SessionUser", "Version", "CurrentVersion",
)  # fmt: skip
_ALLOWED_CURRENT = ("CurrentDate", "CurrentTime", "CurrentTimestamp", "CurrentDatetime")


def read_mysql(text: str) -> Reading:
    import sqlglot
    from sqlglot import exp
    from sqlglot.dialects import MySQL
    from sqlglot.errors import ParseError, TokenError

    try:
        tokens = MySQL().tokenize(text)
        statements = [s for s in sqlglot.parse(text, read="mysql") if s is not None]
    except (ParseError, TokenError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GateError("exec_error", f"syntax error (mysql): {first}") from None
    _check_coverage(text, tokens)
    if not statements:
        raise GateError("exec_error", "no SQL statement")
    if len(statements) > 1:
        raise GateError("rejected", "more than one statement")
    root = statements[0]
    if not isinstance(root, (exp.Query, exp.Values)):
        raise GateError("rejected", f"{root.key.upper()} statement: only SELECT/WITH queries are evaluated")
    reading = Reading(ctes={cte.alias_or_name for cte in root.find_all(exp.CTE)})
    state = tuple(getattr(exp, name) for name in _STATE_NODES if hasattr(exp, name))
    for node in root.walk():
        name = type(node).__name__
        if isinstance(node, state):
            raise refuse(node.key.upper())
        if isinstance(node, exp.Func):
            if isinstance(node, exp.Anonymous):
                reading.functions.append(node.name)
            elif name in _DENIED_TYPED or (name.startswith("Current") and name not in _ALLOWED_CURRENT):
                raise GateError("rejected", f"function {node.sql_name()}() is not allowed in the mysql sandbox")
        elif isinstance(node, exp.Var) and not str(node.this).replace("_", "").isalnum():
            raise GateError("rejected", "the query cannot be checked: part of it is not SQL that sqlglot reads")
        elif isinstance(node, exp.Table):
            if isinstance(node.this, exp.Func):
                raise refuse(f"the table function {node.this.sql_name()}")
            if node.catalog:
                raise GateError("rejected", f"table {node.sql('mysql')} is outside the database's own tables")
            reading.relations.append(((node.db or "").lower(), node.name))
        elif isinstance(node, exp.Column) and node.args.get("db"):
            reading.relations.append((node.db.lower(), node.table))
    _check_round_trip(root, tokens)
    return reading


def _check_coverage(text: str, tokens) -> None:
    position = 0
    for token in tokens:
        if token.comments or text[position : token.start].strip():
            raise GateError("rejected", "comments are not allowed in MySQL queries (MySQL runs /*! … */ comments)")
        position = token.end + 1
    if text[position:].strip():
        raise GateError("rejected", "comments are not allowed in MySQL queries (MySQL runs /*! … */ comments)")


def _check_round_trip(root, tokens) -> None:
    import sqlglot
    from sqlglot.dialects import MySQL
    from sqlglot.tokens import TokenType

    cannot = GateError("rejected", "the query cannot be checked: sqlglot does not read it back as written")
    try:
        rendered = root.sql(dialect="mysql", comments=False)
        again = sqlglot.parse_one(rendered, read="mysql")
        rendered_tokens = MySQL().tokenize(rendered)
    except Exception:  # noqa: BLE001 - sqlglot cannot write back or reread what it parsed: not sent
        raise cannot from None
    if again != root:
        raise cannot
    literals = (TokenType.STRING, TokenType.NUMBER)
    if Counter(t.text for t in tokens if t.token_type in literals) != Counter(
        t.text for t in rendered_tokens if t.token_type in literals
    ):
        raise cannot
    names = {t.text.lower() for t in rendered_tokens if t.token_type in (TokenType.IDENTIFIER, TokenType.VAR)}
    if any(t.text.lower() not in names for t in tokens if t.token_type == TokenType.IDENTIFIER):
        raise cannot
