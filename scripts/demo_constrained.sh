#!/usr/bin/env bash
# make demo-constrained: schema-constrained decoding on the questions of finished demos, against their unconstrained
# runs (same questions, paired, McNemar). Needs `make demo` (WikiSQL) and/or `make demo-spider`; runs what it finds.
#   WikiSQL (DEMO_OUT, default outputs/demo): zero-shot and fine-tuned, constrained greedy; fine-tuned constrained + EG.
#   Spider (DEMO_SPIDER_OUT, default outputs/demo_spider): zero-shot and fine-tuned, constrained greedy.
# Times and figures: docs/experiments.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo_common.sh

demo_settings spider
SPIDER_OUT=$OUT SPIDER_LIMIT=$LIMIT SPIDER_EVAL=("${EVAL[@]}")
demo_settings wikisql
ran=0

if [[ -f "$OUT/adapter/adapter_config.json" && -f "$OUT/finetuned/predictions.jsonl" ]]; then
    ran=1
    step "WikiSQL 1/3 Zero-shot, schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py --model embedded:smollm2-135m-instruct "${EVAL[@]}" --constrained_decoding \
        --output_dir "$OUT/zero_shot_constrained"
    $BIN/python t2s/evaluate_sql.py compare "$OUT/zero_shot" "$OUT/zero_shot_constrained" \
        "$OUT/compare_zero_shot_constrained.json"
    step "WikiSQL 2/3 Fine-tuned, schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --constrained_decoding \
        --output_dir "$OUT/finetuned_constrained" --run_name "held-out dev tables, schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/finetuned_constrained" \
        "$OUT/compare_finetuned_constrained.json"
    step "WikiSQL 3/3 Fine-tuned, schema-constrained + execution-guided"
    $BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --constrained_decoding \
        --execution_guided --num_candidates 4 --predictions "$OUT/finetuned_constrained/predictions.jsonl" \
        --output_dir "$OUT/finetuned_constrained_eg" --run_name "held-out dev tables, schema-constrained + EG"
    $BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/finetuned_constrained_eg" \
        "$OUT/compare_finetuned_constrained_eg.json"
fi

if [[ -f "$SPIDER_OUT/adapter/adapter_config.json" && -f "$SPIDER_OUT/finetuned/predictions.jsonl" ]]; then
    ran=1
    step "Spider 1/2 Zero-shot, schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py --model embedded:smollm2-135m-instruct "${SPIDER_EVAL[@]}" --constrained_decoding \
        --output_dir "$SPIDER_OUT/zero_shot_constrained"
    $BIN/python t2s/evaluate_sql.py compare "$SPIDER_OUT/zero_shot" "$SPIDER_OUT/zero_shot_constrained" \
        "$SPIDER_OUT/compare_zero_shot_constrained.json"
    step "Spider 2/2 Fine-tuned, schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py --adapter "$SPIDER_OUT/adapter" --merge_adapter "${SPIDER_EVAL[@]}" \
        --constrained_decoding --output_dir "$SPIDER_OUT/finetuned_constrained" \
        --run_name "Spider dev ($SPIDER_LIMIT questions, seed 42), schema-constrained greedy"
    $BIN/python t2s/evaluate_sql.py compare "$SPIDER_OUT/finetuned" "$SPIDER_OUT/finetuned_constrained" \
        "$SPIDER_OUT/compare_finetuned_constrained.json"
fi

if [[ "$ran" == "0" ]]; then
    echo "error: no finished demo in $OUT or $SPIDER_OUT: run \`make demo\` or \`make demo-spider\` first." >&2
    exit 2
fi
