"""Your own database: describing it without tables.json, training on it, resuming, 4-bit, export, and asking it."""

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from t2s.data import SpiderFormatError, load_spider, load_text2sql

from .conftest import ROOT
from .test_sft import TINY_RECIPE
from .tiny_model import save_tiny_model

OWN = ROOT / "tests" / "fixtures" / "own_data"
OWN_RECIPE = ROOT / "recipes" / "smollm2-135m" / "own_data" / "sft_cpu.yaml"


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(model, out, *extra):
    from t2s.sft import cli

    return cli(
        [
            str(TINY_RECIPE),
            "--model_name_or_path",
            str(model),
            "--output_dir",
            str(out),
            "--dataset_name",
            str(OWN),
            "--dataset_train_split",
            "train",
            "--eval_strategy",
            "no",
            "--log_samples",
            "0",
            "--eval_execution_accuracy_samples",
            "0",
            "--max_length",
            "1024",  # the tiny tokenizer spends many tokens on this schema; 512 would cut every SQL
            *extra,
        ]
    )


def _adapter_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


# --------------------------------------------------------------------------- data


def test_own_database_is_described_without_tables_json():
    ds = load_text2sql(str(OWN), "train", check_gold=True)
    assert len(ds) == 36 and set(ds["db_id"]) == {"shop"}
    prompt = ds[0]["prompt"]
    assert prompt.count("CREATE TABLE") == 4
    assert "PRIMARY KEY (order_id, product_id)" in prompt  # composite key, from SQLite's own catalogue
    assert "FOREIGN KEY (customer_id) REFERENCES customers(customer_id)" in prompt
    assert "signup_date TIME" in prompt and "price NUMBER" in prompt
    assert not (OWN / "tables.json").exists()


def test_gold_that_does_not_run_is_reported_with_file_and_index(tmp_path):
    data = tmp_path / "own"
    shutil.copytree(OWN, data)
    examples = json.loads((data / "train.json").read_text())
    examples[5]["query"] = "SELECT nope FROM customers"
    examples[7]["db_id"] = "warehouse"
    (data / "train.json").write_text(json.dumps(examples))
    with pytest.raises(SpiderFormatError, match=r"train\.json\[5\]: the gold query does not run .*no such column"):
        load_spider(data, "train", check_gold=True)
    with pytest.raises(SpiderFormatError, match=r"train\.json\[7\]: no database file .*warehouse"):
        load_spider(data, "train")
    kept = load_spider(data, "train", check_gold=True, on_error="skip")
    assert len(kept) == 34


