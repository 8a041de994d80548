"""The Hub code path (`datasets.load_dataset("Salesforce/wikisql")`) run against a local copy in that layout.

`load_dataset` resolves a name that exists as a local directory before asking the Hub, so a
folder `Salesforce/wikisql/` under the working directory exercises exactly the Hub branch.
"""

import json

import datasets
import pytest

from t2s.data import WikiSQLFormatError, load_wikisql

from .conftest import FIXTURES


def _hub_layout_records():
    tables = {}
    for line in (FIXTURES / "dev.tables.jsonl").read_text().splitlines():
        t = json.loads(line)
        tables[t["id"]] = t
    records = []
    for line in (FIXTURES / "dev.jsonl").read_text().splitlines():
        q = json.loads(line)
        t = tables[q["table_id"]]
        conds = q["sql"]["conds"]
        records.append(
            {
                "phase": q["phase"],
                "question": q["question"],
                "table": {
                    "header": t["header"],
                    "page_title": "",
                    "page_id": "",
                    "types": t["types"],
                    "id": t["id"],
                    "section_title": "",
                    "caption": "",
                    "rows": t["rows"],
                    "name": t["name"],
                },
                "sql": {
                    "human_readable": "",
                    "sel": q["sql"]["sel"],
                    "agg": q["sql"]["agg"],
                    "conds": {
                        "column_index": [c[0] for c in conds],
                        "operator_index": [c[1] for c in conds],
                        "condition": [str(c[2]) for c in conds],
                    },
                },
            }
        )
    return records


@pytest.fixture
def hub_copy(tmp_path, monkeypatch):
    repo = tmp_path / "Salesforce" / "wikisql" / "data"
    repo.mkdir(parents=True)
    datasets.Dataset.from_list(_hub_layout_records()).to_parquet(str(repo / "validation-00000-of-00001.parquet"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_hub_layout_gives_the_same_records_as_the_release_layout(hub_copy, fixture_dev):
    hub = load_wikisql("Salesforce/wikisql", "validation")
    assert hub["gold_sql"] == fixture_dev["gold_sql"]
    assert hub["prompt"] == fixture_dev["prompt"]
    assert hub["question"] == fixture_dev["question"]
    assert load_wikisql("Salesforce/wikisql", "dev")["gold_sql"] == fixture_dev["gold_sql"]


def test_hub_layout_accepts_data_files(hub_copy, fixture_dev):
    ds = load_wikisql("Salesforce/wikisql", "validation", data_files={"validation": "data/validation-*.parquet"})
    assert ds["gold_sql"] == fixture_dev["gold_sql"]


def test_instruction_layout_is_refused_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "someone" / "wikisql-instruct" / "data"
    repo.mkdir(parents=True)
    datasets.Dataset.from_list(
        [{"instruction": "Translate to SQL", "input": "What week?", "output": "SELECT SUM Week FROM table"}]
    ).to_parquet(str(repo / "validation-00000-of-00001.parquet"))
    with pytest.raises(WikiSQLFormatError, match="no table schema, no rows"):
        load_wikisql("someone/wikisql-instruct", "validation")
    with pytest.raises(WikiSQLFormatError, match="Salesforce/wikisql"):
        load_wikisql("htriedman/wikisql", "train")  # refused before any download
