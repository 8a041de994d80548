"""Load WikiSQL from the Hub or from the official release layout, as prompt/completion records.

Two sources give the same records:

* a Hub dataset id in the `Salesforce/wikisql` layout, read with `datasets.load_dataset`
  (pass `revision="refs/convert/parquet"` and/or `data_files` where the script-based repo no
  longer loads: `datasets` dropped dataset scripts in 4.0);
* a local directory in the official release layout, `{split}.jsonl` + `{split}.tables.jsonl`
  (what WikiSQL's `data.tar.bz2` unpacks to). `source=None` or `"local"` reads the directory
  named by `$T2S_WIKISQL_DIR`, else `../shared/wikisql` beside this repository.

Every record carries the canonical prompt, the rendered gold SQL as completion, and the table
itself, so the metric can execute predictions without another lookup.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from t2s.data.common import (
    DataFormatError,
    check_on_error,
    collect_records,
    read_utf8,
    require_examples,
    source_label,
    subset_indices,
)
from t2s.data.gold_sql import AGG_OPS, COND_OPS, GoldSQLError, render_gold_sql
from t2s.data.prompt import DEFAULT_SAMPLE_ROWS, DEFAULT_SCHEMA_FORMAT, build_prompt, check_schema_format
from t2s.execution.semantics import Semantics
from t2s.execution.tables import COLUMN_TYPES

ENV_DATA_DIR = "T2S_WIKISQL_DIR"
LOCAL_SOURCES = (None, "", "local")
SEMANTICS = Semantics.WIKISQL.value  # the official evaluator's comparison (t2s.execution.semantics)
# The seed notebook's dataset: instruction/input/output pairs without tables and with SQL
# such as `SELECT SUM Week FROM table WHERE Attendance > 55,767`, which cannot be executed.
UNEXECUTABLE_LAYOUT_COLUMNS = {"instruction", "input", "output"}
UNEXECUTABLE_SOURCES = {"htriedman/wikisql"}
TABLE_SPLITS = ("train", "heldout")
SPLIT_ALIASES = {"dev": "validation", "validation": "dev"}


class WikiSQLFormatError(DataFormatError):
    """An input file or example does not have the WikiSQL layout; the message says where and how."""


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "wikisql"


def resolve_local_dir(source: str | os.PathLike | None) -> Path | None:
    """The local official-layout directory `source` names, or None for a Hub id."""
    if source in LOCAL_SOURCES:
        path = default_data_dir()
        if not path.is_dir():
            raise FileNotFoundError(
                f"No local WikiSQL directory at {path}. Download WikiSQL's data.tar.bz2 "
                f"(github.com/salesforce/WikiSQL), unpack it, and set {ENV_DATA_DIR}=/path/to/data "
                "(the folder holding dev.jsonl and dev.tables.jsonl), or pass a Hub id such as 'Salesforce/wikisql'."
            )
        return path
    path = Path(source).expanduser()
    if path.is_dir() and any(path.glob("*.tables.jsonl")):
        return path
    return None


# --------------------------------------------------------------------------- reading


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = read_utf8(path, WikiSQLFormatError)
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may stand inside a JSON string
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise WikiSQLFormatError(
                f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}); "
                "each line must be one JSON object in the WikiSQL release layout"
            ) from None
        if not isinstance(record, dict):
            raise WikiSQLFormatError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def normalise_table(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check a table dict and return it with string cells (Arrow needs one type per list)."""
    for field in ("id", "header", "rows"):
        if field not in raw:
            raise WikiSQLFormatError(f"{where}: table is missing the field '{field}'")
    header = raw["header"]
    if not isinstance(header, list) or not all(isinstance(h, str) for h in header) or not header:
        raise WikiSQLFormatError(f"{where}: table {raw['id']}: 'header' must be a non-empty list of strings")
    types = raw.get("types") or ["text"] * len(header)
    types = [str(t).lower() for t in types]
    if len(types) != len(header):
        raise WikiSQLFormatError(
            f"{where}: table {raw['id']}: {len(types)} types for {len(header)} columns; 'types' must match 'header'"
        )
    unknown = sorted(set(types) - set(COLUMN_TYPES))
    if unknown:
        raise WikiSQLFormatError(
            f"{where}: table {raw['id']}: unknown column types {unknown}; expected {COLUMN_TYPES}"
        )
    rows = raw["rows"]
    if not isinstance(rows, list):
        raise WikiSQLFormatError(f"{where}: table {raw['id']}: 'rows' must be a list of rows")
    out_rows = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(header):
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise WikiSQLFormatError(f"{where}: table {raw['id']}: row {i} has {got} cells for {len(header)} columns")
        out_rows.append([None if c is None else (c if isinstance(c, str) else _number_text(c)) for c in row])
    return {
        "id": str(raw["id"]),
        "name": str(raw.get("name") or ""),
        "header": list(header),
        "types": types,
        "rows": out_rows,
    }


