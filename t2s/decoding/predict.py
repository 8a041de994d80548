"""Predictions for dataset records: greedy (or sampled, or constrained) SQL, optionally execution-guided.

Execution-guided decoding keeps the first of [greedy, beam 1, …, beam N] that executes in the sandbox and returns
rows, else the greedy query; beams are searched only where the greedy query fails that check.
"""

from __future__ import annotations

import threading
import time

from t2s.decoding.constrained import grammar_for, scope_for
from t2s.decoding.generation import generate_sql
from t2s.decoding.models import load_model_and_tokenizer
from t2s.decoding.settings import GREEDY, Decoding, GenerationSettings
from t2s.execution.engines import connect_example
from t2s.execution.semantics import is_empty_result


def execution_guided_choice(candidates: list[str], example) -> tuple[str, int]:
    """The first candidate that runs without error and returns a non-empty result; else the top one."""
    for i, sql in enumerate(candidates):
        if executes_with_rows(sql, example):
            return sql, i
    return candidates[0], -1


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


HEARTBEAT_S = 15.0  # the longest a generation stays silent: a batch that takes longer says it is still under way


def generate_with_progress(model, tokenizer, prompts, settings, label, grammars=None, scopes=None):
    """A live bar on a terminal; elsewhere (a log file, CI) rich draws nothing until the end, so print a line per
    tenth of the work instead. Either way, a batch that runs longer than `HEARTBEAT_S` (constrained decoding of long
    prompts) says every `HEARTBEAT_S` seconds that it is still under way: a long generation never looks stalled."""
    with progress_bar() as progress:
        task = progress.add_task(label, total=len(prompts))
        step = max(1, len(prompts) // 10)
        start, done, reported = time.perf_counter(), 0, 0
        last = [start]
        finished = threading.Event()

        def advance(n: int) -> None:
            nonlocal done, reported
            progress.advance(task, n)
            done += n
            last[0] = time.perf_counter()
            progress.update(task, description=label)
            if not progress.console.is_terminal and (done - reported >= step or done == len(prompts)):
                reported = done
                progress.console.print(f"{label}: {done}/{len(prompts)} ({time.perf_counter() - start:.0f} s)")

        def heartbeat() -> None:
            while not finished.wait(HEARTBEAT_S / 3):
                quiet = time.perf_counter() - last[0]
                if quiet < HEARTBEAT_S:
                    continue
                note = f"{label} (batch after {done}/{len(prompts)} still generating, {quiet:.0f} s)"
                if progress.console.is_terminal:
                    progress.update(task, description=note)
                else:
                    progress.console.print(f"{note}; {time.perf_counter() - start:.0f} s in all")
                last[0] = time.perf_counter()

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            return generate_sql(
                model, tokenizer, prompts, settings, progress=advance, grammars=grammars, scopes=scopes
            )
        finally:
            finished.set()
            beat.join()


def executes_with_rows(sql: str, example) -> bool:
    """Runs (in the sandbox, as the metric would run it) and returns at least one non-NULL value.

    `example` is a dataset record (its WikiSQL `table`, its `db_path`, or the open `engine` of an asked question), or
    a bare WikiSQL table dict.
    """
    record = example if any(key in example for key in ("db_path", "table", "engine")) else {"table": example}
    result = connect_example(record).run(sql)
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
    decoding: Decoding = GREEDY,
    *,
    greedy: list[str] | None = None,
    show_progress: bool = True,
):
    """One record per example: question, db_id, prompt, prediction, gold_sql (see `prediction_record`).

    `decoding.constrained` decodes under each example's schema grammar (`t2s.decoding.constrained`), greedy and beams
    alike; `decoding.scoped` adds column scoping to it (`t2s.decoding.scope`).

    Execution-guided decoding keeps the first of [greedy, beam 1, …, beam N] that executes and
    returns rows, else the greedy query. Beams are only searched where the greedy query fails
    that check, so the rule costs extra generation only for those examples. `greedy` reuses
    greedy predictions generated earlier (same order as `dataset`).

    `decoding.num_samples` > 1 adds self-consistency (`t2s.decoding.voting`): the answer so far and `num_samples - 1`
    samples at `sample_temperature` vote by execution result (`vote_rows_first`: see `t2s.decoding.voting.vote`).

    `dataset` is a `datasets.Dataset` or a list of records; `show_progress=False` generates without progress lines
    (one question asked at the terminal or on the page).
    """
    examples = list(dataset)
    prompts = [ex["prompt"] for ex in examples]
    generate = generate_with_progress if show_progress else _generate_quietly
    d = decoding
    grammars = [grammar_for(ex) for ex in examples] if d.constrained else None
    scopes = [scope_for(ex) for ex in examples] if d.scoped else None
    if greedy is None:
        label = "Generating SQL (schema-constrained)" if d.constrained else "Generating SQL"
        greedy = [c[0] for c in generate(model, tokenizer, prompts, settings, label, grammars, scopes)]
    records = [prediction_record(ex, pred) for ex, pred in zip(examples, greedy)]
    if d.execution_guided:
        execution_guide(
            model, tokenizer, records, examples, prompts, greedy, settings, d.num_candidates, grammars, scopes,
            generate=generate,
        )  # fmt: skip
    if d.num_samples > 1:
        self_consistency(
            model, tokenizer, records, examples, prompts, settings, grammars, scopes,
            num_samples=d.num_samples, temperature=d.sample_temperature, rows_first=d.vote_rows_first,
            generate=generate,
        )  # fmt: skip
    return records


