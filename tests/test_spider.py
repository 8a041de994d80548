"""Spider: the loader, the multi-table prompt, the official execution semantics, hardness, analysis, bad input."""

import json
import sqlite3
from collections import Counter, defaultdict
from itertools import permutations
from pathlib import Path

import datasets
import pytest
import sqlparse

from t2s.data import (
    SpiderFormatError,
    dataset_kind,
    from_sqlite,
    from_tables_json,
    hardness,
    load_spider,
    load_text2sql,
)
from t2s.evaluation.analysis.spider import classify
from t2s.execution.engines import open_engine
from t2s.execution.sandbox import open_database
from t2s.execution.scoring import ScoringOptions, score_all, score_example, score_records, summarise
from t2s.execution.sql_text import normalize_whitespace

from .conftest import ROOT
from .spider_fixture import DEV, build_spider_layout


@pytest.fixture(scope="session")
def spider_dev(shared_spider):
    return load_spider(shared_spider, "dev")


@pytest.fixture
def layout(tmp_path):
    return build_spider_layout(tmp_path / "spider", test_split=True)


# --------------------------------------------------------------------------- the official rules, restated


def official_hardness(sql: dict) -> str:
    """taoyds/spider evaluation.py's eval_hardness over the `sql` annotation, restated from its published text."""
    where_ops = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")

    def count_agg(units):
        return len([u for u in units if u[0] != 0])

    nested = [
        v
        for cu in sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
        for v in (cu[3], cu[4])
        if isinstance(v, dict)
    ] + [sql[k] for k in ("intersect", "except", "union") if sql[k] is not None]
    comp1 = (len(sql["where"]) > 0) + (len(sql["groupBy"]) > 0) + (len(sql["orderBy"]) > 0)
    comp1 += sql["limit"] is not None
    comp1 += max(len(sql["from"]["table_units"]) - 1, 0)
    connectors = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    comp1 += connectors.count("or")
    units = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    comp1 += len([u for u in units if u[1] == where_ops.index("like")])
    aggs = count_agg(sql["select"][1]) + count_agg(sql["where"][::2]) + count_agg(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        aggs += count_agg([u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]])
    aggs += count_agg(sql["having"])
    others = (aggs > 1) + (len(sql["select"][1]) > 1) + (len(sql["where"]) > 1) + (len(sql["groupBy"]) > 1)
    comp2 = len(nested)
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"


def official_exec_match(db_path: str, pred: str, gold: str) -> bool:
    """test-suite-sql-eval's eval_exec_match (one database, no value plugging), restated for the test."""

    def post(q):
        return q.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")

    def no_distinct(q):
        return "".join(t.value for t in sqlparse.parse(q)[0].flatten() if t.value.lower() != "distinct")

    def run(q):
        conn = sqlite3.connect(db_path)
        conn.text_factory = lambda b: b.decode(errors="ignore")
        try:
            return conn.execute(q).fetchall()
        except Exception:
            return None
        finally:
            conn.close()

    if not pred.strip():
        return False  # the official code raises on an empty prediction (sqlparse returns no statement)
    pred, gold = no_distinct(post(pred)), no_distinct(post(gold))
    order_matters = "order by" in gold.lower()
    g, p = run(gold), run(pred)
    assert g is not None
    if p is None:
        return False
    if not g and not p:
        return True
    if len(g) != len(p) or len(g[0]) != len(p[0]):
        return False
    for perm in permutations(range(len(g[0]))):
        permuted = [tuple(row[i] for i in perm) for row in p]
        if order_matters and g == permuted:
            return True
        if not order_matters and set(g) == set(permuted) and Counter(g) == Counter(permuted):
            return True
    return False


# --------------------------------------------------------------------------- real data


def test_gold_vs_gold_on_all_of_spider_dev(spider_dev, shared_spider):
    assert len(spider_dev) == 1034
    details = score_records(list(spider_dev["gold_sql"]), spider_dev)
    assert summarise(details)["outcomes"]["correct"] == 1034
    # The training targets (whitespace normalised) are the same queries.
    assert summarise(score_records(list(spider_dev["completion"]), spider_dev))["outcomes"]["correct"] == 1034
    # And the gold results have the row counts the data's own execution record lists.
    recorded = [json.loads(line) for line in (shared_spider / "dev_gold_exec.jsonl").read_text().splitlines()]
    conns = {}
    for ex, rec in zip(spider_dev, recorded):
        conn = conns.setdefault(ex["db_path"], open_database(ex["db_path"]))
        assert len(conn.execute(ex["gold_sql"]).fetchall()) == rec["n_rows"], ex["example_id"]


