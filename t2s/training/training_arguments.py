"""The t2s part of a recipe: which data (WikiSQL, Spider), what the prompt shows, and what to watch while training.

Training itself is configured by TRL's `SFTConfig`, the model and adapter by TRL's `ModelConfig` (with the one
adapter field TRL lacks added by `ModelArguments`); a recipe YAML sets fields of all three (see `recipes/`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trl import ModelConfig

from t2s.data.dataset_arguments import DatasetArguments


@dataclass
class ModelArguments(ModelConfig):
    """TRL's model and adapter fields, plus which decoder layers the LoRA adapter covers."""

    lora_top_layers: int | None = field(
        default=None,
        metadata={
            "help": "LoRA on the top N decoder layers only (PEFT's layers_to_transform; None: every layer). The "
            "backward pass stops at the lowest adapted layer, so fewer layers train faster (docs/training.md)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lora_top_layers is not None and self.lora_top_layers < 1:
            raise ValueError(f"lora_top_layers={self.lora_top_layers} must be a number of layers (1 or more) or unset")


@dataclass
class DataArguments(DatasetArguments):
    """The data fields of a training recipe: the shared dataset options, plus splits, subsets and checks."""

    require_database: bool = field(
        default=True,
        metadata={
            "help": "Spider: refuse training examples whose database file is missing. False trains on them from "
            "tables.json (Spider train here lacks baseball_1 and soccer_1: 96 questions)."
        },
    )
    check_gold: bool = field(
        default=False,
        metadata={
            "help": "SQLite data: run every gold query on its database first; one that fails is a bad example "
            "(reported with file and index, or skipped with on_error: skip). For your own data."
        },
    )
    on_error: str = field(
        default="raise",
        metadata={
            "help": "Bad examples: 'raise' stops at the first, 'skip' drops them and reports counts.",
            "choices": ["raise", "skip"],
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start from scratch although output_dir holds checkpoints of an earlier run (they are deleted "
            "first). Without it such a run resumes from its last checkpoint, and a finished adapter without "
            "checkpoints is never overwritten."
        },
    )
    drop_longer_than: int | None = field(
        default=None,
        metadata={
            "help": "Drop training examples longer than this many tokens (prompt + SQL + EOS) instead of letting TRL "
            "cut their SQL; the count is reported. Sizes a CPU recipe by the longest schema it trains on."
        },
    )
    dataset_data_files: str | None = field(
        default=None,
        metadata={"help": 'data_files for load_dataset: a glob, or a JSON object such as \'{"train": "…"}\'.'},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_eval_split: str | None = field(
        default="dev", metadata={"help": "Split to evaluate on (ignored with heldout_tables: true)."}
    )
    heldout_tables: bool = field(
        default=False,
        metadata={
            "help": "WikiSQL: train and evaluate on one split, divided by table: train on the tables that are not held out, "
            "evaluate on the held-out ones. For data with a single split (WikiSQL dev on these machines)."
        },
    )
    train_fraction: float | None = field(default=None, metadata={"help": "Train on this share of the training data."})
    train_limit: int | None = field(default=None, metadata={"help": "Train on at most this many examples."})
    eval_limit: int | None = field(default=None, metadata={"help": "Evaluate loss on at most this many examples."})
    data_seed_subset: int = field(default=42, metadata={"help": "Seed of the train/eval subsets."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without a better eval loss (None: off)."}
    )
    log_samples: int = field(
        default=3, metadata={"help": "Decoded samples (question, gold SQL, generated SQL) logged at each evaluation."}
    )
    eval_execution_accuracy_samples: int = field(
        default=0,
        metadata={
            "help": "At each evaluation, generate for this many eval examples and log their execution accuracy."
        },
    )
    generation_max_new_tokens: int = field(default=96, metadata={"help": "Token budget of generated SQL."})
    activation_checkpointing_above_tokens: int = field(
        default=0,
        metadata={
            "help": "Recompute the decoder layers' activations in the backward pass for training batches of more than "
            "this many tokens (padding counted), and only those (0: never). Caps a run's peak memory, which its "
            "longest batches set, for little time (docs/training.md, Memory)."
        },
    )
    release_memory_steps: int = field(
        default=0,
        metadata={
            "help": "CPU: give freed heap memory back to the system every this many optimizer steps, and after each "
            "evaluation and save (0: never). Lowers what a long CPU run holds between steps, not a step's peak "
            "(docs/experiments.md, Full recipes)."
        },
    )

    def __post_init__(self) -> None:
        if not self.dataset_name:
            raise ValueError(
                "dataset_name is required: 'local' (WikiSQL, $T2S_WIKISQL_DIR), 'spider' ($T2S_SPIDER_DIR), a folder "
                "in either release layout, or a Hub id such as 'Salesforce/wikisql' or 'xlangai/spider'"
            )
        super().__post_init__()
        if self.activation_checkpointing_above_tokens < 0:
            raise ValueError(
                f"activation_checkpointing_above_tokens={self.activation_checkpointing_above_tokens} must be 0 (never) "
                "or a number of tokens"
            )
        if self.release_memory_steps < 0:
            raise ValueError(
                f"release_memory_steps={self.release_memory_steps} must be 0 (never) or a number of steps"
            )
        if not self.heldout_tables and not self.dataset_eval_split:
            raise ValueError("dataset_eval_split is required unless heldout_tables: true")

    def reader_options(self) -> dict[str, Any]:
        return {
            **super().reader_options(),
            "data_files": self.data_files(),
            "seed": self.data_seed_subset,
            "on_error": self.on_error,
            **({"check_gold": True} if self.check_gold else {}),
        }

    def data_files(self) -> Any:
        if self.dataset_data_files and self.dataset_data_files.lstrip().startswith("{"):
            return json.loads(self.dataset_data_files)
        return self.dataset_data_files


@dataclass
class SFTArguments(DataArguments):
    """The t2s part of an SFT recipe: the data fields, and where to start."""

    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "An adapter (folder or Hub id) whose LoRA weights this run continues to train, on its own base: "
            "to adapt a trained model to new data (your own database, another engine's dialect). Without it SFT "
            "trains a fresh LoRA on model_name_or_path."
        },
    )


@dataclass
class GRPOArguments(DataArguments):
    """The t2s part of a GRPO recipe: the data fields of SFT, plus where to start, the reward and the prompt filter."""

    sft_adapter: str | None = field(
        default=None,
        metadata={
            "help": "The SFT adapter (folder or Hub id) whose LoRA weights GRPO continues to train; its base must be "
            "model_name_or_path. Without it GRPO trains a fresh LoRA on the base model."
        },
    )
    reward_partial_credit: float = field(
        default=0.1,
        metadata={"help": "Reward of a query that runs but returns a different result (1.0 correct, 0.0 errors)."},
    )
    prescore_samples: int = field(
        default=0,
        metadata={
            "help": "Before training, sample this many completions per training question with the starting model and "
            "keep only questions whose rewards differ (groups with equal rewards give GRPO no gradient). 0: off."
        },
    )

    prescore_only: bool = field(
        default=False,
        metadata={
            "help": "Pre-score the training questions into output_dir/prescores.jsonl and stop: to audit the filter, "
            "or before a launch on several processes (which reads the pre-scores, as a resumed run does)."
        },
    )
    constrained_sampling: bool = field(
        default=False,
        metadata={
            "help": "Draw GRPO's completions, and pre-scoring's samples, under the question's schema grammar "
            "(t2s/training/rollout.py): every completion is a query over its own tables and columns. "
            "Generation runs through transformers, so not with use_vllm."
        },
    )
    scoped_columns: bool = field(
        default=False,
        metadata={
            "help": "With constrained_sampling: column scoping too (a qualified column must belong to its table or "
            "alias; t2s/decoding/scope.py), as `evaluate --constrained_decoding --scoped_columns` decodes."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scoped_columns and not self.constrained_sampling:
            raise ValueError("scoped_columns works inside constrained sampling: add constrained_sampling: true")
        if self.prescore_only and not self.prescore_samples:
            raise ValueError("prescore_only needs prescore_samples (the samples per question)")
        if self.prescore_samples == 1 or self.prescore_samples < 0:
            raise ValueError("prescore_samples must be 0 (off) or at least 2")
        if not 0.0 <= self.reward_partial_credit < 1.0:
            raise ValueError("reward_partial_credit must be in [0, 1)")
