import json
from collections import Counter

import pytest

from t2s.data import WikiSQLFormatError, is_heldout_table, load_wikisql, parse_number, render_gold_sql
from t2s.execution.tables import build_table_database, column_names, materialize_table, table_name

from .conftest import FIXTURES
from .reference_evaluator import normalise, official_execute


def _raw_examples():
    tables = {}
    for line in (FIXTURES / "dev.tables.jsonl").read_text().splitlines():
        t = json.loads(line)
        tables[t["id"]] = t
    return [json.loads(line) for line in (FIXTURES / "dev.jsonl").read_text().splitlines()], tables


def test_all_dev_gold_sql_reproduces_official_answers(shared_wikisql):
    ds = load_wikisql(shared_wikisql, "dev")
    assert len(ds) == 8421
    answers = json.loads((shared_wikisql / "dev.answers.json").read_text())
    seen = Counter()
    mismatches = []
    for ex in ds:
        question, expected = answers[ex["table_id"]][seen[ex["table_id"]]]
        seen[ex["table_id"]] += 1
        assert question == ex["question"]
        got = [r[0] for r in materialize_table(ex["table"]).execute(ex["gold_sql"]).fetchall()]
        if normalise(got) != normalise(expected):
            mismatches.append((ex["example_id"], ex["gold_sql"], got[:3], expected[:3]))
    assert mismatches == []


def test_fixture_gold_sql_matches_reference_evaluator(fixture_dev):
    raw, tables = _raw_examples()
    assert len(fixture_dev) == len(raw)
    for ex, r in zip(fixture_dev, raw):
        expected = official_execute(tables[r["table_id"]], r["sql"])
        got = [row[0] for row in materialize_table(ex["table"]).execute(ex["gold_sql"]).fetchall()]
        assert normalise(got) == normalise(expected), ex["gold_sql"]


def test_fixtures_cover_what_breaks_naive_code(fixture_dev):
    aggs = Counter(ex["sql"]["agg"] for ex in fixture_dev)
    assert set(aggs) == {0, 1, 2, 3, 4, 5}
    assert {len(ex["sql"]["conds"]["column_index"]) for ex in fixture_dev} == {0, 1, 2, 3}
    empty = [ex for ex in fixture_dev if not materialize_table(ex["table"]).execute(ex["gold_sql"]).fetchall()]
    assert empty, "fixtures need a gold query with an empty result"


def test_gold_sql_quotes_identifiers_and_literals():
    table = {"id": "1-10015132-11", "header": ['Team "A"', "No.", "Attendance"], "types": ["text", "text", "real"]}
    sql = {"sel": 0, "agg": 4, "conds": [[1, 0, "O'Neil"], [2, 1, "55,767"]]}
    assert render_gold_sql(sql, table) == (
        'SELECT SUM("Team ""A""") FROM "table_1_10015132_11" WHERE "No." = \'O\'\'Neil\' AND "Attendance" > 55767'
    )
    assert table_name("1-10015132-11") == "table_1_10015132_11"
    assert parse_number("1,234.5") == 1234.5
    assert parse_number("12-5") == 12.0  # first number, as the official evaluator falls back to
    assert parse_number(7) == 7.0


@pytest.mark.parametrize(
    "sql,message",
    [
        ({"sel": 9, "agg": 0, "conds": []}, "sql.sel=9"),
        ({"sel": 0, "agg": 6, "conds": []}, "sql.agg=6"),
        ({"sel": 0, "agg": 0, "conds": [[5, 0, "x"]]}, "condition column 5"),
        ({"sel": 0, "agg": 0, "conds": [[0, 3, "x"]]}, "condition operator 3"),
        ({"sel": 0, "agg": 0, "conds": [[1, 0, "none"]]}, "contains no number"),
    ],
)
def test_gold_sql_rejects_bad_annotations(sql, message):
    from t2s.data import GoldSQLError

    table = {"id": "1-1-1", "header": ["a", "b"], "types": ["text", "real"]}
    with pytest.raises(GoldSQLError, match=message):
        render_gold_sql(sql, table)


