"""Merge a LoRA adapter into its base and save a standalone model anyone can load with `from_pretrained`.

    python t2s/export.py outputs/demo_spider/adapter --output exported/smollm2-135m-spider
    python t2s/export.py outputs/demo_spider/adapter --output exported/x --push_to_hub --hub_model_id you/name

The merged model is checked before it is written: on the adapter's own example prompt its logits must equal base +
adapter's within floating-point reassociation error (`|diff| <= atol + rtol * max|logit|`, default 1e-4 + 1e-5 ×
about 30 for SmolLM2) and its greedy choice must be the same at every position, so an export can never silently
change what the model answers. The folder
holds safetensors weights, the tokenizer, the run record and a model card with the adapter's recorded scores;
`t2s/ask.py --model DIR` and `t2s/evaluate_sql.py --model DIR` use it like any model.
"""

from __future__ import annotations

import t2s.quiet  # noqa: F401  (first: before bitsandbytes is imported)

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from t2s.errors import UserError, run_command
from t2s.hub import check_hub_access, load_run, save_run, write_model_card

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
    from t2s.generate import load_model_and_tokenizer

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


def push(output: str, repo_id: str, private: bool | None = None) -> str:
    from huggingface_hub import HfApi

    check_hub_access(True, repo_id)
    write_model_card(output, repo_id, merged=True)
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=private)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(output), commit_message="Upload t2s merged model"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", help="a t2s adapter folder (or Hub id)")
    parser.add_argument("--output", required=True, help="new folder for the merged model")
    parser.add_argument("--model", default=None, help="the base (default: the one the adapter was trained on)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute part of the allowed logit difference")
    parser.add_argument("--rtol", type=float, default=1e-5, help="relative part (times the largest logit)")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", default=None)
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.push_to_hub:
        check_hub_access(True, args.hub_model_id)  # before the work, not after it
    out, difference = export(
        args.adapter, args.output, model=args.model, dtype=args.dtype, atol=args.atol, rtol=args.rtol
    )
    print(f"Wrote the merged model to {out} (largest logit difference to base + adapter: {difference:.1e}).")
    if args.push_to_hub:
        print(f"Pushed to {args.hub_model_id} ({push(str(out), args.hub_model_id, args.private or None)})")
    return out, difference


if __name__ == "__main__":
    run_command(main)
