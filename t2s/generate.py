"""Generate SQL with a base model, a base model + LoRA adapter, or a merged model, for either dataset.

    python t2s/generate.py --adapter outputs/smollm2-135m-wikisql-lora --table_split heldout --limit 500 \
        --output predictions.jsonl
    python t2s/generate.py --model embedded:smollm2-135m-instruct --dataset_name spider --limit 100 \
        --output zero_shot.jsonl

Prompts come from the same builder as training (`t2s.prompt.build_prompt`, through the dataset readers),
decoding is greedy by default and stops at the first newline or EOS. With `--execution_guided`,
N candidates are generated (beam search) and the first that executes without error and returns
something is kept, falling back to the top candidate.
"""

from __future__ import annotations

import t2s.quiet  # noqa: F401  (first: before bitsandbytes is imported)

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2s.constrained import grammar_for
from t2s.data import load_text2sql
from t2s.embedded import DEFAULT_EMBEDDED, resolve_model_name
from t2s.errors import UserError, run_command
from t2s.execution import connect_example, is_empty_result, run_query
from t2s.generation import GenerationSettings, generate_sql
from t2s.prompt import DEFAULT_SCHEMA_FORMAT


@dataclass
class GenerateArguments:
    model: str | None = field(
        default=None,
        metadata={"help": "Base or merged model (Hub id, folder, embedded:…); default: the adapter's base."},
    )
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder or Hub id."})
    merge_adapter: bool = field(default=False, metadata={"help": "Merge the adapter into the base before generating."})
    dataset_name: str = field(
        default="local",
        metadata={
            "help": "As in recipes: 'local' (WikiSQL at $T2S_WIKISQL_DIR), 'spider' ($T2S_SPIDER_DIR), a folder in "
            "either release layout, or a Hub id."
        },
    )
    dataset_kind: str | None = field(
        default=None,
        metadata={
            "help": "wikisql or spider, for a Hub id whose name does not say.",
            "choices": ["wikisql", "spider"],
        },
    )
    db_dir: str | None = field(
        default=None, metadata={"help": "Spider from the Hub: the local folder with tables.json and database/."}
    )
    split: str = field(default="dev")
    table_split: str | None = field(default=None, metadata={"help": "WikiSQL: 'heldout' to score on held-out tables."})
    heldout_fraction: float = field(default=0.2)
    holdout_seed: int = field(default=42)
    limit: int | None = field(default=None)
    seed: int = field(default=42, metadata={"help": "Seed of the subset (and of sampling)."})
    dataset_revision: str | None = field(default=None)
    schema_format: str = field(default=DEFAULT_SCHEMA_FORMAT)
    num_sample_rows: int = field(default=3)
    batch_size: int = field(
        default=32,
        metadata={
            "help": "Prompts per batch (left padding). On 2 CPU cores 32 beat 16 by 9-17%%, same SQL (docs/benchmarks.md)."
        },
    )
    max_new_tokens: int = field(default=96)
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy (default); 0.1-0.2 for light sampling."})
    execution_guided: bool = field(
        default=False, metadata={"help": "Execution-guided decoding: beam candidates where the greedy query fails."}
    )
    num_candidates: int = field(default=4, metadata={"help": "Candidates for execution-guided decoding."})
    constrained_decoding: bool = field(
        default=False,
        metadata={
            "help": "Schema-constrained decoding: only tokens that keep the output valid SQL over the question's own "
            "tables and columns (t2s/constrained.py, llguidance). Composes with --execution_guided."
        },
    )
    prefix_cache: bool = field(
        default=True,
        metadata={
            "help": "Prefill each database's shared prompt prefix (its schema) once and reuse its key/value cache for "
            "every question on it: the same SQL as plain batched generation (1,034/1,034 Spider dev, 500/500 WikiSQL), "
            "faster on Spider dev (docs/benchmarks.md). --prefix_cache false for plain batches."
        },
    )
    continuous_batching: bool = field(
        default=True,
        metadata={
            "help": "Greedy decoding only: a question that stops leaves the batch and the next one joins it, instead "
            "of the batch decoding until its longest answer ends (t2s/continuous.py). The same SQL as plain batches "
            "up to float rounding (docs/benchmarks.md counts it). --continuous_batching false for generate() batches."
        },
    )
    dtype: str = field(default="float32", metadata={"choices": ["float32", "bfloat16", "float16", "auto"]})
    output: str = field(default="predictions.jsonl")


