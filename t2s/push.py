"""Push a trained adapter folder (adapter, tokenizer, model card with its scores, run record) to the Hub.

    python t2s/push.py outputs/smollm2-135m-wikisql-lora --hub_model_id you/smollm2-135m-wikisql-lora [--private]

Run it after `t2s/evaluate_sql.py --adapter …`, so the card carries the execution accuracy and its protocol.
Checkpoints and prediction files stay local.
"""

import t2s.quiet  # noqa: F401  (first: before bitsandbytes is imported)

import argparse

from t2s.errors import run_command
from t2s.hub import check_hub_access, load_run, push_adapter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--hub_model_id", default=None, help="default: the recipe's hub_model_id")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    run = load_run(args.output_dir)
    if not run:
        raise SystemExit(f"{args.output_dir} has no t2s_run.json: not a t2s training output folder")
    repo_id = args.hub_model_id or run.get("hub_model_id")
    check_hub_access(True, repo_id)
    commit = push_adapter(args.output_dir, repo_id, private=args.private or None)
    print(f"Pushed {args.output_dir} to {repo_id} ({commit})")


if __name__ == "__main__":
    run_command(main)
