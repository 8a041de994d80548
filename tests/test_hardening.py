"""What an attacker or a careless user tried against the sandbox and the metric: each must end in an outcome, not a
crash, and leave the database and its folder as they were."""

import hashlib
import sqlite3
import time

import pytest

from t2s.execution.sandbox import open_database, run_query
from t2s.execution.scoring import score_all
from t2s.training.rewards import ExecutionReward

GOLD = "SELECT count(*) FROM singer"


def _make_db(path, journal_mode="delete"):
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ana", 30), (2, "Bo", 41), (3, "Cy", 25)])
    conn.commit()
    conn.close()
    return path


def _state(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def db(tmp_path):
    return str(_make_db(tmp_path / "concert.sqlite"))


PATHOLOGICAL = [
    "SELECT " + "(" * 101 + "count(*)" + ")" * 101 + " FROM singer",  # past sqlparse's grouping depth
    "SELECT count(*)" + " + 0" * 2600 + " FROM singer",  # past sqlparse's token limit
    "SELECT count(*) FROM " + "(SELECT * FROM " * 1000 + "singer" + ")" * 1000,
    "SELECT count(*) FROM singer WHERE 0" + " OR 0" * 1_000_000,  # 5 MB: longer than the sandbox takes
    # past sqlparse's token limit, and a query SQLite runs: scored without sqlparse (DISTINCT removed by the lexer)
    "SELECT DISTINCT count(*) FROM singer WHERE age IN (" + ", ".join(map(str, range(5000))) + ")",
]


def test_pathological_predictions_get_an_outcome_and_are_not_fatal(db):
    start = time.perf_counter()
    details = score_all(PATHOLOGICAL, [GOLD] * len(PATHOLOGICAL), db_paths=[db] * len(PATHOLOGICAL))
    assert time.perf_counter() - start < 30
    outcomes = [d["outcome"] for d in details]
    assert outcomes == ["exec_error", "exec_error", "exec_error", "rejected", "correct"]
    assert "parser stack overflow" in details[0]["error"] and "too large" in details[1]["error"]  # SQLite's own limits
    assert "characters long" in details[3]["error"]


def test_the_reward_scores_pathological_completions_without_raising(db):
    reward = ExecutionReward()
    n = len(PATHOLOGICAL)
    scores = reward(prompts=[""] * n, completions=PATHOLOGICAL, gold_sql=[GOLD] * n, db_path=[db] * n)
    assert scores == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "name", ["we?ird.sqlite", "sales#2024.sqlite", "pct%41.sqlite", "with space.sqlite", "café.sqlite"]
)
def test_database_paths_with_uri_characters_open_the_intended_file_read_only(tmp_path, name):
    path = _make_db(tmp_path / name)
    before = _state(tmp_path)
    result = run_query(open_database(str(path)), "SELECT name FROM singer ORDER BY singer_id")
    assert result.status == "ok" and [r[0] for r in result.rows] == ["Ana", "Bo", "Cy"]
    write = run_query(open_database(str(path)), "DELETE FROM singer")
    assert write.status == "rejected"
    assert _state(tmp_path) == before  # no file created beside it (`we`, `sales`), none changed


def test_a_wal_database_is_read_without_creating_files_or_waiting_for_a_writer(tmp_path):
    path = _make_db(tmp_path / "live.sqlite", journal_mode="wal")
    before = _state(tmp_path)
    writer = sqlite3.connect(path, timeout=0)
    writer.execute("BEGIN EXCLUSIVE")  # a writer holding the lock elsewhere
    try:
        start = time.perf_counter()
        result = run_query(open_database(str(path)), GOLD, timeout_s=2.0)
        assert time.perf_counter() - start < 2.0
        assert result.status == "ok" and result.rows == [(3,)]
    finally:
        writer.rollback()
        writer.close()
    assert _state(tmp_path) == before


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WITH x AS (SELECT 1) DELETE FROM singer", "DELETE (singer) is not allowed"),
        ("WITH x AS (SELECT 1) INSERT INTO singer VALUES (9, 'Eve', 1)", "INSERT (singer) is not allowed"),
        ("WITH x AS (SELECT 1) UPDATE singer SET age = 0", "UPDATE (singer) is not allowed"),
        ("SELECT hex(fts3_tokenizer('simple'))", "FUNCTION (fts3_tokenizer) is not allowed"),
        ("SELECT fts3_tokenizer('simple', x'4141414141414141')", "FUNCTION (fts3_tokenizer) is not allowed"),
        ("SELECT * FROM json_each('[1, 2]')", "a virtual table or table-valued function is not allowed"),
        ("SELECT * FROM pragma_table_info('singer')", "is not allowed"),
    ],
)
def test_denied_actions_are_named_for_what_they_are(db, sql, message):
    result = run_query(open_database(db), sql, rewrite_double_quotes=False)
    assert result.status == "rejected" and message in result.error, result.error
    assert run_query(open_database(db), GOLD).rows == [(3,)]  # and nothing changed


@pytest.mark.parametrize("keep_distinct", [False, True])
def test_a_second_statement_is_rejected_under_both_spider_modes(db, keep_distinct):
    [detail] = score_all(
        ["SELECT count(*) FROM singer; DROP TABLE singer"], [GOLD], db_paths=[db], keep_distinct=keep_distinct
    )
    assert detail["outcome"] == "rejected" and "more than one statement" in detail["error"]
    [trailing] = score_all(["SELECT count(*) FROM singer;"], [GOLD], db_paths=[db], keep_distinct=keep_distinct)
    assert trailing["outcome"] == "correct"


def test_results_are_capped_in_bytes_not_only_in_rows(db):
    import resource

    huge = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT zeroblob(9000000) FROM c"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_query(open_database(db), huge, timeout_s=10)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status == "timeout" and "bytes" in result.error
    assert grown_mib < 200, grown_mib  # a row cap alone let this reach 1.5 GB
    [detail] = score_all(["SELECT zeroblob(9000000) FROM singer LIMIT 1"], [GOLD], db_paths=[db])
    assert detail["outcome"] == "wrong_result" and len(str(detail["prediction_rows"])) < 2000  # details stay small


def test_validation_is_the_hub_name_of_spider_dev(tmp_path):
    from t2s.data import load_spider

    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")
    validation, dev = load_spider(layout, "validation"), load_spider(layout, "dev")
    assert list(validation["example_id"]) == list(dev["example_id"]) and list(validation["gold_sql"]) == list(
        dev["gold_sql"]
    )
