"""Execution accuracy: equivalence, sandbox (adversarial inputs), protocol details and the real dev split."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter

import evaluate
import pytest

from t2s.data import load_wikisql
from t2s.execution.sandbox import run_query
from t2s.execution.scoring import score_all
from t2s.execution.tables import materialize_table

from .conftest import ROOT
from .reference_evaluator import normalise

METRIC_DIR = ROOT / "t2s" / "metrics" / "execution_accuracy"
T = '"table_1_1000_1"'


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


@pytest.fixture(scope="module")
def table(fixture_dev):
    return fixture_dev[0]["table"]  # 1-1000-1: players, with real and text columns


def outcome_of(metric, table, prediction, reference):
    result = metric.compute(
        predictions=[prediction], references=[reference], tables=[table], return_details=True, semantics="wikisql"
    )
    return result["details"][0]["outcome"], result["details"][0]["error"]


# --------------------------------------------------------------------------- equivalence


def test_gold_vs_gold_is_perfect_on_fixtures(metric, fixture_dev):
    result = metric.compute(
        predictions=fixture_dev["gold_sql"],
        references=fixture_dev["gold_sql"],
        tables=list(fixture_dev["table"]),
        semantics="wikisql",
    )
    assert result["execution_accuracy"] == 1.0
    assert result["outcomes"]["correct"] == len(fixture_dev)


@pytest.mark.parametrize(
    "prediction,reference",
    [
        # swapped AND order
        (
            f'SELECT "Player" FROM {T} WHERE "Position" = \'Guard\' AND "No." < 20',
            f'SELECT "Player" FROM {T} WHERE "No." < 20 AND "Position" = \'Guard\'',
        ),
        # COUNT(*) vs COUNT(col) where the column has no NULLs
        (
            f"SELECT COUNT(*) FROM {T} WHERE \"Position\" = 'Forward'",
            f'SELECT COUNT("Player") FROM {T} WHERE "Position" = \'Forward\'',
        ),
        # integer vs float literal
        (f'SELECT "Player" FROM {T} WHERE "No." = 7.0', f'SELECT "Player" FROM {T} WHERE "No." = 7'),
        # case of a text literal (the table collation is case-insensitive, beyond ASCII)
        (
            f'SELECT "No." FROM {T} WHERE "Player" = \'josé MÜLLER\'',
            f'SELECT "No." FROM {T} WHERE "Player" = \'José Müller\'',
        ),
        # row order does not matter without ORDER BY
        (f'SELECT "Player" FROM {T} ORDER BY "Player" DESC', f'SELECT "Player" FROM {T}'),
        # other spellings of identifiers and keywords
        ("select `Player` from [table_1_1000_1] where [No.] = 3", f'SELECT "Player" FROM {T} WHERE "No." = 3'),
        # AVG by hand
        (
            f'SELECT SUM("Area (km²)") / COUNT("Area (km²)") FROM {T} WHERE "No." > 10',
            f'SELECT AVG("Area (km²)") FROM {T} WHERE "No." > 10',
        ),
        # a trailing semicolon and a comment are fine
        (f'SELECT "Player" FROM {T} WHERE "No." = 7; -- done', f'SELECT "Player" FROM {T} WHERE "No." = 7'),
        # empty gold result matched by an empty prediction
        (
            f'SELECT "Player" FROM {T} WHERE "Player" = \'Nobody\'',
            f'SELECT "Player" FROM {T} WHERE "Team\'s ""Club""" = \'Real Madrid\'',
        ),
        # all-NULL gold (MAX over no rows) matched by a prediction returning no rows
        (
            f'SELECT "No." FROM {T} WHERE "Player" = \'Nobody\'',
            f'SELECT MAX("No.") FROM {T} WHERE "Player" = \'Nobody\'',
        ),
    ],
)
def test_equivalent_queries_are_correct(metric, table, prediction, reference):
    assert outcome_of(metric, table, prediction, reference) == ("correct", None)