def test_hardness_from_text_agrees_with_the_official_rule_on_every_dev_question(spider_dev, shared_spider):
    raw = json.loads((shared_spider / "dev.json").read_text())
    official = [official_hardness(q["sql"]) for q in raw]
    assert Counter(official) == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}
    assert list(spider_dev["hardness"]) == official
    assert [hardness(q["query"]) for q in raw] == official


def test_every_prompt_holds_every_table_of_its_database_with_its_keys(spider_dev, shared_spider):
    schemas = {e["db_id"]: e for e in json.loads((shared_spider / "tables.json").read_text())}
    for ex in spider_dev.select(range(0, 1034, 7)):
        entry = schemas[ex["db_id"]]
        schema = from_tables_json(entry)
        prompt = ex["prompt"]
        for table in schema.tables:
            assert f"CREATE TABLE {_q(table.name)} (" in prompt
            if table.primary_key:
                assert f"PRIMARY KEY ({', '.join(_q(c) for c in table.primary_key)})" in prompt
            for fk in table.foreign_keys:
                assert f"FOREIGN KEY ({_q(fk.column)}) REFERENCES {_q(fk.ref_table)}({_q(fk.ref_column)})" in prompt
        assert prompt.count("CREATE TABLE") == len(entry["table_names_original"])
        assert prompt.endswith(f"### Question:\n{ex['question']}\n\n### SQL:\n")


def _q(name):
    from t2s.execution.sql_text import quote_identifier

    return quote_identifier(name, always=False)


def test_wta_1_caveats_are_carried_for_reporting_apart(spider_dev):
    caveats = Counter(c for c in spider_dev["caveat"] if c)
    assert sum(caveats.values()) == 16
    rankings = [ex["example_id"] for ex in spider_dev if "rankings" in ex["caveat"]]
    assert rankings == [f"dev[{i}]" for i in (459, 460, 469, 470, 471, 472, 479, 480)]


# --------------------------------------------------------------------------- the metric's semantics

CASES = [
    # (prediction, gold) on the fixture's school database
    ("SELECT age, name FROM student", "SELECT name, age FROM student"),  # column order
    ("SELECT name FROM student ORDER BY name", "SELECT name FROM student"),  # row order, gold unordered
    ("SELECT name FROM student ORDER BY age", "SELECT name FROM student ORDER BY age DESC"),  # order matters
    ("SELECT name FROM student ORDER BY age DESC", "SELECT name FROM student ORDER BY age DESC"),
    ("SELECT DISTINCT age FROM student", "SELECT age FROM student"),  # DISTINCT removed from both
    ("SELECT age FROM student", "SELECT DISTINCT age FROM student"),
    ("SELECT city FROM student WHERE city IS NOT NULL", "SELECT city FROM student WHERE city = 'Paris'"),
    ("SELECT name FROM student WHERE name = 'Bob'", "SELECT name FROM student WHERE name = 'bob'"),  # case
    ("SELECT upper(name) FROM student", "SELECT name FROM student"),
    ("SELECT credits FROM course WHERE cid = 12", "SELECT 3.0"),  # 3 vs 3.0
    ("SELECT 3", "SELECT credits FROM course WHERE cid = 10"),
    ("SELECT name FROM student WHERE age > 99", "SELECT name FROM student WHERE age > 100"),  # both empty
    ("SELECT name FROM student WHERE age > 99", "SELECT name FROM student"),
    ('SELECT name FROM student WHERE city = "Paris"', "SELECT name FROM student WHERE city = 'Paris'"),  # "str"
    ('SELECT "name" FROM student', "SELECT name FROM student"),
    ("SELECT count(*) FROM student GROUP BY city", "SELECT count(*) FROM student GROUP BY age"),
    (
        'SELECT T1.name FROM student AS T1 JOIN "enrolled in" AS T2 ON T1.stuid = T2.stuid',
        'SELECT name FROM student WHERE stuid IN (SELECT stuid FROM "enrolled in")',
    ),  # join duplicates vs IN
    (
        'SELECT DISTINCT T1.name FROM student AS T1 JOIN "enrolled in" AS T2 ON T1.stuid = T2.stuid',
        'SELECT name FROM student WHERE stuid IN (SELECT stuid FROM "enrolled in")',
    ),
    ("SELECT name, name FROM student", "SELECT name, name FROM student"),
    ("SELECT age > = 22 FROM student", "SELECT age >= 22 FROM student"),  # "> =" closed up
    ("SELECT nope FROM student", "SELECT name FROM student"),  # error
    ("", "SELECT name FROM student"),
]


