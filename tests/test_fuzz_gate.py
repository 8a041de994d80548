"""Fuzzing the server engines' statement gate with text that sqlglot can parse: whatever the gate accepts must be
exactly one reading statement to the engine's own parser, and is sent exactly as written.

The text is spliced from fragments chosen to confuse a parser (quotes of every kind, comments, MySQL's executable
comments, dollar quotes, semicolons, `EXTRACT(`, file and catalogue functions, writing keywords); only text that
sqlglot parses in the dialect is kept, since that is the text that fooled the earlier gate. PostgreSQL's and DuckDB's
own parsers (pglast, `extract_statements`) judge what passed; MySQL has no parser of its own, so what passed is run
on the suite's MariaDB through a read-only account, and the data must be unchanged and no session state left.
A longer run: `T2S_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz_gate.py` (`T2S_FUZZ_SEED` too).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from t2s.execution.engines.gate import GateError, check_query

from .engines_setup import checksum, names_on, servers

EXAMPLES = int(os.environ.get("T2S_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("T2S_FUZZ_SEED", "20261205"))
TABLES = ["orders", "customers", "products", "order_items"]
FRAGMENTS = [
    "SELECT", "1", "name", "city", "count(*)", "FROM", "orders", "customers", "WHERE", "=", "'Lyon'", ",", "(", ")",
    ";", "--", "\n", "/*", "*/", "/*!", "#", "'", '"', "`", "$$", "$q$", "\\", "E'", "U&", "||", "AS", "x",
    "UNION", "WITH", "t", "INTO", "DELETE", "DROP TABLE orders", "CREATE TEMP TABLE orders AS", "EXTRACT(",
    "epoch FROM now()", "pg_read_file('/etc/passwd')", "LOAD_FILE('/etc/passwd')", "read_csv('/etc/passwd')",
    "current_user", "version()", "lower(", "upper(name)", "pg_catalog.", "information_schema.tables", "@v", ":=",
    "FOR UPDATE", "LIMIT 1", "ORDER BY 1", "VALUES", "TABLE", "SET", "COPY", "ATTACH", "DO", "PRAGMA",
]  # fmt: skip

texts = st.builds(
    lambda parts, joints: "SELECT " + "".join(p + j for p, j in zip(parts, joints)),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=10),
    st.lists(st.sampled_from([" ", "", " ", "\n"]), min_size=10, max_size=10),
)


def _sqlglot_reads(text: str, dialect: str) -> bool:
    import sqlglot

    try:
        return bool([s for s in sqlglot.parse(text, read=dialect) if s is not None])
    except Exception:  # noqa: BLE001 - any failure: not text sqlglot reads
        return False


def _gate(text: str, dialect: str, schema: str) -> str | None:
    try:
        return check_query(text, dialect, TABLES, schema)
    except GateError:
        return None


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=texts)
def test_what_the_postgres_gate_accepts_is_one_reading_statement_to_postgres_itself(text):
    assume(_sqlglot_reads(text, "postgres"))
    sent = _gate(text, "postgres", "public")
    if sent is None:
        return
    from pglast import ast, parse_sql

    assert text.strip().startswith(sent) and sent.strip() == sent
    statements = parse_sql(sent)
    assert len(statements) == 1 and isinstance(statements[0].stmt, ast.SelectStmt), sent
    for node in _pg_nodes(statements[0]):
        assert not isinstance(node, (ast.IntoClause, ast.LockingClause, ast.InsertStmt, ast.DeleteStmt)), sent
        if isinstance(node, ast.FuncCall):
            assert node.funcname[-1].sval in {"lower", "upper", "count", "extract", "now"}, sent
        if isinstance(node, ast.RangeVar):
            assert node.relname in TABLES and node.schemaname in (None, "public"), sent


def _pg_nodes(node):
    from pglast import ast

    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif isinstance(node, ast.Node):
            yield node
            stack.extend(getattr(node, slot) for slot in node.__slots__)


def _read_only_shop(kind: str, shop, request):
    """The shop database on `kind` through its read-only name, its contents checked unchanged at the end."""
    from t2s.execution.engines import open_engine

    admin, reader = names_on(shop, kind, request)
    before = checksum(admin)
    with open_engine(reader) as engine:
        yield engine
    assert checksum(admin) == before


@pytest.fixture(scope="module")
def duckdb_shop(shop, request):
    yield from _read_only_shop("duckdb", shop, request)


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=texts)
def test_what_the_duckdb_gate_accepts_is_one_select_to_duckdb_itself(duckdb_shop, text):
    assume(_sqlglot_reads(text, "duckdb"))
    sent = _gate(text, "duckdb", "main")
    if sent is None:
        return
    import duckdb

    statements = duckdb.connect(":memory:").extract_statements(sent)
    assert len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT, sent
    result = duckdb_shop.run(text, timeout_s=1.0)
    assert result.status in ("ok", "exec_error", "timeout"), (sent, result)
    values = {v for row in result.rows or () for v in row}
    assert "duckdb" not in values and "shop" not in values and "root:" not in repr(result), (sent, result)


def _inside_string(text: str, word: str) -> bool:
    """Whether every occurrence of `word` (as a word of its own) is inside a single-quoted string (a literal)."""
    import re

    for match in re.finditer(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", text):
        if text[: match.start()].count("'") % 2 == 0:
            return False
    return True


@pytest.fixture(scope="module")
def mysql_reader(shop, request):
    yield from _read_only_shop("mysql", shop, request)


@servers
@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=texts)
def test_what_the_mysql_gate_accepts_runs_as_one_read_that_leaves_nothing(mysql_reader, text):
    assume(_sqlglot_reads(text, "mysql"))
    sent = _gate(text, "mysql", mysql_reader.schema_name)
    if sent is None:
        return
    for marker in ("/*", "#", "-- "):
        assert marker not in sent or _inside_string(sent, marker), sent
    result = mysql_reader.run(text, timeout_s=1.0)
    assert result.status in ("ok", "exec_error", "timeout"), (sent, result)
    assert "root:" not in repr(result)
    state = mysql_reader._run_checked("SELECT @v, IS_USED_LOCK('t2s'), @@SESSION.sql_mode LIKE '%ANSI_QUOTES%'", 1, 5)
    assert state.rows == [(None, None, 0)], (sent, state)
