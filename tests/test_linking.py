"""Schema and value linking: the gold tables and values of hand-made questions are found, pruning keeps foreign-key
paths between kept tables, and the same function gives the same schema wherever it is called."""

from __future__ import annotations

import pytest

from t2s.data.linking import connect, link, prune_schema, value_index, words
from t2s.data.schema import Column, DatabaseSchema, ForeignKey, TableSchema


def _shop() -> DatabaseSchema:
    return DatabaseSchema(
        "shop",
        [
            TableSchema("customers", [Column("customer_id", "number"), Column("name"), Column("country")],
                        ["customer_id"]),
            TableSchema("orders", [Column("order_id", "number"), Column("customer_id", "number"), Column("status")],
                        ["order_id"], [ForeignKey("customer_id", "customers", "customer_id")]),
            TableSchema("order_items", [Column("order_id", "number"), Column("product_id", "number")], [],
                        [ForeignKey("order_id", "orders", "order_id"), ForeignKey("product_id", "products", "id")]),
            TableSchema("products", [Column("id", "number"), Column("title"), Column("price", "number")], ["id"]),
            TableSchema("suppliers", [Column("id", "number"), Column("company")], ["id"]),
            TableSchema("warehouses", [Column("id", "number"), Column("city")], ["id"]),
        ],
    )  # fmt: skip


VALUES = value_index(
    {
        ("customers", "country"): ["FR", "France", "Spain", "Czech Republic"],
        ("orders", "status"): ["shipped", "pending", "cancelled"],
        ("products", "title"): ["Desk lamp", "Notebook"],
        ("warehouses", "city"): ["Lyon"],
    }
)


def test_words_split_names_as_people_write_them():
    assert words("singer_in_concert") == ["singer", "in", "concert"]
    assert words("AirportCode") == ["airport", "code"]


def test_the_tables_and_stored_values_a_question_names_are_found():
    found = link(_shop(), "How many orders from customers in the Czech Republic were shipped?", VALUES)
    assert found.ranked_tables()[:2] == ["orders", "customers"] or found.ranked_tables()[:2] == ["customers", "orders"]
    assert found.values == {("customers", "country"): ["Czech Republic"], ("orders", "status"): ["shipped"]}
    lamp = link(_shop(), "What is the price of the desk lamp?", VALUES)
    assert lamp.ranked_tables()[0] == "products" and lamp.values == {("products", "title"): ["Desk lamp"]}
    assert link(_shop(), "How many are there?", VALUES).values == {}  # stopwords and nothing stored


def test_pruning_keeps_every_foreign_key_path_between_kept_tables():
    schema = _shop()
    assert connect(schema, ["customers", "products"]) == {"customers", "orders", "order_items", "products"}
    found = link(schema, "Which customers bought the desk lamp?", VALUES)
    pruned = prune_schema(schema, found, max_tables=2)
    kept = pruned.table_names()
    assert {"customers", "products"} <= set(kept) and {"orders", "order_items"} <= set(kept)  # the path between them
    assert "suppliers" not in kept and "warehouses" not in kept
    assert kept == [t for t in schema.table_names() if t in kept]  # schema order
    for table in pruned.tables:  # no key points outside the pruned schema
        assert all(fk.ref_table in kept for fk in table.foreign_keys)
    assert prune_schema(schema, found, max_tables=2) == pruned  # deterministic: training and inference agree
    assert prune_schema(schema, found, max_tables=0) is schema


def test_linked_prompts_show_the_values_and_keep_the_join_path(tmp_path):
    from t2s.data import load_spider, load_text2sql
    from t2s.data.common import DataFormatError

    from .conftest import FIXTURES
    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")
    plain = {ex["question"]: ex["prompt"] for ex in load_spider(layout, "dev")}
    linked = {ex["question"]: ex["prompt"] for ex in load_spider(layout, "dev", link_values=True, prune_tables=1)}
    paris = linked["Names of students from Paris."]
    assert "-- values the question mentions: student.city = 'Paris'" in paris
    assert "CREATE TABLE student" in paris and "CREATE TABLE course" not in paris  # pruned to the one table
    two = {ex["question"]: ex["prompt"] for ex in load_spider(layout, "dev", link_values=True, prune_tables=2)}
    ann = two["Titles of courses Ann takes."]
    # course and student are linked; the table between them stays, so the three-way join can still be written
    assert all(f"CREATE TABLE {t}" in ann for t in ("student", "course", '"enrolled in"'))
    assert "student.name = 'Ann'" in ann
    assert "-- values" not in plain["Names of students from Paris."]  # off by default: prompts unchanged
    again = {ex["question"]: ex["prompt"] for ex in load_spider(layout, "dev", link_values=True, prune_tables=1)}
    assert again == linked  # one builder, the same prompt whenever it is built (training and evaluation)
    with pytest.raises(DataFormatError, match="link_values does not apply to wikisql"):
        load_text2sql(str(FIXTURES), "dev", link_values=True)
    with pytest.raises(ValueError, match="prune_tables=-1"):
        load_spider(layout, "dev", prune_tables=-1)


