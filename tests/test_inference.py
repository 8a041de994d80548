"""Inference, evaluation, error analysis, execution-guided decoding and the paired comparison."""

import json

import pytest
import torch

from t2s.decoding.decoding_arguments import DecodingArguments
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.predict import execution_guided_choice
from t2s.decoding.settings import GenerationSettings, generate_kwargs, prepare_tokenizer
from t2s.evaluate_sql import main as evaluate_main
from t2s.evaluation.analysis import analyse
from t2s.evaluation.analysis.wikisql import classify
from t2s.evaluation.compare import compare, mcnemar_exact
from t2s.runtime import UserError

from .conftest import FIXTURES
from .tiny_model import save_tiny_model

T = '"table_1_1000_1"'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny_inference") / "model", seed=1)
    model, tokenizer = load_model_and_tokenizer(str(path))
    return path, model, tokenizer


def test_inference_prompts_equal_training_prompts():
    from t2s.training.run_setup import load_splits
    from t2s.training.training_arguments import DataArguments

    train, _ = load_splits(DataArguments(dataset_name=str(FIXTURES), dataset_train_split="dev"))
    inference = DecodingArguments(dataset_name=str(FIXTURES)).load_questions()
    by_id = dict(zip(train["example_id"], train["prompt"]))
    assert len(by_id) == len(inference)
    for ex in inference:
        assert ex["prompt"] == by_id[ex["example_id"]]


def _constant_model(model, tokenizer, token_id):
    """Make the tiny model emit `token_id` at every step (identical inputs give identical hidden states)."""
    model = type(model)(model.config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(
            model.model.embed_tokens.weight[:1].expand_as(model.model.embed_tokens.weight)
        )
        hidden = model.model(torch.tensor([[0, 0]])).last_hidden_state[0, -1]
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id] = hidden
    return model


def test_generation_stops_at_eos_and_runs_to_the_budget_without_an_answer(tiny):
    """EOS ends a row at once; a model that writes only newlines (no answer: `t2s.decoding.answer`) or never stops
    runs to the token budget. Where an answer ends is tested in tests/test_answer.py."""
    _, model, tokenizer = tiny
    prepare_tokenizer(tokenizer)
    batch = tokenizer(["SELECT"], return_tensors="pt")
    length = batch["input_ids"].shape[1]
    settings = GenerationSettings(max_new_tokens=20)
    kwargs = generate_kwargs(tokenizer, settings, length)
    for token, steps in [(tokenizer.eos_token_id, 1), ("Ċ", 20), ("SELECT", 20)]:
        token_id = tokenizer.convert_tokens_to_ids(token) if isinstance(token, str) else token
        rigged = _constant_model(model, tokenizer, token_id)
        assert rigged.generate(**batch, **kwargs).shape[1] == length + steps, token
        if steps == 1 or token == "Ċ":
            assert generate_sql(rigged, tokenizer, ["SELECT"], settings) == [[""]]


def test_batched_and_one_by_one_greedy_generation_agree(tiny):
    _, model, tokenizer = tiny
    prompts = list(DecodingArguments(dataset_name=str(FIXTURES)).load_questions()["prompt"])[:10]
    batched = generate_sql(model, tokenizer, prompts, GenerationSettings(max_new_tokens=12, batch_size=8))
    single = generate_sql(model, tokenizer, prompts, GenerationSettings(max_new_tokens=12, batch_size=1))
    assert batched == single
    assert len({p[0] for p in batched}) > 1  # not a degenerate constant output


def test_generation_progress_is_printed_when_output_is_not_a_terminal(tiny, capsys):
    from t2s.decoding.predict import generate_with_progress

    _, model, tokenizer = tiny
    prompts = list(DecodingArguments(dataset_name=str(FIXTURES)).load_questions()["prompt"])[:10]
    generate_with_progress(model, tokenizer, prompts, GenerationSettings(max_new_tokens=4, batch_size=4), "Generating")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Generating: ")]
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]


def test_execution_guided_decoding_picks_an_executable_candidate(fixture_dev):
    table = fixture_dev[0]["table"]
    good = f'SELECT "Player" FROM {T} WHERE "No." = 7'
    assert execution_guided_choice(["SELECT nope FROM nowhere", good], table) == (good, 1)
    empty = f'SELECT "Player" FROM {T} WHERE "Player" = \'Nobody\''
    assert execution_guided_choice([empty, good], table) == (good, 1)  # non-empty result preferred
    assert execution_guided_choice(["SELEC broken", "DROP TABLE x"], table) == ("SELEC broken", -1)  # fallback: top


