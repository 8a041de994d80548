#!/usr/bin/env bash
# make demo: the whole t2s loop, offline, on CPU, with the embedded model and WikiSQL dev from $T2S_WIKISQL_DIR
# (default ../shared/wikisql). Zero-shot baseline → LoRA training → evaluation (greedy, then execution-guided)
# → error analysis → before/after comparison with McNemar's test. About 40 minutes on 2 CPU cores, plus about 20 for
# execution-guided decoding (measured: docs/results.md).
#
# Data protocol: WikiSQL dev split by table (20% of tables held out, holdout seed 42). Training uses questions on the
# other tables (recipes/smollm2_cpu.yaml); every score is on DEMO_LIMIT questions from the held-out tables, schema
# only in the prompt. These are "WikiSQL dev, held-out tables" scores, not WikiSQL test scores.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${DEMO_OUT:-outputs/demo}
LIMIT=${DEMO_LIMIT:-500}
CANDIDATES=${DEMO_EG_CANDIDATES:-4}
BIN=.venv/bin
EVAL=(--dataset_name local --split dev --table_split heldout --limit "$LIMIT" --batch_size 16 --max_new_tokens 96)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step() { printf '\n\033[1m=== [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
start=$(date +%s)

rm -rf "$OUT"
mkdir -p "$OUT"
step "1/7 Convert the embedded model (once; cached in \${T2S_CACHE:-~/.cache/t2s})"
$BIN/python -c "from t2s.embedded import ensure_embedded_model; print(ensure_embedded_model())"

step "2/7 Zero-shot baseline: SmolLM2-135M-Instruct, no adapter, $LIMIT held-out questions"
$BIN/python t2s/evaluate_sql.py --model embedded:smollm2-135m-instruct "${EVAL[@]}" --output_dir "$OUT/zero_shot"

step "3/7 Train recipes/smollm2_cpu.yaml on the training tables"
$BIN/accelerate launch --config_file accelerate_configs/cpu.yaml t2s/sft.py recipes/smollm2_cpu.yaml \
    --output_dir "$OUT/adapter"

# The adapter is merged into the base for generation: the same weights, without 210 small LoRA modules per
# decoding step, which roughly halve generation speed on a CPU.
step "4/7 Evaluate the fine-tuned adapter, greedy"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/finetuned" \
    --other_run "$OUT/zero_shot" --run_name "held-out dev tables, greedy"

step "5/7 Execution-guided decoding (beam search with $CANDIDATES candidates where the greedy query fails)"
$BIN/python t2s/evaluate_sql.py --adapter "$OUT/adapter" --merge_adapter "${EVAL[@]}" --output_dir "$OUT/finetuned_eg" \
    --execution_guided --num_candidates "$CANDIDATES" --predictions "$OUT/finetuned/predictions.jsonl" \
    --run_name "held-out dev tables, execution-guided"

step "6/7 Before/after: zero-shot → fine-tuned (greedy), and greedy → execution-guided"
$BIN/python t2s/evaluate_sql.py compare "$OUT/zero_shot" "$OUT/finetuned" "$OUT/compare_zero_shot_finetuned.json"
$BIN/python t2s/evaluate_sql.py compare "$OUT/finetuned" "$OUT/finetuned_eg" "$OUT/compare_greedy_eg.json"

step "7/7 Summary"
$BIN/python -m t2s.demo_summary "$OUT" --total_seconds $(( $(date +%s) - start ))