def test_the_evaluate_command_takes_linking_and_records_it(tmp_path, tiny_model):
    import json

    from t2s.evaluate_sql import main as evaluate_main

    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")
    out = tmp_path / "eval"
    evaluate_main(
        ["--model", str(tiny_model), "--dataset_name", str(layout), "--split", "dev", "--max_new_tokens", "8",
         "--link_values", "true", "--prune_tables", "2", "--output_dir", str(out)]
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["link_values"] is True and metrics["prune_tables"] == 2
    prompts = [json.loads(line)["prompt"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert any("-- values the question mentions:" in p for p in prompts)


def test_a_character_budget_drops_the_least_referred_tables_first(tmp_path):
    """`schema_max_chars` bounds the schema slot whatever the database's size: the tables the question refers to
    least go first, the top one always stays, and a schema that fits is left as it is."""
    from t2s.data import load_spider
    from t2s.data.prompt import QUESTION_MARKER

    from .spider_fixture import build_spider_layout

    layout = build_spider_layout(tmp_path / "spider")

    def schemas(**options):
        return {
            ex["question"]: ex["prompt"].split("### Database Schema:\n", 1)[1].split(QUESTION_MARKER, 1)[0].strip()
            for ex in load_spider(layout, "dev", link_values=True, **options)
        }

    full = schemas()
    question = "Titles of courses Ann takes."
    assert all(f"CREATE TABLE {t}" in full[question] for t in ("student", "course", '"enrolled in"'))
    budget = len(full[question]) - 1
    cut = schemas(schema_max_chars=budget)
    assert all(len(text) <= budget or text.count("CREATE TABLE") == 1 for text in cut.values())
    assert cut[question].count("CREATE TABLE") < full[question].count("CREATE TABLE")
    assert "CREATE TABLE student" in cut[question] or "CREATE TABLE course" in cut[question]  # the linked ones stay
    roomy = schemas(schema_max_chars=10_000)
    assert roomy == full
    tiny = schemas(schema_max_chars=10)
    assert all(text.count("CREATE TABLE") == 1 for text in tiny.values())  # never an empty schema
    with pytest.raises(ValueError, match="schema_max_chars=-1"):
        load_spider(layout, "dev", schema_max_chars=-1)


def test_evaluating_an_adapter_with_other_prompts_than_it_learned_is_flagged(tmp_path):
    import json

    from t2s.evaluation.runner import EvaluateArguments, prompt_differences

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "t2s_run.json").write_text(
        json.dumps({"schema_format": "types", "link_values": True, "prune_tables": 3})
    )
    same = EvaluateArguments(adapter=str(adapter), dataset_name="spider", link_values=True, prune_tables=3)
    assert prompt_differences(same) == []
    learned = EvaluateArguments(adapter=str(adapter), dataset_name="spider")  # nothing given: what it learned
    assert prompt_differences(learned) == [] and (learned.link_values, learned.prune_tables) == (True, 3)
    other = EvaluateArguments(adapter=str(adapter), dataset_name="spider", link_values=False, prune_tables=0)
    assert prompt_differences(other) == [
        "link_values: trained True, evaluated False",
        "prune_tables: trained 3, evaluated 0",
    ]


_DIAMOND = """
from t2s.data.linking import connect
from t2s.data.schema import Column, DatabaseSchema, ForeignKey, TableSchema

def table(name, *parents):
    return TableSchema(name, [Column("id"), *(Column(p + "_id") for p in parents)], ["id"],
                       [ForeignKey(p + "_id", p, "id") for p in parents])

# two equally short paths from a to d: through b and through c (and more tables to vary the hash order)
tables = [table("a"), table("b", "a"), table("c", "a"), *(table(f"x{i}", "a") for i in range(8)), table("d", "b", "c")]
print(sorted(connect(DatabaseSchema("diamond", tables), ["d", "a"])))
"""


def test_pruning_breaks_ties_between_equal_paths_the_same_way_in_every_process():
    """Which of two equally short foreign-key paths a pruned prompt keeps used to follow a set's order, which changes
    with Python's hash seed: 210 of Spider train's 7,000 prompts under the shipped recipe's settings differed between
    two processes. The first path in schema order is kept, whatever the seed."""
    import os
    import subprocess
    import sys

    seen = set()
    for seed in range(6):
        done = subprocess.run(
            [sys.executable, "-c", _DIAMOND], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        )  # fmt: skip
        seen.add(done.stdout.strip())
    assert seen == {"['a', 'b', 'd']"}