@pytest.mark.parametrize("prediction, gold", CASES)
def test_metric_verdicts_equal_the_official_exec_match(layout, prediction, gold):
    db = str(layout / "database" / "school" / "school.sqlite")
    expected = official_exec_match(db, prediction, gold)
    got = score_all([prediction], [gold], db_paths=[db], semantics="spider")[0].outcome == "correct"
    assert got == expected


def test_the_cases_cover_both_verdicts(layout):
    db = str(layout / "database" / "school" / "school.sqlite")
    verdicts = Counter(official_exec_match(db, p, g) for p, g in CASES)
    assert verdicts[True] >= 8 and verdicts[False] >= 8


def test_spider_semantics_keep_distinct_and_the_evaluate_module(layout):
    import evaluate

    db = str(layout / "database" / "school" / "school.sqlite")
    engine = open_engine(db)
    pred, gold = "SELECT DISTINCT age FROM student", "SELECT age FROM student"
    assert score_example(engine, pred, gold, ScoringOptions("spider")).outcome == "correct"
    assert score_example(engine, pred, gold, ScoringOptions("spider", keep_distinct=True)).outcome == "wrong_result"
    metric = evaluate.load(str(ROOT / "t2s" / "metrics" / "execution_accuracy"))
    result = metric.compute(predictions=[pred, pred], references=[gold, gold], db_paths=[db, db], semantics="spider")
    assert result["execution_accuracy"] == 1.0 and result["semantics"] == "spider"


def test_sandbox_is_the_same_for_sqlite_files(layout):
    db = layout / "database" / "school" / "school.sqlite"
    before = db.read_bytes()
    for attack in ("DROP TABLE student", "DELETE FROM student", "ATTACH 'x.db' AS x", "PRAGMA writable_schema=1"):
        outcome = score_all([attack], ["SELECT 1"], db_paths=[str(db)], semantics="spider")[0].outcome
        assert outcome == "rejected", attack
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    assert (
        score_all([slow], ["SELECT 1"], db_paths=[str(db)], timeout_s=0.2, semantics="spider")[0].outcome == "timeout"
    )
    assert db.read_bytes() == before


# --------------------------------------------------------------------------- loader


def test_fixture_layout_records(layout):
    ds = load_text2sql(str(layout), "dev")
    assert dataset_kind(str(layout)) == "spider"
    assert len(ds) == len(DEV)
    assert ds["example_id"][:2] == ["dev[0]", "dev[1]"]
    assert ds["completion"][2] == normalize_whitespace(DEV[2][2])
    assert "  " not in "".join(ds["completion"])
    assert all(Path(p).exists() for p in ds["db_path"])
    assert ds.info.description == "Spider dev (" + layout.name + "), 8 of 8 questions"  # a folder by its name
    sub = load_spider(layout, "dev", limit=3, seed=1)
    assert len(sub) == 3 and "seed 1" in sub.info.description
    assert list(sub["example_id"]) == sorted(sub["example_id"], key=lambda e: int(e[4:-1]))
    test = load_spider(layout, "test")
    assert test["example_id"] == ["test[0]", "test[1]", "test[2]"]
    assert all("test_database" in p for p in test["db_path"])


def test_schema_from_sqlite_matches_tables_json(layout):
    described = from_sqlite(layout / "database" / "shop" / "shop.sqlite")
    assert described.table_names() == ["product", "order"]
    assert [c.type for c in described.tables[0].columns] == ["number", "text", "number"]
    assert described.tables[1].foreign_keys[0].ref_table == "product"
    assert described.tables[0].primary_key == ["id"]


