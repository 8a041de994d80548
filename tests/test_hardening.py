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
    details = score_all(
        PATHOLOGICAL, [GOLD] * len(PATHOLOGICAL), db_paths=[db] * len(PATHOLOGICAL), semantics="spider"
    )
    assert time.perf_counter() - start < 30
    outcomes = [d.outcome for d in details]
    assert outcomes == ["exec_error", "exec_error", "exec_error", "rejected", "correct"]
    assert "parser stack overflow" in details[0].error and "too large" in details[1].error  # SQLite's own limits
    assert "characters long" in details[3].error


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
        ["SELECT count(*) FROM singer; DROP TABLE singer"],
        [GOLD],
        db_paths=[db],
        keep_distinct=keep_distinct,
        semantics="spider",
    )
    assert detail.outcome == "rejected" and "more than one statement" in detail.error
    [trailing] = score_all(
        ["SELECT count(*) FROM singer;"], [GOLD], db_paths=[db], keep_distinct=keep_distinct, semantics="spider"
    )
    assert trailing.outcome == "correct"


def test_results_are_capped_in_bytes_not_only_in_rows(db):
    import resource

    huge = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT zeroblob(900000) FROM c"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_query(open_database(db), huge, timeout_s=10)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status == "too_large" and "bytes" in result.error
    assert grown_mib < 200, grown_mib  # a cap on rows alone lets this reach gigabytes
    assert run_query(open_database(db), "SELECT zeroblob(9000000)").error == "string or blob too big"  # 1 MB values
    [detail] = score_all(["SELECT zeroblob(900000) FROM singer LIMIT 1"], [GOLD], db_paths=[db], semantics="spider")
    assert detail.outcome == "wrong_result" and len(str(detail.prediction_rows)) < 2000  # details stay small


def test_validation_is_the_hub_name_of_spider_dev(tmp_path):
    from t2s.data import load_spider

    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")
    validation, dev = load_spider(layout, "validation"), load_spider(layout, "dev")
    assert list(validation["example_id"]) == list(dev["example_id"]) and list(validation["gold_sql"]) == list(
        dev["gold_sql"]
    )


def test_the_metric_takes_any_prediction_and_bad_tables_are_data_errors():
    import evaluate

    from t2s.metrics import EXECUTION_ACCURACY

    metric = evaluate.load(EXECUTION_ACCURACY)
    table = {"id": "1-1", "header": ["name"], "types": ["text"], "rows": [["ann"]]}
    gold = 'SELECT "name" FROM "table_1_1"'
    result = metric.compute(
        predictions=["\ud800", None, 123, gold, gold, gold],
        references=[gold] * 6,
        tables=[table, table, table, table, {"id": "1-2", "rows": [["x"]]}, {**table, "rows": [["a", "b"]]}],
        timeout="2",
        return_details=True,
        semantics="wikisql",
    )
    outcomes = [d["outcome"] for d in result["details"]]
    assert outcomes == ["rejected", "empty", "rejected", "correct", "gold_error", "gold_error"]
    assert "table 4 cannot be built" in result["details"][4]["error"]
    assert result["num_scored"] == 4 and result["gold_errors"] == 2
    with pytest.raises(ValueError, match="max_rows=0 must be at least 1"):
        metric.compute(predictions=[gold], references=[gold], tables=[table], max_rows=0, semantics="wikisql")


# --------------------------------------------------------------------------- bad data: messages, not tracebacks


def _spider(tmp_path, dev, tables=None):
    import json
    import shutil

    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")
    if tables is not None:
        (layout / "tables.json").write_text(json.dumps(tables))
    (layout / "dev.json").write_text(dev if isinstance(dev, str) else json.dumps(dev))
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)
    return layout


def test_empty_or_fully_skipped_data_says_so(tmp_path):
    from t2s.data import DataFormatError, load_spider

    layout = _spider(tmp_path, [])
    with pytest.raises(DataFormatError, match=r"has no examples: .*spider/dev\.json holds none"):
        load_spider(layout, "dev")
    _spider(tmp_path, [{"db_id": "school", "question": "q?"}])  # no query: skipped
    with pytest.raises(DataFormatError, match="every example was skipped"):
        load_spider(layout, "dev", on_error="skip")


