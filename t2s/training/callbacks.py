"""What to look at while a model trains: decoded samples and a quick execution accuracy at each evaluation.

A falling eval loss says little about whether the SQL runs. At every evaluation this callback
generates SQL for a fixed slice of the eval set (greedy, exactly as `t2s/generate.py` does), prints
a few (question, gold, generated) samples, appends them to `eval_samples.jsonl`, and logs the
slice's execution accuracy through the trainer's loggers as `eval_execution_accuracy`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from t2s.decoding.generation import generate_sql
from t2s.decoding.settings import GenerationSettings
from t2s.execution.scoring import score_records, summarise
from t2s.runtime import peak_rss, release_free_memory, resident_memory


class SQLSamplesCallback(TrainerCallback):
    def __init__(self, eval_examples, tokenizer, *, num_samples: int, num_exec: int, max_new_tokens: int) -> None:
        n = max(num_samples, num_exec)
        self.examples = eval_examples.select(range(min(n, len(eval_examples)))) if n else None
        self.tokenizer = tokenizer
        self.num_samples, self.num_exec = num_samples, num_exec
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=16)
        self.trainer = None  # set by the script, to log through the trainer's loggers

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if self.examples is None or model is None or not state.is_world_process_zero:
            return
        prompts = list(self.examples["prompt"])
        predictions = [c[0] for c in generate_sql(model, self.tokenizer, prompts, self.settings)]
        record = {"step": state.global_step, "samples": []}
        for ex, pred in list(zip(self.examples, predictions))[: self.num_samples]:
            record["samples"].append({"question": ex["question"], "gold_sql": ex["gold_sql"], "generated_sql": pred})
        if self.num_exec:
            n = min(self.num_exec, len(predictions))
            details = score_records(predictions[:n], self.examples.select(range(n)))
            record["execution_accuracy"] = summarise(details)["execution_accuracy"]
            record["num_exec"] = n
            if self.trainer is not None:
                self.trainer.log({"eval_execution_accuracy": record["execution_accuracy"]})
        self._print(record)
        with open(Path(args.output_dir) / "eval_samples.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _print(self, record) -> None:
        from rich.console import Console
        from rich.table import Table

        title = f"SQL samples at step {record['step']}"
        if "execution_accuracy" in record:
            title += f" — execution accuracy {record['execution_accuracy']:.1%} on {record['num_exec']} eval examples"
        table = Table(title=title, show_lines=True)
        for column in ("question", "gold SQL", "generated SQL"):
            table.add_column(column, overflow="fold")
        for s in record["samples"]:
            style = "green" if s["generated_sql"] == s["gold_sql"] else None
            table.add_row(s["question"], s["gold_sql"], s["generated_sql"], style=style)
        Console().print(table)


class ReleaseMemoryCallback(TrainerCallback):
    """Return freed heap pages to the system every `every` optimizer steps and after each evaluation and save.

    On a CPU glibc keeps every block a step frees in its heap, and over a long run the heap fragments: the process
    then holds far more than one step needs (docs/benchmarks.md, "Memory"). A trim returns pages the next steps take
    back, so it lowers what is held between steps, not the peak, and trimming at every step costs time for no lower
    peak (measured: docs/training.md, "Memory").
    """

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            release_free_memory()

    def on_evaluate(self, args, state, control, **kwargs):
        release_free_memory()

    def on_save(self, args, state, control, **kwargs):
        release_free_memory()


GIB = 1024**3


class PeakMemoryCallback(TrainerCallback):
    """Say how much resident memory a run held, and which step, evaluation or save took it to its highest.

    A long CPU run's peak is one step's working set or one evaluation, seconds long, which a sampler every few seconds
    misses (docs/experiments.md, "Full recipes"). The kernel keeps the process's highest resident memory itself (VmHWM);
    reading it after every step, evaluation and save tells which one raised it. The callback only reads, so
    `/usr/bin/time -v` and `getrusage` still see the same peak. Each logged loss line in the trainer's history gets
    `memory_gib` (held now) and `peak_memory_gib` (highest so far); `highest` keeps the run's peak, where it happened,
    and what the process held when training began (model, data), for the run record. Off Linux it measures nothing
    and `highest` stays None.
    """

    def __init__(self) -> None:
        self.at_start: int | None = None
        self.highest: dict | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.at_start = resident_memory()

    def _note(self, during: str, step: int) -> None:
        value = peak_rss()
        if value is None or (self.highest is not None and value <= self.highest["bytes"]):
            return
        self.highest = {"bytes": value, "gib": round(value / GIB, 2), "during": during, "step": step}
        if self.at_start is not None:
            self.highest["at_start_gib"] = round(self.at_start / GIB, 2)

    def on_step_end(self, args, state, control, **kwargs):
        self._note("training step", state.global_step)

    def on_evaluate(self, args, state, control, **kwargs):
        self._note("evaluation", state.global_step)

    def on_save(self, args, state, control, **kwargs):
        self._note("checkpoint save", state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The trainer appended a copy of `logs` to its history before callbacks run: the figures go on that entry.
        now, peak = resident_memory(), peak_rss()
        if now is not None and peak is not None and state.log_history and "loss" in state.log_history[-1]:
            state.log_history[-1].update(memory_gib=round(now / GIB, 3), peak_memory_gib=round(peak / GIB, 3))


def run_peak_memory(trainer) -> dict | None:
    """The highest resident memory a `PeakMemoryCallback` on this trainer saw, and during what (None without one)."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, PeakMemoryCallback) and callback.highest is not None:
            return {k: v for k, v in callback.highest.items() if k != "bytes"}
    return None


TIME_KEY = "training_time_s"


@dataclass(frozen=True)
class TrainingTime:
    """A run's seconds of training: this process's, and those of the stretches before the checkpoint it resumed from
    (`earlier_s`; None when it resumed from a checkpoint that recorded none, so the total is unknown)."""

    this_process_s: float
    earlier_s: float | None = 0.0

    @property
    def total_s(self) -> float | None:
        return None if self.earlier_s is None else self.earlier_s + self.this_process_s


def checkpoint_training_time(checkpoint: str | None) -> float | None:
    """The seconds of training a checkpoint's `trainer_state.json` recorded (`TrainingClockCallback`): 0 for a fresh
    run, None for a checkpoint written without the clock."""
    if checkpoint is None:
        return 0.0
    state = Path(checkpoint) / "trainer_state.json"
    if not state.is_file():
        return None
    history = json.loads(state.read_text()).get("log_history", [])
    stamps = [entry[TIME_KEY] for entry in history if TIME_KEY in entry]
    return stamps[-1] if stamps else None


class TrainingClockCallback(TrainerCallback):
    """Write the run's training time so far into the trainer's history just before each checkpoint is saved.

    The history travels in every checkpoint's `trainer_state.json`, so a run resumed in another session (a long CPU
    run is, several times) still reports its whole training time, not only the last stretch's. `earlier_s` is what
    the resumed checkpoint recorded (`checkpoint_training_time`)."""

    def __init__(self, earlier_s: float | None) -> None:
        self.earlier_s = earlier_s
        self.started: float | None = None

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        # The trainer decides to save in its flow callback's on_step_end, which runs before this one, and writes the
        # checkpoint (with this entry) right after.
        if control.should_save and self.earlier_s is not None:
            state.log_history.append({"step": state.global_step, TIME_KEY: round(self.earlier_s + self.elapsed(), 1)})
