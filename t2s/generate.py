r"""Generate SQL with a base model, a base model + LoRA adapter, or a merged model, for either dataset.

    t2s generate --adapter outputs/smollm2-135m-wikisql-lora --table_split heldout --limit 500 \
        --output predictions.jsonl
    t2s generate --model embedded:smollm2-135m-instruct --dataset_name spider --limit 100 \
        --output zero_shot.jsonl

Prompts come from the same builder as training (`t2s.data.prompt`, through the dataset readers); decoding is greedy
by default and stops at the first newline or EOS (`t2s.decoding`). To score the SQL as well, use
`t2s/evaluate_sql.py`, which takes the same options.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from t2s.data.common import write_jsonl
from t2s.decoding.decoding_arguments import DecodingArguments
from t2s.decoding.predict import run_predictions
from t2s.decoding.sharding import is_main_process
from t2s.runtime import parse_command, run_command


@dataclass
class GenerateArguments(DecodingArguments):
    output: str = field(default="predictions.jsonl", metadata={"help": "The JSON Lines file to write."})


def main(argv=None):
    (args,) = parse_command(GenerateArguments, __doc__, argv)
    dataset, records, elapsed = run_predictions(args)
    if not is_main_process():  # under accelerate launch: the main process writes every process's records
        return
    write_jsonl(args.output, records)
    print(f"Wrote {len(records)} predictions to {args.output} in {elapsed:.0f} s ({dataset.info.description}).")


if __name__ == "__main__":
    run_command(main, sys.argv[1:])
