"""The web page: its functions without a browser, then the page itself in headless Chromium (Debian's, driven by
Playwright: no browser download), asking the shop database a question and opening an evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from t2s.runtime import UserError

from .conftest import ROOT

OWN = ROOT / "tests" / "fixtures" / "own_data"
SHOP = OWN / "database" / "shop" / "shop.sqlite"
CHROMIUM = Path("/usr/bin/chromium")
LYON = "SELECT name, city FROM customers WHERE city = 'Lyon'"
BY_CITY = "SELECT city, count(*) FROM customers GROUP BY city"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from t2s.decoding.models import load_model_and_tokenizer

    from .tiny_model import save_tiny_model

    return load_model_and_tokenizer(str(save_tiny_model(tmp_path_factory.mktemp("webapp") / "model", seed=2)))


class Answers(list):
    """The rigged model's answers, in order; `constrained` says, for each answer given, whether it was asked under a
    grammar (the decoding chosen on the page)."""

    constrained: list[bool]


@pytest.fixture()
def rigged(monkeypatch):
    """The model's answers, in order (the page's code path is the real one; only the generated text is fixed)."""
    answers = Answers()
    answers.constrained = []

    def generate(*args, **kwargs):
        answers.constrained.append(kwargs.get("grammars") is not None)
        return [[answers.pop(0)]]

    monkeypatch.setattr("t2s.decoding.predict.generate_sql", generate)
    return answers


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """Two real evaluation folders of the shop's dev questions (tiny model; the second with a rigged model that
    writes each gold query, so the comparison has fixed answers)."""
    from t2s.evaluate_sql import main as evaluate_main

    from .tiny_model import save_tiny_model

    folder = tmp_path_factory.mktemp("evaluations")
    model = save_tiny_model(folder / "model", seed=4)
    base = ["--model", str(model), "--dataset_name", str(OWN), "--split", "dev", "--max_new_tokens", "12"]
    evaluate_main([*base, "--output_dir", str(folder / "a")])
    records = [json.loads(line) for line in (folder / "a" / "predictions.jsonl").read_text().splitlines()]
    answers = [{"example_id": r["example_id"], "prediction": r["gold_sql"]} for r in records[:-2]]
    answers += [{"example_id": r["example_id"], "prediction": ""} for r in records[-2:]]
    predictions = folder / "gold.jsonl"
    predictions.write_text("".join(json.dumps(a) + "\n" for a in answers))
    evaluate_main([*base, "--predictions", str(predictions), "--output_dir", str(folder / "b")])
    return folder / "a", folder / "b"


# --------------------------------------------------------------------------- functions


def test_asking_an_sqlite_file_answers_with_sql_rows_and_a_chart(tiny, rigged, tmp_path):
    from t2s.webapp import functions as f

    db = tmp_path / "shop.sqlite"
    shutil.copy(SHOP, db)
    before = _sha(db)
    session = f.attach_model(f.open_session(path_or_url=str(db)), *tiny)
    assert "customers" in session.describe() and "SQLite" in session.describe()
    rigged += [LYON, BY_CITY, "DELETE FROM customers"]
    answer = f.ask(session, "Who lives in Lyon?")
    assert answer.sql == LYON and answer.status.startswith("2 row(s)")
    assert answer.table() == {"headers": ["name", "city"], "data": [["Alice Martin", "Lyon"], ["Chen Wei", "Lyon"]]}
    assert answer.chart() is None  # two text columns: nothing to draw
    chart = f.ask(session, "How many customers per city?").chart()
    assert chart["x"] == "city" and {r["x"]: r["y"] for r in chart["rows"]}["Lyon"] == 2.0
    refused = f.ask(session, "Delete everyone")
    assert refused.execution.status == "rejected" and refused.status.startswith("rejected")
    with pytest.raises(UserError, match="ask a question"):
        f.ask(session, "  ")
    session.close()
    assert _sha(db) == before


def test_uploaded_csv_and_parquet_files_become_tables_and_stay_unchanged(tiny, rigged, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from t2s.webapp import functions as f

    (tmp_path / "orders.csv").write_text("order_id,city,total\n1,Lyon,20.5\n2,Madrid,7\n3,Lyon,1\n")
    pq.write_table(pa.table({"city": ["Lyon", "Madrid"], "country": ["FR", "ES"]}), tmp_path / "cities.parquet")
    files = [str(tmp_path / "orders.csv"), str(tmp_path / "cities.parquet")]
    before = {p: _sha(Path(p)) for p in files}
    session = f.attach_model(f.open_session(files=files), *tiny)
    assert "DuckDB" in session.describe() and "orders" in session.describe() and "cities" in session.describe()
    rigged.append("SELECT c.country, sum(o.total) FROM orders AS o JOIN cities AS c ON o.city = c.city GROUP BY 1")
    answer = f.ask(session, "Total by country?")
    assert sorted(answer.execution.rows) == [("ES", 7.0), ("FR", 21.5)] and answer.chart() is not None
    session.close()
    assert {p: _sha(Path(p)) for p in files} == before
    with pytest.raises(UserError, match="not both"):
        f.open_session(path_or_url=str(SHOP), files=files)
    with pytest.raises(UserError, match="give a database"):
        f.open_session()


def test_an_evaluation_folder_reads_as_breakdown_classes_questions_and_both_results(evaluations):
    from t2s.webapp import functions as f

    a, b = evaluations
    run = f.open_evaluation(a)
    metrics = json.loads((a / "metrics.json").read_text())
    assert f"{metrics['execution_accuracy']:.1%}" in run.summary() and "protocol" in run.summary()
    title, rows = run.breakdown()
    assert title == "hardness" and sum(r[1] for r in rows) == metrics["num_scored"]
    assert all(r[3].endswith("of its errors)") for r in rows if r[2] != "100.0%")  # the most common error, named
    classes = run.classes()
    assert sum(c[1] for c in classes) == run.analysis["num_wrong"] > 0
    wrong = run.questions(None)
    assert len(wrong) == run.analysis["num_wrong"]
    first_class = classes[0][0]
    assert all(
        e["primary"] == first_class
        for e in run.analysis["examples"]
        if e["example_id"] in {q[0] for q in run.questions(first_class)}
    )
    gold_run = f.open_evaluation(b)
    right = next(r for r in gold_run.records if r["outcome"] == "correct")
    example = gold_run.example(right["example_id"])
    assert example["gold_rows"] == example["prediction_rows"] and example["gold_rows"]
    gold = f.rows_table(example["gold_rows"], example["gold_columns"])
    assert gold["data"] and gold["headers"] == example["gold_columns"] and all(gold["headers"])  # the result's names
    with sqlite3.connect(f"file:{SHOP}?mode=ro", uri=True) as conn:
        names = [d[0] for d in conn.execute(example["gold_sql"]).description]
    assert gold["headers"] == names, example["gold_sql"]
    # a run recorded without column names: blank headers, never "column 1"
    old = f.rows_table([[1, 2], [3, 4]])
    assert old["data"] == [["1", "2"], ["3", "4"]] and not any(h.strip() for h in old["headers"])
    assert len(set(old["headers"])) == 2
    text = f.compare_evaluations(a, b)
    assert "McNemar" in text and "fixed" in text
    with pytest.raises(UserError, match="not an evaluation folder"):
        f.open_evaluation(a.parent)


# --------------------------------------------------------------------------- the page in a browser


def _wait_text(page, selector: str, text: str, timeout: int = 60_000) -> None:
    """Until the element's visible text contains `text` (Gradio renders tables twice, one copy hidden)."""
    page.wait_for_function(
        "([selector, text]) => { const e = document.querySelector(selector); return e && e.innerText.includes(text); }",
        arg=[selector, text],
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def browser():
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed (make install installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.mark.browser
def test_the_page_asks_the_shop_and_opens_an_evaluation_in_a_real_browser(
    tiny, rigged, evaluations, browser, tmp_path
):
    from t2s.webapp.ui import build, launch

    db = tmp_path / "shop.sqlite"
    shutil.copy(SHOP, db)
    before = _sha(db)
    rigged += [LYON, BY_CITY]

    def slow_loader(name):  # opening takes a while: a question asked meanwhile must wait for it
        time.sleep(1.5)
        return tiny

    page_app = build(default_model="tiny", default_database=str(db), loader=slow_loader)
    port = _free_port()
    launch(page_app, port=port, block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#open-database", timeout=60_000)
        page.fill("#question textarea", "Who lives in Lyon?")
        page.click("#ask")  # at once: --database is still opening it as the page loads
        _wait_text(page, "#result", "Alice Martin")
        assert "Chen Wei" in page.inner_text("#result") and "customers" in page.inner_text("#database-description")
        # the tiny model has no run record: the page says it may be an untuned base, and names the shipped model
        assert "not tuned to write SQL" in page.inner_text("#database-description")
        assert "embedded:smollm2-135m-spider" in page.inner_text("#database-description")
        assert "2 row(s)" in page.inner_text("#status")
        assert "SELECT name, city FROM customers" in page.inner_text("#sql")
        page.fill("#question textarea", "How many customers per city?")
        page.press("#question textarea", "Enter")  # Enter asks
        _wait_text(page, "#result", "Madrid")
        page.wait_for_selector("#chart", state="visible", timeout=30_000)
        assert rigged.constrained == [True, True]  # the default decoding: under the database's grammar
        # Plain greedy, chosen on the page, decodes without the grammar.
        page.locator("#decoding input").click()
        page.get_by_role("option", name="greedy", exact=True).click()
        rigged.append(LYON)
        page.fill("#question textarea", "Who lives in Lyon?")
        page.click("#ask")
        page.wait_for_function("() => !document.querySelector('#result').innerText.includes('Madrid')")
        _wait_text(page, "#result", "Alice Martin")
        assert rigged.constrained == [True, True, False]
        page.screenshot(path=str(tmp_path / "ask.png"), full_page=True)
        # A failed open shows its reason and leaves the open database as it was: the next question is answered.
        page.fill("#database textarea", str(tmp_path / "no_such.sqlite"))
        page.click("#open-database")
        page.get_by_text("no_such.sqlite: no such file").first.wait_for(timeout=30_000)
        rigged.append(LYON)
        page.fill("#question textarea", "Who lives in Lyon?")
        page.click("#ask")
        _wait_text(page, "#result", "Alice Martin")
        # No rows: the real column names; an answer that does not run: no table, rather than made-up headers.
        rigged.append("SELECT name, city FROM customers WHERE city = 'Nowhere'")
        page.fill("#question textarea", "Who lives nowhere?")
        page.click("#ask")
        _wait_text(page, "#status", "0 row(s)")
        assert "city" in page.inner_text("#result")
        rigged.append("DELETE FROM customers")
        page.fill("#question textarea", "Delete everyone")
        page.click("#ask")
        _wait_text(page, "#status", "rejected")
        page.wait_for_selector("#result", state="hidden", timeout=30_000)

        a, b = evaluations
        page.get_by_role("tab", name="Evaluation").click()
        page.fill("#evaluation-folder textarea", str(a))
        page.click("#open-evaluation")
        _wait_text(page, "#evaluation-summary", "execution accuracy")
        assert "hardness" in page.inner_text("#breakdown")
        first_class = json.loads((a / "analysis.json").read_text())["primary_categories"]
        assert next(iter(first_class)) in page.inner_text("#classes")
        page.locator("#questions [role=row]:has([role=gridcell])").first.locator("[role=gridcell]").nth(1).click()
        _wait_text(page, "#picked", "shop")
        first_wrong = next(e for e in json.loads((a / "analysis.json").read_text())["examples"] if e["primary"])
        records = {
            json.loads(x)["example_id"]: json.loads(x) for x in (a / "predictions.jsonl").read_text().splitlines()
        }
        assert records[first_wrong["example_id"]]["gold_sql"] in page.inner_text("#gold-sql")
        gold_columns = records[first_wrong["example_id"]]["gold_columns"]
        assert gold_columns and all(name in page.inner_text("#gold-rows") for name in gold_columns)
        assert "column 1" not in page.inner_text("#gold-rows")
        page.get_by_text("Compare with another run").click()
        page.fill("#other-folder textarea", str(b))
        page.click("#compare")
        _wait_text(page, "#comparison", "McNemar")
        page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
        # Another evaluation: what belonged to the first (picked question, queries, comparison) goes with it.
        page.fill("#evaluation-folder textarea", str(b))
        page.click("#open-evaluation")
        page.wait_for_function("() => !document.querySelector('#comparison').innerText.includes('McNemar')")
        assert page.inner_text("#picked").strip() == "" and "SELECT" not in page.inner_text("#gold-sql")
    finally:
        page_app.close()
    assert _sha(db) == before