@pytest.mark.parametrize(
    "prediction,reference",
    [
        (f'SELECT "Position" FROM {T} WHERE "No." = 7', f'SELECT "Player" FROM {T} WHERE "No." = 7'),  # wrong column
        (f'SELECT MAX("No.") FROM {T}', f'SELECT MIN("No.") FROM {T}'),  # wrong aggregation
        (f'SELECT COUNT("Player") FROM {T}', f'SELECT SUM("No.") FROM {T}'),
        (f'SELECT "Player" FROM {T} WHERE "No." = 12', f'SELECT "Player" FROM {T} WHERE "No." = 7'),  # wrong value
        (f'SELECT "Player" FROM {T} WHERE "No." > 7', f'SELECT "Player" FROM {T} WHERE "No." < 7'),  # wrong operator
        (f'SELECT "Player" FROM {T}', f'SELECT "Player" FROM {T} WHERE "No." = 7'),  # missing condition
        (
            f'SELECT DISTINCT "Player" FROM {T} WHERE "No." = 15',
            f'SELECT "Player" FROM {T} WHERE "No." = 15',
        ),  # multiset
        (
            f'SELECT "Player", "No." FROM {T} WHERE "No." = 7',
            f'SELECT "Player" FROM {T} WHERE "No." = 7',
        ),  # extra column
        (
            f'SELECT "Points #" FROM {T} WHERE "No." = 12',
            f'SELECT 16000 FROM {T} WHERE "No." = 12',
        ),  # '16,000' text != 16000
        (
            f'SELECT "Player" FROM {T} WHERE "Player" = \'Nobody\'',
            f'SELECT "Player" FROM {T} WHERE "No." = 7',
        ),  # empty vs not
    ],
)
def test_different_answers_are_wrong(metric, table, prediction, reference):
    assert outcome_of(metric, table, prediction, reference)[0] == "wrong_result"


def test_order_matters_only_when_gold_orders(metric, table):
    asc = f'SELECT "Player" FROM {T} ORDER BY "No." ASC'
    desc = f'SELECT "Player" FROM {T} ORDER BY "No." DESC'
    assert outcome_of(metric, table, desc, asc)[0] == "wrong_result"
    assert outcome_of(metric, table, asc, asc)[0] == "correct"


def test_hallucinated_double_quoted_column_is_an_error_not_a_string(metric, table):
    # Plain SQLite would return the text 'Player Name' for every row here.
    outcome, error = outcome_of(metric, table, f'SELECT "Player Name" FROM {T}', f'SELECT "Player" FROM {T}')
    assert outcome == "exec_error" and "no such column" in error
    outcome, error = outcome_of(metric, table, 'SELECT "Player" FROM "players"', f'SELECT "Player" FROM {T}')
    assert outcome == "exec_error" and "no such table" in error
    # a double-quoted value is read as an identifier, so it cannot silently match
    outcome, _ = outcome_of(
        metric,
        table,
        f'SELECT "No." FROM {T} WHERE "Player" = "O\'Brien"',
        f"SELECT \"No.\" FROM {T} WHERE \"Player\" = 'O''Brien'",
    )
    assert outcome == "exec_error"


# --------------------------------------------------------------------------- sandbox