def test_the_own_data_recipe_trains_through_the_script(tiny_model, tmp_path):
    """The README's recipe, with the tiny model in place of the embedded one (the code path is the same)."""
    from t2s.sft import cli

    out = tmp_path / "adapter"
    trainer = cli(
        [str(OWN_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(out), "--max_steps", "2"]
    )
    assert trainer.state.global_step == 2 and (out / "adapter_model.safetensors").exists()
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["train_examples"] == 36 and "own_data" in run["train_protocol"]


def test_sft_continues_an_adapter_instead_of_a_fresh_lora(tiny_model, tmp_path):
    """init_adapter: the run starts from that adapter's LoRA weights (a run at learning rate 0 ends with them
    exactly; a fresh LoRA starts with B = 0), on its base, and the record and card say so."""
    from t2s.data.run_record import load_run
    from t2s.runtime import UserError

    _train(tiny_model, tmp_path / "first", "--max_steps", "2", "--lora_dropout", "0.0")
    first = _adapter_weights(tmp_path / "first")
    assert any(name.endswith("lora_B.weight") and v.abs().sum() > 0 for name, v in first.items())
    _train(tiny_model, tmp_path / "kept", "--max_steps", "1", "--learning_rate", "0.0",
           "--init_adapter", str(tmp_path / "first"))  # fmt: skip
    kept = _adapter_weights(tmp_path / "kept")
    assert kept.keys() == first.keys() and all(torch.equal(kept[k], first[k]) for k in first)
    _train(tiny_model, tmp_path / "moved", "--max_steps", "2", "--init_adapter", str(tmp_path / "first"))
    moved = _adapter_weights(tmp_path / "moved")
    assert any(not torch.equal(moved[k], first[k]) for k in first)  # and it trains
    run = load_run(tmp_path / "moved")
    assert run.init_adapter == str(tmp_path / "first")
    assert "continuing the adapter `first`" in (tmp_path / "moved" / "README.md").read_text()
    with pytest.raises(UserError, match="continues init_adapter .* remove lora_top_layers"):
        _train(tiny_model, tmp_path / "layers", "--init_adapter", str(tmp_path / "first"), "--lora_top_layers", "1")


# --------------------------------------------------------------------------- resume


def test_resumed_run_ends_with_the_same_adapter(tiny_model, tmp_path, monkeypatch):
    import transformers

    common = ("--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--lora_dropout", "0.0")
    _train(tiny_model, tmp_path / "straight", *common)

    real_step = transformers.Trainer.training_step
    calls = {"n": 0}

    def crash_after_two(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash after checkpoint-2")
        time.sleep(0.5)  # a first stretch long enough to see in the resumed run's training time
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_model, tmp_path / "resumed", *common)
    monkeypatch.setattr(transformers.Trainer, "training_step", real_step)
    assert (tmp_path / "resumed" / "checkpoint-2").exists()
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    state = json.loads((tmp_path / "resumed" / "checkpoint-2" / "trainer_state.json").read_text())
    first_stretch = [e["training_time_s"] for e in state["log_history"] if "training_time_s" in e]
    assert len(first_stretch) == 1 and first_stretch[0] >= 1.0  # two steps of 0.5 s, stamped before the save

    trainer = _train(tiny_model, tmp_path / "resumed", *common)  # the same command again: resumes
    assert trainer.state.global_step == 4
    straight, resumed = _adapter_weights(tmp_path / "straight"), _adapter_weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.allclose(straight[name], resumed[name], atol=1e-6), name

    from t2s.data.run_record import load_run
    from t2s.publish.card import record_scores
    from t2s.runtime import UserError

    run = load_run(tmp_path / "resumed")
    assert run.resumed_from.endswith("checkpoint-2") and run.global_step == 4
    # the whole run's time: the crashed stretch's, recorded in checkpoint-2, and this process's
    assert run.training_time_s > first_stretch[0] and run.training_time_from_step is None
    # Re-running a finished run with nothing left to train is refused (transformers would take one more step) and
    # says how to continue; a larger step budget continues it from its last checkpoint.
    record_scores(tmp_path / "resumed", "dev", {"execution_accuracy": 0.5, "protocol": "p", "decoding": "greedy"})
    with pytest.raises(UserError, match="holds a finished run .* ends at step 4: nothing left to train.*--max_steps"):
        _train(tiny_model, tmp_path / "resumed", *common)
    assert load_run(tmp_path / "resumed").scores["dev"]["execution_accuracy"] == 0.5  # untouched
    longer = ("--max_steps", "6", *common[2:])
    # a checkpoint written without the clock (an older t2s): the time is counted from it, and the record says so
    state_file = tmp_path / "resumed" / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"] = [e for e in state["log_history"] if "training_time_s" not in e]
    state_file.write_text(json.dumps(state))
    trainer = _train(tiny_model, tmp_path / "resumed", *longer)
    run = load_run(tmp_path / "resumed")
    assert trainer.state.global_step == 6 and run.resumed_from.endswith("checkpoint-4")
    assert run.training_time_from_step == 4
    card = (tmp_path / "resumed" / "README.md").read_text()
    assert "(from step 4; earlier stretches not recorded)" in card
    with pytest.raises(UserError, match="nothing left to train"):
        _train(tiny_model, tmp_path / "resumed", *longer)

    # A finished adapter is never overwritten silently; an explicit flag starts afresh.
    for checkpoint in (tmp_path / "resumed").glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    with pytest.raises(UserError, match="already holds a trained adapter"):
        _train(tiny_model, tmp_path / "resumed", *common)
    trainer = _train(tiny_model, tmp_path / "resumed", *common, "--overwrite_output_dir", "true")
    assert trainer.state.global_step == 4
    assert load_run(tmp_path / "resumed").scores == {}  # a new adapter: the old scores are not carried over
    with pytest.raises(UserError, match="not a checkpoint folder"):
        _train(tiny_model, tmp_path / "other", *common, "--resume_from_checkpoint", str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------- QLoRA on the CPU


def test_4bit_qlora_step_through_the_gpu_recipes_code_path(tmp_path):
    """nf4 + double quantisation, k-bit preparation, adapter saving: what recipes/mistral_lora.yaml does on a GPU,
    with fp32 compute because bitsandbytes' CPU backend is the one here (fp16 compute stays GPU-only).

    The model is 128 wide: bitsandbytes' CPU kernels pack 4-bit weights in blocks of 64 input features and fail on
    layers narrower than that (the 32-wide tiny model), which no real model has."""
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "qlora"
    trainer = _train(
        save_tiny_model(tmp_path / "model", hidden_size=128),
        out,
        "--max_steps",
        "1",
        "--load_in_4bit",
        "true",
        "--bnb_4bit_quant_type",
        "nf4",
        "--use_bnb_nested_quant",
        "true",
        "--dtype",
        "float32",
    )
    import bitsandbytes as bnb

    base = trainer.model.get_base_model()
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in base.modules())
    assert base.is_loaded_in_4bit
    weights = _adapter_weights(out)
    assert weights and all("lora_" in k for k in weights)
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["quantization"]["bnb_4bit_quant_type"] == "nf4" and run["quantization"]["bnb_4bit_use_double_quant"]


# --------------------------------------------------------------------------- export


def test_export_merges_and_gives_the_same_logits(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from t2s.decoding.models import load_model_and_tokenizer
    from t2s.export import main as export_main
    from t2s.runtime import UserError

    adapter = tmp_path / "adapter"
    _train(tiny_model, adapter, "--max_steps", "2", "--learning_rate", "0.05")
    out, difference = export_main([str(adapter), "--output", str(tmp_path / "merged")])
    assert difference < 1e-4
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "merged" in card

    standalone = AutoModelForCausalLM.from_pretrained(out).eval()
    with_adapter, tokenizer = load_model_and_tokenizer(adapter=str(adapter))
    ids = tokenizer("SELECT count(*) FROM customers", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(standalone(**ids).logits, with_adapter(**ids).logits, atol=1e-4)
        base, _ = load_model_and_tokenizer(str(tiny_model))
        assert not torch.allclose(base(**ids).logits, with_adapter(**ids).logits, atol=1e-4)  # the adapter matters
    with pytest.raises(UserError, match="not empty"):
        export_main([str(adapter), "--output", str(out)])


# --------------------------------------------------------------------------- ask


def test_ask_runs_the_sql_read_only_and_prints_the_result(tiny_model, tmp_path, capsys, monkeypatch):
    from t2s import ask

    db = tmp_path / "shop.sqlite"
    shutil.copy(OWN / "database" / "shop" / "shop.sqlite", db)
    before = _sha(db)
    rigged = iter(["SELECT name, city FROM customers WHERE city = 'Lyon'", "DELETE FROM customers"])
    monkeypatch.setattr("t2s.decoding.predict.generate_sql", lambda *a, **k: [[next(rigged)]])
    sql, result = ask.main(["--model", str(tiny_model), "--db", str(db), "Who lives in Lyon?"])
    assert result.status == "ok" and sorted(result.rows) == [("Alice Martin", "Lyon"), ("Chen Wei", "Lyon")]
    printed = capsys.readouterr().out
    assert "Alice Martin" in printed and "2 row(s)" in printed
    sql, result = ask.main(["--model", str(tiny_model), "--db", str(db), "Delete everyone"])
    assert result.status == "rejected"
    assert _sha(db) == before


def test_csv_and_parquet_files_are_read_by_duckdb_and_left_unchanged(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from t2s.data.schema import from_engine
    from t2s.execution.engines.duckdb import from_files

    (tmp_path / "people.csv").write_text("name,age,zip,score\nAnn,31,007,1.5\nBob,,012,2\n")
    (tmp_path / "2024 sales.csv").write_text("id;amount\n1;19.90\n2;5\n")
    pq.write_table(pa.table({"city": ["Lyon", "Madrid"], "population": [522_000, 3_300_000]}), tmp_path / "c.parquet")
    before = {p.name: _sha(p) for p in tmp_path.iterdir()}
    engine = from_files([str(tmp_path / "people.csv"), str(tmp_path / "2024 sales.csv"), str(tmp_path / "c.parquet")])
    schema = from_engine(engine, "files")
    assert schema.dialect == "duckdb" and schema.table_names() == ["c", "people", "t_2024_sales"]  # by name
    types = {c.name: c.type for t in schema.tables for c in t.columns}
    assert types == {
        "name": "VARCHAR",
        "age": "BIGINT",
        "zip": "VARCHAR",  # a code with a leading zero stays text
        "score": "DOUBLE",
        "id": "BIGINT",
        "amount": "DOUBLE",
        "city": "VARCHAR",
        "population": "BIGINT",
    }
    assert engine.run("SELECT age FROM people WHERE name = 'Bob'").rows == [(None,)]
    assert engine.run("SELECT sum(amount) FROM t_2024_sales").rows[0][0] == pytest.approx(24.9)
    assert engine.run("DELETE FROM people").status == "rejected"
    assert engine.run(f"SELECT * FROM read_csv('{tmp_path / 'people.csv'}')").status == "rejected"
    folder = engine._owned_folder
    engine.close()
    assert not Path(folder).exists()  # the private copy goes with the engine
    assert {p.name: _sha(p) for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (lambda d: None, lambda d: ["--db", str(d / "missing.sqlite")], "no such file"),
        (
            lambda d: (d / "x.sqlite").write_text("id,name\n1,a\n"),
            lambda d: ["--db", str(d / "x.sqlite")],
            "not an SQLite database",
        ),
        (
            lambda d: (d / "bad.csv").write_text("a,b\n1,2\n3\n"),
            lambda d: ["--csv", str(d / "bad.csv")],
            "bad.csv:3: 1 fields for 2 columns",
        ),
        (
            lambda d: (d / "dup.csv").write_text("a,A\n1,2\n"),
            lambda d: ["--csv", str(d / "dup.csv")],
            "distinct, non-empty name",
        ),
    ],
)
def test_ask_refuses_bad_files_with_a_message(tmp_path, setup, args, message):
    import subprocess
    import sys

    setup(tmp_path)
    out = subprocess.run(
        [sys.executable, "t2s/ask.py", *args(tmp_path), "a question"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in " ".join(out.stderr.split())


def test_ask_with_the_embedded_model_prints_an_answer(tmp_path):
    """The real model, zero-shot, on the fixture database: an answer is printed (SQL and its result or error) and the
    file is unchanged. Which answer the untrained model gives is not the point here."""
    import subprocess
    import sys

    from t2s.decoding.embedded import DEFAULT_EMBEDDED, ensure_embedded_model

    ensure_embedded_model(DEFAULT_EMBEDDED)
    db = tmp_path / "shop.sqlite"
    shutil.copy(OWN / "database" / "shop" / "shop.sqlite", db)
    before = _sha(db)
    out = subprocess.run(
        [sys.executable, "t2s/ask.py", "--db", str(db), "--max_new_tokens", "32", "How many customers are there?"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Q: How many customers are there?" in out.stdout
    assert "row(s)" in out.stdout or any(s in out.stdout for s in ("rejected", "exec_error", "empty", "timeout"))
    assert _sha(db) == before
