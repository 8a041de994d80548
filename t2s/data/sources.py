"""One entry point for every dataset: `load_text2sql(dataset_name, split, …)` picks the reader.

`dataset_name` is what recipes and commands take:

* `local` (or `wikisql`): the configured WikiSQL copy (`$T2S_WIKISQL_DIR`, default `../shared/wikisql`);
* `spider`: the configured Spider copy (`$T2S_SPIDER_DIR`, default `../shared/spider`);
* a folder, recognised by its files: `tables.json` → Spider's release layout, `*.tables.jsonl` →
  WikiSQL's (any other folder is handed to `datasets.load_dataset`, like a Hub id);
* a Hub id: read with `datasets.load_dataset`, in the Spider layout when its name contains
  "spider", else in the `Salesforce/wikisql` layout (`dataset_kind` overrides the guess).

Both readers return records with the same core columns (`example_id`, `question`, `db_id`,
`prompt`, `completion`, `gold_sql`), plus what the metric needs to open the database: a WikiSQL
`table`, or the `db_path` of an SQLite file. A third dataset is one more reader and one more
branch here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from t2s.data.common import DataFormatError
from t2s.data.spider import is_spider_dir, load_spider
from t2s.data.wikisql import load_wikisql

DATASET_KINDS = ("wikisql", "spider")
# Options of one reader that the other has no use for. Setting one for the wrong dataset is an error;
# heldout_fraction/holdout_seed only matter with table_split, so their defaults pass silently.
WIKISQL_ONLY = ("table_split",)
WIKISQL_DEFAULTED = ("heldout_fraction", "holdout_seed")
SPIDER_ONLY = (
    "db_dir",
    "include_others",
    "require_database",
    "check_gold",
    "link_values",
    "prune_tables",
    "schema_max_chars",
)


def dataset_kind(dataset_name: str | os.PathLike | None, kind: str | None = None) -> str:
    """`wikisql` or `spider` for a dataset name (see the module docstring)."""
    if kind:
        if kind not in DATASET_KINDS:
            raise DataFormatError(f"dataset_kind={kind!r} must be one of {DATASET_KINDS}")
        return kind
    name = "" if dataset_name is None else str(dataset_name)
    if name in ("", "local", "wikisql"):
        return "wikisql"
    if name == "spider":
        return "spider"
    path = Path(name).expanduser()
    if path.is_dir():
        if is_spider_dir(path):
            return "spider"
        if any(path.glob("*.tables.jsonl")):
            return "wikisql"
        # Otherwise a folder `datasets.load_dataset` reads (a Hub repository's layout, e.g. Parquet files).
    return "spider" if "spider" in name.lower() else "wikisql"


def load_text2sql(dataset_name: str | os.PathLike | None, split: str, *, dataset_kind_: str | None = None, **kwargs):
    """Records of any supported dataset; options that belong to the other dataset are refused, not ignored."""
    kind = dataset_kind(dataset_name, dataset_kind_)
    foreign = SPIDER_ONLY if kind == "wikisql" else WIKISQL_ONLY
    defaults = {"require_database": True}  # an option left at its default was not "given"
    given = sorted(k for k in foreign if kwargs.get(k) not in (None, False, defaults.get(k)))
    if given:
        raise DataFormatError(f"{', '.join(given)} does not apply to {kind} data ({dataset_name})")
    dropped = foreign + (WIKISQL_DEFAULTED if kind == "spider" else ())
    kwargs = {k: v for k, v in kwargs.items() if k not in dropped}
    if kind == "wikisql":
        source = None if dataset_name in ("wikisql",) else dataset_name
        return load_wikisql(source, split, **kwargs)
    revision, data_files = kwargs.pop("revision", None), kwargs.pop("data_files", None)
    load_kwargs: dict[str, Any] = {}
    if revision:
        load_kwargs["revision"] = revision
    if data_files:
        load_kwargs["data_files"] = data_files
    return load_spider(dataset_name, split, **kwargs, **load_kwargs)


def is_folder(dataset_name: str) -> bool:
    """Whether `dataset_name` names a folder of the user's (not the configured copies, not a Hub id)."""
    return dataset_name not in ("local", "spider", "wikisql") and Path(dataset_name).expanduser().exists()


def dataset_reference(dataset_name: str, kind: str) -> str:
    """What a model card's `model-index` names as the dataset: the Hub id used, else the dataset a local copy is of."""
    if dataset_name not in ("local", "spider", "wikisql") and not is_folder(dataset_name):
        return dataset_name  # a Hub id
    return {"wikisql": "Salesforce/wikisql", "spider": "xlangai/spider"}[kind]


def has_databases(dataset) -> bool:
    """Whether records name a database (`db_path`: a file or URL, any engine) rather than carrying a WikiSQL `table`."""
    return "db_path" in dataset.column_names