def load_model_and_tokenizer(
    model: str | None = None, adapter: str | None = None, *, merge: bool = False, dtype: str = "float32"
):
    """A causal LM ready for generation: base, base + adapter, or merged, on CUDA when present."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None and adapter is not None:
        model = adapter_base(adapter)
    model = model or DEFAULT_EMBEDDED
    path = resolve_model_name(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and dtype == "float16":
        raise UserError("dtype float16 needs a CUDA GPU for generation; use float32 or bfloat16 on CPU")
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    tokenizer_source = adapter if adapter and _has_tokenizer(adapter) else path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter)
        if merge:
            lm = lm.merge_and_unload()
    lm.eval()
    return lm, tokenizer


def adapter_base(adapter: str) -> str:
    """The base an adapter was trained on: t2s's run record first (it names the embedded model, whose weights are
    a dequantised GGUF copy, not the Hub checkpoint in adapter_config.json), else PEFT's config."""
    from peft import PeftConfig

    run = Path(adapter) / "t2s_run.json"
    if run.exists():
        base = json.loads(run.read_text()).get("base_model")
        if base:
            return base
    return PeftConfig.from_pretrained(adapter).base_model_name_or_path


def _has_tokenizer(adapter: str) -> bool:
    path = Path(adapter)
    return not path.exists() or (path / "tokenizer_config.json").exists()


