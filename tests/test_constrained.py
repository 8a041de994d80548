"""Schema-constrained decoding: the grammars accept every gold query, and constrained outputs stay inside them."""

import re

import pytest
import sqlglot
from sqlglot import exp

from t2s.data import from_sqlite, load_text2sql
from t2s.decoding.constrained import compile_grammar, grammar_for, schema_grammar, wikisql_grammar
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.predict import predict
from t2s.decoding.settings import Decoding, GenerationSettings
from t2s.evaluation.analysis.spider import double_quoted_values

from .conftest import FIXTURES
from .spider_fixture import build_spider_layout
from .tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_constrained") / "model", seed=3)
    model, tokenizer = load_model_and_tokenizer(str(path))
    return model, tokenizer


@pytest.fixture(scope="module")
def spider_layout(tmp_path_factory):
    return build_spider_layout(tmp_path_factory.mktemp("spider_constrained") / "spider")


@pytest.fixture(scope="module")
def embedded_tokenizer():
    from transformers import AutoTokenizer

    from t2s.decoding.embedded import DEFAULT_EMBEDDED, ensure_embedded_model

    return AutoTokenizer.from_pretrained(ensure_embedded_model(DEFAULT_EMBEDDED))


def _accepts(tokenizer, grammar, sql):
    matcher = compile_grammar(tokenizer, grammar)
    ids = tokenizer(sql, add_special_tokens=False)["input_ids"]
    return matcher.consume_tokens(ids) and matcher.is_accepting()


def test_grammar_accepts_every_wikisql_dev_gold_query(shared_wikisql, embedded_tokenizer):
    ds = load_text2sql(str(shared_wikisql), "dev")
    rejected = [ex["example_id"] for ex in ds if not _accepts(embedded_tokenizer, grammar_for(ex), ex["completion"])]
    assert len(ds) == 8421 and rejected == []


def test_grammar_accepts_every_spider_dev_gold_query(shared_spider, embedded_tokenizer):
    ds = load_text2sql(str(shared_spider), "dev")
    rejected = [ex["example_id"] for ex in ds if not _accepts(embedded_tokenizer, grammar_for(ex), ex["completion"])]
    assert len(ds) == 1034 and rejected == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT nmae FROM student",  # a column the database does not have
        "SELECT name FROM students",  # a table it does not have
        "SELECT name FORM student",  # a syntax error
        "SELECT name FROM student WHERE",  # incomplete
        "SELECT T1.name FROM student AS T1 JOIN course AS T2 ON T1.stuid = T2.nope",
        "SELECT name FROM student; DROP TABLE student",
    ],
)
def test_sqlite_grammar_rejects_unknown_names_and_syntax_errors(spider_layout, embedded_tokenizer, sql):
    grammar = schema_grammar(from_sqlite(spider_layout / "database" / "school" / "school.sqlite"))
    assert not _accepts(embedded_tokenizer, grammar, sql)


def test_wikisql_grammar_is_the_rendered_language(fixture_dev, embedded_tokenizer):
    table = fixture_dev[0]["table"]
    grammar = wikisql_grammar(table)
    assert _accepts(embedded_tokenizer, grammar, fixture_dev[0]["completion"])
    name = '"table_1_1000_1"'
    assert _accepts(embedded_tokenizer, grammar, f'SELECT COUNT("Player") FROM {name} WHERE "No." > 3.5')
    assert not _accepts(embedded_tokenizer, grammar, f'SELECT "Role" FROM {name}')
    assert not _accepts(embedded_tokenizer, grammar, f"SELECT * FROM {name}")


