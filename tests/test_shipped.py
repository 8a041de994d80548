"""The model that ships inside the package (`embedded:smollm2-135m-spider`), the default of `t2s ask` and the page:
its weights load on the embedded base, its record names the recipe it came from and its Spider dev scores with their
protocol, its card carries the licences, its per-question outcomes are kept for pairing, and it answers a question
about a database it never saw with a SELECT that runs."""

from __future__ import annotations

import json

import pytest

from t2s.decoding.embedded import DEFAULT_ASK_MODEL, SHIPPED_DIR, default_ask_model, shipped_adapter

from .conftest import ROOT
from .engines_setup import SHOP

FOLDER = SHIPPED_DIR / "smollm2-135m-spider"


def test_the_shipped_adapter_is_small_bf16_and_names_where_it_came_from():
    from safetensors import safe_open

    assert shipped_adapter(DEFAULT_ASK_MODEL) == FOLDER and default_ask_model() == DEFAULT_ASK_MODEL
    weights = FOLDER / "adapter_model.safetensors"
    assert weights.stat().st_size < 20_000_000
    with safe_open(str(weights), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}  # noqa: SIM118 - not a dict
    run = json.loads((FOLDER / "t2s_run.json").read_text())
    assert run["base_model"] == "embedded:smollm2-135m-instruct"
    shipped = run["shipped"]
    recipe = ROOT / shipped["recipe"]
    if shipped["recipe_matches_repository"]:
        assert recipe.read_text() == (FOLDER / "t2s_recipe.yaml").read_text()
    else:
        assert len(shipped["commit"]) == 40  # the recipe changed since: the record names the commit it came from
    dev = [s for s in run["scores"].values() if "Spider dev" in s["protocol"]]
    assert dev and all(s["num_scored"] >= 1024 and 0 < s["execution_accuracy"] < 1 for s in dev)
    card = (FOLDER / "README.md").read_text()
    assert "## Licences" in card and "CC BY-SA 4.0" in card and "Apache License 2.0" in card
    for name, score in run["scores"].items():
        assert f"| {name} | {score['execution_accuracy']:.1%} |" in card  # each score shows on the card


def test_the_shipped_outcomes_can_be_paired_with_any_later_run():
    outcomes = sorted((ROOT / "results" / "shipped" / "smollm2-135m-spider").glob("*.jsonl"))
    assert outcomes
    for path in outcomes:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 1034 and len({r["example_id"] for r in rows}) == 1034
        protocol = json.loads(path.with_suffix(".protocol.json").read_text())
        correct = sum(r["outcome"] == "correct" for r in rows)
        assert correct / protocol["num_scored"] == pytest.approx(protocol["execution_accuracy"])


def test_ask_uses_the_shipped_model_with_the_prompt_it_learned_and_answers_with_a_select_that_runs(capsys):
    from t2s import ask
    from t2s.decoding.models import trained_prompt_settings

    settings = trained_prompt_settings(DEFAULT_ASK_MODEL)
    run = json.loads((FOLDER / "t2s_run.json").read_text())  # the file itself, not its reader
    assert settings.linking and settings.prune_tables == run["prune_tables"]
    assert (settings.schema_format, settings.link_values) == (
        run["schema_format"],
        run["link_values"],
    )  # the Spider recipe links and prunes
    sql, result = ask.main(["--db", str(SHOP), "How many customers are there?"])
    assert sql.upper().startswith("SELECT") and result.status == "ok", (sql, result)
    assert result.rows == [(6,)], (sql, result.rows)
    assert "not tuned" not in capsys.readouterr().out


def test_evaluating_the_shipped_adapter_leaves_its_card_alone_unless_asked():
    """Its card holds the scores `make ship-spider` measured on all of Spider dev: an evaluation of a sample (or of
    the package installed in site-packages) must not add itself beside them."""
    from t2s.evaluation.runner import EvaluateArguments, card_decision

    args = EvaluateArguments(adapter=str(FOLDER), dataset_name="spider", split="dev", limit=20)
    record, why = card_decision(args)
    assert not record and "ships with t2s" in why
    args.record_in_card = "always"  # what scripts/ship_adapter.py asks
    assert card_decision(args)[0]