def test_materialised_table_reproduces_official_database_quirks():
    table = {"id": "9-9-9", "header": ["Name", "Points"], "types": ["text", "real"]}
    table["rows"] = [["ЁЖИКОВ", "16000"], ["Éclair", "16,000"], ["bob", "3"]]
    conn = materialize_table(table, cache=False)
    rows = conn.execute('SELECT "Name", "Points", typeof("Points") FROM "table_9_9_9"').fetchall()
    assert rows == [("ёжиков", 16000.0, "real"), ("éclair", "16,000", "text"), ("bob", 3.0, "real")]
    # case-insensitive beyond ASCII (SQLite's NOCASE would miss both)
    assert conn.execute('SELECT COUNT(*) FROM "table_9_9_9" WHERE "Name" = \'Ёжиков\'').fetchone() == (1,)
    assert conn.execute('SELECT COUNT(*) FROM "table_9_9_9" WHERE "Name" = \'ÉCLAIR\'').fetchone() == (1,)
    # text cells of a real column sort after every number, as in the official database
    assert conn.execute('SELECT COUNT(*) FROM "table_9_9_9" WHERE "Points" > 100000').fetchone() == (1,)


def test_materialised_table_is_cached_and_read_only():
    table = {"id": "9-9-8", "header": ["a"], "types": ["text"], "rows": [["x"]]}
    conn = materialize_table(table)
    assert materialize_table(dict(table)) is conn
    import sqlite3

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute('DELETE FROM "table_9_9_8"')
    changed = dict(table, rows=[["y"]])
    assert materialize_table(changed) is not conn  # same id, other content: another table


def test_duplicate_headers_get_unique_names_everywhere():
    table = {"id": "1-2-3", "header": ["Score", "score", "Score"], "types": ["text"] * 3, "rows": [["a", "b", "c"]]}
    assert column_names(table["header"]) == ["Score", "score_2", "Score_3"]
    conn = build_table_database(table)
    assert conn.execute('SELECT "score_2" FROM "table_1_2_3"').fetchall() == [("b",)]
    assert render_gold_sql({"sel": 2, "agg": 0, "conds": []}, table) == 'SELECT "Score_3" FROM "table_1_2_3"'


@pytest.mark.parametrize("schema_format", ["names", "types", "rows"])
def test_prompt_has_schema_and_question_in_their_slots(fixture_dev, schema_format):
    ds = load_wikisql(FIXTURES, "dev", schema_format=schema_format, num_sample_rows=2)
    for ex in ds:
        prompt = ex["prompt"]
        schema_part = prompt.split("### Database Schema:\n")[1].split("\n\n### Question:")[0]
        question_part = prompt.split("### Question:\n")[1].split("\n\n### SQL:")[0]
        assert prompt.startswith("You are an expert SQL generator.")
        assert prompt.endswith("### SQL:\n")
        assert question_part == ex["question"]
        assert schema_part.startswith(f'CREATE TABLE "{table_name(ex["table_id"])}"')
        for name in column_names(ex["table"]["header"]):
            assert '"' + name.replace('"', '""') + '"' in schema_part
        assert ex["question"] not in schema_part
        assert ("TEXT" in schema_part) == (schema_format != "names")
        assert ("example rows" in schema_part) == (schema_format == "rows")
        assert ex["completion"] == ex["gold_sql"]


def test_rows_schema_shows_sample_cells_only_when_asked(fixture_dev):
    ds = load_wikisql(FIXTURES, "dev", schema_format="rows", num_sample_rows=1)
    first = ds[0]
    assert "José Müller | 7 | FC Zürich" in first["prompt"]
    assert "ЁЖИКОВ" not in first["prompt"]  # second row not shown
    assert "José Müller" not in fixture_dev[0]["prompt"].split("### Question:")[0]


def test_subsets_are_deterministic(shared_wikisql):
    a = load_wikisql(shared_wikisql, "dev", limit=50, seed=1)
    b = load_wikisql(shared_wikisql, "dev", limit=50, seed=1)
    c = load_wikisql(shared_wikisql, "dev", limit=50, seed=2)
    assert a["example_id"] == b["example_id"] and len(a) == 50
    assert a["example_id"] != c["example_id"]
    f = load_wikisql(shared_wikisql, "dev", fraction=0.05, seed=1)
    assert len(f) == round(8421 * 0.05)
    with pytest.raises(ValueError, match="either limit or fraction"):
        load_wikisql(shared_wikisql, "dev", limit=5, fraction=0.1)