def test_hub_layout_gives_the_same_records(layout, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "xlangai" / "spider" / "spider"
    repo.mkdir(parents=True)
    rows = [
        {"db_id": d, "query": s, "question": q, "query_toks": [], "query_toks_no_value": [], "question_toks": []}
        for d, q, s in DEV
    ]
    datasets.Dataset.from_list(rows).to_parquet(str(repo / "validation-00000-of-00001.parquet"))
    monkeypatch.chdir(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = load_text2sql("xlangai/spider", "dev", db_dir=str(layout))
    local = load_text2sql(str(layout), "dev")
    for column in ("example_id", "prompt", "completion", "gold_sql", "db_path", "hardness"):
        assert hub[column] == local[column], column
    with pytest.raises(FileNotFoundError, match="db_dir"):
        load_text2sql("xlangai/spider", "dev", db_dir=str(tmp_path / "nowhere"))


def _write(layout, name, content):
    (layout / name).write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: _write(r, "dev.json", "[{"), r"dev\.json: malformed JSON"),
        (
            lambda r: _write(r, "dev.json", [{"db_id": "zoo", "question": "q?", "query": "SELECT 1"}]),
            r"dev\.json\[0\]: db_id 'zoo' has no entry in .*tables\.json",
        ),
        (lambda r: _write(r, "dev.json", [{"db_id": "shop", "question": "q?"}]), r"dev\.json\[0\]: .*'query'"),
        (
            lambda r: (r / "database" / "shop" / "shop.sqlite").write_bytes(b"not a database at all, really"),
            r"dev\.json\[5\]: not an SQLite database at .*shop\.sqlite",
        ),
        (
            lambda r: (r / "database" / "shop" / "shop.sqlite").unlink(),
            r"dev\.json\[5\]: no database file at .*shop\.sqlite .*require_database=False",
        ),
    ],
)
def test_bad_input_names_file_example_and_fix(layout, setup, message):
    setup(layout)
    with pytest.raises(SpiderFormatError, match=message):
        load_spider(layout, "dev")


def test_on_error_skip_counts_and_require_database(layout, capsys):
    (layout / "database" / "shop" / "shop.sqlite").unlink()
    ds = load_spider(layout, "dev", on_error="skip")
    assert set(ds["db_id"]) == {"school"}
    assert "skipped 3 of 8 examples (3 no database file)" in capsys.readouterr().err
    kept = load_spider(layout, "dev", require_database=False)
    assert len(kept) == 8
    shop = [ex for ex in kept if ex["db_id"] == "shop"]
    assert all(ex["db_path"] == "" and ex["caveat"] for ex in shop)
    assert "CREATE TABLE product" in shop[0]["prompt"]  # described from tables.json


def test_options_of_the_other_dataset_are_refused(layout):
    with pytest.raises(ValueError, match="table_split does not apply to spider"):
        load_text2sql(str(layout), "dev", table_split="heldout")
    with pytest.raises(ValueError, match="db_dir does not apply to wikisql"):
        load_text2sql("local", "dev", db_dir=str(layout))


def test_rows_schema_format_shows_rows_of_every_table(layout):
    ds = load_spider(layout, "dev", schema_format="rows", num_sample_rows=2)
    prompt = ds[0]["prompt"]
    assert prompt.count("/* 2 example rows:") == 3
    assert "1 | Ann | 20 | Paris" in prompt


# --------------------------------------------------------------------------- analysis


def test_analysis_classes(layout):
    db = str(layout / "database" / "school" / "school.sqlite")
    gold = "SELECT name FROM student WHERE age > 20 ORDER BY age"

    def classes(pred, outcome="wrong_result", error=None):
        return classify(pred, outcome, error, gold, db)

    assert classes("", "empty") == ["no_sql"]
    assert classes("SELECT name FROM student WHERE age > 20 AND", "exec_error", "incomplete input") == ["truncated"]
    assert classes("SELECT name FROM student WHERE city = 'Par", "exec_error", 'unrecognized token: "\'Par"') == [
        "truncated"
    ]
    assert classes("SELECT name, ci", "exec_error", "no such column: ci") == ["truncated"]  # cut inside `city`
    assert classes("CREATE TABLE x (a)", "rejected") == ["rejected"]  # the metric's name for it
    assert classes("SELECT name FROM student WHERE WHERE age > 1", "exec_error", 'near "WHERE": syntax error') == [
        "syntax_error"
    ]
    assert classes("SELECT name FROM student WHERE name = 'O'Neal'", "exec_error", "syntax") == ["string_escaping"]
    assert (
        classes("SELECT nmae FROM student WHERE age > 20 ORDER BY age", "exec_error", "no such column: nmae")[0]
        == "hallucinated_schema"
    )
    assert classes("SELECT name FROM student WHERE title = 1", "exec_error", "no such column: title")[0] == (
        "wrong_table_column"  # title is a column of course, not of student
    )
    assert classes("SELECT name FROM student WHERE age > 21 ORDER BY age") == ["where"]
    assert classes('SELECT name FROM student WHERE city = "Rome" ORDER BY age') == ["where"]  # a value, not a name
    assert classes("SELECT name FROM student WHERE age > 20") == ["order_by_limit"]
    assert classes("SELECT count(name) FROM student WHERE age > 20 ORDER BY age") == ["select"]
    assert "tables_joins" in classes(
        "SELECT T1.name FROM student AS T1 JOIN course AS T2 WHERE T1.age > 20 ORDER BY T1.age"
    )
    assert classes("SELECT name FROM student WHERE age > 20 ORDER BY age", "correct") == []


