"""`t2s ask` and the page decode as `t2s evaluate` does, with its choices: schema-constrained and column-scoped by
default, plain greedy, execution-guided decoding and voting, each run on the user's own open database."""

from __future__ import annotations

import pytest

from t2s.runtime import UserError

from .engines_setup import SHOP


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from t2s.decoding.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_model))


@pytest.fixture()
def shop():
    from t2s.data.schema import from_engine
    from t2s.execution.engines import open_engine

    engine = open_engine(str(SHOP))
    yield engine, from_engine(engine, "shop")
    engine.close()


def test_the_default_decoding_is_constrained_to_the_open_database_and_scoped(tiny, shop, monkeypatch):
    """Under the default decoding the model gets the open database's own grammar and column scoping (what `evaluate
    --constrained_decoding --scoped_columns` gives a dataset's database); greedy gets neither. The shipped model's
    answer under it runs: tests/test_shipped.py."""
    from t2s.decoding.asker import DEFAULT_ASK_DECODING, Asker
    from t2s.decoding.constrained import schema_grammar
    from t2s.decoding.scope import ScopeChecker
    from t2s.decoding.settings import GREEDY

    engine, schema = shop
    seen = []
    monkeypatch.setattr(
        "t2s.decoding.predict.generate_sql", lambda *a, **k: seen.append(k) or [["SELECT count(*) FROM customers"]]
    )
    asker = Asker(*tiny, engine, schema)
    assert asker.decoding == DEFAULT_ASK_DECODING and DEFAULT_ASK_DECODING.scoped
    sql, result = asker.ask("How many customers?")
    assert result.status == "ok" and result.rows == [(6,)]
    (grammar,), (scope,) = seen[0]["grammars"], seen[0]["scopes"]
    assert grammar == schema_grammar(schema)
    assert isinstance(scope, ScopeChecker) and scope.consistent("SELECT name FROM customers", finished=True)
    assert not scope.consistent("SELECT customers.no_such_column FROM customers", finished=True)
    asker.decoding = GREEDY
    asker.ask("How many customers?")
    assert seen[1]["grammars"] is None and seen[1]["scopes"] is None


def test_execution_guided_decoding_and_voting_run_their_candidates_on_the_open_database(tiny, shop, monkeypatch):
    from t2s.decoding.asker import Asker
    from t2s.decoding.settings import Decoding

    engine, schema = shop
    calls = []

    def generate(model, tokenizer, prompts, settings, **kwargs):
        calls.append((settings.num_candidates, settings.temperature, kwargs.get("grammars") is not None))
        if settings.num_candidates == 1:
            return [["SELECT name FROM no_such_table"]]  # greedy: fails on the shop
        if settings.temperature == 0:  # beams
            return [["SELECT nothing", "SELECT name FROM customers WHERE city = 'Lyon'"]]
        return [["SELECT count(*) FROM customers", "SELECT count(*) FROM customers", "SELECT 1"]]  # samples

    monkeypatch.setattr("t2s.decoding.predict.generate_sql", generate)
    asker = Asker(
        *tiny,
        engine,
        schema,
        decoding=Decoding(constrained=True, scoped=True, execution_guided=True, num_candidates=2),
    )
    sql, result = asker.ask("Which customers live in Lyon?")
    assert sql == "SELECT name FROM customers WHERE city = 'Lyon'" and result.status == "ok" and result.rows
    assert calls == [(1, 0.0, True), (2, 0.0, True)]  # the greedy answer, then beams, both under the grammar

    calls.clear()
    asker.decoding = Decoding(num_samples=4)
    sql, result = asker.ask("How many customers?")
    assert sql == "SELECT count(*) FROM customers" and result.rows  # two samples agree; the greedy answer fails
    assert calls == [(1, 0.0, False), (3, 0.7, False)]