def test_by_table_split_is_stable_and_disjoint(shared_wikisql):
    train = load_wikisql(shared_wikisql, "dev", table_split="train")
    held = load_wikisql(shared_wikisql, "dev", table_split="heldout")
    assert len(train) + len(held) == 8421
    assert not set(train["table_id"]) & set(held["table_id"])
    share = len(set(held["table_id"])) / (len(set(held["table_id"])) + len(set(train["table_id"])))
    assert 0.17 < share < 0.23
    again = load_wikisql(shared_wikisql, "dev", table_split="heldout", limit=500, seed=3)
    assert set(again["table_id"]) <= set(held["table_id"]) and len(again) == 500
    assert "held-out tables" in again.info.description and "WikiSQL dev" in again.info.description
    # the split is a function of (seed, table id) alone
    assert is_heldout_table("1-10015132-11", 0.2, 42) == is_heldout_table("1-10015132-11", 0.2, 42)
    other = load_wikisql(shared_wikisql, "dev", table_split="heldout", holdout_seed=7)
    assert set(other["table_id"]) != set(held["table_id"])


def _write(tmp_path, questions, tables):
    (tmp_path / "dev.jsonl").write_text("\n".join(questions) + "\n")
    (tmp_path / "dev.tables.jsonl").write_text("\n".join(tables) + "\n")
    return tmp_path


GOOD_TABLE = json.dumps({"id": "1-1-1", "header": ["a", "b"], "types": ["text", "real"], "rows": [["x", "1"]]})


def _q(sql, table_id="1-1-1"):
    return json.dumps({"table_id": table_id, "question": "q?", "sql": sql})


@pytest.mark.parametrize(
    "questions,tables,message",
    [
        ([_q({"sel": 0, "agg": 0, "conds": []}), "{not json"], [GOOD_TABLE], r"dev\.jsonl:2: malformed JSON"),
        ([_q({"sel": 0, "agg": 0, "conds": []}, "1-9-9")], [GOOD_TABLE], r"dev\.jsonl:1: table '1-9-9' is not in"),
        ([_q({"sel": 4, "agg": 0, "conds": []})], [GOOD_TABLE], r"dev\.jsonl:1: sql\.sel=4 is not a column"),
        ([_q({"sel": 0, "agg": 0, "conds": [[0, 7, "x"]]})], [GOOD_TABLE], r"dev\.jsonl:1: condition operator 7"),
        (
            [_q({"sel": 0, "agg": 0, "conds": []})],
            ['{"id": "1-1-1", "header": ["a"], "rows": [["x", "y"]]}'],
            r"dev\.tables\.jsonl:1: table 1-1-1: row 0 has 2 cells",
        ),
        (['{"table_id": "1-1-1", "sql": {}}'], [GOOD_TABLE], r"dev\.jsonl:1: example is missing the field 'question'"),
    ],
)
def test_bad_input_names_file_line_and_problem(tmp_path, questions, tables, message):
    _write(tmp_path, questions, tables)
    with pytest.raises(WikiSQLFormatError, match=message):
        load_wikisql(tmp_path, "dev")


def test_skip_mode_counts_and_reports_what_it_drops(tmp_path, capsys):
    good = _q({"sel": 0, "agg": 0, "conds": []})
    _write(
        tmp_path,
        [good, _q({"sel": 5, "agg": 0, "conds": []}), _q({"sel": 0, "agg": 0, "conds": []}, "1-9-9")],
        [GOOD_TABLE],
    )
    ds = load_wikisql(tmp_path, "dev", on_error="skip")
    assert len(ds) == 1
    err = capsys.readouterr().err
    assert "skipped 2 of 3" in err and "column index out of range" in err and "table missing" in err


def test_validation_is_an_alias_of_dev(fixture_dev):
    assert load_wikisql(FIXTURES, "validation")["gold_sql"] == fixture_dev["gold_sql"]


def test_missing_split_file_says_what_is_there(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_wikisql(tmp_path / "nowhere", "dev")
    _write(tmp_path, [], [GOOD_TABLE])
    with pytest.raises(FileNotFoundError, match="train.jsonl not found"):
        load_wikisql(tmp_path, "train")


def test_example_ids_and_labels_do_not_depend_on_where_the_data_is(tmp_path, fixture_dev):
    """A prediction file made on one copy matches the same data stored elsewhere; no absolute path reaches a label."""
    import shutil

    copy = tmp_path / "elsewhere" / "my_wikisql"
    shutil.copytree(FIXTURES, copy)
    moved = load_wikisql(copy, "dev")
    assert list(moved["example_id"]) == list(load_wikisql(FIXTURES, "dev")["example_id"])
    assert moved["example_id"][:2] == ["dev[0]", "dev[1]"]
    assert (
        moved.info.description.startswith("WikiSQL dev (my_wikisql), ") and str(tmp_path) not in moved.info.description
    )
    with pytest.raises(Exception, match=str(copy / "dev.jsonl")):  # messages still name the file to open
        (copy / "dev.jsonl").write_text("{not json\n")
        load_wikisql(copy, "dev")
