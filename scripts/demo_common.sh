# Shared settings of scripts/demo.sh and scripts/demo_eg.sh (sourced, not run).
OUT=${DEMO_OUT:-outputs/demo}
LIMIT=${DEMO_LIMIT:-500}
BIN=.venv/bin
# Batch 32: on 64 held-out prompts, the same SQL as batch 16 in 9-17% less time (docs/benchmarks.md, docs/results.md).
EVAL=(--dataset_name local --split dev --table_split heldout --limit "$LIMIT" --batch_size 32 --max_new_tokens 96)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step() { printf '\n\033[1m=== [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
