r"""Score a model by executing its SQL, explain its errors, and compare two runs.

    # fine-tuned adapter on 500 questions from held-out dev tables (greedy), with error analysis
    t2s evaluate --adapter outputs/smollm2-135m-wikisql-lora --table_split heldout --limit 500 \
        --output_dir outputs/eval/finetuned
    # the same questions, base model only (zero-shot baseline)
    t2s evaluate --model embedded:smollm2-135m-instruct --table_split heldout --limit 500 \
        --output_dir outputs/eval/zero_shot
    # paired comparison: both accuracies, fixed/broken counts, McNemar's exact test
    t2s compare outputs/eval/zero_shot outputs/eval/finetuned [OUTPUT_JSON]

Each run writes `predictions.jsonl` (one line per question, with its outcome), `metrics.json` (scores
and protocol), `analysis.{md,json,png}`, and records the score in the adapter's model card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from t2s.evaluation.compare import compare
from t2s.evaluation.runner import EvaluateArguments, evaluate_run
from t2s.runtime import parse_command, run_command


def compare_main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(
        prog="t2s compare",
        description="Paired comparison of two evaluations of the same questions: both accuracies, fixed/broken "
        "counts and McNemar's exact test.",
    )
    parser.add_argument("run_a", help="the first evaluation's output_dir (predictions.jsonl, metrics.json)")
    parser.add_argument("run_b", help="the second evaluation's output_dir, on the same questions")
    parser.add_argument("output_json", nargs="?", help="also write the comparison to this JSON file")
    parser.add_argument(
        "--shared_questions",
        action="store_true",
        help="runs on different questions (e.g. all of dev against a subset): compare on the questions both scored",
    )
    args = parser.parse_args(argv)
    result = compare(args.run_a, args.run_b, shared_questions=args.shared_questions)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    (args,) = parse_command(EvaluateArguments, __doc__, argv)
    return evaluate_run(args)


if __name__ == "__main__":
    run_command(main)