def test_data_that_is_not_utf8_names_its_file(tmp_path):
    import json

    from t2s.data import DataFormatError, load_spider, load_wikisql

    layout = _spider(tmp_path, [])
    (layout / "dev.json").write_bytes(json.dumps([{"db_id": "school"}]).encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"dev.json: not UTF-8 text .*save it as UTF-8"):
        load_spider(layout, "dev")
    wikisql = tmp_path / "wikisql"
    wikisql.mkdir()
    (wikisql / "dev.jsonl").write_text("")
    (wikisql / "dev.tables.jsonl").write_bytes('{"id": "1-1"}\n'.encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"dev.tables.jsonl: not UTF-8 text"):
        load_wikisql(wikisql, "dev")


def test_wrong_types_in_spider_files_are_named(tmp_path):
    import json

    from t2s.data import DataFormatError, load_spider

    layout = _spider(tmp_path, [{"db_id": 5, "question": "q?", "query": "SELECT 1"}])
    with pytest.raises(DataFormatError, match="the field 'db_id' must be a string, got 5"):
        load_spider(layout, "dev")
    tables = json.loads((layout / "tables.json").read_text())
    tables[0]["foreign_keys"] = [[1]]
    _spider(tmp_path, [{"db_id": tables[0]["db_id"], "question": "q?", "query": "SELECT 1"}], tables)
    with pytest.raises(DataFormatError, match=r"foreign_keys entry \[1\] must be \[column_index, column_index\]"):
        load_spider(layout, "dev")


def test_a_truncated_database_file_is_refused_when_loading(tmp_path):
    import json

    from t2s.data import SpiderFormatError, load_spider

    layout = _spider(tmp_path, [])
    db = next((layout / "database").glob("*/*.sqlite"))
    big = sqlite3.connect(db)
    big.execute("CREATE TABLE padding (x TEXT)")
    big.executemany("INSERT INTO padding VALUES (?)", [("x" * 1000,)] * 50)
    big.commit()
    big.close()
    db.write_bytes(db.read_bytes()[: 4096 * 3])
    _spider(tmp_path, [{"db_id": db.parent.name, "question": "q?", "query": "SELECT 1"}])
    with pytest.raises(SpiderFormatError, match="a truncated SQLite file"):
        load_spider(layout, "dev")
    assert json.loads((layout / "dev.json").read_text())  # the data file itself untouched


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT printf('%.*c', 2000000000, 'a')",  # SQLite loops over the precision even past the length limit
        "SELECT printf('%.*c', 2000000000, 'a'), printf('%.*c', 2000000000, 'b'), format('%2000000000c', 'c')",
        "SELECT printf('%.*c', 1e400, 'a'), printf('%.*c', '2000000000 as text', 'b'), printf('%.*c', x'32303030303030303030', 'c')",
        "SELECT printf('%.*c', 99999, 'a') LIKE ('%' || printf('%.*c', 99, 'a') || 'b')",
        "SELECT instr(printf('%.*c', 99999, 'a') || printf('%.*c', 99999, 'a'), printf('%.*c', 99999, 'a') || 'b')",
        "SELECT length(replace(zeroblob(900000), zeroblob(400000) || x'01', 'x'))",
        "SELECT length(trim(printf('%.*c', 99999, 'a'), printf('%.*c', 79999, 'b') || 'a'))",  # 70 s unbounded
        "SELECT length(rtrim(zeroblob(900000), zeroblob(70000) || x'01'))",
        "SELECT length(replace(printf('%.*c', 99999, 'a') || printf('%.*c', 99999, 'a'), printf('%.*c', 90000, 'a') || 'b', 'x'))",
    ],
)
def test_a_single_function_call_cannot_outlast_the_time_budget(db, sql):
    start = time.perf_counter()
    result = run_query(open_database(db), sql, timeout_s=2.0)
    assert time.perf_counter() - start < 2 * 2.0 + 1, result
    assert result.status in ("ok", "exec_error", "timeout")


def test_bounded_functions_give_sqlites_results(db):
    sql = (
        "SELECT printf('%5.2f|%s|%d|%%', 3.14159, 'x', 7), format('%-3s|', 'ab'), instr('hello', 'l'), instr('a', ''), "
        "instr(x'000102', x'02'), instr(12345, 34), replace('aXbX', 'X', '-'), replace('abc', '', '-'), "
        "replace(12321, 2, 'x'), printf('%.*c', 3, 'z'), instr(NULL, 'a'), replace('a', NULL, 'b'), "
        "trim('xxhixx', 'x'), ltrim('abcba', 'ab'), rtrim('abcba', 'ab'), trim(12321, 1), trim('é éa', 'é '), trim(NULL, 'a')"
    )
    plain = sqlite3.connect(":memory:").execute(sql).fetchall()
    assert run_query(open_database(db), sql).rows == plain