HAND_WRITTEN = [
    # (prediction, outcome, error, expected primary category)
    ("", "empty", "no SQL", "no_sql"),
    ("The answer is Guard", "rejected", "not an SQL statement", "rejected"),
    (f'SELECT "Position" FROM {T} WHERE "Player" = \'antonio o\'neal\'', "exec_error", "syntax", "string_escaping"),
    (
        f'SELECT "Role" FROM {T} WHERE "Player" = \'José Müller\'',
        "exec_error",
        "no such column: Role",
        "hallucinated_schema",
    ),
    (
        'SELECT "Position" FROM players WHERE "Player" = \'José Müller\'',
        "exec_error",
        "no such table: players",
        "hallucinated_schema",
    ),
    (f'SELECT "No." FROM {T} WHERE "Player" = \'José Müller\'', "wrong_result", None, "select_column"),
    (f'SELECT COUNT("Position") FROM {T} WHERE "Player" = \'José Müller\'', "wrong_result", None, "aggregation"),
    (f'SELECT "Position" FROM {T} WHERE "Team\'s ""Club""" = \'José Müller\'', "wrong_result", None, "where_column"),
    (f'SELECT "Position" FROM {T}', "wrong_result", None, "missing_condition"),
    (
        f'SELECT "Position" FROM {T} WHERE "Player" = \'José Müller\' AND "No." = 7',
        "wrong_result",
        None,
        "extra_condition",
    ),
    (f'SELECT "Position" FROM {T} WHERE "Player" > \'José Müller\'', "wrong_result", None, "where_operator"),
    (f'SELECT "Position" FROM {T} WHERE "Player" = \'Jose Muller\'', "wrong_result", None, "where_value"),
    (f'SELECT "Position" FROM {T} WHERE "Player" = \'josé müller\'', "correct", None, None),
]


@pytest.mark.parametrize("prediction,outcome,error,expected", HAND_WRITTEN)
def test_analysis_classifies_one_example_per_category(fixture_dev, prediction, outcome, error, expected):
    ex = fixture_dev[0]  # gold: SELECT "Position" ... WHERE "Player" = 'José Müller'
    flags = classify(prediction, outcome, error, ex["sql"], ex["table"])
    assert (flags[0] if flags else None) == expected, flags


def test_analysis_reports_rates_confusion_and_systematic_checks(fixture_dev, tmp_path):
    from t2s.evaluation.analysis import write_reports
    from t2s.execution.scoring import score_all

    preds = [sql.replace("MAX(", "MIN(").replace("= 'Kenya'", "= 'kenya republic'") for sql in fixture_dev["gold_sql"]]
    scored = score_all(preds, list(fixture_dev["gold_sql"]), list(fixture_dev["table"]), semantics="wikisql")
    details = [d.as_dict() for d in scored]  # the metric's details, what the analysis reads
    result = analyse(
        list(fixture_dev), preds, details, other_outcomes={e: "correct" for e in fixture_dev["example_id"]}
    )
    assert result["aggregation_confusion"]["MAX"]["MIN"] == 1
    assert result["primary_categories"]["aggregation"]["count"] == 1
    assert result["primary_categories"]["where_value"]["count"] == 2
    assert set(result["by_num_conditions"]) == {"0", "1", "2", "3"}
    assert result["agreement"]["only_this_wrong"] == result["num_wrong"]
    paths = write_reports(result, tmp_path, "test", "fixtures")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = paths["md"].read_text()
    assert "Aggregation confusion" in markdown
    # every group table fills its "most common error" column (a dash where the group has no error)
    for line in markdown.splitlines():
        if line.startswith("| ") and line.count("|") == 6 and "%" in line:
            assert not line.rstrip().endswith("|  |"), line
    assert json.loads(paths["json"].read_text())["num_examples"] == len(fixture_dev)


def test_execution_guided_prediction_searches_only_failing_queries(tiny, fixture_dev, tmp_path):
    from t2s.decoding.predict import predict
    from t2s.decoding.settings import Decoding

    path, model, tokenizer = tiny
    ds = fixture_dev.select(range(4))
    greedy = [ds[0]["gold_sql"], "SELEC broken", ds[2]["gold_sql"], "SELECT nope FROM nowhere"]
    records = predict(
        model,
        tokenizer,
        ds,
        GenerationSettings(max_new_tokens=6),
        Decoding(execution_guided=True, num_candidates=2),
        greedy=greedy,
    )
    assert [("candidates" in r) for r in records] == [False, True, False, True]
    assert records[0]["prediction"] == greedy[0] and records[0]["eg_choice"] == 0
    for r in (records[1], records[3]):
        assert r["candidates"][0] in greedy and 1 <= len(r["candidates"]) <= 3
        # the tiny random model writes nothing executable: fall back to the greedy query
        assert r["eg_choice"] == -1 and r["prediction"] == r["candidates"][0]


def test_mcnemar_exact_matches_the_binomial_test():
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(30, 0) < 1e-8