def execution_guided_choice(candidates: list[str], example) -> tuple[str, int]:
    """The first candidate that runs without error and returns a non-empty result; else the top one."""
    for i, sql in enumerate(candidates):
        if executes_with_rows(sql, example):
            return sql, i
    return candidates[0], -1


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _generate_with_progress(model, tokenizer, prompts, settings, label, grammars=None):
    """A live bar on a terminal; elsewhere (a log file, CI) rich draws nothing until the end, so print a line per
    tenth of the work instead: a long generation must never look stalled."""
    with _progress() as progress:
        task = progress.add_task(label, total=len(prompts))
        step = max(1, len(prompts) // 10)
        start, done, reported = time.perf_counter(), 0, 0

        def advance(n: int) -> None:
            nonlocal done, reported
            progress.advance(task, n)
            done += n
            if not progress.console.is_terminal and (done - reported >= step or done == len(prompts)):
                reported = done
                progress.console.print(f"{label}: {done}/{len(prompts)} ({time.perf_counter() - start:.0f} s)")

        return generate_sql(model, tokenizer, prompts, settings, progress=advance, grammars=grammars)


def executes_with_rows(sql: str, example) -> bool:
    """Runs (in the sandbox, as the metric would run it) and returns at least one non-NULL value.

    `example` is a dataset record (its WikiSQL `table` or SQLite `db_path`), or a bare WikiSQL table dict.
    """
    record = example if ("db_path" in example or "table" in example) else {"table": example}
    conn, semantics = connect_example(record)
    result = run_query(conn, sql, rewrite_double_quotes=semantics == "wikisql")
    return result.status == "ok" and not is_empty_result(result.rows)


def prediction_record(example, prediction: str) -> dict:
    """What a predictions.jsonl line keeps of its example (with the dataset's own keys, e.g. hardness)."""
    record = {"example_id": example["example_id"], "question": example["question"], "db_id": example["db_id"]}
    for key in ("table_id", "hardness", "caveat"):
        if key in example:
            record[key] = example[key]
    record.update(prompt=example["prompt"], prediction=prediction, gold_sql=example["gold_sql"])
    return record


def predict(
    model,
    tokenizer,
    dataset,
    settings: GenerationSettings,
    *,
    execution_guided: bool = False,
    num_candidates: int = 4,
    greedy: list[str] | None = None,
    constrained: bool = False,
):
    """One record per example: question, db_id, prompt, prediction, gold_sql (see `prediction_record`).

    `constrained` decodes under each example's schema grammar (`t2s.constrained`), greedy and beams alike.

    Execution-guided decoding keeps the first of [greedy, beam 1, …, beam N] that executes and
    returns rows, else the greedy query. Beams are only searched where the greedy query fails
    that check, so the rule costs extra generation only for those examples. `greedy` reuses
    greedy predictions generated earlier (same order as `dataset`).
    """
    prompts = list(dataset["prompt"])
    examples = list(dataset)
    grammars = [grammar_for(ex) for ex in examples] if constrained else None
    if greedy is None:
        label = "Generating SQL (schema-constrained)" if constrained else "Generating SQL"
        greedy = [c[0] for c in _generate_with_progress(model, tokenizer, prompts, settings, label, grammars)]
    records = [prediction_record(ex, pred) for ex, pred in zip(examples, greedy)]
    if not execution_guided:
        return records
    failing = [i for i, pred in enumerate(greedy) if not executes_with_rows(pred, examples[i])]
    beam_settings = GenerationSettings(
        max_new_tokens=settings.max_new_tokens,
        batch_size=max(1, settings.batch_size // num_candidates),
        num_candidates=num_candidates,
        prefix_cache=settings.prefix_cache,
    )
    beams = _generate_with_progress(
        model,
        tokenizer,
        [prompts[i] for i in failing],
        beam_settings,
        f"Beam search ({num_candidates}) on failing queries",
        [grammars[i] for i in failing] if grammars is not None else None,
    )
    for record in records:
        record["eg_choice"] = 0
    for i, candidates in zip(failing, beams):
        ordered = list(dict.fromkeys([greedy[i], *candidates]))
        records[i]["prediction"], records[i]["eg_choice"] = execution_guided_choice(ordered, examples[i])
        records[i]["candidates"] = ordered
    return records


def settings_from(args: GenerateArguments) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        temperature=args.temperature,
        prefix_cache=args.prefix_cache,
        continuous_batching=args.continuous_batching,
    )


def decoding_label(args: GenerateArguments) -> str:
    base = "greedy" if args.temperature <= 0 else f"sampling (temperature {args.temperature})"
    if args.constrained_decoding:
        base = f"schema-constrained {base}"
    if args.execution_guided:
        return (
            f"execution-guided ({base}; where that query fails or returns nothing, {args.num_candidates}-beam search "
            "and the first candidate that executes and returns rows)"
        )
    return base


def load_eval_data(args: GenerateArguments):
    return load_text2sql(
        args.dataset_name,
        args.split,
        dataset_kind_=args.dataset_kind,
        table_split=args.table_split,
        heldout_fraction=args.heldout_fraction,
        holdout_seed=args.holdout_seed,
        limit=args.limit,
        seed=args.seed,
        schema_format=args.schema_format,
        num_sample_rows=args.num_sample_rows,
        revision=args.dataset_revision,
        db_dir=args.db_dir,
    )


def write_jsonl(path: str | Path, records) -> None:
    """Write through a temporary file, so an interrupted run never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def run(args: GenerateArguments, dataset=None, greedy: list[str] | None = None):
    from transformers import set_seed

    set_seed(args.seed)
    dataset = dataset if dataset is not None else load_eval_data(args)
    model, tokenizer = load_model_and_tokenizer(args.model, args.adapter, merge=args.merge_adapter, dtype=args.dtype)
    start = time.perf_counter()
    records = predict(
        model,
        tokenizer,
        dataset,
        settings_from(args),
        execution_guided=args.execution_guided,
        num_candidates=args.num_candidates,
        greedy=greedy,
        constrained=args.constrained_decoding,
    )
    elapsed = time.perf_counter() - start
    return dataset, records, elapsed


def main(argv=None):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(GenerateArguments).parse_args_into_dataclasses(argv)
    dataset, records, elapsed = run(args)
    write_jsonl(args.output, records)
    print(f"Wrote {len(records)} predictions to {args.output} in {elapsed:.0f} s ({dataset.info.description}).")


if __name__ == "__main__":
    run_command(main, sys.argv[1:])
