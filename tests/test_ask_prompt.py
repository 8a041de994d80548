"""`t2s ask` and the page ask a model with the prompt it learned: the schema format and linking its run record
names, built from the user's own database exactly as `t2s evaluate` builds it from the dataset (same text)."""

from __future__ import annotations

import json
import shutil

import pytest

from t2s.data import load_spider
from t2s.data.prompt import PromptSettings

from .engines_setup import OWN, SHOP

SETTINGS = [
    PromptSettings(),
    PromptSettings(link_values=True, prune_tables=2),
    PromptSettings(schema_format="rows", link_values=True, schema_max_chars=300),
]


@pytest.fixture()
def recorded_model(tiny_model, tmp_path):
    """The tiny model as a merged export whose run record names `settings` (what `t2s export` copies beside it)."""

    def make(settings: PromptSettings):
        folder = tmp_path / f"model-{abs(hash(settings))}"
        shutil.copytree(tiny_model, folder)
        run = {"base_model": "tiny", "schema_format": settings.schema_format}
        run.update({k: v for k, v in vars(settings).items() if k != "schema_format" and v})
        (folder / "t2s_run.json").write_text(json.dumps(run))
        return folder

    return make


@pytest.mark.parametrize("settings", SETTINGS, ids=["schema", "linked-pruned", "rows-budget"])
def test_ask_builds_the_prompt_evaluate_builds_for_the_same_question(settings, recorded_model, monkeypatch):
    from t2s import ask

    dev = load_spider(
        OWN, "dev", schema_format=settings.schema_format, link_values=settings.link_values,
        prune_tables=settings.prune_tables, schema_max_chars=settings.schema_max_chars,
    )  # fmt: skip
    seen: list[str] = []

    def record(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(prompts)
        return [["SELECT 1"]]

    monkeypatch.setattr("t2s.decoding.predict.generate_sql", record)
    model = recorded_model(settings)
    for ex in dev:
        ask.main(["--model", str(model), "--db", str(SHOP), ex["question"]])
    assert seen == list(dev["prompt"])


def test_a_setting_other_than_the_learned_one_is_used_and_said(recorded_model, monkeypatch, capsys):
    from t2s import ask

    seen: list[str] = []
    monkeypatch.setattr("t2s.decoding.predict.generate_sql", lambda m, t, p, *a, **k: seen.extend(p) or [["x"]])
    model = recorded_model(PromptSettings(link_values=True, prune_tables=2))
    question = "Which customers live in Lyon?"
    ask.main(["--model", str(model), "--db", str(SHOP), "--no-link_values", "--prune_tables", "0", question])
    printed = capsys.readouterr().out
    assert "learned other prompts" in printed and "link_values: True → False" in printed
    plain = load_spider(OWN, "dev")
    assert seen[0].split("### Question:")[0] == plain[0]["prompt"].split("### Question:")[0]  # the whole schema


@pytest.mark.parametrize("settings", SETTINGS[1:], ids=["linked-pruned", "rows-budget"])
def test_evaluate_builds_the_prompts_the_model_learned_unless_told_otherwise(
    settings, recorded_model, monkeypatch, tmp_path
):
    """With no prompt option, `t2s evaluate` reads the model's run record as `ask` does; an option given overrides it,
    and the run says that it differs from what the model learned."""
    from t2s.evaluate_sql import main as evaluate_main

    monkeypatch.setattr("t2s.decoding.predict.generate_sql", lambda m, t, p, *a, **k: [["SELECT 1"]] * len(p))
    model = recorded_model(settings)
    base = ["--model", str(model), "--dataset_name", str(OWN), "--split", "dev"]
    metrics = evaluate_main([*base, "--output_dir", str(tmp_path / "learned")])
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "learned" / "predictions.jsonl").open()]
    learned = load_spider(
        OWN, "dev", schema_format=settings.schema_format, link_values=settings.link_values,
        prune_tables=settings.prune_tables, schema_max_chars=settings.schema_max_chars,
    )  # fmt: skip
    assert prompts == list(learned["prompt"])
    assert (
        metrics.get("link_values", False) == settings.link_values
        and metrics["schema_format"] == settings.schema_format
    )
    assert "prompt_differs_from_training" not in metrics

    metrics = evaluate_main(
        [*base, "--link_values", "false", "--prune_tables", "0", "--output_dir", str(tmp_path / "o")]
    )
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "o" / "predictions.jsonl").open()]
    overridden = load_spider(
        OWN, "dev", schema_format=settings.schema_format, schema_max_chars=settings.schema_max_chars
    )
    assert prompts == list(overridden["prompt"]) and prompts != list(learned["prompt"])
    assert "link_values" not in metrics and "prune_tables" not in metrics
    if settings.link_values:
        assert "link_values: trained True, evaluated False" in metrics["prompt_differs_from_training"]