ADVERSARIAL = [
    (f"DROP TABLE {T}", "rejected"),
    (f"DELETE FROM {T}", "rejected"),
    (f"INSERT INTO {T} VALUES (1,2,3,4,5,6)", "rejected"),
    (f'UPDATE {T} SET "No." = 0', "rejected"),
    ("CREATE TABLE x (a)", "rejected"),
    ("CREATE TEMP TABLE x AS SELECT 1", "rejected"),
    ("ATTACH DATABASE '/tmp/t2s_attack.db' AS a", "rejected"),
    ("DETACH DATABASE main", "rejected"),
    ("PRAGMA writable_schema = ON", "rejected"),
    ("VACUUM", "rejected"),
    ("VACUUM INTO '/tmp/t2s_attack_copy.db'", "rejected"),
    ("SELECT load_extension('/tmp/evil.so')", "rejected"),
    (f"SELECT 1; DROP TABLE {T}", "rejected"),
    (f'SELECT "Player" FROM {T}; SELECT 2', "rejected"),
    # more of our own
    (f"WITH x AS (SELECT 1) DELETE FROM {T}", "rejected"),
    ("SELECT * FROM pragma_table_info('table_1_1000_1')", "rejected"),
    ("BEGIN; SELECT 1", "rejected"),
    ("SAVEPOINT s", "rejected"),
    ("REINDEX", "rejected"),
    ("ANALYZE", "rejected"),
    ("EXPLAIN SELECT 1", "rejected"),
    (f"ALTER TABLE {T} RENAME TO y", "rejected"),
    ("CREATE VIEW v AS SELECT 1", "rejected"),
    ("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END", "rejected"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r", "timeout"),
    (f"SELECT COUNT(*) FROM {T} a, {T} b, {T} c, {T} d, {T} e, {T} f, {T} g, {T} h, {T} i, {T} j", "timeout"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r", "too_large"),  # row cap
    ("SELECT randomblob(1000000000)", "exec_error"),
    ("SELECT 'a\x00b'", "rejected"),
    ("SELECT '" + "x" * 200_000 + "'", "rejected"),
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("-- just a comment", "empty"),
    ("/* it's a 'comment' */ ;", "empty"),
    (";", "empty"),
    (None, "empty"),
    ("The answer is Guard.", "rejected"),
    ("```sql\nSELECT 1\n```", "rejected"),
    ("SELECT 'ünïcødé ✓ 表' AS \"列\"", "wrong_result"),
    ('SELECT "Player" FROM /* unterminated comment', "exec_error"),
    ("SELECT 'unterminated", "exec_error"),
    ('SELECT "unterminated', "exec_error"),
    ("SELECT 1 +", "exec_error"),
    ("SELECT abs(-9223372036854775808)", "exec_error"),
]


@pytest.mark.parametrize("prediction,expected", ADVERSARIAL, ids=[str(i) for i in range(len(ADVERSARIAL))])
def test_adversarial_predictions_get_the_right_outcome_and_change_nothing(prediction, expected, table):
    conn = materialize_table(table)
    before = conn.execute(f"SELECT * FROM {T}").fetchall()
    details = score_all(
        [prediction],
        [f'SELECT "Player" FROM {T} WHERE "No." = 7'],
        tables=[table],
        timeout_s=0.5,
        max_rows=10_000,
        semantics="wikisql",
    )
    assert details[0].outcome == expected, details[0]
    assert conn.execute(f"SELECT * FROM {T}").fetchall() == before
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("table_1_1000_1",)]
    assert not os.path.exists("/tmp/t2s_attack.db") and not os.path.exists("/tmp/t2s_attack_copy.db")


def test_rejections_say_why(table):
    conn = materialize_table(table)
    assert "DROP" in run_query(conn, f"DROP TABLE {T}").error
    assert "PRAGMA" in run_query(conn, "PRAGMA user_version = 3").error
    assert "not allowed" in run_query(conn, "SELECT * FROM pragma_table_info('x')").error
    assert "more than one statement" in run_query(conn, "SELECT 1; SELECT 2").error
    assert "FUNCTION (load_extension)" in run_query(conn, "SELECT load_extension('x')").error


def test_evaluation_goes_on_after_a_timeout(metric, table):
    gold = f'SELECT "Player" FROM {T} WHERE "No." = 7'
    result = metric.compute(
        predictions=["WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r", gold],
        references=[gold, gold],
        tables=[table, table],
        timeout=0.3,
        semantics="wikisql",
    )
    assert result["outcomes"]["timeout"] == 1 and result["outcomes"]["correct"] == 1


def test_non_string_predictions_never_crash(table):
    details = score_all(
        [7, b"SELECT 1", ["SELECT 1"], 3.5], [f'SELECT "Player" FROM {T}'] * 4, tables=[table] * 4, semantics="wikisql"
    )
    assert [d.outcome for d in details] == ["rejected"] * 4


def test_db_paths_are_opened_read_only_and_left_byte_identical(metric, tmp_path):
    path = tmp_path / "concert.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
        "CREATE TABLE concert (id INTEGER, singer_id INTEGER, year INTEGER);"
        "INSERT INTO singer VALUES (1, 'Joe', 'France'), (2, 'Ana', 'Spain');"
        "INSERT INTO concert VALUES (1, 1, 2014), (2, 1, 2015), (3, 2, 2014);"
    )
    conn.commit()
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    gold = "SELECT s.name, COUNT(*) FROM singer s JOIN concert c ON c.singer_id = s.id GROUP BY s.name"
    predictions = [
        "SELECT name, (SELECT COUNT(*) FROM concert WHERE singer_id = singer.id) FROM singer",
        "SELECT name, COUNT(*) FROM singer",
        "DELETE FROM singer",
        "DROP TABLE concert",
        "UPDATE singer SET name = 'x'",
        "SELECT 'joe', 2 UNION ALL SELECT 'ana', 1",  # exact text comparison for files: 'joe' != 'Joe'
    ]
    result = metric.compute(
        predictions=predictions,
        references=[gold] * 6,
        db_paths=[str(path)] * 6,
        return_details=True,
        semantics="spider",
    )
    assert [d["outcome"] for d in result["details"]] == [
        "correct",
        "wrong_result",
        "rejected",
        "rejected",
        "rejected",
        "wrong_result",
    ]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["concert.sqlite"]


