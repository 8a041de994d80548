#!/usr/bin/env bash
# make demo-eg: execution-guided decoding on top of a finished `make demo` (same DEMO_OUT, DEMO_LIMIT).
# Beam search with DEMO_EG_CANDIDATES beams (default 4) runs only where the greedy query errors or returns no rows;
# the first candidate that executes with a non-empty result is kept, else the greedy query.
# About 6–11 minutes at 4 beams (measured runs: docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo_common.sh

CANDIDATES=${DEMO_EG_CANDIDATES:-4}
require_demo

step "EG 1/2 Execution-guided decoding ($CANDIDATES beams where the greedy query fails or returns nothing)"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/finetuned_eg" \
    --execution_guided --num_candidates "$CANDIDATES" --predictions "$OUT/finetuned/predictions.jsonl" \
    --run_name "held-out dev tables, execution-guided"

step "EG 2/2 Greedy → execution-guided, and the summary"
$BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/finetuned_eg" "$OUT/compare_greedy_eg.json"
$BIN/python -m t2s.demo_summary "$OUT"
