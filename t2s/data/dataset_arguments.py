"""Which data, and what its prompt shows: the fields every command and recipe that reads a dataset shares.

Training recipes (`t2s.training.training_arguments.DataArguments`) and the generation/evaluation commands
(`t2s.decoding.decoding_arguments.DecodingArguments`) both extend this class, so a dataset option has one name, one default
and one help text everywhere, and one place (`load`) turns it into a reader call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from t2s.data.prompt import DEFAULT_SAMPLE_ROWS, DEFAULT_SCHEMA_FORMAT, SCHEMA_FORMATS
from t2s.data.sources import load_text2sql

# The fields that reach `load_text2sql` under their own names (dataset_kind and dataset_revision are renamed).
READER_FIELDS = (
    "schema_format", "num_sample_rows", "heldout_fraction", "holdout_seed", "db_dir", "link_values", "prune_tables",
    "schema_max_chars",
)  # fmt: skip


@dataclass
class DatasetArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "'local' (WikiSQL at $T2S_WIKISQL_DIR, default ../shared/wikisql), 'spider' ($T2S_SPIDER_DIR, "
            "default ../shared/spider), a folder in either release layout, or a Hub id (Salesforce/wikisql or "
            "xlangai/spider layout). Required in recipes; generation and evaluation default to 'local'."
        },
    )
    dataset_kind: str | None = field(
        default=None,
        metadata={
            "help": "wikisql or spider, for a Hub id whose name does not say which.",
            "choices": ["wikisql", "spider"],
        },
    )
    db_dir: str | None = field(
        default=None,
        metadata={
            "help": "Spider from the Hub (which has no databases): the local folder with tables.json and database/ "
            "(default $T2S_SPIDER_DIR)."
        },
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub revision, e.g. 'refs/convert/parquet' for the Parquet conversion."}
    )
    heldout_fraction: float = field(default=0.2, metadata={"help": "WikiSQL: share of tables held out."})
    holdout_seed: int = field(default=42, metadata={"help": "WikiSQL: seed of the held-out table draw."})
    schema_format: str = field(
        default=DEFAULT_SCHEMA_FORMAT,
        metadata={"help": "What the prompt shows of the schema.", "choices": list(SCHEMA_FORMATS)},
    )
    num_sample_rows: int = field(default=DEFAULT_SAMPLE_ROWS, metadata={"help": "Rows shown with schema_format=rows."})
    link_values: bool = field(
        default=False,
        metadata={
            "help": "Spider-layout data: show the stored values the question mentions under the schema "
            "(t2s/data/linking.py). Changes the prompt: train and evaluate with the same setting."
        },
    )
    prune_tables: int = field(
        default=0,
        metadata={
            "help": "Spider-layout data: keep only the k tables the question refers to most, plus the tables on "
            "foreign-key paths between them (0: every table). Changes the prompt: train and evaluate with the same k."
        },
    )
    schema_max_chars: int = field(
        default=0,
        metadata={
            "help": "Spider-layout data: a budget for the schema in the prompt, in characters (0: none). The tables "
            "the question refers to least are dropped until it fits (the top one always stays), so databases of any "
            "size fit the model's context. Changes the prompt: train and evaluate with the same budget."
        },
    )

    def __post_init__(self) -> None:
        if self.schema_format not in SCHEMA_FORMATS:
            raise ValueError(f"schema_format={self.schema_format!r} must be one of {SCHEMA_FORMATS}")

    def reader_options(self) -> dict[str, Any]:
        """The reader keywords these fields set (subclasses add theirs)."""
        same_name = {name: getattr(self, name) for name in READER_FIELDS}
        return {"dataset_kind_": self.dataset_kind, "revision": self.dataset_revision, **same_name}

    def load(self, split: str, **options: Any):
        """The records of `split` (`options`: table_split, limit, fraction, seed… as `load_text2sql` takes them)."""
        return load_text2sql(self.dataset_name, split, **self.reader_options(), **options)
