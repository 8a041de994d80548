"""The comparison rules are chosen, not guessed from the input's shape: each reader declares its dataset's semantics,
the metric, the scorer and the reward take it as a parameter, and either rules apply to any database."""

from __future__ import annotations

import sqlite3

import evaluate
import pytest

from t2s.data import load_spider
from t2s.execution.scoring import Outcome, score_all
from t2s.execution.semantics import Semantics
from t2s.training.rewards import ExecutionReward

from .conftest import ROOT
from .engines_setup import OWN

GOLD = "SELECT name FROM people WHERE name = 'Ann'"
LOWER = "SELECT lower(name) FROM people WHERE name = 'Ann'"  # the same answer in another case


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    path = tmp_path_factory.mktemp("semantics") / "people.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
        conn.execute("INSERT INTO people VALUES ('Ann'), ('Bob')")
    return str(path)


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(ROOT / "t2s" / "metrics" / "execution_accuracy" / "execution_accuracy.py"))


def test_either_semantics_applies_to_a_database_when_named(people):
    """Spider's rules compare text exactly, WikiSQL's case-insensitively: on the same SQLite file, the choice decides."""
    (spider,) = score_all([LOWER], [GOLD], db_paths=[people], semantics="spider")
    (wikisql,) = score_all([LOWER], [GOLD], db_paths=[people], semantics=Semantics.WIKISQL)
    assert (spider.outcome, wikisql.outcome) == (Outcome.WRONG_RESULT, Outcome.CORRECT)
    with pytest.raises(ValueError, match="semantics='bird' must be one of"):
        score_all([LOWER], [GOLD], db_paths=[people], semantics="bird")


def test_the_metric_takes_semantics_and_keeps_its_old_default_with_a_warning(metric, people):
    named = metric.compute(predictions=[LOWER], references=[GOLD], databases=[people], semantics="wikisql")
    assert named["semantics"] == "wikisql" and named["execution_accuracy"] == 1.0
    with pytest.warns(FutureWarning, match="no semantics= given, so 'spider' applies"):
        default = metric.compute(predictions=[LOWER], references=[GOLD], databases=[people])
    assert default["semantics"] == "spider" and default["execution_accuracy"] == 0.0


def test_each_reader_declares_its_semantics(fixture_dev):
    assert set(fixture_dev["semantics"]) == {"wikisql"}
    assert set(load_spider(OWN, "dev")["semantics"]) == {"spider"}  # a user's own databases, Spider layout


def test_the_reward_reads_the_semantics_column_or_its_own(people):
    reward = ExecutionReward()
    for semantics, expected in (("wikisql", 1.0), ("spider", reward.partial_credit)):
        assert reward(completions=[LOWER], gold_sql=[GOLD], db_path=[people], semantics=[semantics]) == [expected]
    fixed = ExecutionReward(semantics="wikisql")  # its own choice wins over the column
    assert fixed(completions=[LOWER], gold_sql=[GOLD], db_path=[people], semantics=["spider"]) == [1.0]
    with pytest.warns(FutureWarning, match="no 'semantics' column"):
        assert ExecutionReward()(completions=[LOWER], gold_sql=[GOLD], db_path=[people]) == [reward.partial_credit]


def test_a_result_over_the_row_cap_is_too_large_not_a_timeout(people):
    (capped,) = score_all(["SELECT * FROM people"], [GOLD], db_paths=[people], semantics="spider", max_rows=1)
    assert capped.outcome == Outcome.TOO_LARGE and "max_rows=1" in capped.error
    assert capped.as_dict()["outcome"] == "too_large"  # what predictions.jsonl and the metric's details hold
