"""The run record (`t2s_run.json`) t2s writes beside an adapter or exported model: the one module that reads and
writes it, as a `RunRecord`.

It keeps what was trained on what, how, and every score computed on it since (`t2s.publish.card` renders the model
card from it). Every reader goes through `load_run`, so a change of layout is handled in one place: a record carries
the layout `version` it was written in (records written before versions existed read as version 0, whose layout
version 1 keeps unchanged), and a record from a newer t2s is refused with the reason rather than misread. Keys this
version does not know (a field added by a later minor change, or by hand) are kept in `extra` and written back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from t2s.data.common import read_json
from t2s.runtime import UserError

RUN_FILE = "t2s_run.json"
RECORD_VERSION = 1  # 1: the layout of 0 with the version named


@dataclass
class RunRecord:
    """What a run trained, on what, how, and the scores measured on it since (in the order `t2s_run.json` holds)."""

    stage: str = "sft"  # "sft" or "grpo"
    base_model: str | None = None  # as the recipe named it (an embedded name, a folder, a Hub id)
    base_model_hub_id: str | None = None  # a name PEFT's own loaders accept
    license: str | None = None
    hub_model_id: str | None = None
    recipe: str | None = None
    train_protocol: str | None = None
    train_dataset: str | None = None  # the Hub dataset the data is (model card metadata)
    eval_protocol: str | None = None
    train_examples: int | None = None
    eval_examples: int | None = None
    schema_format: str | None = None
    link_values: bool | None = None  # linking: recorded only when on (a linked prompt is evaluated linked)
    prune_tables: int | None = None
    schema_max_chars: int | None = None
    peft: str | None = None
    quantization: dict | None = None
    precision: str | None = None
    padding: str | None = None
    allocator: str | None = None
    global_step: int | None = None
    resumed_from: str | None = None
    epochs: float | None = None
    training_time_s: float | None = None  # of the main process, every stretch of a resumed run included
    training_time_from_step: int | None = None  # set when a resumed checkpoint recorded no time: counted from there
    peak_memory: dict | None = None
    hardware: str | None = None
    parallelism: str | None = None
    eval_loss: float | None = None
    loss_history: list = field(default_factory=list)
    prompt_example: str = ""
    scores: dict[str, dict] = field(default_factory=dict)  # name → the metric's figures with their protocol
    init_adapter: str | None = None  # SFT that continued an adapter (init_adapter) rather than a fresh LoRA
    # GRPO
    sft_adapter: str | None = None
    reward: str | None = None
    prompt_filter: str | None = None
    sampling: str | None = None  # how GRPO drew its completions: unconstrained, constrained, column-scoped constrained
    completions_without_reward: int | None = None
    completions_scored_by_process: list[int] | None = None
    grpo: dict | None = None
    # exports and the shipped model
    exported_from_adapter: str | None = None
    export_check: dict | None = None  # the merged model's logits against base + adapter
    gguf: dict | None = None
    run_name: str | None = None
    licences: list | None = None
    shipped: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    # Written even when empty (null), as every record has them; the rest only when set.
    ALWAYS = (
        "stage", "base_model", "base_model_hub_id", "license", "hub_model_id", "recipe", "train_protocol",
        "train_dataset", "eval_protocol", "train_examples", "eval_examples", "schema_format", "peft", "quantization",
        "precision", "padding", "allocator", "global_step", "resumed_from", "epochs", "training_time_s", "peak_memory",
        "hardware", "eval_loss", "loss_history", "prompt_example", "scores",
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known and k != "version"},
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as `t2s_run.json` holds it (version first, unknown keys last)."""
        out: dict[str, Any] = {"version": RECORD_VERSION}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in self.ALWAYS or value is not None:
                out[f.name] = value
        return {**out, **self.extra}


def run_path(folder: str | Path) -> Path:
    return Path(folder).expanduser() / RUN_FILE


def has_run(folder: str | Path | None) -> bool:
    return folder is not None and run_path(folder).is_file()


def load_run(folder: str | Path) -> RunRecord | None:
    """The record in `folder` in the current layout; None when there is none."""
    path = run_path(folder)
    if not path.is_file():
        return None
    data = read_json(path, dict, UserError, "not a t2s run record: remove it or restore it from the run")
    version = data.get("version", 0)
    if not isinstance(version, int) or version > RECORD_VERSION:
        raise UserError(f"{path}: written by a newer t2s (record version {version!r}, this one reads up to "
                        f"{RECORD_VERSION}); upgrade t2s to read it")  # fmt: skip
    try:
        return RunRecord.from_dict(data)  # 0 → 1: the same keys
    except TypeError as e:
        raise UserError(f"{path}: not a t2s run record ({e})") from None


def save_run(folder: str | Path, run: RunRecord) -> None:
    """Write the record atomically (a crash leaves the old one whole), in the current layout."""
    path = run_path(folder)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
