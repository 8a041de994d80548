"""The options of every command that generates SQL for dataset questions: which model, which questions, how to decode.

`t2s/generate.py` adds where to write the predictions, `t2s/evaluate_sql.py` (through
`t2s.evaluation.runner.EvaluateArguments`) where to write the scores; both read the dataset through the shared
`DatasetArguments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2s.data.dataset_arguments import DatasetArguments
from t2s.data.prompt import SCHEMA_FORMATS, PromptSettings
from t2s.data.sources import dataset_kind
from t2s.decoding.settings import DATASET_DEFAULTS, Decoding, GenerationSettings
from t2s.decoding.sharding import launched_processes
from t2s.decoding.vllm_backend import BACKENDS, check_backend
from t2s.runtime import UserError


@dataclass
class DecodingArguments(DatasetArguments):
    model: str | None = field(
        default=None,
        metadata={"help": "Base or merged model (Hub id, folder, embedded:…); default: the adapter's base."},
    )
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder or Hub id."})
    # The prompt's settings: by default what the model learned (its run record), so that an adapter is scored on the
    # prompts it was trained on; a value given here overrides that (and the evaluation warns that it differs).
    schema_format: str | None = field(
        default=None,
        metadata={
            "help": "What the prompt shows of the schema (default: what the model learned, from its run record; "
            "else 'types').",
            "choices": list(SCHEMA_FORMATS),
        },
    )
    link_values: bool | None = field(
        default=None,
        metadata={
            "help": "Spider-layout data: show the stored values the question mentions under the schema "
            "(t2s/data/linking.py; default: as the model learned, else off)."
        },
    )
    prune_tables: int | None = field(
        default=None,
        metadata={
            "help": "Spider-layout data: keep only the k tables the question refers to most, plus the tables on "
            "foreign-key paths between them (default: as the model learned, else 0: every table)."
        },
    )
    schema_max_chars: int | None = field(
        default=None,
        metadata={
            "help": "Spider-layout data: the schema's character budget; the tables the question refers to least are "
            "dropped until it fits (default: as the model learned, else 0: none)."
        },
    )
    merge_adapter: bool = field(default=False, metadata={"help": "Merge the adapter into the base before generating."})
    split: str = field(
        default="dev",
        metadata={"help": "Split to read: dev, train or test (a local copy's file names; Hub data: its split names)."},
    )
    table_split: str | None = field(
        default=None,
        metadata={
            "help": "WikiSQL: 'heldout' for the questions on held-out tables (those a heldout_tables recipe did not "
            "train on), 'train' for the others.",
            "choices": ["heldout", "train"],
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "Score a random subset of this many questions (drawn with --seed)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the subset (and of sampling)."})
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Prompts per batch (slots, with continuous batching); default 32 on WikiSQL, 16 on Spider."},
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Token budget of each answer (an answer cut by it usually fails to run); default 96 on WikiSQL, "
            "128 on Spider and other SQLite data."
        },
    )
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy (default); 0.1-0.2 for light sampling."})
    execution_guided: bool = field(
        default=False, metadata={"help": "Execution-guided decoding: beam candidates where the greedy query fails."}
    )
    num_candidates: int = field(default=4, metadata={"help": "Candidates for execution-guided decoding."})
    num_samples: int = field(
        default=1,
        metadata={
            "help": "Self-consistency: N candidates per question (the answer so far and N-1 samples) vote by "
            "execution result; a failing query never wins over one that runs (t2s/decoding/voting.py). 1: off."
        },
    )
    sample_temperature: float = field(default=0.7, metadata={"help": "Temperature of the self-consistency samples."})
    vote_rows_first: bool = field(
        default=True,
        metadata={
            "help": "Self-consistency: a query that returns rows wins over one that returns none (as execution-guided "
            "decoding prefers), then the largest group wins; --no_vote_rows_first counts an empty result as one "
            "more group (the rule before 2026-11-29; docs/experiments.md)."
        },
    )
    constrained_decoding: bool = field(
        default=False,
        metadata={
            "help": "Schema-constrained decoding: only tokens that keep the output valid SQL over the question's own "
            "tables and columns (t2s/decoding/constrained.py, llguidance). Composes with --execution_guided."
        },
    )
    scoped_columns: bool = field(
        default=False,
        metadata={
            "help": "With --constrained_decoding: a column qualified by a table or alias must belong to it, and an "
            "unqualified one to a table in scope, checked on the likeliest tokens as the query is written "
            "(t2s/decoding/scope.py)."
        },
    )
    prefix_cache: bool = field(
        default=True,
        metadata={
            "help": "Prefill each database's shared prompt prefix (its schema) once and reuse its key/value cache for "
            "every question on it: the same SQL as plain batches, faster on multi-table data (docs/decoding.md)."
        },
    )
    continuous_batching: bool = field(
        default=True,
        metadata={
            "help": "Greedy decoding and voting's samples (unconstrained): a question that stops leaves the batch and "
            "the next one joins it, instead of the batch decoding until its longest answer ends; greedy: the same SQL "
            "as plain batches (docs/decoding.md)."
        },
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "Weights' dtype for generation.", "choices": ["float32", "bfloat16", "float16", "auto"]},
    )
    backend: str = field(
        default="transformers",
        metadata={
            "help": "What generates: 'transformers' (any machine), or 'vllm' (CUDA GPUs, `pip install t2s[vllm]`): "
            "the same prompt, token budget, greedy decoding, answer rule and schema grammar through vLLM's engine; "
            "no column scoping or execution-guided decoding (docs/decoding.md).",
            "choices": list(BACKENDS),
        },
    )

    def __post_init__(self) -> None:
        if self.dataset_name is None:
            self.dataset_name = "local"
        kind = dataset_kind(self.dataset_name, self.dataset_kind)
        self.learned_prompt = self._fill_prompt_settings(kind)
        super().__post_init__()
        defaults = DATASET_DEFAULTS[kind]
        if self.batch_size is None:
            self.batch_size = defaults["batch_size"]
        if self.max_new_tokens is None:
            self.max_new_tokens = defaults["max_new_tokens"]
        try:  # a combination no decoder runs: a usage error, before anything loads
            self.decoding()
            check_backend(
                self.backend, constrained=self.constrained_decoding, scoped=self.scoped_columns,
                execution_guided=self.execution_guided, processes=launched_processes(),
            )  # fmt: skip
        except ValueError as e:
            raise UserError(str(e)) from None

    def _fill_prompt_settings(self, kind: str) -> PromptSettings | None:
        """Set the prompt settings left unset to what the model learned (its run record), else to the canonical
        defaults; returns what it learned (None: no record). On WikiSQL data only the schema format carries over:
        linking, pruning and the budget read a Spider-layout database."""
        from t2s.decoding.models import trained_prompt_settings

        learned = trained_prompt_settings(self.model, self.adapter)
        base = learned or PromptSettings()
        for name in ("schema_format", "link_values", "prune_tables", "schema_max_chars"):
            if getattr(self, name) is None:
                value = getattr(base, name)
                if kind == "wikisql" and name != "schema_format":
                    value = getattr(PromptSettings(), name)
                setattr(self, name, value)
        return learned

    def prompt_settings(self) -> PromptSettings:
        return PromptSettings(self.schema_format, self.link_values, self.prune_tables, self.schema_max_chars)

    def settings(self) -> GenerationSettings:
        return GenerationSettings(
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            temperature=self.temperature,
            prefix_cache=self.prefix_cache,
            continuous_batching=self.continuous_batching,
        )

    def decoding(self) -> Decoding:
        """The decoding stack the flags choose (refused with the reason when no decoder runs it)."""
        return Decoding(
            constrained=self.constrained_decoding, scoped=self.scoped_columns, execution_guided=self.execution_guided,
            num_candidates=self.num_candidates, num_samples=self.num_samples,
            sample_temperature=self.sample_temperature, vote_rows_first=self.vote_rows_first,
        )  # fmt: skip

    def decoding_label(self) -> str:
        """How the SQL was decoded, in words (metrics, model cards and reports carry it)."""
        base = "greedy" if self.temperature <= 0 else f"sampling (temperature {self.temperature})"
        if self.constrained_decoding:
            base = f"schema-constrained{', column-scoped' if self.scoped_columns else ''} {base}"
        if self.execution_guided:
            base = (
                f"execution-guided ({base}; where that query fails or returns nothing, {self.num_candidates}-beam "
                "search and the first candidate that executes and returns rows)"
            )
        if self.num_samples > 1:
            base += (
                f" + self-consistency ({self.num_samples} candidates: that answer and {self.num_samples - 1} samples "
                f"at temperature {self.sample_temperature:g}, majority by execution result"
                f"{', rows before empty results' if self.vote_rows_first else ''})"
            )
        if self.backend != "transformers":
            base += f", generated by {self.backend}"
        return base

    def load_questions(self):
        """The records these options select."""
        return self.load(self.split, table_split=self.table_split, limit=self.limit, seed=self.seed)