def test_evaluate_scores_compares_and_records_in_the_card(tiny, tmp_path):
    path, _, _ = tiny
    common = ["--model", str(path), "--dataset_name", str(FIXTURES), "--max_new_tokens", "8", "--limit", "12"]
    a = evaluate_main([*common, "--output_dir", str(tmp_path / "a")])
    for name in ("predictions.jsonl", "metrics.json", "analysis.md", "analysis.json", "analysis.png"):
        assert (tmp_path / "a" / name).exists()
    # the label names the data actually read: a folder other than the configured copy is named
    assert (
        a["protocol"] == f"WikiSQL dev ({FIXTURES.name}), 12 of 22 questions"
    )  # a folder by its name and a["decoding"] == "greedy"
    assert a["dataset"] == "Salesforce/wikisql" and a["semantics"] == "wikisql"

    # re-scoring a predictions file with the gold SQL as predictions: 100%
    gold_file = tmp_path / "gold.jsonl"
    records = [json.loads(line) for line in (tmp_path / "a" / "predictions.jsonl").read_text().splitlines()]
    gold_file.write_text("".join(json.dumps({**r, "prediction": r["gold_sql"]}) + "\n" for r in records))
    kept = tmp_path / "results" / "gold-greedy"
    b = evaluate_main(
        [*common, "--predictions", str(gold_file), "--output_dir", str(tmp_path / "b"), "--keep_outcomes", str(kept)]
    )
    assert b["execution_accuracy"] == 1.0
    # the kept run record pairs like the evaluation folder it came from, and holds each question's outcome
    outcomes = [json.loads(line) for line in kept.with_suffix(".jsonl").read_text().splitlines()]
    assert [o["example_id"] for o in outcomes] == [r["example_id"] for r in records]
    assert {o["outcome"] for o in outcomes} == {"correct"}
    assert json.loads(kept.with_suffix(".protocol.json").read_text())["execution_accuracy"] == 1.0
    assert compare(str(tmp_path / "a"), str(kept.with_suffix(".jsonl")))["n"] == 12

    result = compare(str(tmp_path / "a"), str(tmp_path / "b"))
    assert result["fixed"] == 12 - a["outcomes"]["correct"] and result["broken"] == 0
    assert result["mcnemar_p"] == mcnemar_exact(result["fixed"], 0)

    with pytest.raises(UserError, match="no prediction for"):
        evaluate_main(
            ["--dataset_name", str(FIXTURES), "--predictions", str(gold_file), "--output_dir", str(tmp_path / "c")]
        )


def test_scores_are_written_into_the_adapter_card(tmp_path):
    from t2s.data.run_record import RunRecord, load_run, save_run
    from t2s.publish.card import record_scores

    save_run(
        tmp_path,
        RunRecord(
            base_model="embedded:smollm2-135m-instruct", base_model_hub_id="HuggingFaceTB/SmolLM2-135M-Instruct"
        ),
    )
    record_scores(
        tmp_path,
        "held-out",
        {
            "execution_accuracy": 0.5,
            "execution_accuracy_nonempty_gold": 0.45,
            "num_scored": 500,
            "protocol": "WikiSQL dev, held-out tables",
            "decoding": "greedy",
        },
    )
    card = (tmp_path / "README.md").read_text()
    assert (
        "50.0%" in card
        and "WikiSQL dev, held-out tables" in card
        and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    )
    assert "execution_accuracy" in card and load_run(tmp_path).scores["held-out"]["num_scored"] == 500


def test_systematic_verdict_comes_from_a_test_with_its_p_value():
    from t2s.evaluation.analysis.render import systematic, systematic_lines

    causes = ("aggregation", "where_value", "select_column")
    clustered = [{"db_id": f"t{t}", "primary": causes[t % 3]} for t in range(9) for _ in range(4)]
    mixed = [{"db_id": f"t{t}", "primary": causes[i % 3]} for t in range(9) for i in range(3)]
    s = systematic(clustered)
    assert s["p_value"] < 0.01 and s["verdict"].startswith("systematic") and "permutation test" in s["test"]
    assert systematic(clustered) == s  # seeded: the same errors give the same p-value
    m = systematic(mixed, "database")
    assert m["p_value"] > 0.5 and m["verdict"].startswith("no evidence that errors on one database")
    few = systematic([e for e in clustered if e["db_id"] in ("t0", "t1")][:5])
    assert few["p_value"] is None and few["verdict"].startswith("too few pairs")
    agreement = {"n": 4, "both_wrong": 1, "only_this_wrong": 1, "only_other_wrong": 0, "agreement": 0.75}
    lines = systematic_lines({"systematic": s, "agreement": {**agreement, "cohen_kappa": 0.5}})
    assert (
        "(p = 0.0005, permutation test" in lines[-2] and "systematic" not in lines[-1]
    )  # kappa is reported as agreement, not a verdict


def test_prediction_files_with_the_older_wikisql_ids_still_align():
    """Files written before ids were location-free name a WikiSQL question by its file and line."""
    from t2s.evaluation.runner import align_predictions

    dataset = DecodingArguments(dataset_name=str(FIXTURES)).load_questions()
    legacy = [
        {"example_id": f"{FIXTURES}/dev.jsonl:{int(eid[4:-1]) + 1}", "prediction": f"p{i}"}
        for i, eid in enumerate(dataset["example_id"])
    ]
    assert align_predictions(dataset, legacy, "old.jsonl") == [f"p{i}" for i in range(len(dataset))]
