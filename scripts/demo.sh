#!/usr/bin/env bash
# make demo: the whole t2s loop, offline, on CPU, with the embedded model and WikiSQL dev from $T2S_WIKISQL_DIR
# (default ../shared/wikisql). Zero-shot baseline → LoRA training → greedy evaluation → error analysis →
# before/after comparison with McNemar's test. Measured times: docs/experiments.md (plus installation on a fresh machine).
# DEMO_EG=1 adds execution-guided decoding at the end (scripts/demo_eg.sh); `make demo-eg`
# runs that part alone on an existing demo directory.
#
# Data protocol: WikiSQL dev split by table (20% of tables held out, holdout seed 42). Training uses questions on the
# other tables (recipes/smollm2-135m/wikisql/sft_cpu.yaml); every score is on DEMO_LIMIT questions from the held-out tables, schema
# only in the prompt. These are "WikiSQL dev, held-out tables" scores, not WikiSQL test scores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo_common.sh
demo_settings wikisql

start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
step "1/6 Convert the embedded model (once; cached in \${T2S_CACHE:-~/.cache/t2s})"
$BIN/python -c "from t2s.decoding.embedded import ensure_embedded_model; print(ensure_embedded_model())"

step "2/6 Zero-shot baseline: SmolLM2-135M-Instruct, no adapter, $LIMIT held-out questions"
$BIN/python t2s/evaluate_sql.py --model embedded:smollm2-135m-instruct "${EVAL[@]}" --output_dir "$OUT/zero_shot"

step "3/6 Train recipes/smollm2-135m/wikisql/sft_cpu.yaml on the training tables"
$BIN/accelerate launch --config_file accelerate_configs/cpu.yaml t2s/sft.py recipes/smollm2-135m/wikisql/sft_cpu.yaml \
    --output_dir "$OUT/adapter"

# The adapter is merged into the base for generation: the same weights, without 210 small LoRA modules per
# decoding step (unmerged, generation was 17% slower here).
step "4/6 Evaluate the fine-tuned adapter, greedy (with the error analysis)"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/finetuned" \
    --other_run "$OUT/zero_shot" --run_name "held-out dev tables, greedy"

step "5/6 Before/after: zero-shot → fine-tuned (greedy)"
$BIN/python t2s/evaluate_sql.py compare "$OUT/zero_shot" "$OUT/finetuned" "$OUT/compare_zero_shot_finetuned.json"

step "6/6 Summary"
$BIN/python scripts/demo_summary.py "$OUT" --total_seconds $(( $(date +%s) - start ))

if [[ "${DEMO_EG:-0}" == "1" ]]; then
    bash scripts/demo_eg.sh
fi