def test_ask_flags_choose_the_decoding_and_refuse_what_cannot_be(monkeypatch, tiny_model):
    from t2s import ask

    chosen = []
    monkeypatch.setattr(
        "t2s.decoding.predict.predict", lambda *a, **k: chosen.append(a[4]) or [{"prediction": "SELECT 1"}]
    )
    base = ["--model", str(tiny_model), "--db", str(SHOP)]
    ask.main([*base, "How many customers?"])
    ask.main([*base, "--no-constrained_decoding", "How many customers?"])
    ask.main([*base, "--execution_guided", "--num_samples", "3", "How many customers?"])
    picked = [(d.constrained, d.scoped, d.execution_guided, d.num_samples) for d in chosen]
    assert picked == [(True, True, False, 1), (False, False, False, 1), (True, True, True, 3)]
    with pytest.raises(UserError, match="column scoping works inside constrained decoding"):
        ask.main([*base, "--no-constrained_decoding", "--scoped_columns", "How many customers?"])
    with pytest.raises(UserError, match="num_samples must be at least 1"):
        ask.main([*base, "--num_samples", "0", "How many customers?"])
    with pytest.raises(UserError, match="sample_temperature must be above 0"):
        ask.main([*base, "--num_samples", "3", "--sample_temperature", "0", "How many customers?"])


def test_the_page_offers_the_same_choices_by_name(tiny, monkeypatch):
    from t2s.decoding.asker import ASK_CHOICES, DEFAULT_ASK_DECODING
    from t2s.decoding.settings import GREEDY
    from t2s.webapp import functions as f

    assert next(iter(ASK_CHOICES.values())) == DEFAULT_ASK_DECODING and GREEDY in ASK_CHOICES.values()
    session = f.attach_model(f.open_session(path_or_url=str(SHOP)), *tiny)
    seen = []
    monkeypatch.setattr(
        "t2s.decoding.predict.generate_sql", lambda *a, **k: seen.append(k.get("grammars")) or [["SELECT 1"]]
    )
    try:
        f.ask(session, "How many customers?", GREEDY.describe())
        f.ask(session, "How many customers?", DEFAULT_ASK_DECODING.describe())
        assert seen[0] is None and seen[1] is not None
        with pytest.raises(UserError, match="not a decoding the page offers"):
            f.ask(session, "How many customers?", "beam search 100")
    finally:
        session.close()


def test_hostile_candidates_of_execution_guided_decoding_and_voting_change_nothing(tiny, tmp_path, monkeypatch):
    """Every candidate the search or the vote runs goes through the engine's sandbox: writes, attachments and pragmas
    are refused there, the file is left byte for byte as it was, and the answer is the candidate that reads."""
    import hashlib
    import os
    import shutil

    from t2s.data.schema import from_engine
    from t2s.decoding.asker import Asker
    from t2s.decoding.settings import Decoding
    from t2s.execution.engines import open_engine

    db = tmp_path / "shop.sqlite"
    shutil.copy(SHOP, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    hostile = [
        "DELETE FROM customers",
        "ATTACH DATABASE '/tmp/t2s_eg_attack.db' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/x')",
        "SELECT name FROM customers; DROP TABLE customers",
    ]
    good = "SELECT name FROM customers WHERE city = 'Lyon'"

    def generate(model, tokenizer, prompts, settings, **kwargs):
        if settings.num_candidates == 1:
            return [[hostile[0]]]
        if settings.temperature == 0:
            return [[*hostile[1:], good][: settings.num_candidates]]
        return [[*hostile[1:4]]]

    monkeypatch.setattr("t2s.decoding.predict.generate_sql", generate)
    engine = open_engine(str(db))
    try:
        schema = from_engine(engine, "shop")
        asker = Asker(
            *tiny,
            engine,
            schema,
            decoding=Decoding(constrained=True, scoped=True, execution_guided=True, num_candidates=5),
        )
        sql, result = asker.ask("Who lives in Lyon?")
        assert sql == good and result.status == "ok" and result.rows
        asker.decoding = Decoding(num_samples=4)
        sql, result = asker.ask("Who lives in Lyon?")
        assert sql == hostile[0] and result.status == "rejected"  # nothing ran: the refused greedy answer stays
    finally:
        engine.close()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not os.path.exists("/tmp/t2s_eg_attack.db")
