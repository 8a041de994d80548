"""The demo's before/after table: the execution-guided row is there only when that step ran."""

import importlib.util
import json

from .conftest import ROOT

# A script of the demos (scripts/demo_summary.py), not a module of the package.
_spec = importlib.util.spec_from_file_location("demo_summary", ROOT / "scripts" / "demo_summary.py")
demo_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_summary)
summarise_demo = demo_summary.summarise_demo

PROTOCOL = "WikiSQL dev, held-out tables (20% of tables, holdout seed 42), 4 of 8421 questions"


def _metrics(accuracy, decoding="greedy", **extra):
    return {
        "execution_accuracy": accuracy,
        "execution_accuracy_nonempty_gold": accuracy,
        "outcomes": {"correct": int(accuracy * 4), "wrong_result": 4 - int(accuracy * 4)},
        "protocol": PROTOCOL,
        "schema_format": "types",
        "decoding": decoding,
        "generation_seconds": 12.0,
        **extra,
    }


def _compare(fixed, broken):
    return {"n": 4, "fixed": fixed, "broken": broken, "mcnemar_p": 0.25}


def _demo_dir(tmp_path, with_eg):
    files = {
        "zero_shot/metrics.json": _metrics(0.0, model="embedded:smollm2-135m-instruct"),
        "finetuned/metrics.json": _metrics(0.5),
        "compare_zero_shot_finetuned.json": _compare(2, 0),
        "adapter/t2s_run.json": {
            "recipe": "recipes/smollm2-135m/wikisql/sft_cpu.yaml",
            "train_examples": 8,
            "train_protocol": "training tables",
            "peft": "LoRA r=16",
            "precision": "fp32",
            "global_step": 2,
            "training_time_s": 60.0,
            "hardware": "CPU",
            "eval_loss": 0.5,
            "eval_examples": 2,
            "loss_history": [{"step": 2, "eval_loss": 0.5}],
        },
    }
    if with_eg:
        files["finetuned_eg/metrics.json"] = _metrics(0.75, "execution-guided", eg_searched=2, eg_replaced_greedy=1)
        files["compare_greedy_eg.json"] = _compare(1, 0)
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return tmp_path


def _set_recipe(out, recipe):
    run = json.loads((out / "adapter" / "t2s_run.json").read_text())
    (out / "adapter" / "t2s_run.json").write_text(json.dumps({**run, "recipe": recipe}))


def test_without_execution_guided_run(tmp_path):
    text = summarise_demo(_demo_dir(tmp_path, with_eg=False), total_seconds=1800)
    assert "| embedded:smollm2-135m-instruct, zero-shot | greedy | **0.0%**" in text
    assert "| + LoRA (recipes/smollm2-135m/wikisql/sft_cpu.yaml) | greedy | **50.0%**" in text
    assert "execution-guided" not in text.split("| model |")[1].split("\n\n")[0]  # no EG row in the table
    assert "`make demo-eg`" in text and "demo-spider-eg" not in text
    assert "30 min." in text
    assert (tmp_path / "results.md").read_text() == text


def test_execution_guided_added_later_keeps_demo_time(tmp_path):
    demo = _demo_dir(tmp_path, with_eg=False)
    summarise_demo(demo, total_seconds=1800)
    demo = _demo_dir(tmp_path, with_eg=True)  # what make demo-eg adds
    text = summarise_demo(demo)
    assert "| + LoRA, execution-guided | execution-guided | **75.0%**" in text
    assert "+12 s (beam search on 2 questions)" in text
    assert "fixed 1, broken 0" in text
    assert "30 min, execution-guided decoding not included" in text


def test_spider_demo_adds_the_hardness_table_and_the_caveats(tmp_path):
    out = _demo_dir(tmp_path, with_eg=False)
    by_hardness = {
        "easy": {"n": 2, "correct": 1, "execution_accuracy": 0.5},
        "hard": {"n": 2, "correct": 1, "execution_accuracy": 0.5},
    }
    tuned = _metrics(
        0.5,
        by_hardness=by_hardness,
        caveat_examples={"wta_1.rankings is empty": {"n": 1, "correct": 0}},
        execution_accuracy_without_caveats=2 / 3,
        num_without_caveats=3,
    )
    (out / "finetuned" / "metrics.json").write_text(json.dumps(tuned))
    _set_recipe(out, "recipes/smollm2-135m/spider/sft_cpu.yaml")
    text = summarise_demo(out, total_seconds=600)
    assert "| model | easy | hard | all |" in text
    assert "| + LoRA (recipes/smollm2-135m/spider/sft_cpu.yaml) | 50.0% (1/2) | 50.0% (1/2) | 50.0% |" in text
    assert "| embedded:smollm2-135m-instruct, zero-shot | 0.0% (0/0) | 0.0% (0/0) | 0.0% |" in text
    assert "without them the fine-tuned model scores 66.7% (3 questions)" in text
    assert "make demo-spider" in text and "official Spider execution match" in text
    assert "`make demo-spider-eg`" in text and "`make demo-eg`" not in text  # the hint names the Spider EG run


def test_a_spider_demo_of_another_base_names_it_in_its_commands(tmp_path):
    out = _demo_dir(tmp_path, with_eg=False)
    (out / "finetuned" / "metrics.json").write_text(json.dumps(_metrics(0.5, by_hardness={})))
    (out / "zero_shot" / "metrics.json").write_text(json.dumps(_metrics(0.0, model="embedded:gemma3-270m")))
    _set_recipe(out, "recipes/gemma3-270m/spider/sft_cpu.yaml")
    text = summarise_demo(out, total_seconds=600)
    assert "| embedded:gemma3-270m, zero-shot | greedy | **0.0%**" in text
    assert "`make demo-spider-eg DEMO_MODEL=gemma3-270m`" in text
    assert "`make demo-spider DEMO_MODEL=gemma3-270m` (conversion" in text
