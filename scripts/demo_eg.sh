#!/usr/bin/env bash
# make demo-eg / make demo-spider-eg: execution-guided decoding on top of a finished `make demo` (WikiSQL: DEMO_OUT,
# DEMO_LIMIT) or `make demo-spider` (`bash scripts/demo_eg.sh spider`: DEMO_SPIDER_OUT, DEMO_SPIDER_LIMIT), on the
# same questions with the same settings. Beam search with DEMO_EG_CANDIDATES beams (default 4) runs only where the
# greedy query errors or returns no rows; the first candidate that executes with a non-empty result is kept, else
# the greedy query. Times: docs/experiments.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo_common.sh
demo_settings "${1:-wikisql}"

CANDIDATES=${DEMO_EG_CANDIDATES:-4}
require_demo
if [[ "${1:-wikisql}" == "spider" ]]; then
    NAME="Spider dev ($LIMIT questions, seed 42), execution-guided"
else
    NAME="held-out dev tables, execution-guided"
fi

step "EG 1/2 Execution-guided decoding ($CANDIDATES beams where the greedy query fails or returns nothing)"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/finetuned_eg" \
    --execution_guided --num_candidates "$CANDIDATES" --predictions "$OUT/finetuned/predictions.jsonl" \
    --run_name "$NAME"

step "EG 2/2 Greedy → execution-guided, and the summary"
$BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/finetuned_eg" "$OUT/compare_greedy_eg.json"
$BIN/python scripts/demo_summary.py "$OUT"
