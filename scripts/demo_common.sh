# Shared settings of scripts/demo.sh and scripts/demo_eg.sh (sourced, not run).
OUT=${DEMO_OUT:-outputs/demo}
LIMIT=${DEMO_LIMIT:-500}
BIN=.venv/bin
# Batch 32: on 64 held-out prompts, the same SQL as batch 16 in 9-17% less time (docs/benchmarks.md, docs/results.md).
EVAL=(--dataset_name local --split dev --table_split heldout --limit "$LIMIT" --batch_size 32 --max_new_tokens 96)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step() { printf '\n\033[1m=== [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }

# Stop with a clear message unless the files of a finished `make demo` are there.
require_demo() {
    for needed in "$OUT/adapter/adapter_config.json" "$OUT/finetuned/predictions.jsonl"; do
        if [[ ! -f "$needed" ]]; then
            echo "error: $needed is missing: run \`make demo\` first (or set DEMO_OUT to a finished demo directory)." >&2
            exit 2
        fi
    done
}
