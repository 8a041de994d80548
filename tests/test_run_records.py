"""Run records in results/: per-question outcomes with their protocol, no local paths, and `t2s compare` pairs them
with each other or with any evaluation folder."""

from __future__ import annotations

import json

import pytest

from t2s.evaluation.compare import compare
from t2s.evaluation.records import SCORE_KEYS, Protocol, keep_outcomes, read_outcomes

from .conftest import ROOT

RESULTS = ROOT / "results"


@pytest.mark.parametrize("record", sorted(RESULTS.glob("*/*/*.jsonl")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_every_record_holds_its_outcomes_and_its_protocol(record):
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert rows and len({r["example_id"] for r in rows}) == len(rows)
    assert {r["outcome"] for r in rows} <= {"correct", "wrong_result", "exec_error", "timeout", "too_large",
                                             "rejected", "empty", "gold_error"}  # fmt: skip
    protocol = json.loads(record.with_suffix(".protocol.json").read_text())
    # the one reader of protocols takes every key back, in order, and the record names its prompt and semantics
    read_back = {**Protocol.of(protocol).to_json(), **{k: protocol[k] for k in SCORE_KEYS}}
    assert list(read_back.items()) == list(protocol.items())
    assert protocol["semantics"] in ("spider", "wikisql") and protocol["schema_format"] in ("names", "types", "rows")
    correct = sum(r["outcome"] == "correct" for r in rows)
    assert correct / protocol["num_scored"] == pytest.approx(protocol["execution_accuracy"])
    assert "outputs/" not in record.with_suffix(".protocol.json").read_text()


def test_compare_pairs_two_records_as_it_pairs_two_evaluations():
    demo = RESULTS / "demo"
    result = compare(
        str(demo / "smollm2-135m-instruct" / "spider-dev-300-seed42-greedy.jsonl"),
        str(demo / "smollm2-135m-spider-demo-lora" / "spider-dev-300-seed42-greedy.jsonl"),
    )
    kept = json.loads((demo / "compare-spider-dev-300-seed42-zero-shot-finetuned.json").read_text())
    assert {k: result[k] for k in ("n", "fixed", "broken", "mcnemar_p")} == {
        k: kept[k] for k in ("n", "fixed", "broken", "mcnemar_p")
    }


def _record(folder, ids_outcomes, **protocol):
    folder.mkdir(parents=True)
    rows = [{"example_id": i, "outcome": o} for i, o in ids_outcomes]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    correct = sum(o == "correct" for _, o in ids_outcomes)
    metrics = {"protocol": "dev, 3 questions", "decoding": "greedy", "execution_accuracy": correct / len(rows),
               "num_scored": len(rows), "num_examples": len(rows), **protocol}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


def test_runs_on_other_datasets_or_semantics_are_not_paired_though_their_ids_coincide(tmp_path):
    """WikiSQL and Spider both number their dev questions `dev[N]`: without the protocol, two runs on unrelated
    questions would pair up. Prompt settings may differ (that is what a comparison measures) and are reported."""
    from t2s.runtime import UserError

    ids = [("dev[0]", "correct"), ("dev[1]", "wrong_result"), ("dev[2]", "correct")]
    spider = _record(tmp_path / "spider", ids, dataset="xlangai/spider", semantics="spider", schema_format="types")
    wikisql = _record(tmp_path / "wikisql", ids, dataset="Salesforce/wikisql", semantics="wikisql",
                      schema_format="types")  # fmt: skip
    with pytest.raises(UserError, match="not measured on the same thing: dataset 'xlangai/spider' against "
                                        "'Salesforce/wikisql'"):  # fmt: skip
        compare(spider, wikisql)
    relaxed = _record(tmp_path / "relaxed", ids, dataset="xlangai/spider", semantics="wikisql", schema_format="types")
    with pytest.raises(UserError, match="semantics 'spider' against 'wikisql'"):
        compare(spider, relaxed)
    linked = _record(tmp_path / "linked", ids[:2] + [("dev[2]", "exec_error")], dataset="xlangai/spider",
                     semantics="spider", schema_format="rows", link_values=True)  # fmt: skip
    result = compare(spider, linked)
    assert result["prompt_differences"] == {"schema_format": ["types", "rows"], "link_values": [None, True]}
    assert (result["n"], result["broken"]) == (3, 1)
    assert "prompt_differences" not in compare(spider, spider)


def test_a_record_is_written_from_an_evaluation_folder_and_reads_back(tmp_path):
    folder = tmp_path / "eval"
    folder.mkdir()
    records = [{"example_id": f"dev[{i}]", "outcome": o, "prompt": "…"} for i, o in enumerate(["correct", "timeout"])]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics = {"protocol": "Spider dev, 2 of 1034", "decoding": "greedy", "semantics": "spider",
               "execution_accuracy": 0.5, "num_scored": 2, "num_examples": 2, "generation_seconds": 3.0}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    path = keep_outcomes(folder, tmp_path / "results" / "m" / "spider-dev-2-greedy")
    assert read_outcomes(path) == {"dev[0]": "correct", "dev[1]": "timeout"} == read_outcomes(folder)
    protocol = json.loads(path.with_suffix(".protocol.json").read_text())
    assert "generation_seconds" not in protocol and protocol["semantics"] == "spider"  # no times in a record
    assert compare(str(path), str(folder))["n"] == 2


def test_run_records_beside_adapters_carry_a_version_and_older_ones_still_load(tmp_path):
    """`t2s_run.json` is read and written by one module, as a `RunRecord`; a record written before versions existed
    (the shipped model's is one) loads as the current layout and is written back with the same keys and values, keys
    this version does not know are kept, and one from a newer t2s is refused with the reason."""
    from dataclasses import replace

    from t2s.data.prompt import PromptSettings
    from t2s.data.run_record import RECORD_VERSION, RunRecord, load_run, save_run
    from t2s.decoding.embedded import SHIPPED_DIR
    from t2s.runtime import UserError

    shipped = SHIPPED_DIR / "smollm2-135m-spider"
    old = json.loads((shipped / "t2s_run.json").read_text())
    run = load_run(shipped)
    assert isinstance(run, RunRecord) and run.extra == {} and run.shipped["name"] == "embedded:smollm2-135m-spider"
    assert PromptSettings.from_run(run).prune_tables == 3
    save_run(tmp_path, replace(run, global_step=7, extra={"a_later_field": [1, 2]}))
    written = json.loads((tmp_path / "t2s_run.json").read_text())
    assert next(iter(written)) == "version" and written["version"] == RECORD_VERSION
    assert {**written, "global_step": old["global_step"]} == {
        **{k: v for k, v in old.items() if k != "version"},
        "version": RECORD_VERSION,
        "a_later_field": [1, 2],
    }  # the same record, with what changed
    again = load_run(tmp_path)
    assert again.global_step == 7 and again.extra == {"a_later_field": [1, 2]} and not list(tmp_path.glob("*.tmp"))
    assert load_run(tmp_path / "nothing") is None
    (tmp_path / "t2s_run.json").write_text(json.dumps({"version": RECORD_VERSION + 1, "stage": "sft"}))
    with pytest.raises(UserError, match="written by a newer t2s"):
        load_run(tmp_path)
    (tmp_path / "t2s_run.json").write_text("{ not json")
    with pytest.raises(UserError, match="not a t2s run record"):
        load_run(tmp_path)
