# Shared settings of the demo scripts (sourced, not run). `demo_settings wikisql|spider` picks a demo's folder,
# question count and dataset options; batch size and token budget are each dataset's defaults (docs/decoding.md).
BIN=.venv/bin
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

demo_settings() {
    case "$1" in
        wikisql)
            OUT=${DEMO_OUT:-outputs/demo}
            LIMIT=${DEMO_LIMIT:-500}
            DEMO_MAKE="make demo"
            EVAL=(--dataset_name local --split dev --table_split heldout --limit "$LIMIT")
            ;;
        spider)
            DEMO_MODEL=${DEMO_MODEL:-smollm2-135m}
            RECIPE=recipes/$DEMO_MODEL/spider/sft_cpu.yaml
            if [[ ! -f "$RECIPE" ]]; then
                echo "error: DEMO_MODEL=$DEMO_MODEL has no $RECIPE (known: $(ls recipes/*/spider/sft_cpu.yaml | cut -d/ -f2 | xargs))" >&2
                exit 2
            fi
            BASE=$(sed -n 's/^model_name_or_path: *//p' "$RECIPE")
            if [[ "$DEMO_MODEL" == smollm2-135m ]]; then
                OUT=${DEMO_SPIDER_OUT:-outputs/demo_spider}
            else
                OUT=${DEMO_SPIDER_OUT:-outputs/demo_spider_$DEMO_MODEL}
            fi
            LIMIT=${DEMO_SPIDER_LIMIT:-300}
            DEMO_MAKE="make demo-spider"
            EVAL=(--dataset_name spider --split dev --limit "$LIMIT" --seed 42)
            ;;
        *)
            echo "error: unknown demo '$1' (wikisql or spider)" >&2
            exit 2
            ;;
    esac
}

step() { printf '\n\033[1m=== [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }

# Stop with a clear message unless the files of a finished demo are there.
require_demo() {
    for needed in "$OUT/adapter/adapter_config.json" "$OUT/finetuned/predictions.jsonl"; do
        if [[ ! -f "$needed" ]]; then
            echo "error: $needed is missing: run \`$DEMO_MAKE\` first (or point DEMO_OUT / DEMO_SPIDER_OUT at a finished demo)." >&2
            exit 2
        fi
    done
}
