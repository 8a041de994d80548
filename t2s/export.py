"""Merge a LoRA adapter into its base and save a standalone model anyone can load with `from_pretrained`.

    t2s export outputs/demo_spider/adapter --output exported/smollm2-135m-spider
    t2s export outputs/demo_spider/adapter --output exported/x --push_to_hub --hub_model_id you/name
    t2s export outputs/demo_spider/adapter --output exported/gguf --format gguf --gguf_type q8_0

The merged model's logits are checked against base + adapter before anything is written (t2s/publish/standalone.py);
`t2s/ask.py --model DIR` and `t2s/evaluate_sql.py --model DIR` use the folder like any model. `--format gguf` writes
one GGUF file for llama.cpp/Ollama/LM Studio and an Ollama `Modelfile`, read back and checked on greedy SQL first.
"""

from __future__ import annotations

import argparse
import sys

from t2s.data.run_record import load_run
from t2s.publish.gguf import GGUF_TYPES
from t2s.publish.hub import check_hub_access, push_folder
from t2s.publish.standalone import FORMATS, export
from t2s.runtime import run_command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", help="a t2s adapter folder (or Hub id)")
    parser.add_argument("--output", required=True, help="new folder for the merged model")
    parser.add_argument("--model", default=None, help="the base (default: the one the adapter was trained on)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="saved dtype")
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute part of the allowed logit difference")
    parser.add_argument("--rtol", type=float, default=1e-5, help="relative part (times the largest logit)")
    parser.add_argument("--format", default="safetensors", choices=FORMATS, help="safetensors folder or one GGUF file")
    parser.add_argument("--gguf_type", default="f16", choices=GGUF_TYPES, help="GGUF weights: f16 or 8-bit q8_0")
    parser.add_argument(
        "--min_agreement", type=float, default=0.75, help="q8_0: share of check questions with the merge's greedy SQL"
    )
    parser.add_argument("--push_to_hub", action="store_true", help="upload the merged model after writing it")
    parser.add_argument("--hub_model_id", default=None, help="the Hub repository to push to (you/name)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.push_to_hub:
        check_hub_access(True, args.hub_model_id)  # before the work, not after it
    out, difference = export(
        args.adapter,
        args.output,
        model=args.model,
        dtype=args.dtype,
        atol=args.atol,
        rtol=args.rtol,
        fmt=args.format,
        gguf_type=args.gguf_type,
        min_agreement=args.min_agreement,
    )
    print(f"Wrote the merged model to {out} (largest logit difference to base + adapter: {difference:.1e}).")
    if args.format == "gguf":
        report = load_run(out).gguf
        print(
            f"{report['file']}: {report['bytes'] / 1e6:.0f} MB; greedy SQL read back from the file agrees with the "
            f"merged model on {report['agreement_with_full_precision_merge']:.0%} of {report['check_questions']} check "
            "questions" + (" (and on all of them with the merge in f16)" if report["type"] == "f16" else "")
        )
    if args.push_to_hub:
        commit = push_folder(out, args.hub_model_id, private=args.private or None, merged=True)
        print(f"Pushed to {args.hub_model_id} ({commit})")
    return out, difference


if __name__ == "__main__":
    run_command(main)
