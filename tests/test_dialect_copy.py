"""`t2s copy-dataset`: a Spider layout copied onto DuckDB, its gold transpiled and kept only where it returns SQLite's
result there; the copy trains and evaluates like any dataset on an engine."""

from __future__ import annotations

import json

import pytest

from t2s.data import load_text2sql
from t2s.data.dialect_copy import CarryOver, copy_spider_dialect
from t2s.execution.engines import open_engine
from t2s.execution.semantics import spider_results_match
from tests.spider_fixture import build_spider_layout

NOT_CARRIED = [
    # DuckDB's GROUP BY is strict: a column neither grouped nor aggregated is an error there, not on SQLite
    {"db_id": "school", "question": "A name per city.", "query": "SELECT city , name FROM student GROUP BY city"},
    {"db_id": "school", "question": "Broken gold.", "query": "SELECT nope FROM student"},
    {"db_id": "zoo", "question": "No database.", "query": "SELECT 1"},
]


@pytest.fixture()
def layout(tmp_path):
    root = build_spider_layout(tmp_path / "spider")
    dev = json.loads((root / "dev.json").read_text())
    (root / "dev.json").write_text(json.dumps(dev + NOT_CARRIED))
    return root


def test_copy_keeps_gold_that_carries_over_in_duckdb_and_says_why_the_rest_is_left_out(layout, tmp_path):
    out = tmp_path / "spider-duckdb"
    report = copy_spider_dialect(layout, out, dialect="duckdb")
    dev = json.loads((out / "dev.json").read_text())
    assert report.kept == {"train_spider.json": 4, "dev.json": 8} and len(dev) == 8
    assert report.reasons() == {
        CarryOver.FAILS_THERE.value: 1,
        CarryOver.FAILS_ON_SQLITE.value: 1,
        CarryOver.NO_DATABASE.value: 1,
    }
    assert {item["where"]: item["reason"] for item in report.left_out} == {
        "dev.json[8]": "fails there",
        "dev.json[9]": "fails on SQLite",
        "dev.json[10]": "no SQLite database file",
    }
    # SQLite's double-quoted string is written as DuckDB reads a string, and each question names its source
    paris = next(q for q in dev if q["question"] == "Names of students from Paris.")
    assert "'Paris'" in paris["query"] and '"Paris"' not in paris["query"] and paris["source"] == "dev.json[1]"
    assert json.loads((out / "databases.json").read_text()) == {
        "school": "database/school.duckdb",
        "shop": "database/shop.duckdb",
    }
    saved = json.loads((out / "dialect_copy.json").read_text())
    assert saved["left_out_by_reason"] == dict(report.reasons()) and saved["kept"] == report.kept
    assert not (tmp_path / "spider-duckdb.partial").exists()
    # each kept query returns on DuckDB what the original gold returns on SQLite
    originals = json.loads((layout / "dev.json").read_text())
    for question in dev:
        original = originals[int(question["source"].split("[")[1].rstrip("]"))]
        with open_engine(str(layout / "database" / original["db_id"] / f"{original['db_id']}.sqlite")) as sqlite:
            expected = sqlite.run(original["query"]).rows
        with open_engine(str(out / "database" / f"{question['db_id']}.duckdb")) as duck:
            got = duck.run(question["query"]).rows
        assert spider_results_match(expected, got, order_matters="order by" in original["query"].lower())


def test_the_copy_trains_and_evaluates_with_duckdb_prompts(layout, tmp_path):
    out = tmp_path / "spider-duckdb"
    copy_spider_dialect(layout, out, dialect="duckdb", splits=["train"])
    train = load_text2sql(str(out), "train")
    assert len(train) == 4
    assert all("DuckDB database: write its SQL dialect." in prompt for prompt in train["prompt"])
    assert all(path.endswith(".duckdb") for path in train["db_path"])


def test_an_existing_folder_or_an_interrupted_copy_leaves_nothing_half_written(layout, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="choose a new folder"):
        copy_spider_dialect(layout, out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    seen = []

    def interrupt():
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        copy_spider_dialect(layout, fresh, on_question=interrupt)
    assert not fresh.exists() and not (tmp_path / "fresh.partial").exists()


def test_server_engines_and_bad_rows_are_refused_with_the_way_out(layout, tmp_path):
    with pytest.raises(ValueError, match="t2s copy-db"):
        copy_spider_dialect(layout, tmp_path / "pg", dialect="postgres")
    (layout / "dev.json").write_text(json.dumps([{"db_id": "school", "question": "Q?"}]))
    from t2s.data.spider import SpiderFormatError

    with pytest.raises(SpiderFormatError, match=r"dev.json\[0\]: expected an object with db_id, question, query"):
        copy_spider_dialect(layout, tmp_path / "bad", splits=["dev"])
    assert not (tmp_path / "bad").exists()
    (layout / "databases.json").write_text(json.dumps({"school": "school.duckdb"}))
    with pytest.raises(SpiderFormatError, match="already on an engine"):
        copy_spider_dialect(layout, tmp_path / "again")


def test_copy_dataset_command_reports_what_it_kept(layout, tmp_path, capsys):
    from t2s.dbtools import copy_dataset_main
    from t2s.runtime import UserError

    report = copy_dataset_main([str(layout), str(tmp_path / "c"), "--splits", "dev"])
    printed = capsys.readouterr().out
    assert report.kept == {"dev.json": 8}
    assert "dev.json: 8 questions kept" in printed and "1 (fails there)" in printed
    with pytest.raises(UserError, match="choose a new folder"):
        copy_dataset_main([str(layout), str(tmp_path / "c")])


def test_each_split_copies_its_own_database_folder(tmp_path):
    """Spider's test split keeps its databases in test_database/: the copy reads them there."""
    import shutil

    root = build_spider_layout(tmp_path / "spider", test_split=True)
    shutil.rmtree(root / "database")
    report = copy_spider_dialect(root, tmp_path / "copy", splits=["test"])
    assert report.kept == {"test.json": 3} and report.left_out == [] and report.databases == 1