def _number_text(cell: Any) -> str:
    # The release stores numbers in `real` columns as JSON numbers. As text they take the same
    # REAL-affinity path into SQLite (16000 and "16000" both store 16000.0).
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def read_tables(path: Path) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for lineno, raw in _read_jsonl(path):
        table = normalise_table(raw, f"{path}:{lineno}")
        tables[table["id"]] = table
    return tables


def read_official_split(directory: Path, split: str) -> Iterator[dict[str, Any]]:
    """Raw examples of the official layout: {question, table, sql, where}."""
    stem = split
    if not (directory / f"{stem}.jsonl").exists() and split in SPLIT_ALIASES:
        stem = SPLIT_ALIASES[split]
    questions, tables_path = directory / f"{stem}.jsonl", directory / f"{stem}.tables.jsonl"
    for path in (questions, tables_path):
        if not path.exists():
            have = sorted(p.name for p in directory.glob("*.jsonl"))
            raise FileNotFoundError(f"{path} not found (split {split!r}); {directory} has {have}")
    tables = read_tables(tables_path)
    for index, (lineno, raw) in enumerate(_read_jsonl(questions)):
        where = f"{questions}:{lineno}"  # for messages: the file the user can open
        example_id = f"{split}[{index}]"  # location-free: the same question has the same id wherever it is stored
        for field in ("question", "table_id", "sql"):
            if field not in raw:
                raise WikiSQLFormatError(f"{where}: example is missing the field '{field}'")
        table = tables.get(str(raw["table_id"]))
        if table is None:
            yield {"error": f"table '{raw['table_id']}' is not in {tables_path.name}", "where": where}
            continue
        yield {
            "question": raw["question"],
            "table": table,
            "sql": raw["sql"],
            "where": where,
            "example_id": example_id,
        }


