"""GGUF export: the file holds the merged model's weights, tokenizer and t2s's prompt; read back by transformers'
GGUF loader it answers as the merge does; the Ollama Modelfile renders the canonical prompt."""

from __future__ import annotations

import json

import pytest
import torch

from t2s.data.prompt import fill_prompt

from .tiny_model import save_tiny_model

SCHEMA = "CREATE TABLE customers (\n  customer_id INTEGER,\n  name TEXT,\n  city TEXT\n);"


def _random_adapter(base: str, out, seed: int = 0):
    """A LoRA adapter with random (non-zero) weights, so merging it changes the model."""
    from peft import LoraConfig, get_peft_model

    from t2s.decoding.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(base)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"],
                        init_lora_weights=False)  # fmt: skip
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    base = save_tiny_model(folder / "base", seed=5)
    return _random_adapter(str(base), folder / "adapter")


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_a_gguf_export_reads_back_with_the_merged_weights_tokenizer_and_prompt(tiny_adapter, tmp_path, gguf_type):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s.decoding.models import load_model_and_tokenizer
    from t2s.export import main as export_main
    from t2s.publish.gguf import render_modelfile_prompt
    from t2s.publish.standalone import f16_reference

    out, _ = export_main([str(tiny_adapter), "--output", str(tmp_path / "out"), "--format", "gguf",
                          "--gguf_type", gguf_type, "--min_agreement", "0"])  # fmt: skip
    name = f"model-{gguf_type}.gguf"
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "Modelfile", "README.md", "t2s_run.json"])
    report = json.loads((out / "t2s_run.json").read_text())["gguf"]
    assert report["file"] == name and report["check_questions"] == 9
    merged, tokenizer = load_model_and_tokenizer(adapter=str(tiny_adapter), merge=True)
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=name, dtype=torch.float32).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(str(out), gguf_file=name)
    prompt = fill_prompt(SCHEMA, "Which customers live in Lyon?")
    ids = tokenizer(prompt, return_tensors="pt")
    assert loaded_tokenizer(prompt)["input_ids"] == ids["input_ids"][0].tolist()
    with torch.no_grad():
        from_file = loaded(**ids).logits
        if gguf_type == "f16":  # exactly the merge's weights in half precision
            assert torch.equal(from_file, f16_reference(merged)(**ids).logits)
        else:  # 8-bit blocks: close, not equal
            difference = (from_file - merged(**ids).logits).abs().max().item()
            assert 0 < difference < 0.05 * merged(**ids).logits.abs().max().item()
    messages = [{"role": "system", "content": SCHEMA}, {"role": "user", "content": "Which customers live in Lyon?"}]
    assert loaded_tokenizer.apply_chat_template(messages, tokenize=False) == prompt
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{name}\n") and 'PARAMETER stop "\\n"' in modelfile
    assert "PARAMETER temperature 0" in modelfile
    assert render_modelfile_prompt(modelfile, SCHEMA, "Which customers live in Lyon?") == prompt
    card = (out / "README.md").read_text()
    assert "library_name: gguf" in card and name in card and "ollama create" in card


@pytest.mark.slow  # about 3 minutes on 2 cores: the tiny-model export tests above cover the same code path
def test_the_embedded_models_adapter_merge_exports_to_gguf_with_identical_greedy_sql(tmp_path):
    """The real model: its f16 GGUF file, read back, writes the same SQL as the merge in f16 on every check question
    (the export refuses otherwise) and as the full-precision merge on the questions recorded."""
    from t2s.decoding.embedded import DEFAULT_EMBEDDED, ensure_embedded_model
    from t2s.publish.standalone import export

    adapter = _random_adapter(str(ensure_embedded_model(DEFAULT_EMBEDDED)), tmp_path / "adapter", seed=1)
    out, difference = export(str(adapter), str(tmp_path / "gguf"), fmt="gguf", gguf_type="f16")
    report = json.loads((out / "t2s_run.json").read_text())["gguf"]
    assert report["agreement_with_f16_merge"] == 1.0
    assert report["agreement_with_full_precision_merge"] >= 0.75
    assert 250e6 < report["bytes"] < 300e6  # 134.5M parameters in f16, plus the tokenizer
    assert difference < 1e-3


def test_unsupported_models_and_types_are_refused_with_what_to_do(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from t2s.publish.gguf import write_gguf
    from t2s.runtime import UserError

    from .tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tokenizer)))
    with pytest.raises(UserError, match="convert_hf_to_gguf.py"):
        write_gguf(gpt2, tokenizer, tmp_path / "x.gguf")
    with pytest.raises(UserError, match="must be one of"):
        write_gguf(gpt2, tokenizer, tmp_path / "x.gguf", "q4_k")
    assert not (tmp_path / "x.gguf").exists()