def test_normalize_whitespace_keeps_literals():
    assert normalize_whitespace("SELECT a ,\t b FROM t WHERE x  =  'two  spaces' ;") == (
        "SELECT a , b FROM t WHERE x = 'two  spaces'"
    )


def test_dataset_kind_detection(layout, tmp_path):
    assert dataset_kind("spider") == "spider"
    assert dataset_kind("local") == "wikisql"
    assert dataset_kind("xlangai/spider") == "spider"
    assert dataset_kind("Salesforce/wikisql") == "wikisql"
    assert dataset_kind("someone/data", "spider") == "spider"
    assert dataset_kind(str(layout)) == "spider"
    assert dataset_kind(str(ROOT / "tests" / "fixtures" / "wikisql")) == "wikisql"


def test_train_questions_by_database_are_not_in_dev(layout):
    train = load_spider(layout, "train")
    by_db = defaultdict(list)
    for ex in train:
        by_db[ex["db_id"]].append(ex["question"])
    assert set(by_db) == {"school", "shop"}


# --------------------------------------------------------------------------- the commands, end to end


def test_train_and_evaluate_on_a_spider_layout(layout, tmp_path):
    """t2s/sft.py and t2s/evaluate_sql.py take Spider through the same code paths as WikiSQL."""
    from t2s.evaluate_sql import main as evaluate_main
    from t2s.sft import cli

    from .test_sft import TINY_RECIPE
    from .tiny_model import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    out = tmp_path / "adapter"
    trainer = cli(
        [
            str(TINY_RECIPE),
            "--model_name_or_path",
            str(model),
            "--output_dir",
            str(out),
            "--dataset_name",
            str(layout),
            "--dataset_train_split",
            "train",
            "--max_steps",
            "2",
            "--eval_limit",
            "4",
        ]
    )
    assert trainer.state.global_step == 2 and (out / "adapter_model.safetensors").exists()
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["train_protocol"].startswith("Spider train") and run["eval_protocol"].startswith("Spider dev")
    samples = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    assert "execution_accuracy" in samples[-1]  # scored on the SQLite files during training

    metrics = evaluate_main(
        [
            "--adapter",
            str(out),
            "--dataset_name",
            str(layout),
            "--max_new_tokens",
            "8",
            "--output_dir",
            str(tmp_path / "eval"),
        ]
    )
    assert metrics["num_scored"] == len(DEV) and metrics["semantics"] == "spider"
    assert sum(e["n"] for e in metrics["by_hardness"].values()) == len(DEV)
    assert "official Spider execution match" in metrics["headline"]
    analysis = (tmp_path / "eval" / "analysis.md").read_text()
    assert "Execution accuracy by hardness" in analysis and "| easy |" in analysis
    records = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {r["db_id"] for r in records} == {"school", "shop"} and all("hardness" in r for r in records)
    # Data from a folder stays out of the model card unless asked; when asked, the card names the folder, not its path.
    assert json.loads((out / "t2s_run.json").read_text())["scores"] == {}
    assert (
        metrics["protocol"].startswith(f"Spider dev ({layout.name}), ")
        and str(layout.parent) not in metrics["protocol"]
    )
    evaluate_main(
        ["--adapter", str(out), "--dataset_name", str(layout), "--max_new_tokens", "8", "--record_in_card", "always"]
        + ["--output_dir", str(tmp_path / "eval2")]
    )
    scores = json.loads((out / "t2s_run.json").read_text())["scores"]
    card = (out / "README.md").read_text()
    assert len(scores) == 1 and layout.name in card and str(tmp_path) not in card


def test_train_others_is_read_when_present_and_asked_for(layout):
    others = [
        {"db_id": "shop", "question": "Cheapest product?", "query": "SELECT name FROM product ORDER BY price LIMIT 1"}
    ]
    with pytest.raises(FileNotFoundError, match="include_others=False"):
        load_spider(layout, "train", include_others=True)
    (layout / "train_others.json").write_text(json.dumps(others))
    train = load_spider(layout, "train", include_others=True)
    assert len(train) == 5 and train["example_id"][-1] == "train_others[0]"
    assert len(load_spider(layout, "train")) == 4