def _generate_quietly(model, tokenizer, prompts, settings, label, grammars=None, scopes=None):
    """`generate_with_progress` without the progress."""
    return generate_sql(model, tokenizer, prompts, settings, grammars=grammars, scopes=scopes)


def self_consistency(
    model, tokenizer, records, examples, prompts, settings, grammars, scopes, *, num_samples, temperature, rows_first,
    generate=generate_with_progress,
):  # fmt: skip
    """Each record's prediction and `num_samples - 1` samples vote by execution result (in place)."""
    from t2s.decoding.voting import vote

    sample_settings = GenerationSettings(
        max_new_tokens=settings.max_new_tokens,
        batch_size=max(1, settings.batch_size // (num_samples - 1)),
        temperature=temperature,
        num_candidates=num_samples - 1,
        prefix_cache=settings.prefix_cache,
        continuous_batching=settings.continuous_batching,  # unconstrained samples; grammars keep generate()
    )
    samples = generate(
        model, tokenizer, prompts, sample_settings, f"Sampling {num_samples - 1} more per question", grammars, scopes
    )
    for record, example, drawn in zip(records, examples, samples):
        chosen, info = vote([record["prediction"], *drawn], example, rows_first=rows_first)
        record["voted_with"] = record["prediction"]  # greedy, or what execution-guided decoding chose
        record["prediction"], record["vote"] = chosen, info
        record["samples"] = list(drawn)


def execution_guide(
    model, tokenizer, records, examples, prompts, greedy, settings, num_candidates, grammars, scopes=None,
    generate=generate_with_progress,
):  # fmt: skip
    """Execution-guided decoding over the greedy predictions (in place; see `predict`)."""
    failing = [i for i, pred in enumerate(greedy) if not executes_with_rows(pred, examples[i])]
    beam_settings = GenerationSettings(
        max_new_tokens=settings.max_new_tokens,
        batch_size=max(1, settings.batch_size // num_candidates),
        num_candidates=num_candidates,
        prefix_cache=settings.prefix_cache,
    )
    beams = generate(
        model,
        tokenizer,
        [prompts[i] for i in failing],
        beam_settings,
        f"Beam search ({num_candidates}) on failing queries",
        [grammars[i] for i in failing] if grammars is not None else None,
        [scopes[i] for i in failing] if scopes is not None else None,
    )
    for record in records:
        record["eg_choice"] = 0
    for i, candidates in zip(failing, beams):
        ordered = list(dict.fromkeys([greedy[i], *candidates]))
        records[i]["prediction"], records[i]["eg_choice"] = execution_guided_choice(ordered, examples[i])
        records[i]["candidates"] = ordered


def run_predictions(args, dataset=None, greedy: list[str] | None = None):
    """(dataset, prediction records, seconds spent generating) for `DecodingArguments`.

    `dataset` reuses records loaded earlier (default: `args.load_questions()`); `greedy` reuses greedy predictions in
    dataset order (execution-guided decoding then only searches where they fail).

    Under `accelerate launch --num_processes N` each process predicts its shard of the questions
    (`t2s.decoding.sharding`) and every process returns all the records in dataset order; the seconds are those of
    the slowest process.
    """
    from transformers import set_seed

    from t2s.decoding.sharding import gather_in_order, gather_max, shard_questions

    set_seed(args.seed)  # before loading, as always: one process draws the samples it always drew
    dataset = dataset if dataset is not None else args.load_questions()
    model, tokenizer = load_model_and_tokenizer(
        args.model, args.adapter, merge=args.merge_adapter, dtype=args.dtype, backend=args.backend, seed=args.seed
    )
    shard = shard_questions(tokenizer, dataset["prompt"], args.batch_size, args.prefix_cache)
    if shard.process_index > 0:
        set_seed(args.seed + shard.process_index)  # voting's samples: another random stream on each other process
    mine = dataset if not shard.sharded else [dataset[i] for i in shard.indices]
    start = time.perf_counter()
    records = (
        predict(
            model,
            tokenizer,
            mine,
            args.settings(),
            args.decoding(),
            greedy=greedy if greedy is None or not shard.sharded else [greedy[i] for i in shard.indices],
            show_progress=shard.is_main,
        )
        if shard.indices
        else []
    )
    elapsed = gather_max(shard, time.perf_counter() - start)
    if shard.sharded and shard.is_main:
        print(f"Generated on {shard.num_processes} processes (this one: {shard.label()})")
    return dataset, gather_in_order(shard, records), elapsed
