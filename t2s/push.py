"""Push a trained adapter folder (adapter, tokenizer, model card with its scores, run record) to the Hub.

    t2s push outputs/smollm2-135m-wikisql-lora --hub_model_id you/smollm2-135m-wikisql-lora [--private]

Run it after `t2s/evaluate_sql.py --adapter …`, so the card carries the execution accuracy and its protocol.
Checkpoints and prediction files stay local. An exported (merged) model is pushed by `t2s/export.py --push_to_hub`.
"""

import argparse

from t2s.data.run_record import load_run
from t2s.publish.hub import check_hub_access, push_folder
from t2s.runtime import UserError, run_command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a t2s training output folder (with t2s_run.json)")
    parser.add_argument("--hub_model_id", default=None, help="default: the recipe's hub_model_id")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(argv)
    run = load_run(args.output_dir)
    if run is None:
        raise UserError(f"{args.output_dir} has no t2s_run.json: not a t2s training output folder")
    repo_id = args.hub_model_id or run.hub_model_id
    check_hub_access(True, repo_id)
    commit = push_folder(args.output_dir, repo_id, private=args.private or None)
    print(f"Pushed {args.output_dir} to {repo_id} ({commit})")


if __name__ == "__main__":
    run_command(main)
