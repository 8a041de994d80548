"""Fuzzing the sandbox: SQL generated from a small grammar of SQLite expressions, functions, nesting and statements.

Every generated query must get an outcome (never an exception), within twice its time budget plus a second, and
leave the database file and its folder exactly as they were. The default run is seeded and small enough for the
test suite; a longer one, for a nightly job:

    T2S_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz_sandbox.py

(`T2S_FUZZ_SEED` picks another seed.)
"""

import hashlib
import os
import sqlite3
import time

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from t2s.execution.sandbox import open_database, run_query
from t2s.execution.scoring import OUTCOMES, score_all

EXAMPLES = int(os.environ.get("T2S_FUZZ_EXAMPLES", "150"))
SEED = int(os.environ.get("T2S_FUZZ_SEED", "20261129"))
BUDGET_S = 0.5

COLUMNS = ("singer_id", "name", "age", "country", "note")
# Scalar functions with the arity they are called with; many are costly with large arguments on purpose.
FUNCTIONS = {
    "abs": 1, "length": 1, "lower": 1, "upper": 1, "hex": 1, "quote": 1, "typeof": 1, "unicode": 1, "trim": 1,
    "zeroblob": 1, "randomblob": 1, "char": 2, "substr": 3, "replace": 3, "instr": 2, "printf": 3, "round": 2,
    "coalesce": 2, "ifnull": 2, "nullif": 2, "like": 2, "glob": 2, "json_array": 2, "json": 1, "ltrim": 2,
    "format": 3, "max": 2, "min": 2, "iif": 3, "soundex": 1, "likelihood": 2, "fts3_tokenizer": 1,
    "load_extension": 1, "sqlite_version": 0, "random": 0, "total_changes": 0, "last_insert_rowid": 0,
}  # fmt: skip
AGGREGATES = ("count", "sum", "avg", "max", "min", "group_concat", "total")

numbers = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0, 1, 255, 1000, 100_000, 2_000_000, 2**31 - 1, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f"{f!r}"),
)
strings = st.text(alphabet=st.sampled_from("ab%_'\"\\ é\x00;-*/"), max_size=8).map(
    lambda s: "'" + s.replace("\x00", "").replace("'", "''") + "'"
)
literals = st.one_of(numbers.map(str), strings, st.just("NULL"), st.just("x'00ff'"), st.just("'%.*c'"))


def expressions(depth: int):
    leaf = st.one_of(literals, st.sampled_from(COLUMNS))
    if depth == 0:
        return leaf
    inner = expressions(depth - 1)
    return st.one_of(
        leaf,
        st.builds(
            lambda a, op, b: f"({a} {op} {b})",
            inner,
            st.sampled_from(["+", "-", "*", "/", "%", "||", "=", "<", "LIKE", "GLOB", "AND", "OR"]),
            inner,
        ),
        st.sampled_from(sorted(FUNCTIONS)).flatmap(
            lambda f: st.lists(inner, min_size=FUNCTIONS[f], max_size=FUNCTIONS[f]).map(
                lambda a: f"{f}({', '.join(a)})"
            )
        ),
        st.builds(lambda a, b, c: f"CASE WHEN {a} THEN {b} ELSE {c} END", inner, inner, inner),
        st.builds(lambda a, b: f"({a} IN (SELECT {b} FROM singer))", inner, inner),
        st.builds(lambda a: f"(SELECT {a} FROM singer LIMIT 1)", inner),
    )


def queries():
    select = st.builds(
        lambda cols, where, agg, order: (
            f"SELECT {', '.join(cols)} FROM singer"
            + (f" WHERE {where}" if where else "")
            + (f" GROUP BY {agg}" if agg else "")
            + (" ORDER BY 1" if order else "")
        ),
        st.lists(
            st.one_of(
                expressions(2),
                st.sampled_from(AGGREGATES).flatmap(lambda a: expressions(1).map(lambda e: f"{a}({e})")),
            ),
            min_size=1,
            max_size=3,
        ),
        st.one_of(st.none(), expressions(2)),
        st.one_of(st.none(), st.sampled_from(COLUMNS)),
        st.booleans(),
    )
    recursive = st.builds(
        lambda stop, expr: (
            f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c{stop}) SELECT {expr} FROM c"
        ),
        st.sampled_from(["", " WHERE x < 10", " WHERE x < 1000000"]),
        st.sampled_from(["x", "count(*)", "zeroblob(1000000)", "printf('%.*c', x, 'a')", "group_concat(x)"]),
    )
    hostile = st.sampled_from(
        [
            "DROP TABLE singer", "DELETE FROM singer", "INSERT INTO singer VALUES (9, 'x', 1, 'y', 'z')",
            "UPDATE singer SET age = 0", "PRAGMA writable_schema = 1", "ATTACH 'evil.db' AS e", "VACUUM",
            "VACUUM INTO 'copy.db'", "CREATE TABLE t (x)", "BEGIN", "SELECT load_extension('x')",
            "WITH x AS (SELECT 1) DELETE FROM singer", "SELECT * FROM pragma_table_info('singer')",
            "SELECT * FROM json_each('[1]')", "REPLACE INTO singer VALUES (1, 'x', 1, 'y', 'z')",
        ]
    )  # fmt: skip
    statement = st.one_of(select, recursive, hostile)
    return st.one_of(
        statement,
        st.builds(lambda a, b: f"{a}; {b}", statement, statement),  # a second statement
        st.builds(lambda a: f"/* c */ {a} -- tail", statement),
        st.text(max_size=40),  # anything at all
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "concert.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT, note BLOB)"
    )
    conn.executemany(
        "INSERT INTO singer VALUES (?, ?, ?, ?, ?)",
        [(i, f"s{i}", 20 + i, "FR" if i % 2 else "NL", bytes([i])) for i in range(1, 41)],
    )
    conn.commit()
    conn.close()
    return folder, path


def _state(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(sql=queries())
def test_every_generated_query_gets_an_outcome_in_time_and_changes_nothing(database, sql):
    folder, path = database
    before = _state(folder)
    start = time.perf_counter()
    result = run_query(open_database(str(path)), sql, timeout_s=BUDGET_S, rewrite_double_quotes=False)
    elapsed = time.perf_counter() - start
    assert result.status in ("ok", "exec_error", "timeout", "too_large", "rejected", "empty"), result
    assert elapsed < 2 * BUDGET_S + 1, (elapsed, sql[:300])
    [detail] = score_all(
        [sql], ["SELECT count(*) FROM singer"], db_paths=[str(path)], timeout_s=BUDGET_S, semantics="spider"
    )
    assert detail.outcome in OUTCOMES
    assert _state(folder) == before, sql[:300]
