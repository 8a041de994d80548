"""Merge a LoRA adapter into its base and save a standalone model: safetensors for `from_pretrained`, or one GGUF
file (with an Ollama `Modelfile`) for llama.cpp, Ollama and LM Studio.

The merged model is checked before it is written: on the adapter's own example prompt its logits must equal base +
adapter's within floating-point reassociation error (`|diff| <= atol + rtol * max|logit|`) and its greedy choice must
be the same at every position, so an export can never silently change what the model answers. The folder holds
safetensors weights, the tokenizer, the run record and a model card with the adapter's recorded scores; it is written
to a temporary folder first, so an interrupted export leaves nothing half-written.

A GGUF export is verified too, after writing and before the folder is moved into place: transformers' GGUF loader
reads the file back, and the greedy SQL it writes for a sample of questions (its own tokenizer from the file, t2s's
generation) is compared with the merged model's. `f16` must agree on every question with the merged model in half
precision (the same weights the file holds); its agreement with the full-precision merge is measured and recorded,
and so is `q8_0`'s, which must reach `min_agreement`.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from t2s.data.prompt import fill_prompt, with_prompt_template
from t2s.data.run_record import RunRecord, load_run, save_run
from t2s.decoding.models import load_model_and_tokenizer
from t2s.publish.card import write_model_card
from t2s.runtime import UserError

CHECK_PROMPT = "You are an expert SQL generator.\n\n### Question:\nHow many rows are there?\n\n### SQL:\n"
FORMATS = ("safetensors", "gguf")
# The questions a GGUF export is checked on: a small shop schema, in the canonical prompt.
CHECK_SCHEMA = """CREATE TABLE customers (
  customer_id INTEGER,
  name TEXT,
  city TEXT,
  PRIMARY KEY (customer_id)
);
CREATE TABLE orders (
  order_id INTEGER,
  customer_id INTEGER,
  order_date TIME,
  status TEXT,
  PRIMARY KEY (order_id),
  FOREIGN KEY (customer_id) REFERENCES customers(customer_id)
);"""
CHECK_QUESTIONS = (
    "How many customers are there?",
    "Which customers live in Lyon?",
    "How many orders were shipped?",
    "List the names of customers who placed an order in May 2024.",
    "What is the status of order 7?",
    "How many orders did each customer place?",
    "Which city has the most customers?",
    "Show the names of customers with no orders.",
)


def export(
    adapter: str,
    output: str,
    *,
    model: str | None = None,
    dtype: str = "float32",
    atol: float = 1e-4,
    rtol: float = 1e-5,
    fmt: str = "safetensors",
    gguf_type: str = "f16",
    min_agreement: float = 0.75,
    check_prompts: list[str] | None = None,
):
    """Merge, verify, save; returns the output folder and the measured logit difference."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} must be one of {FORMATS}")
    if not Path(adapter).exists() and "/" not in adapter:
        raise UserError(f"{adapter}: no such adapter folder (or Hub id)")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose another --output")
    unmerged, tokenizer = load_model_and_tokenizer(model, adapter, merge=False, dtype=dtype)
    if fmt == "gguf":
        from t2s.publish.gguf import check_writable

        check_writable(unmerged.config, tokenizer, gguf_type)  # a model t2s cannot write is refused before the merge
    run = (load_run(adapter) if Path(adapter).is_dir() else None) or RunRecord()
    prompt = run.prompt_example or CHECK_PROMPT
    with torch.no_grad():
        ids = tokenizer(prompt, return_tensors="pt").to(next(unmerged.parameters()).device)
        expected = unmerged(**ids).logits.float()
        merged = unmerged.merge_and_unload()  # in place: `expected` was computed first
        got = merged(**ids).logits.float()
    difference = (got - expected).abs().max().item()
    allowed = atol + rtol * expected.abs().max().item()
    same_choices = torch.equal(got.argmax(-1), expected.argmax(-1))
    if difference > allowed or not same_choices:
        raise RuntimeError(
            f"the merged model's logits differ from base + adapter by {difference:.2e} (allowed {allowed:.2e}; "
            f"same greedy tokens: {same_choices}); nothing was written"
        )
    # Write to a temporary folder first: an interrupted export never leaves a half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent if out.parent.exists() else None))
    try:
        record = replace(
            run,
            exported_from_adapter=str(adapter),
            export_check={"prompt": prompt, "max_abs_logit_difference": difference, "allowed": allowed},
        )
        if fmt == "gguf":
            prompts = check_prompts or [prompt, *(fill_prompt(CHECK_SCHEMA, q) for q in CHECK_QUESTIONS)]
            record.gguf = write_checked_gguf(merged, tokenizer, tmp, gguf_type, prompts, min_agreement, run)
        else:
            merged.save_pretrained(tmp, safe_serialization=True)
            with_prompt_template(tokenizer).save_pretrained(tmp)
        save_run(tmp, record)
        write_model_card(tmp, merged=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the export is an ordinary folder
        shutil.move(str(tmp), out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out, difference


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def greedy_sql(model, tokenizer, prompts: list[str], max_new_tokens: int = 64) -> list[str]:
    """t2s's greedy decoding, one prompt at a time (no padding: the comparison is about the weights, not batching)."""
    from t2s.decoding.generation import generate_sql
    from t2s.decoding.settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1)
    return [c[0] for c in generate_sql(model, tokenizer, prompts, settings)]


def f16_reference(model):
    """A copy of `model` with every matrix rounded to half precision, as an f16 GGUF file stores it (vectors such as
    the norms stay f32 there, and here)."""
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in rounded.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(parameter.half().float())
    return rounded


def write_checked_gguf(
    merged, tokenizer, folder: Path, gguf_type: str, prompts, min_agreement: float, run: RunRecord
) -> dict:
    """Write the GGUF file and its Modelfile into `folder`, read the file back and compare greedy SQL (see above)."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s.publish.gguf import modelfile, write_gguf

    name = f"model-{gguf_type}.gguf"
    label = run.run_name or run.base_model or "t2s model"
    write_gguf(merged, tokenizer, folder / name, gguf_type, name=str(label))
    (folder / "Modelfile").write_text(modelfile(name, tokenizer.eos_token))
    started = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
    for text in prompts:
        if loaded_tokenizer(text)["input_ids"] != tokenizer(text)["input_ids"]:
            raise RuntimeError(
                f"the GGUF file's tokenizer splits a check prompt differently; nothing was written: {text!r}"
            )
    from_file = greedy_sql(loaded, loaded_tokenizer, prompts)
    full = greedy_sql(merged, tokenizer, prompts)
    agreement = sum(a == b for a, b in zip(from_file, full)) / len(prompts)
    report = {
        "file": name,
        "type": gguf_type,
        "bytes": (folder / name).stat().st_size,
        "check_questions": len(prompts),
        "agreement_with_full_precision_merge": agreement,
        "check_seconds": round(time.perf_counter() - started, 1),
    }
    if gguf_type == "f16":
        rounded = f16_reference(merged)
        same = greedy_sql(rounded, tokenizer, prompts)
        report["agreement_with_f16_merge"] = sum(a == b for a, b in zip(from_file, same)) / len(prompts)
        if from_file != same:
            diffs = [(a, b) for a, b in zip(from_file, same) if a != b]
            raise RuntimeError(
                f"the f16 GGUF file answers {len(diffs)} of {len(prompts)} check questions differently from the merged "
                f"model in f16 (first: {diffs[0][0]!r} vs {diffs[0][1]!r}); nothing was written"
            )
    elif agreement < min_agreement:
        raise RuntimeError(
            f"the {gguf_type} GGUF file agrees with the merged model on {agreement:.0%} of {len(prompts)} check "
            f"questions (required: {min_agreement:.0%}); nothing was written (use f16, or lower --min_agreement)"
        )
    return report