def test_gold_errors_are_reported_apart_and_left_out(metric, table):
    good = f'SELECT "Player" FROM {T} WHERE "No." = 7'
    result = metric.compute(
        predictions=[good, good, "SELECT 1"],
        references=[good, 'SELECT "Nope" FROM nowhere', good],
        tables=[table] * 3,
        semantics="wikisql",
    )
    assert result["gold_errors"] == 1 and result["num_scored"] == 2
    assert result["execution_accuracy"] == 0.5


def test_accuracy_with_and_without_empty_gold(metric, table):
    empty_gold = f'SELECT "Player" FROM {T} WHERE "Player" = \'Nobody\''
    gold = f'SELECT "Player" FROM {T} WHERE "No." = 7'
    result = metric.compute(
        predictions=["SELECT 1 WHERE 0", "SELECT 1 WHERE 0"],
        references=[empty_gold, gold],
        tables=[table] * 2,
        semantics="wikisql",
    )
    assert result["execution_accuracy"] == 0.5
    assert result["execution_accuracy_nonempty_gold"] == 0.0
    assert result["num_empty_gold"] == 1


def test_argument_errors_are_clear(metric, table):
    with pytest.raises(ValueError, match="exactly one of tables"):
        metric.compute(predictions=["SELECT 1"], references=["SELECT 1"], semantics="spider")
    with pytest.raises(ValueError, match="2 tables for 1 references"):
        metric.compute(predictions=["SELECT 1"], references=["SELECT 1"], tables=[table, table], semantics="wikisql")


def test_num_proc_gives_the_same_details(fixture_dev):
    preds = [sql.replace("=", ">") for sql in fixture_dev["gold_sql"]]
    refs, tables = list(fixture_dev["gold_sql"]), list(fixture_dev["table"])
    assert score_all(preds, refs, tables, num_proc=2, semantics="wikisql") == score_all(
        preds, refs, tables, semantics="wikisql"
    )


# --------------------------------------------------------------------------- the real dev split


def test_gold_vs_gold_on_all_dev_questions_matches_official_answers(metric, shared_wikisql):
    ds = load_wikisql(shared_wikisql, "dev")
    refs, tables = list(ds["gold_sql"]), list(ds["table"])
    result = metric.compute(predictions=refs, references=refs, tables=tables, return_details=True, semantics="wikisql")
    assert result["execution_accuracy"] == 1.0 and result["num_scored"] == 8421 and result["gold_errors"] == 0
    answers = json.loads((shared_wikisql / "dev.answers.json").read_text())
    seen = Counter()
    for ex, detail in zip(ds, result["details"]):
        _, expected = answers[ex["table_id"]][seen[ex["table_id"]]]
        seen[ex["table_id"]] += 1
        if len(expected) <= 20:  # details keep the first 20 rows
            assert normalise([r[0] for r in detail["gold_rows"]]) == normalise(expected), ex["example_id"]
    empty_share = result["num_empty_gold"] / result["num_scored"]
    assert 0.04 < empty_share < 0.12, empty_share


def test_metric_loads_offline_from_any_directory_by_folder_and_by_file(tmp_path):
    code = (
        "import evaluate\n"
        "from t2s.metrics import EXECUTION_ACCURACY\n"
        "m = evaluate.load(EXECUTION_ACCURACY)  # the documented call, from another directory\n"
        f"f = evaluate.load({str(METRIC_DIR / 'execution_accuracy.py')!r})\n"
        "t = {'id': '1-1-1', 'header': ['a'], 'types': ['text'], 'rows': [['X']]}\n"
        "r = f.compute(predictions=['SELECT a FROM table_1_1_1'], references=['SELECT \"a\" FROM \"table_1_1_1\"'], tables=[t], semantics='wikisql')\n"
        "print(type(m).__name__, r['execution_accuracy'])\n"
    )
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_MODULES_CACHE=str(tmp_path / "modules")
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["ExecutionAccuracy", "1.0"]