def _identifiers(sql):
    """Tables and columns a query names; a double-quoted token compared against (`x = "Paris"`) is a string to SQLite
    (the grammar allows `"..."` only there, besides real names), so it is not counted as a name."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    values = double_quoted_values(tree)
    columns = {c.name.lower() for c in tree.find_all(exp.Column) if id(c) not in values}
    return {t.name.lower() for t in tree.find_all(exp.Table)}, columns


def test_constrained_outputs_of_a_random_model_stay_in_the_schema(tiny, spider_layout):
    """Property: whatever a random model prefers (sampled at a high temperature, several seeds), every output is a
    prefix of a valid query over its own schema, and every finished one parses, runs without a syntax error, and names
    only tables and columns of its database (or aliases)."""
    import torch

    from t2s.execution.engines import database_for

    model, tokenizer = tiny
    ds = load_text2sql(str(spider_layout), "dev")
    grammars = [grammar_for(ex) for ex in ds]
    finished = 0
    for seed in range(6):
        torch.manual_seed(seed)
        settings = GenerationSettings(max_new_tokens=48, batch_size=4, temperature=1.5)
        outputs = [c[0] for c in generate_sql(model, tokenizer, list(ds["prompt"]), settings, grammars=grammars)]
        for ex, grammar, sql in zip(ds, grammars, outputs):
            if not sql:  # cut by the budget before any query was complete
                continue
            assert sql[:6].lower() == "select", sql  # ASCII only: no Unicode case variants of the keyword
            matcher = compile_grammar(tokenizer, grammar)
            assert matcher.consume_tokens(tokenizer(sql, add_special_tokens=False)["input_ids"]), sql
            if not matcher.is_accepting():
                continue
            finished += 1
            schema = from_sqlite(ex["db_path"])
            tables, columns = _identifiers(sql)
            known = {c.lower() for c in schema.column_names()}
            assert tables <= {t.lower() for t in schema.table_names()}, sql
            assert all(c in known or re.fullmatch(r"t\d+|[a-z][0-9]?", c) for c in columns), sql
            result = database_for(ex["db_path"]).run(sql)
            assert not (result.error and re.search("syntax error|unrecognized token|incomplete", result.error)), sql
    assert finished >= 2  # the property was exercised on complete queries, not only on prefixes


def test_batched_and_one_by_one_constrained_greedy_agree(tiny, fixture_dev):
    model, tokenizer = tiny
    ds = fixture_dev.select(range(8))
    grammars = [grammar_for(ex) for ex in ds]
    prompts = list(ds["prompt"])
    batched = generate_sql(
        model, tokenizer, prompts, GenerationSettings(max_new_tokens=24, batch_size=8), grammars=grammars
    )
    single = generate_sql(
        model, tokenizer, prompts, GenerationSettings(max_new_tokens=24, batch_size=1), grammars=grammars
    )
    assert batched == single
    assert all(c[0].startswith("SELECT ") for c in batched)


def test_constrained_beam_search_and_execution_guided_compose(tiny, fixture_dev):
    model, tokenizer = tiny
    ds = fixture_dev.select(range(4))
    beams = generate_sql(
        model,
        tokenizer,
        list(ds["prompt"]),
        GenerationSettings(max_new_tokens=16, batch_size=2, num_candidates=3),
        grammars=[grammar_for(ex) for ex in ds],
    )
    for ex, candidates in zip(ds, beams):
        assert len(candidates) == 3
        for sql in candidates:
            matcher = compile_grammar(tokenizer, grammar_for(ex))
            assert matcher.consume_tokens(tokenizer(sql, add_special_tokens=False)["input_ids"]), sql
    records = predict(
        model,
        tokenizer,
        ds,
        GenerationSettings(max_new_tokens=16, batch_size=4),
        Decoding(constrained=True, execution_guided=True, num_candidates=2),
    )
    assert len(records) == 4 and all("eg_choice" in r for r in records)


def test_evaluate_command_takes_the_flag(tiny, tmp_path):
    from t2s.evaluate_sql import main as evaluate_main

    model_dir = save_tiny_model(tmp_path / "model", seed=3)
    metrics = evaluate_main(
        [
            "--model",
            str(model_dir),
            "--dataset_name",
            str(FIXTURES),
            "--limit",
            "6",
            "--max_new_tokens",
            "12",
            "--constrained_decoding",
            "--output_dir",
            str(tmp_path / "eval"),
        ]
    )
    assert metrics["decoding"].startswith("schema-constrained greedy")
    assert metrics["outcomes"]["rejected"] == 0  # every answer starts as a query


def test_bitmask_application_matches_the_packed_bits():
    """t2s applies llguidance's packed token mask with eager tensor ops: token 32 i + j is allowed iff bit j of word i
    is set, and tokens past the mask are never allowed (checked against numpy's bit unpacking)."""
    import numpy as np
    import torch

    from t2s.decoding.constrained import apply_bitmask_

    generator = torch.Generator().manual_seed(0)
    for vocab, words in ((100, 4), (128, 4), (130, 4), (64, 3)):
        bitmask = torch.randint(-(2**31), 2**31 - 1, (3, words), dtype=torch.int32, generator=generator)
        logits = torch.randn(3, vocab, generator=generator)
        got = apply_bitmask_(logits.clone(), bitmask)
        bits = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little").reshape(3, -1).astype(bool)
        allowed = np.zeros((3, vocab), dtype=bool)
        width = min(vocab, bits.shape[1])
        allowed[:, :width] = bits[:, :width]
        expected = torch.where(torch.from_numpy(allowed), logits, torch.tensor(float("-inf")))
        assert torch.equal(got, expected), vocab


def test_budget_cut_constrained_answers_are_complete_queries(tiny, spider_layout):
    """Whatever a random model writes under its grammar, every constrained answer is a complete query or no SQL:
    one the token budget cut is returned as the longest complete query it contains, never an unfinished one."""
    import torch

    from t2s.decoding.constrained import complete_prefix, finish_cut_answers

    model, tokenizer = tiny
    ds = load_text2sql(str(spider_layout), "dev")
    grammars = [grammar_for(ex) for ex in ds]
    answered = 0
    for seed in range(4):
        torch.manual_seed(seed)
        settings = GenerationSettings(max_new_tokens=24, batch_size=4, temperature=1.5)
        outputs = [c[0] for c in generate_sql(model, tokenizer, list(ds["prompt"]), settings, grammars=grammars)]
        for grammar, sql in zip(grammars, outputs):
            if sql:
                answered += 1
                matcher = compile_grammar(tokenizer, grammar)
                assert matcher.consume_tokens(tokenizer(sql, add_special_tokens=False)["input_ids"]), sql
                assert matcher.is_accepting(), f"an unfinished query was returned: {sql!r}"
    assert answered >= 2
    # The rule on hand-made rows: a cut answer gives the query it had finished, or no SQL when it had finished none;
    # an answer that ended on its own (end of sequence) is left as it is.
    grammar = next(g for ex, g in zip(ds, grammars) if ex["db_id"] == "school")

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    cut = ids("SELECT name FROM student WHERE age >")
    assert complete_prefix(tokenizer, grammar, cut) == "SELECT name FROM student"
    assert complete_prefix(tokenizer, grammar, ids("SELECT name")) is None
    ended = ids("SELECT name FROM student") + [tokenizer.eos_token_id]
    width = max(len(cut), len(ended), len(ids("SELECT name")))
    rows = [r + [tokenizer.eos_token_id] * (width - len(r)) if r is ended else r + [cut[-1]] * (width - len(r))
            for r in (cut, ids("SELECT name"), ended)]  # fmt: skip
    texts = ["SELECT name FROM student WHERE age >", "SELECT name", "SELECT name FROM student"]
    finished = finish_cut_answers(tokenizer, torch.tensor(rows), texts, [grammar] * 3)
    assert finished == ["SELECT name FROM student", "", "SELECT name FROM student"]
