"""Merge a LoRA adapter into its base and save a standalone model anyone can load with `from_pretrained`.

The merged model is checked before it is written: on the adapter's own example prompt its logits must equal base +
adapter's within floating-point reassociation error (`|diff| <= atol + rtol * max|logit|`) and its greedy choice must
be the same at every position, so an export can never silently change what the model answers. The folder holds
safetensors weights, the tokenizer, the run record and a model card with the adapter's recorded scores; it is written
to a temporary folder first, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

from t2s.runtime import UserError

import shutil
import tempfile
from pathlib import Path

import torch

from t2s.decoding.models import load_model_and_tokenizer
from t2s.publish.card import load_run, save_run, write_model_card

CHECK_PROMPT = "You are an expert SQL generator.\n\n### Question:\nHow many rows are there?\n\n### SQL:\n"


def export(
    adapter: str,
    output: str,
    *,
    model: str | None = None,
    dtype: str = "float32",
    atol: float = 1e-4,
    rtol: float = 1e-5,
):
    """Merge, verify, save; returns the output folder and the measured logit difference."""
    if not Path(adapter).exists() and "/" not in adapter:
        raise UserError(f"{adapter}: no such adapter folder (or Hub id)")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose another --output")
    unmerged, tokenizer = load_model_and_tokenizer(model, adapter, merge=False, dtype=dtype)
    run = load_run(adapter) if Path(adapter).is_dir() else {}
    prompt = run.get("prompt_example") or CHECK_PROMPT
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
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {
            **run,
            "exported_from_adapter": str(adapter),
            "export_check": {"prompt": prompt, "max_abs_logit_difference": difference, "allowed": allowed},
        }
        save_run(tmp, record)
        write_model_card(tmp, merged=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.move(str(tmp), out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out, difference