def read_hub_split(
    source: str, split: str, revision: str | None, data_files: Any, **load_kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Raw examples of the `Salesforce/wikisql` layout, through `datasets.load_dataset`."""
    if str(source).lower() in UNEXECUTABLE_SOURCES:
        raise_unexecutable(source)
    import datasets

    hub_split = "validation" if split == "dev" else split
    ds = datasets.load_dataset(source, split=hub_split, revision=revision, data_files=data_files, **load_kwargs)
    columns = set(ds.column_names)
    if columns >= UNEXECUTABLE_LAYOUT_COLUMNS or not {"question", "table", "sql"} <= columns:
        raise_unexecutable(source, columns)
    for i, raw in enumerate(ds):
        where = f"{source}[{hub_split}][{i}]"
        table = normalise_table(raw["table"], where)
        conds = raw["sql"].get("conds") or {}
        if isinstance(conds, Mapping):  # Arrow layout: a struct of parallel lists
            conds = list(
                zip(conds.get("column_index", []), conds.get("operator_index", []), conds.get("condition", []))
            )
        sql = {"sel": raw["sql"]["sel"], "agg": raw["sql"]["agg"], "conds": [list(c) for c in conds]}
        yield {"question": raw["question"], "table": table, "sql": sql, "where": where, "example_id": f"{split}[{i}]"}


def raise_unexecutable(source: str, columns: Iterable[str] | None = None) -> None:
    found = f" (columns: {sorted(columns)})" if columns is not None else ""
    raise WikiSQLFormatError(
        f"{source}{found} is not in the WikiSQL layout t2s needs. Copies such as htriedman/wikisql keep only "
        "instruction/input/output text: no table schema, no rows, and SQL like "
        "`SELECT SUM Week FROM table WHERE Attendance > 55,767` that no database can execute, so predictions "
        "cannot be scored by execution. Use 'Salesforce/wikisql' (try revision='refs/convert/parquet') or a "
        "local copy of WikiSQL's official release (dev.jsonl + dev.tables.jsonl)."
    )


# --------------------------------------------------------------------------- splitting


def is_heldout_table(table_id: str, heldout_fraction: float, seed: int) -> bool:
    """Whether a table belongs to the held-out side of the by-table split.

    Decided by a hash of (seed, table id) alone, so the split is stable across runs, machines,
    file order and subsets, and adding tables never moves an existing one.
    """
    digest = hashlib.sha256(f"{seed}:{table_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction


def describe_protocol(
    split: str,
    table_split: str | None,
    heldout_fraction: float,
    holdout_seed: int,
    n: int,
    total: int,
    source: str | None = None,
) -> str:
    """The label every score computed on this data must carry: source (unless the configured copy), split, subset."""
    label = f"WikiSQL {split}" + (f" ({source})" if source else "")
    if table_split == "heldout":
        label += f", held-out tables ({heldout_fraction:.0%} of tables, holdout seed {holdout_seed})"
    elif table_split == "train":
        label += f", training tables (tables not held out: {1 - heldout_fraction:.0%}, holdout seed {holdout_seed})"
    label += f", {n} of {total} questions"
    return label


# --------------------------------------------------------------------------- entry point


def load_wikisql(
    source: str | os.PathLike | None = None,
    split: str = "dev",
    *,
    limit: int | None = None,
    fraction: float | None = None,
    seed: int = 42,
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
    table_split: str | None = None,
    heldout_fraction: float = 0.2,
    holdout_seed: int = 42,
    revision: str | None = None,
    data_files: Any = None,
    on_error: str = "raise",
):
    """WikiSQL as a `datasets.Dataset` of prompt/completion records with executable gold SQL.

    Args:
        source: Hub id (`Salesforce/wikisql` layout), a local official-layout directory, or
            None/"local" for `$T2S_WIKISQL_DIR` (default `../shared/wikisql`).
        split: `train`, `dev` (= `validation`) or `test`.
        limit, fraction: keep a deterministic subset (by `seed`) after the table split.
        schema_format, num_sample_rows: what the prompt shows of the table (see `t2s.data.prompt`).
        table_split: `"train"` keeps questions on tables outside the held-out set, `"heldout"`
            those on held-out tables; the two never share a table. Use it when only one
            WikiSQL split is at hand (as here, dev only); scores on it are "WikiSQL dev,
            held-out tables", not WikiSQL test scores.
        heldout_fraction, holdout_seed: the share of tables held out and the seed of that draw.
        revision, data_files: passed to `datasets.load_dataset` for Hub sources.
        on_error: `"raise"` (default) stops at the first bad example with its location;
            `"skip"` drops bad examples and reports how many were dropped and why.
    """
    import datasets

    check_schema_format(schema_format)
    if table_split not in (None, *TABLE_SPLITS):
        raise ValueError(f"table_split={table_split!r} must be one of {TABLE_SPLITS} or None")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction={heldout_fraction} must be in (0, 1)")
    check_on_error(on_error)

    local = resolve_local_dir(source)
    raw_examples = (
        read_official_split(local, split)
        if local is not None
        else read_hub_split(str(source), split, revision, data_files)
    )

    records, skipped = collect_records(
        raw_examples, lambda raw: make_record(raw, schema_format, num_sample_rows), dataset="WikiSQL",
        source=source or default_data_dir(), on_error=on_error,
        errors=(WikiSQLFormatError, GoldSQLError, KeyError, TypeError), explain=_explain, raise_as=WikiSQLFormatError,
    )  # fmt: skip

    total = len(records)
    if table_split is not None:
        want_heldout = table_split == "heldout"
        records = [
            r for r in records if is_heldout_table(r["table_id"], heldout_fraction, holdout_seed) == want_heldout
        ]
    pool = len(records)
    records = [records[i] for i in subset_indices(pool, limit, fraction, seed)]

    features = wikisql_features()
    info = datasets.DatasetInfo(
        description=describe_protocol(
            split,
            table_split,
            heldout_fraction,
            holdout_seed,
            len(records),
            total,
            None if source in LOCAL_SOURCES else source_label(source),
        ),
        features=features,
    )
    require_examples(records, "WikiSQL", split, source, skipped)
    return datasets.Dataset.from_list(records, features=features, info=info)


def _explain(raw: Mapping[str, Any], error: Exception) -> tuple[str, str]:
    reason = error.args[0] if error.args else type(error).__name__
    return f"{raw['where']}: {reason}.", _reason_kind(str(reason))


def make_record(raw: Mapping[str, Any], schema_format: str, num_sample_rows: int) -> dict[str, Any]:
    if "error" in raw:  # the reader found the line unreadable
        raise WikiSQLFormatError(raw["error"])
    table, sql, question = raw["table"], raw["sql"], raw["question"]
    if not isinstance(question, str) or not question.strip():
        raise WikiSQLFormatError("'question' must be a non-empty string")
    if not isinstance(sql, Mapping) or "sel" not in sql or "agg" not in sql:
        raise WikiSQLFormatError("'sql' must be an object with 'sel', 'agg' and 'conds'")
    conds = sql.get("conds") or []
    for cond in conds:
        if not isinstance(cond, (list, tuple)) or len(cond) != 3:
            raise WikiSQLFormatError(f"condition {cond!r} is not [column_index, operator_index, value]")
    gold = render_gold_sql(sql, table)
    return {
        "example_id": raw["example_id"],
        "question": question,
        "db_id": table["id"],
        "table_id": table["id"],
        "table": table,
        "sql": {
            "sel": sql["sel"],
            "agg": sql["agg"],
            "conds": {
                "column_index": [c[0] for c in conds],
                "operator_index": [c[1] for c in conds],
                "condition": [str(c[2]) for c in conds],
            },
        },
        "gold_sql": gold,
        "prompt": build_prompt(table, question, schema_format, num_sample_rows),
        "completion": gold,
        "semantics": SEMANTICS,
    }


def wikisql_features():
    import datasets

    string, int32 = datasets.Value("string"), datasets.Value("int32")
    return datasets.Features(
        {
            "example_id": string,
            "question": string,
            "db_id": string,
            "table_id": string,
            "table": {
                "id": string,
                "name": string,
                "header": datasets.List(string),
                "types": datasets.List(string),
                "rows": datasets.List(datasets.List(string)),
            },
            "sql": {
                "sel": int32,
                "agg": int32,
                "conds": {
                    "column_index": datasets.List(int32),
                    "operator_index": datasets.List(int32),
                    "condition": datasets.List(string),
                },
            },
            "gold_sql": string,
            "prompt": string,
            "completion": string,
            "semantics": string,
        }
    )


def _reason_kind(reason: str) -> str:
    for kind in ("not in", "column index", "operator index", "aggregation index", "contains no number", "missing"):
        if kind in reason:
            return {
                "not in": "table missing",
                "column index": "column index out of range",
                "operator index": "unknown operator",
                "aggregation index": "unknown aggregation",
                "contains no number": "non-numeric value on a real column",
                "missing": "missing field",
            }[kind]
    return reason


__all__ = [
    "AGG_OPS",
    "COND_OPS",
    "WikiSQLFormatError",
    "default_data_dir",
    "describe_protocol",
    "is_heldout_table",
    "load_wikisql",
]
