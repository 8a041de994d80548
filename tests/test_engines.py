"""Every engine behind one connection layer: PostgreSQL and MariaDB servers started by the suite (tests/servers.py),
DuckDB in process, SQLite as before. The shop fixture on each: schema read back, gold queries, the metric's verdicts,
the sandbox against attacks (data unchanged, no file written, time within twice the limit), ask, own data through
the training and evaluation commands, constrained decoding in the dialect."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from t2s.execution.engines import EngineError, engine_kind, open_engine, redact

from .conftest import ROOT
from .engines_setup import ENGINES, OWN, SHOP, servers
from .engines_setup import checksum as _checksum
from .engines_setup import names_on as _names

# --------------------------------------------------------------------------- names


def test_database_names_pick_their_engine_and_hide_passwords(monkeypatch):
    assert engine_kind("shop.sqlite") == "sqlite" and engine_kind("x/shop.duckdb") == "duckdb"
    assert engine_kind("postgresql://u@h/db") == "postgresql" == engine_kind("postgresql+psycopg://u@h/db")
    assert engine_kind("mysql+pymysql://u@h/db") == "mysql" == engine_kind("mariadb://u@h/db")
    assert engine_kind("duckdb:///x.duckdb") == "duckdb" and engine_kind("sqlite:///x.sqlite") == "sqlite"
    assert redact("postgresql://ann:s3cret@db:5432/shop") == "postgresql://ann:***@db:5432/shop"
    assert redact("postgresql://ann:${PGPASS}@db/shop") == "postgresql://ann:${PGPASS}@db/shop"
    with pytest.raises(EngineError, match="unknown database URL scheme 'oracle'"):
        engine_kind("oracle://u:pw@h/db")
    with pytest.raises(EngineError, match="psycopg"):
        engine_kind("postgresql+psycopg2://u@h/db")
    monkeypatch.delenv("T2S_NO_SUCH_VAR", raising=False)
    with pytest.raises(EngineError, match="T2S_NO_SUCH_VAR is not set"):
        open_engine("postgresql://u:${T2S_NO_SUCH_VAR}@127.0.0.1:1/db")
    with pytest.raises(EngineError) as failed:
        open_engine("postgresql://ann:s3cret@127.0.0.1:1/shop")  # nothing listens on port 1
    assert "s3cret" not in str(failed.value) and "***" in str(failed.value)


# --------------------------------------------------------------------------- schema, gold, metric


@servers
@pytest.mark.parametrize("kind", ENGINES)
def test_schema_reads_back_equal_and_gold_queries_agree_with_sqlite(kind, shop, request):
    from t2s.data import load_spider
    from t2s.execution.semantics import spider_results_match

    _, reader = _names(shop, kind, request)
    with open_engine(str(SHOP)) as sqlite, open_engine(reader) as engine:
        assert engine.kind == kind

        def shape(tables):
            return {t.name: ([c.name for c in t.columns], t.primary_key, sorted(t.foreign_keys)) for t in tables}

        assert shape(engine.catalogue()) == shape(sqlite.catalogue())
        types = {(t.name, c.name): c.type.upper() for t in engine.catalogue() for c in t.columns}
        price = {"sqlite": "REAL", "mysql": "DOUBLE"}.get(kind, "DOUBLE")  # the copies map REAL to DOUBLE [PRECISION]
        assert types["products", "price"].startswith(price) and "INT" in types["orders", "order_id"]
        for split in ("train", "dev"):
            for ex in load_spider(OWN, split):
                on_sqlite, here = sqlite.run(ex["gold_sql"]), engine.run(ex["gold_sql"])
                assert here.status == "ok", (ex["gold_sql"], here.error)
                order = "order by" in ex["gold_sql"].lower()
                assert spider_results_match(on_sqlite.rows, here.rows, order_matters=order), ex["gold_sql"]


@servers
@pytest.mark.parametrize("kind", ENGINES)
def test_the_metric_scores_every_engine_with_spiders_semantics(kind, shop, request):
    import evaluate

    _, reader = _names(shop, kind, request)
    metric = evaluate.load(str(ROOT / "t2s" / "metrics" / "execution_accuracy"))
    pairs = [  # (prediction, gold, verdict)
        ("SELECT count(*) FROM orders", "SELECT count(*) FROM orders", "correct"),
        ("SELECT count(order_id) FROM orders", "SELECT count(*) FROM orders", "correct"),
        ("SELECT city, name FROM customers", "SELECT name, city FROM customers", "correct"),  # columns permuted
        ("SELECT avg(price) FROM products", "SELECT sum(price) / count(*) FROM products", "correct"),
        ("SELECT DISTINCT city FROM customers", "SELECT city FROM customers", "correct"),  # DISTINCT removed
        ("SELECT name FROM customers WHERE city = 'Lyon'", "SELECT name FROM customers WHERE city = 'Madrid'",
         "wrong_result"),
        ("SELECT nme FROM customers", "SELECT name FROM customers", "exec_error"),
        ("DELETE FROM orders", "SELECT count(*) FROM orders", "rejected"),
        ("", "SELECT count(*) FROM orders", "empty"),
    ]  # fmt: skip
    predictions, references, verdicts = zip(*pairs)
    result = metric.compute(
        predictions=list(predictions),
        references=list(references),
        databases=[reader] * len(pairs),
        return_details=True,
        semantics="spider",
    )
    assert [d["outcome"] for d in result["details"]] == list(verdicts)
    assert result["semantics"] == "spider" and result["execution_accuracy"] == pytest.approx(5 / 9)


# --------------------------------------------------------------------------- the sandbox

COMMON_ATTACKS = [
    "DELETE FROM orders",
    "UPDATE products SET price = 0",
    "DROP TABLE orders",
    "INSERT INTO customers (customer_id, name) VALUES (99, 'x')",
    "CREATE TABLE pwned (x INTEGER)",
    "SELECT 1; DELETE FROM orders",
    "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
    "ALTER TABLE orders ADD COLUMN x INTEGER",
    "BEGIN",
    "COMMIT",
]
ATTACKS = {
    "postgresql": [
        "SELECT * INTO pwned FROM orders",
        "SELECT * FROM orders FOR UPDATE",
        "COPY orders TO '{folder}/pwned.csv'",
        "COPY (SELECT 1) TO PROGRAM 'touch {folder}/pwned'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '{folder}/pwned')",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT pg_cancel_backend(pg_backend_pid())",
        "SELECT * FROM dblink('dbname=shop', 'DELETE FROM orders') AS t(x int)",
        "SELECT set_config('statement_timeout', '0', false)",
        "SET statement_timeout = 0",
        "SELECT query_to_xml('DELETE FROM orders', true, false, '')",
        "SELECT pg_advisory_lock(1)",
        "SELECT rolpassword FROM pg_authid",
        "SELECT * FROM pg_catalog.pg_shadow",
        "SELECT * FROM information_schema.tables",
        "SELECT pg_sleep(30)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "DO $$ BEGIN DELETE FROM orders; END $$",
        "SELECT nextval('orders_order_id_seq')",
        "SELECT repeat('x', 1000000000)",
        "SELECT lpad('x', 1000000000, 'y')",
        "SELECT format('%1000000000s', 'x')",
        "SELECT array_fill(1, ARRAY[1000000000])",
        "SELECT \"pg_read_file\"('/etc/passwd')",
        "SELECT pg_catalog.pg_read_file('/etc/passwd')",
        "SELECT * FROM orders WHERE order_id = (SELECT 1 FROM pg_ls_dir('.') LIMIT 1)",
    ],
    "mysql": [
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT * FROM orders INTO OUTFILE '{folder}/pwned.csv'",
        "SELECT * FROM orders INTO DUMPFILE '{folder}/pwned'",
        "SELECT SLEEP(30)",
        "SELECT BENCHMARK(100000000000, MD5('x'))",
        "SELECT GET_LOCK('t2s', 10)",
        "SELECT @total := 1",
        "SET SESSION max_statement_time = 0",
        "SELECT user, password FROM mysql.user",
        "SELECT * FROM information_schema.processlist",
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE orders",
        "SELECT * FROM orders FOR UPDATE",
        "KILL 1",
        "HANDLER orders OPEN",
        "SELECT SPACE(100000000)",
        "SELECT RPAD('x', 100000000, 'y')",
        "SELECT * FROM orders LOCK IN SHARE MODE",
        "SELECT @@version",
        "SELECT CONVERT(LOAD_FILE('/etc/passwd') USING utf8mb4)",
    ],
    "duckdb": [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_parquet('{folder}/x.parquet')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/passwd'",
        "ATTACH '{folder}/pwned.duckdb' AS pwned",
        "INSTALL httpfs",
        "LOAD httpfs",
        "COPY orders TO '{folder}/pwned.csv'",
        "EXPORT DATABASE '{folder}/pwned'",
        "SET enable_external_access = true",
        "SELECT current_setting('enable_external_access')",
        "PRAGMA database_list",
        "SELECT * FROM query('DELETE FROM orders')",
        "SELECT * FROM duckdb_settings()",
        "CALL pragma_version()",
        "SELECT printf('%1000000000d', 1)",
        "SELECT repeat('x', 1000000000)",
        "SELECT * FROM parquet_scan('{folder}/x.parquet')",
        "SELECT getenv('HOME')",
        "SELECT * FROM sqlite_scan('{folder}/x.sqlite', 't')",
    ],
    "sqlite": [
        "ATTACH DATABASE '{folder}/pwned.sqlite' AS pwned",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('{folder}/x')",
        "VACUUM INTO '{folder}/pwned.sqlite'",
    ],
}
# The bypass class: text that one parser reads as harmless and the server as something else (a query regenerated from
# a tree, comment and quoting tricks, stacked statements), and the functions and keywords that tell who and where a
# query runs. Each is refused or fails; none reads, writes or outlives its query (tests/test_engines.py checks).
BYPASSES = {
    "postgresql": [
        """SELECT EXTRACT("EPOCH FROM NOW()) AS x, pg_read_file(lower('/ETC/PASSWD')) AS leak --" FROM NOW())""",
        "SELECT 1; SELECT pg_read_file('/etc/passwd')",
        "SELECT 1 /* */; SELECT pg_read_file('/etc/passwd')",
        "SELECT U&\"\\0070g_read_file\"('/etc/passwd')",
        """SELECT "PG_READ_FILE"('/etc/passwd')""",
        "SELECT pg_stat_file('/etc/passwd')",
        "SELECT current_user",
        "SELECT session_user",
        "SELECT current_schema",
        "SELECT current_catalog",
        "SELECT version()",
        "SELECT current_database()",
        "SELECT current_setting('data_directory')",
        "SELECT inet_server_addr()",
        "SELECT 'pg_authid'::regclass::oid",
        "SELECT 'x'::pg_catalog.regproc",
        "SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)",
        "TABLE pg_authid",
        "SELECT * FROM ONLY pg_authid",
        "SELECT * FROM orders, LATERAL pg_ls_dir('.') AS f",
        "WITH x AS (SELECT pg_read_file('/etc/passwd')) SELECT * FROM x",
        "VALUES (pg_read_file('/etc/passwd'))",
        "SELECT xmlparse(document '<a/>')",
        "SELECT order_id FROM orders FOR SHARE",
        "SELECT pg_create_logical_replication_slot('t2s', 'test_decoding')",
        "EXPLAIN ANALYZE SELECT 1",
        "SELECT * FROM orders WHERE order_id = $1",
        "SELECT public.pg_read_file('/etc/passwd')",
        "SELECT 1 OPERATOR(public.+) 1",
    ],
    "mysql": [
        "SELECT EXTRACT(`DAY FROM NOW()) AS x, LOAD_FILE('/etc/passwd') AS leak -- ` FROM NOW())",
        "SELECT 'a' /*! , LOAD_FILE('/etc/passwd') */",
        "SELECT 1 #\n, LOAD_FILE('/etc/passwd')",
        "SELECT 1; SELECT LOAD_FILE('/etc/passwd')",
        "SELECT `LOAD_FILE`('/etc/passwd')",
        'SELECT "a\\\\" , LOAD_FILE(\'/etc/passwd\') -- "',
        "SELECT CURRENT_USER()",
        "SELECT USER()",
        "SELECT DATABASE()",
        "SELECT VERSION()",
        "SELECT @@datadir",
        "SELECT CONNECTION_ID()",
        "SELECT LOCATE('a', name) FROM customers",
        "SELECT REPLACE(name, 'a', 'b') FROM customers",
        "SELECT INSTR(name, 'a') FROM customers",
        "SELECT SUBSTRING_INDEX(name, 'a', 1) FROM customers",
        "SELECT * FROM orders INTO @v",
        "SELECT * FROM `mysql`.`user`",
        "VALUES ROW(LOAD_FILE('/etc/passwd'))",
        "SELECT * FROM orders WHERE order_id = ?",
    ],
    "duckdb": [
        "SELECT 1; CREATE TEMP TABLE orders AS SELECT 1 AS order_id",
        "SELECT 1; CREATE OR REPLACE TEMP MACRO lower(x) AS 'pwned'",
        """SELECT EXTRACT("epoch FROM now()); CREATE TEMP TABLE orders AS SELECT 1; --" FROM now())""",
        "SELECT current_setting('threads')",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM pragma_database_list()",
        "SELECT version()",
        "SELECT current_database()",
        "SELECT getvariable('x')",
        "SELECT current_user",
        "SELECT user",
        "SELECT current_catalog",
        "FROM read_text('/etc/passwd')",
        'SELECT * FROM "/etc/passwd"',
        "SUMMARIZE orders",
        "DESCRIBE orders",
        "PIVOT orders ON status USING count(*)",
        "SELECT list_transform(range(3), x -> x)",
        "SELECT * FROM main.duckdb_settings()",
        "SELECT * FROM system.main.duckdb_settings()",
        "SELECT * FROM temp.main.orders",
        "SELECT $x",
        "SELECT ?",
        "SELECT 1 WHERE (SELECT count(*) FROM glob('/etc/*')) > 0",
    ],
}
# Text the engine reads as one harmless query, although a careless reader could see a second statement or a call in
# it: each runs and gives exactly this value.
HARMLESS = {
    "postgresql": [
        ("SELECT 1 /* ; SELECT pg_read_file('/etc/passwd') */", [(1,)]),
        ("SELECT 'a'' , pg_read_file(''/etc/passwd'') --'", [("a' , pg_read_file('/etc/passwd') --",)]),
        ("SELECT $q$; SELECT pg_read_file('/etc/passwd') $q$", [("; SELECT pg_read_file('/etc/passwd') ",)]),
    ],
    "mysql": [
        ('SELECT "a\\" , LOAD_FILE(\'/etc/passwd\') -- "', [("a\" , LOAD_FILE('/etc/passwd') -- ",)]),
        ("SELECT name FROM customers WHERE name REGEXP '^Al' ORDER BY name", [("Alice Martin",)]),  # MariaDB's own
    ],
    "duckdb": [("SELECT 'x; CREATE TEMP TABLE orders AS SELECT 1'", [("x; CREATE TEMP TABLE orders AS SELECT 1",)])],
}
SLOW = {
    "postgresql": "SELECT count(*) FROM generate_series(1, 1000000000)",
    "mysql": "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e, orders f, orders g, orders h, "
    "orders i",
    "duckdb": "SELECT count(*) FROM range(1000000000000)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
}


@servers
@pytest.mark.parametrize("role", ["admin", "reader"])
@pytest.mark.parametrize("kind", ENGINES)
def test_every_attack_is_refused_and_leaves_the_data_and_disk_unchanged(kind, role, shop, request, tmp_path):
    admin, reader = _names(shop, kind, request)  # admin: the worst case, a user who accepted a superuser's URL
    folder = tmp_path / "attacks"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # the servers run as their own users: let them write here, were they to try
    before = _checksum(admin)
    with open_engine(admin if role == "admin" else reader, allow_privileged=role == "admin") as engine:
        for attack in COMMON_ATTACKS + ATTACKS[kind] + BYPASSES.get(kind, []):
            result = engine.run(attack.format(folder=folder), timeout_s=1.0)
            assert result.status in ("rejected", "exec_error"), (attack, result)
            assert "root:" not in repr(result), (attack, result)  # /etc/passwd never read, not even in an error
        started = time.monotonic()
        result = engine.run(SLOW[kind], timeout_s=1.0)
        assert result.status == "timeout" and time.monotonic() - started < 2.0, (kind, result)
        # The session is as it was: the next query runs, under its own limit.
        assert engine.run("SELECT count(*) FROM orders", timeout_s=1.0).rows == [(8,)]
    assert _checksum(admin) == before
    assert list(folder.iterdir()) == []


@servers
@pytest.mark.parametrize(  # files have no accounts: one case each
    ("kind", "role"),
    [("sqlite", "admin"), ("duckdb", "admin"), ("postgresql", "admin"), ("postgresql", "reader"),
     ("mysql", "admin"), ("mysql", "reader")],
)  # fmt: skip
def test_attacks_through_the_metric_the_reward_ask_and_the_page_change_and_read_nothing(
    kind, role, shop, request, tmp_path, tiny_model, monkeypatch
):
    """Every attack as a model's answer, through each way t2s runs one: the `evaluate` metric, the GRPO reward, `t2s
    ask` (interactive, one question per attack) and the page's functions. None scores, is rewarded, reads a file
    or the server's catalogue, writes, or leaves anything on disk; an administrator's URL is accepted only with
    allow_privileged."""
    import builtins

    import evaluate

    from t2s import ask
    from t2s.training.rewards import ExecutionReward
    from t2s.webapp import functions as page

    admin, reader = _names(shop, kind, request)
    url, privileged = (admin, kind in ("postgresql", "mysql")) if role == "admin" else (reader, False)
    folder = tmp_path / "attacks"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    attacks = [a.format(folder=folder) for a in COMMON_ATTACKS + ATTACKS[kind] + BYPASSES.get(kind, [])]
    gold = "SELECT count(*) FROM orders"
    before = _checksum(admin)

    metric = evaluate.load(str(ROOT / "t2s" / "metrics" / "execution_accuracy"))
    scored = metric.compute(predictions=attacks, references=[gold] * len(attacks), databases=[url] * len(attacks),
                            allow_privileged=privileged, return_details=True, timeout=1.0, semantics="spider")  # fmt: skip
    outcomes = {a: d["outcome"] for a, d in zip(attacks, scored["details"])}
    assert all(o in ("rejected", "exec_error") for o in outcomes.values()), outcomes
    reward = ExecutionReward(allow_privileged=privileged, timeout_s=1.0)
    assert reward(completions=attacks, gold_sql=[gold] * len(attacks), db_path=[url] * len(attacks)) == [0.0] * len(
        attacks
    )

    answers = list(attacks)
    monkeypatch.setattr("t2s.decoding.predict.generate_sql", lambda *a, **k: [[answers.pop(0)]])
    questions = iter([f"question {i}" for i in range(len(attacks))])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(questions, ""))
    ask.main(["--model", str(tiny_model), "--db", url, "--timeout", "1"] + (["--allow_privileged"] * privileged))
    assert answers == []  # every attack was asked

    answers.extend(attacks)
    session = page.open_session(path_or_url=url, allow_privileged=privileged)
    from t2s.decoding.models import load_model_and_tokenizer

    page.attach_model(session, *load_model_and_tokenizer(str(tiny_model)))
    try:
        for attack in attacks:
            answer = page.ask(session, "question")
            assert answer.sql == attack and answer.execution.status in ("rejected", "exec_error"), answer
            assert "root:" not in repr(answer.execution)
    finally:
        session.engine.close()
    assert _checksum(admin) == before
    assert list(folder.iterdir()) == []
    if kind in ("postgresql", "mysql"):
        with pytest.raises(EngineError, match="allow_privileged"):
            page.open_session(path_or_url=admin)


@servers
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "duckdb"])
def test_the_engine_runs_exactly_the_text_that_was_checked(kind, shop, request):
    """Read as the engine reads it: a string, a comment or a dollar quote holding a second statement is what it is,
    and the server is sent the text itself (MariaDB's own `REGEXP`, which sqlglot would write as REGEXP_LIKE)."""
    _, reader = _names(shop, kind, request)
    with open_engine(reader) as engine:
        for sql, rows in HARMLESS[kind]:
            result = engine.run(sql)
            assert result.status == "ok" and result.rows == rows, (sql, result)


@servers
def test_mysql_comments_are_refused_since_mysql_runs_some_of_them(shop, request, tmp_path):
    """MySQL runs the text of `/*! … */` comments, and `#` starts one: the server is sent the text as checked, so a
    query with any comment is refused, and what the comment holds never reaches the server."""
    admin, _ = _names(shop, "mysql", request)
    target = tmp_path / "pwned"
    tmp_path.chmod(0o777)
    with open_engine(admin, allow_privileged=True) as engine:
        for sql in [
            "SELECT count(*) /*!, LOAD_FILE('/etc/passwd') */ FROM orders",
            f"SELECT count(*) FROM orders /*!50000 INTO OUTFILE '{target}' */",
            "SELECT count(*) FROM orders # a remark",
            "SELECT count(*) FROM orders -- a remark",
        ]:
            result = engine.run(sql)
            assert result.status == "rejected" and "comments" in result.error, (sql, result)
        result = engine.run("SELECT count(*) FROM orders")
        assert result.status == "ok" and result.rows == [(8,)] and result.columns == ["count(*)"]  # sent as written
    assert not target.exists()


@servers
@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_privileged_account_is_refused_unless_allowed_and_a_read_only_one_is_not(kind, shop, request):
    admin, reader = _names(shop, kind, request)
    with pytest.raises(EngineError) as refused:
        open_engine(admin)
    message = str(refused.value)
    assert "privileged" in message and "allow_privileged" in message
    assert ("superuser" in message) if kind == "postgresql" else ("ALL PRIVILEGES" in message)
    create, *grants = [line.strip() for line in message.splitlines()[1:4]]  # the SQL that makes a reader
    assert create.startswith(("CREATE ROLE", "CREATE USER")) and all("GRANT" in g or "FLUSH" in g for g in grants)
    with (
        pytest.warns(UserWarning, match="PRIVILEGED ACCOUNT ACCEPTED"),
        open_engine(admin, allow_privileged=True) as e,
    ):
        assert "PRIVILEGED ACCOUNT ACCEPTED" in e.write_warning()
    with open_engine(reader) as engine:
        assert engine.write_warning() is None


@servers
@pytest.mark.parametrize("kind", ENGINES)
def test_rows_and_bytes_are_capped(kind, shop, request):
    _, reader = _names(shop, kind, request)
    with open_engine(reader) as engine:
        result = engine.run("SELECT * FROM order_items", max_rows=5)
        assert result.status == "too_large" and "max_rows=5" in result.error
        assert engine.run("SELECT * FROM order_items", max_rows=12).status == "ok"


# --------------------------------------------------------------------------- prompts and grammars


@servers
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "duckdb"])
def test_the_prompt_names_the_dialect_and_quotes_as_it_does(kind, shop, request):
    from t2s.data.prompt import render_schema
    from t2s.data.schema import DatabaseSchema, dialect_quote, from_engine, from_sqlite

    _, reader = _names(shop, kind, request)
    with open_engine(reader) as engine:
        schema = from_engine(engine, "shop")
        text = render_schema(schema)
    display = {"postgresql": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}[kind]
    assert text.startswith(f"-- {display} database: write its SQL dialect.\nCREATE TABLE")
    assert "-- " not in render_schema(from_sqlite(SHOP))  # SQLite prompts are unchanged
    dialect = schema.dialect
    assert dialect_quote("Order Date", dialect) == ("`Order Date`" if kind == "mysql" else '"Order Date"')
    assert dialect_quote("Price", "postgres") == '"Price"' and dialect_quote("Price", "duckdb") == "Price"
    assert isinstance(schema, DatabaseSchema)


@pytest.fixture(scope="session")
def own_data_on(shop, request, tmp_path_factory):
    """The own-data fixture's questions with a `databases.json` that points `shop` at another engine; the password
    comes from the environment, as the docs recommend, so no record or card holds it."""

    def make(kind: str) -> Path:
        import shutil

        _, reader = _names(shop, kind, request)
        folder = tmp_path_factory.mktemp(f"own_{kind}")
        for split in ("train.json", "dev.json"):
            shutil.copy(OWN / split, folder / split)
        if ":reader@" in reader:
            os.environ["T2S_TEST_READER_PASSWORD"] = "reader"
            reader = reader.replace(":reader@", ":${T2S_TEST_READER_PASSWORD}@")
        (folder / "databases.json").write_text(json.dumps({"shop": reader}))
        return folder

    return make


@servers
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "duckdb"])
def test_own_data_on_an_engine_loads_checks_gold_and_prompts_in_its_dialect(kind, own_data_on):
    from t2s.data import load_spider, load_text2sql

    folder = own_data_on(kind)
    ds = load_spider(folder, "dev", check_gold=True)
    assert len(ds) == len(json.loads((OWN / "dev.json").read_text()))
    display = {"postgresql": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}[kind]
    assert all(f"-- {display} database" in p for p in ds["prompt"])
    assert len(load_text2sql(str(folder), "train")) == 36
    if kind != "duckdb":
        assert all("${T2S_TEST_READER_PASSWORD}" in p for p in ds["db_path"])  # never the password itself
    bad = json.loads((OWN / "dev.json").read_text())[:1]
    bad[0]["query"] = "SELECT nope FROM customers"
    (folder / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(Exception, match=r"bad.json\[0\]: the gold query does not run on"):
        load_spider(folder, "bad", check_gold=True)


@servers
def test_own_data_on_postgres_trains_and_evaluates_through_the_commands(own_data_on, tiny_model, tmp_path):
    from t2s.evaluate_sql import main as evaluate_main
    from t2s.sft import cli

    from .test_sft import TINY_RECIPE

    folder = own_data_on("postgresql")
    adapter = tmp_path / "adapter"
    trainer = cli(
        [str(TINY_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(adapter),
         "--dataset_name", str(folder), "--dataset_train_split", "train",
         "--eval_strategy", "no", "--log_samples", "0", "--eval_execution_accuracy_samples", "0",
         "--max_length", "1024", "--max_steps", "2"]
    )  # fmt: skip
    assert trainer.state.global_step == 2 and (adapter / "adapter_model.safetensors").exists()
    out = tmp_path / "eval"
    evaluate_main(
        ["--adapter", str(adapter), "--dataset_name", str(folder), "--split", "dev", "--max_new_tokens", "16",
         "--output_dir", str(out)]
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert metrics["num_examples"] == len(predictions) == len(json.loads((OWN / "dev.json").read_text()))
    assert metrics["gold_errors"] == 0 and sum(metrics["outcomes"].values()) == len(predictions)
    text = (out / "metrics.json").read_text() + (out / "predictions.jsonl").read_text()
    assert "reader@" not in text or "${T2S_TEST_READER_PASSWORD}" in text
    assert ":reader@" not in text


@servers
@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_ask_answers_on_an_engine_and_leaves_it_unchanged(kind, shop, request, tiny_model, monkeypatch, capsys):
    from t2s import ask

    admin, reader = _names(shop, kind, request)
    before = _checksum(admin)
    rigged = iter(["SELECT name, city FROM customers WHERE city = 'Lyon'", "DELETE FROM customers"])
    monkeypatch.setattr("t2s.decoding.predict.generate_sql", lambda *a, **k: [[next(rigged)]])
    args = ["--model", str(tiny_model), "--db", admin, "--allow_privileged", "Who lives in Lyon?"]
    sql, result = ask.main(args)
    assert result.status == "ok" and sorted(result.rows) == [("Alice Martin", "Lyon"), ("Chen Wei", "Lyon")]
    printed = capsys.readouterr().out
    assert "Alice Martin" in printed and "2 row(s)" in printed
    if kind == "postgresql":
        assert "PRIVILEGED" in printed and "superuser" in printed  # an administrator's URL is pointed out, loudly
        with pytest.raises(EngineError, match="allow_privileged"):
            ask.main(["--model", str(tiny_model), "--db", admin, "Who lives in Lyon?"])
    sql, result = ask.main(["--model", str(tiny_model), "--db", reader, "Delete everyone"])
    assert result.status == "rejected"
    assert _checksum(admin) == before


@servers
def test_constrained_decoding_on_a_postgres_schema_never_leaves_the_grammar(own_data_on):
    """Property, as for SQLite (tests/test_constrained.py): a random model sampled hot under the PostgreSQL grammar
    writes only grammatical prefixes; finished queries name only the schema's tables and run without a syntax
    error on the server; gold queries are accepted; SQLite-only spellings are not."""
    import torch

    from t2s.data import load_spider
    from t2s.decoding.constrained import compile_grammar, grammar_for
    from t2s.decoding.generation import generate_sql
    from t2s.decoding.models import load_model_and_tokenizer
    from t2s.decoding.settings import GenerationSettings
    from t2s.execution.engines import database_for

    from .test_constrained import _accepts
    from .tiny_model import save_tiny_model

    folder = own_data_on("postgresql")
    ds = load_spider(folder, "dev")
    grammars = [grammar_for(ex) for ex in ds]
    model, tokenizer = load_model_and_tokenizer(str(save_tiny_model(folder / "tiny", seed=3)))
    for ex, grammar in zip(ds, grammars):
        assert _accepts(tokenizer, grammar, ex["completion"]), ex["completion"]
    for bad in ['SELECT name FROM customers WHERE city = "Lyon"', 'SELECT "Name" FROM customers',
                "SELECT nme FROM customers", "SELECT name FROM clients", "SELECT [name] FROM customers"]:  # fmt: skip
        assert not _accepts(tokenizer, grammars[0], bad), bad
    engine = database_for(ds[0]["db_path"])
    tables = {t.name for t in engine.catalogue()}
    finished = 0
    for seed in range(6):
        torch.manual_seed(seed)
        settings = GenerationSettings(max_new_tokens=48, batch_size=4, temperature=1.5)
        outputs = [c[0] for c in generate_sql(model, tokenizer, list(ds["prompt"]), settings, grammars=grammars)]
        for grammar, sql in zip(grammars, outputs):
            matcher = compile_grammar(tokenizer, grammar)
            assert matcher.consume_tokens(tokenizer(sql, add_special_tokens=False)["input_ids"]), sql
            if not matcher.is_accepting():
                continue
            finished += 1
            import sqlglot
            from sqlglot import exp

            named = {t.name.lower() for t in sqlglot.parse_one(sql, read="postgres").find_all(exp.Table)}
            assert named <= tables, sql
            result = engine.run(sql)
            assert not (result.error and "syntax error" in result.error), (sql, result.error)
    assert finished >= 2


# --------------------------------------------------------------------------- copy and transpile


@servers
@pytest.mark.parametrize("kind", ["duckdb", "postgresql", "mysql"])
def test_copy_db_keeps_dirty_data_and_says_which_keys_it_left_out(kind, tmp_path, request):
    """Spider-like dirt: text in an INT column, a NULL primary key, a dangling foreign key, a REAL in a TEXT
    column. Every value arrives (as SQLite shows it), and the report names what could not be declared."""
    import sqlite3

    from t2s.dbtools import copy_main
    from t2s.execution.semantics import spider_results_match

    source = tmp_path / "dirty.sqlite"
    conn = sqlite3.connect(source)
    conn.executescript(
        """
        CREATE TABLE team (id INTEGER PRIMARY KEY, name TEXT, founded INT);
        CREATE TABLE player (pid INT, team_id INT REFERENCES team(id), label TEXT, PRIMARY KEY (pid));
        INSERT INTO team VALUES (1, 'Lyon', 1950), (2, 'Madrid', 'unknown');
        INSERT INTO player VALUES (10, 1, 'a'), (NULL, 2, 3.0), (11, 99, NULL);  -- SQLite lets an INT key be NULL
        """
    )
    conn.commit()
    conn.close()
    if kind == "duckdb":
        target = str(tmp_path / "dirty.duckdb")
    else:
        server = request.getfixturevalue("postgres" if kind == "postgresql" else "mariadb")
        target = server.admin_url.rsplit("/", 1)[0] + "/dirty"
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(server.admin_url, autocommit=True) as c:
                c.execute("DROP DATABASE IF EXISTS dirty")
                c.execute("CREATE DATABASE dirty")
        else:
            import pymysql

            url = server.admin_url
            c = pymysql.connect(host="127.0.0.1", port=int(url.rsplit(":", 1)[1].split("/")[0]), user="root")
            with c.cursor() as cursor:
                cursor.execute("DROP DATABASE IF EXISTS dirty")
                cursor.execute("CREATE DATABASE dirty CHARACTER SET utf8mb4")
            c.close()
    report = copy_main([str(source), target])
    assert report.tables == 2 and report.rows == 5
    assert report.as_text == ["team.founded"]
    assert any(k.startswith("player PRIMARY KEY") for k in report.dropped_keys)
    assert any(k.startswith("player.team_id → team.id") for k in report.dropped_keys)
    with open_engine(str(source)) as sqlite, open_engine(target, allow_privileged=True) as engine:
        sql = "SELECT * FROM player"
        assert spider_results_match(sqlite.run(sql).rows, engine.run(sql).rows, order_matters=False)
        # The mixed column is text there: its numbers arrive as SQLite writes them as text.
        assert sorted(engine.run("SELECT * FROM team").rows) == [(1, "Lyon", "1950"), (2, "Madrid", "unknown")]
        assert engine.run("SELECT label FROM player WHERE team_id = 2").rows == [("3.0",)]
        assert {t.name: t.primary_key for t in engine.catalogue()}["team"] == ["id"]


def test_transpile_reads_double_quoted_strings_as_sqlite_does(capsys):
    from t2s.dbtools import transpile_main

    sql = 'SELECT name FROM customers WHERE city = "Lyon" AND "name" LIKE \'A%\''
    out = transpile_main(["--to", "postgres", "--db", str(SHOP), sql])
    assert out == ["SELECT name FROM customers WHERE city = 'Lyon' AND \"name\" LIKE 'A%'"]
    assert transpile_main(["--to", "mysql", sql]) == [
        "SELECT name FROM customers WHERE city = `Lyon` AND `name` LIKE 'A%'"
    ]  # without the database, sqlglot alone: "Lyon" stays a name
    from t2s.runtime import UserError

    with pytest.raises(UserError, match="sqlglot cannot transpile"):
        transpile_main(["--to", "duckdb", "SELECT FROM WHERE ((("])


@servers
@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_the_grpo_reward_reads_the_same_database_field_on_any_engine(kind, shop, request):
    from t2s.training.rewards import ExecutionReward

    admin, reader = _names(shop, kind, request)
    before = _checksum(admin)
    gold = "SELECT name FROM customers WHERE city = 'Lyon'"
    completions = [
        "SELECT name FROM customers WHERE city = 'Lyon'",
        "SELECT DISTINCT c.name FROM customers AS c WHERE c.city = 'Lyon'",
        "SELECT name FROM customers WHERE city = 'Madrid'",  # runs, wrong: partial credit
        "SELECT nme FROM customers",
        "DELETE FROM customers",
    ]
    reward = ExecutionReward(partial_credit=0.1)
    scores = reward(completions=completions, gold_sql=[gold] * 5, db_path=[reader] * 5)
    assert scores == [1.0, 1.0, 0.1, 0.0, 0.0]
    assert _checksum(admin) == before


@servers
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "duckdb"])
def test_the_error_analysis_reads_each_engines_messages(kind, shop, request):
    """Names the database lacks, and real columns on the wrong table, are told apart from each engine's own error
    text and catalogue, as on SQLite."""
    from t2s.evaluation.analysis.spider import classify

    _, reader = _names(shop, kind, request)
    gold = "SELECT name FROM customers WHERE city = 'Lyon'"
    with open_engine(reader) as engine:
        for sql, expected in [
            ("SELECT nme FROM customers", "hallucinated_schema"),
            ("SELECT name FROM clients", "hallucinated_schema"),
            ("SELECT o.name FROM orders AS o", "wrong_table_column"),
        ]:
            result = engine.run(sql)
            assert result.status == "exec_error", (sql, result)
            assert classify(sql, result.status, result.error, gold, reader)[0] == expected, (sql, result.error)
