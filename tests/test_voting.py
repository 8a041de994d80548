"""Self-consistency by execution: the majority result wins, a failing query never wins over one that runs, and the
whole path (greedy + samples, voting, records) runs with a seeded tiny model."""

from __future__ import annotations

import pytest

from t2s.decoding.voting import result_key, vote, votes_by_size

from .conftest import ROOT

SHOP = {"db_path": str(ROOT / "tests" / "fixtures" / "own_data" / "database" / "shop" / "shop.sqlite")}
LYON = "SELECT name FROM customers WHERE city = 'Lyon'"
MADRID = "SELECT name FROM customers WHERE city = 'Madrid'"


def test_results_that_differ_only_in_order_share_a_key():
    assert result_key([(1, "a"), (2, "b")]) == result_key([("b", 2.0), ("a", 1)])
    assert result_key([(1, "a")]) != result_key([(1, "b")])


def test_the_largest_group_wins_and_failures_never_do():
    majority = [LYON, MADRID, "SELECT name FROM customers WHERE city = 'Madrid' ORDER BY name", MADRID]
    chosen, info = vote(majority, SHOP)
    assert chosen == MADRID and info["choice"] == "sample" and info["groups"] == [3, 1] and info["votes"] == 3
    failing = [LYON, "SELECT nme FROM customers", "SELECT nme FROM customers", "SELECT nme FROM customers"]
    chosen, info = vote(failing, SHOP)
    assert chosen == LYON and info["failed"] == 3  # three identical failures lose to one query that runs
    sample_runs = ["SELECT nme FROM customers", "DELETE FROM customers", MADRID]
    assert vote(sample_runs, SHOP)[0] == MADRID  # even over the greedy query, when the greedy one fails
    assert vote(["SELECT nme FROM customers", "DROP TABLE orders"], SHOP) == (
        "SELECT nme FROM customers",
        {"num_candidates": 2, "failed": 2, "groups": [], "choice": "greedy (no candidate ran)"},
    )
    tie = [LYON, MADRID]
    assert vote(tie, SHOP)[0] == LYON  # equal groups: the greedy query's


def test_a_result_with_rows_wins_over_an_empty_majority():
    nobody = "SELECT name FROM customers WHERE city = 'Atlantis'"
    candidates = [nobody, "SELECT name FROM customers WHERE city = 'Nowhere'", MADRID]
    chosen, info = vote(candidates, SHOP)
    assert chosen == MADRID and info["empty_set_aside"] == 2 and info["choice"] == "sample"
    assert vote(candidates, SHOP, rows_first=False)[0] == nobody  # the old rule: two empty results outvote one
    assert vote([nobody, "SELECT nme FROM customers"], SHOP)[0] == nobody  # empty still beats a failure
    assert votes_by_size(candidates, SHOP, [1, 2, 3]) == {1: nobody, 2: nobody, 3: MADRID}


def test_one_run_gives_every_smaller_vote():
    candidates = [LYON, MADRID, "SELECT nme FROM customers", MADRID, "SELECT nme FROM customers"]
    by_size = votes_by_size(candidates, SHOP, [1, 2, 4, 5])
    assert by_size == {1: LYON, 2: LYON, 4: MADRID, 5: MADRID}  # a tie keeps greedy; two runners beat one
    for k in (1, 2, 3, 4, 5):
        assert votes_by_size(candidates, SHOP, [k])[k] == vote(candidates[:k], SHOP)[0]


def test_self_consistency_through_predict_with_a_seeded_tiny_model(tmp_path):
    import torch

    from t2s.data import load_text2sql
    from t2s.decoding.models import load_model_and_tokenizer
    from t2s.decoding.predict import predict
    from t2s.decoding.settings import Decoding, GenerationSettings
    from t2s.execution.engines import connect_example

    from .spider_fixture import build_spider_layout
    from .tiny_model import save_tiny_model

    model, tokenizer = load_model_and_tokenizer(str(save_tiny_model(tmp_path / "tiny", seed=3)))
    ds = load_text2sql(str(build_spider_layout(tmp_path / "spider")), "dev")
    settings = GenerationSettings(max_new_tokens=24, batch_size=4)

    def run():
        torch.manual_seed(0)
        return predict(
            model, tokenizer, ds, settings, Decoding(constrained=True, num_samples=4, sample_temperature=1.2)
        )

    records = run()
    assert [r["prediction"] for r in records] == [r["prediction"] for r in run()]  # seeded: reproducible
    for record, example in zip(records, ds):
        candidates = [*record["samples"]]
        assert record["vote"]["num_candidates"] == 4 and len(candidates) == 3
        assert record["prediction"] in [record["voted_with"], *candidates]  # what voted is kept, for bench_voting
        engine = connect_example(example)
        runs = [engine.run(sql).status == "ok" for sql in candidates]
        if any(runs):
            assert engine.run(record["prediction"]).status == "ok", record  # never a failure over a runner


@pytest.mark.parametrize("options, message", [({"num_samples": 0}, "at least 1"),
                                              ({"num_samples": 4, "sample_temperature": 0.0}, "above 0")])  # fmt: skip
def test_bad_self_consistency_options_are_refused(options, message, tmp_path):
    from t2s.decoding.decoding_arguments import DecodingArguments
    from t2s.runtime import UserError

    with pytest.raises(UserError, match=message):  # a usage error: one line and exit status 2 from the commands
        DecodingArguments(dataset_name="spider", **options)


def test_the_voting_curve_scores_each_vote_size_from_one_run(tmp_path):
    """bench/bench_voting.py: a wrong first answer outvoted by two gold samples once the vote has three candidates."""
    import json

    from bench.bench_voting import main

    from .spider_fixture import build_spider_layout

    spider = build_spider_layout(tmp_path / "spider")
    questions = json.loads((spider / "dev.json").read_text())
    run = tmp_path / "run"
    run.mkdir()
    records = []
    wrong = "SELECT 'no answer like this'"  # runs everywhere, matches no gold result
    for i, q in enumerate(questions):
        first, samples = (
            (wrong, [q["query"], q["query"], wrong]) if i < 3 else (q["query"], [q["query"], wrong, q["query"]])
        )
        records.append({"example_id": f"dev[{i}]", "voted_with": first, "samples": samples})
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "metrics.json").write_text(json.dumps({"protocol": "p", "decoding": "greedy + 3 samples"}))
    result = main([str(run), "--sizes", "1", "2", "3", "4", "--dataset_name", str(spider), "--split", "dev"])
    n = len(questions)
    rows = {row["num_candidates"]: row for row in result["sizes"]}
    assert rows[1]["correct"] == rows[2]["correct"] == n - 3  # 1 against 1: a tie keeps the first answer's group
    assert rows[3]["correct"] == n and rows[3]["vs_1"] == {"fixed": 3, "broken": 0, "mcnemar_p": 0.25}
    assert rows[4]["correct"] == n - 3  # 2 against 2 again
    assert rows[4]["vs_1"] == {"fixed": 0, "broken": 0, "mcnemar_p": 1.0}
    assert all(row["by_hardness"] for row in result["sizes"]) and result["questions"] == n
    assert rows[3]["outcomes"]["correct"] == n and rows[1]["outcomes"]["wrong_result"] == 3
