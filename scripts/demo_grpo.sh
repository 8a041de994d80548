#!/usr/bin/env bash
# make demo-grpo: GRPO with the execution reward on top of a finished `make demo` (same DEMO_OUT, DEMO_LIMIT), then
# the same held-out questions greedy and execution-guided, paired against the SFT adapter's runs (McNemar).
# GRPO with recipes/smollm2-135m/wikisql/grpo_cpu.yaml, then the evaluations; measured times: docs/experiments.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo_common.sh
demo_settings wikisql

CANDIDATES=${DEMO_EG_CANDIDATES:-4}
require_demo

step "GRPO 1/4 GRPO from the SFT adapter (recipes/smollm2-135m/wikisql/grpo_cpu.yaml)"
$BIN/accelerate launch --config_file accelerate_configs/cpu.yaml t2s/grpo.py recipes/smollm2-135m/wikisql/grpo_cpu.yaml \
    --sft_adapter "$OUT/adapter" --output_dir "$OUT/grpo" --overwrite_output_dir true
$BIN/t2s grpo-report "$OUT/grpo" --png "$OUT/grpo/reward_curve.png"

step "GRPO 2/4 SFT + GRPO, greedy, on the held-out questions"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/grpo" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/grpo_greedy" \
    --other_run "$OUT/finetuned" --run_name "held-out dev tables, greedy (SFT + GRPO)"
$BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/grpo_greedy" "$OUT/compare_sft_grpo_greedy.json"

step "GRPO 3/4 SFT + GRPO, execution-guided ($CANDIDATES beams where the greedy query fails or returns nothing)"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/grpo" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/grpo_eg" \
    --execution_guided --num_candidates "$CANDIDATES" --predictions "$OUT/grpo_greedy/predictions.jsonl" \
    --run_name "held-out dev tables, execution-guided (SFT + GRPO)"

step "GRPO 4/4 Against the SFT adapter's execution-guided run"
if [[ ! -f "$OUT/finetuned_eg/predictions.jsonl" ]]; then
    bash scripts/demo_eg.sh
fi
$BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned_eg" "$OUT/grpo_eg" "$OUT/compare_sft_grpo_eg.json"
