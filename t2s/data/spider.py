"""Load Spider (Yu et al., 2018) as prompt/completion records over real SQLite databases.

Sources:

* a local folder in the release layout: `dev.json`, `train_spider.json` (+ `train_others.json`),
  `tables.json`, `database/<db_id>/<db_id>.sqlite`; the 2023 release adds `test.json`,
  `test_tables.json` and `test_database/`. `source="spider"` (or None) reads `$T2S_SPIDER_DIR`,
  default `../shared/spider` beside this repository;
* a Hub dataset id in the `xlangai/spider` layout (`db_id`, `question`, `query`), read with
  `datasets.load_dataset`. The Hub copy has no databases and no schema, so `db_dir` names a local
  folder that holds `tables.json` and `database/` (default: the local copy above).

Every record carries the canonical prompt (every table of its database as `CREATE TABLE` with
types and keys), the gold query with its whitespace normalised as the completion, the original
gold query for the metric, the database file, and the official hardness.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2s.data.common import (
    DataFormatError,
    check_on_error,
    collect_records,
    read_json,
    require_examples,
    source_label,
    subset_indices,
)
from t2s.data.hardness import hardness
from t2s.data.linking import link, prune_schema, read_text_values, value_index, values_line
from t2s.data.prompt import DEFAULT_SAMPLE_ROWS, DEFAULT_SCHEMA_FORMAT, check_schema_format, fill_prompt, render_schema
from t2s.data.schema import DatabaseSchema, SchemaError, from_engine, from_sqlite, from_tables_json
from t2s.execution.databases import SQLITE_MAGIC
from t2s.execution.engines import Engine, EngineError, database_for, engine_kind, is_url, redact
from t2s.execution.semantics import Semantics
from t2s.execution.sql_text import normalize_whitespace

ENV_SPIDER_DIR = "T2S_SPIDER_DIR"
LOCAL_SOURCES = (None, "", "spider")
# Every Spider-layout folder (Spider itself, your own databases) is scored by Spider's official execution match.
SEMANTICS = Semantics.SPIDER.value
# split → (question files, tables file, databases folder)
SPLIT_FILES = {
    "dev": (("dev.json",), "tables.json", "database"),
    "train": (("train_spider.json",), "tables.json", "database"),
    "test": (("test.json",), "test_tables.json", "test_database"),
}
OTHERS_FILE = "train_others.json"
# Your own data on any engine: {"<db_id>": "<SQLite/DuckDB file or URL>"} beside the question files (docs/engines.md).
DATABASES_FILE = "databases.json"
HUB_SPLITS = {"dev": "validation", "validation": "validation", "train": "train", "test": "test"}


class SpiderFormatError(DataFormatError):
    """A Spider file or example is unusable; the message names the file, the example and what to do."""


def default_spider_dir() -> Path:
    env = os.environ.get(ENV_SPIDER_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "spider"


def is_spider_dir(path: str | os.PathLike) -> bool:
    """Spider's release layout, or the same without tables.json (questions + database/ folder)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "tables.json").exists() or (path / "test_tables.json").exists():
        return True
    if (path / DATABASES_FILE).exists():
        return True
    return (path / "database").is_dir() and any(path.glob("*.json"))


def resolve_spider_dir(source: str | os.PathLike | None) -> Path | None:
    """The local release-layout folder `source` names, or None for a Hub id."""
    if source in LOCAL_SOURCES:
        path = default_spider_dir()
        if not is_spider_dir(path):
            raise FileNotFoundError(
                f"No local Spider folder at {path} (it needs tables.json and database/). Download Spider 1.0 "
                f"(yale-lily.github.io/spider), unpack it, and set {ENV_SPIDER_DIR}=/path/to/spider, or pass the "
                "folder itself."
            )
        return path
    path = Path(source).expanduser()
    return path if is_spider_dir(path) else None


# --------------------------------------------------------------------------- reading


def read_json_list(path: Path) -> list:
    return read_json(path, list, SpiderFormatError, "Spider files are one JSON list")


class SQLiteSchemas(dict):
    """Schemas described from each database file itself, for data without a `tables.json` (your own databases)."""

    def __init__(self, db_root: Path) -> None:
        super().__init__()
        self.db_root = db_root

    def get(self, db_id: str, default: Any = None) -> DatabaseSchema | None:
        if db_id not in self:
            path = self.db_root / db_id / f"{db_id}.sqlite"
            if check_database(path) is not None:
                return default
            try:
                self[db_id] = from_sqlite(path, db_id)
            except SchemaError as e:
                raise SpiderFormatError(str(e)) from None
        return self[db_id]


class EngineSchemas(dict):
    """Schemas read from each database's own catalogue on its engine, for data whose `databases.json` names them."""

    def __init__(self, databases: dict[str, str], where: Path) -> None:
        super().__init__()
        self.databases, self.where = databases, where

    def get(self, db_id: str, default: Any = None) -> DatabaseSchema | None:
        if db_id not in self.databases:
            return default
        if db_id not in self:
            try:
                self[db_id] = from_engine(database_for(self.databases[db_id]), db_id)
            except (EngineError, SchemaError) as e:
                raise SpiderFormatError(f"{self.where}: database '{db_id}': {e}") from None
        return self[db_id]


def read_database_map(directory: Path) -> dict[str, str] | None:
    """`databases.json`: each db_id's database, as a file path (relative to the folder) or a URL; None without it."""
    path = directory / DATABASES_FILE
    if not path.exists():
        return None
    example = '{"shop": "postgresql://reader@host/shop"}'
    data = read_json(path, dict, SpiderFormatError, f"it maps each db_id to a database file or URL: {example}")
    if not data:
        raise SpiderFormatError(f"{path}: expected an object such as {example}")
    databases = {}
    for db_id, name in data.items():
        if not isinstance(name, str) or not name.strip():
            raise SpiderFormatError(f"{path}: '{db_id}' must name a database file or URL, got {name!r}")
        try:
            engine_kind(name)
        except EngineError as e:
            raise SpiderFormatError(f"{path}: '{db_id}': {e}") from None
        databases[str(db_id)] = name if is_url(name) else str((directory / name).expanduser().resolve())
    return databases


def read_schemas(path: Path, db_root: Path | None = None) -> dict[str, DatabaseSchema]:
    """`tables.json` when present; without it (your own data), each database describes itself."""
    if not path.exists():
        if db_root is not None and db_root.is_dir():
            return SQLiteSchemas(db_root)
        raise FileNotFoundError(
            f"{path} not found, and no {db_root} folder of databases to describe instead: Spider's layout needs "
            "tables.json or database/<db_id>/<db_id>.sqlite beside the question files"
        )
    schemas = {}
    for i, entry in enumerate(read_json_list(path)):
        try:
            schema = from_tables_json(entry, f"{path}[{i}]")
        except SchemaError as e:
            raise SpiderFormatError(str(e)) from None
        schemas[schema.db_id] = schema
    return schemas


def read_gold_caveats(directory: Path, stem: str) -> dict[int, str]:
    """Known problems of individual gold results, where the data's maintainers recorded them.

    `../shared/spider` marks, in `{dev,train}_gold_exec.jsonl`, the examples whose database was
    rebuilt or is missing; they are scored like every other but reported apart.
    """
    split = "train_spider" if stem == "train_spider" else None
    path = directory / f"{'train' if split else stem}_gold_exec.jsonl"
    caveats: dict[int, str] = {}
    if not path.exists():
        return caveats
    for line in path.read_text(encoding="utf-8").splitlines():
        if '"caveat"' not in line:
            continue
        record = json.loads(line)
        if split is None or record.get("split") == split:
            caveats[int(record["idx"])] = str(record["caveat"])
    return caveats


def split_files(directory: Path, split: str) -> tuple[tuple[str, ...], str, str]:
    """Spider's own file names, or `<split>.json` beside `tables.json`/`database/` (your own data)."""
    split = (
        "dev" if split == "validation" and not (directory / "validation.json").exists() else split
    )  # the Hub's name
    files, tables_file, db_folder = SPLIT_FILES.get(split, ((f"{split}.json",), "tables.json", "database"))
    if not all((directory / f).exists() for f in files) and (directory / f"{split}.json").exists():
        files = (f"{split}.json",)
    return files, tables_file, db_folder


@dataclass(frozen=True)
class SplitSource:
    """What describes the databases of one split, shared by all its questions: the schemas (db_id → DatabaseSchema,
    from tables.json, SQLite files or databases.json), where they were read, and databases.json's map when given."""

    schemas: Any
    tables_file: Path
    db_root: Path
    databases: dict[str, str] | None = None  # databases.json: db_id → file or URL


@dataclass(frozen=True)
class SpiderItem:
    """One raw question as a split file (or the Hub) gives it, with where it came from and what describes its
    database."""

    raw: Any  # the JSON object: db_id, question, query
    where: str  # file[index], for error messages
    example_id: str
    source: SplitSource
    caveat: str = ""


def split_items(rows: Iterable[Any], where: str, stem: str, source: SplitSource, caveats: dict[int, str]):
    """The items of one split file (or Hub split), numbered as the file numbers them."""
    for i, raw in enumerate(rows):
        yield SpiderItem(raw, f"{where}[{i}]", f"{stem}[{i}]", source, caveats.get(i, ""))


@dataclass
class PromptCache:
    """What building prompts computes once per database rather than per question: the linking settings, each SQLite
    file's check, each database's rendered schema (without linking) and text-value index (with linking)."""

    link_values: bool = False
    prune_tables: int = 0
    schema_max_chars: int = 0
    checks: dict[Path, str | None] = field(default_factory=dict)
    schemas: dict[Any, str] = field(default_factory=dict)
    value_indexes: dict[tuple, dict] = field(default_factory=dict)

    @property
    def linking(self) -> bool:
        return bool(self.link_values or self.prune_tables or self.schema_max_chars)


@dataclass(frozen=True)
class QuestionDatabase:
    """The database one question is asked of: its schema, what sample rows and values are read from (an engine, an
    SQLite file path, or None without a file), the key its rendered schema is cached under, the record's `db_path`,
    and the data caveat the record carries."""

    schema: Any
    database: Any
    key: Any
    db_path: str
    caveat: str


def read_local_split(directory: Path, split: str, include_others: bool) -> Iterator[SpiderItem]:
    files, tables_file, db_folder = split_files(directory, split)
    if split == "train" and include_others:
        if (directory / OTHERS_FILE).exists():
            files = (*files, OTHERS_FILE)
        else:
            raise FileNotFoundError(
                f"{directory / OTHERS_FILE} not found: pass include_others=False to train on train_spider.json only"
            )
    for name in files:
        if not (directory / name).exists():
            have = sorted(p.name for p in directory.glob("*.json"))
            raise FileNotFoundError(f"{directory / name} not found (split {split!r}); {directory} has {have}")
    databases = read_database_map(directory)
    if databases is not None:
        schemas = EngineSchemas(databases, directory / DATABASES_FILE)
    else:
        schemas = read_schemas(directory / tables_file, directory / db_folder)
    source = SplitSource(schemas, directory / tables_file, directory / db_folder, databases)
    for name in files:
        path = directory / name
        yield from split_items(
            read_json_list(path), str(path), path.stem, source, read_gold_caveats(directory, path.stem)
        )


def read_hub_split(source: str, split: str, db_dir: Path, **load_kwargs: Any) -> Iterator[SpiderItem]:
    import datasets

    hub_split = HUB_SPLITS.get(split, split)
    ds = datasets.load_dataset(source, split=hub_split, **load_kwargs)
    missing = {"db_id", "question", "query"} - set(ds.column_names)
    if missing:
        raise SpiderFormatError(
            f"{source} has no column(s) {sorted(missing)} (columns: {ds.column_names}); the Spider layout has "
            "db_id, question and query"
        )
    local_split = "dev" if hub_split == "validation" else split
    _, tables_file, db_folder = SPLIT_FILES.get(local_split, SPLIT_FILES["dev"])
    split_source = SplitSource(read_schemas(db_dir / tables_file), db_dir / tables_file, db_dir / db_folder)
    stem = {"dev": "dev", "train": "train_spider", "test": "test"}.get(local_split, local_split)
    yield from split_items(ds, f"{source}[{hub_split}]", stem, split_source, read_gold_caveats(db_dir, stem))


def check_database(path: Path) -> str | None:
    """Why `path` cannot be executed on, or None when it is an SQLite file."""
    if not path.exists():
        return "no database file"
    with path.open("rb") as f:
        header = f.read(100)
    if header[:16] != SQLITE_MAGIC:
        return "not an SQLite database"
    if len(header) < 100:
        return "a truncated SQLite file (shorter than its header)"
    # The header's page count is valid when its two change counters agree (sqlite.org/fileformat2.html).
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and pages and path.stat().st_size < pages * page_size:
        return (
            f"a truncated SQLite file ({path.stat().st_size:,} bytes of the {pages * page_size:,} its header declares)"
        )
    return None


# --------------------------------------------------------------------------- entry point


def load_spider(
    source: str | os.PathLike | None = None,
    split: str = "dev",
    *,
    limit: int | None = None,
    fraction: float | None = None,
    seed: int = 42,
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
    db_dir: str | os.PathLike | None = None,
    include_others: bool = False,
    require_database: bool = True,
    check_gold: bool = False,
    link_values: bool = False,
    prune_tables: int = 0,
    schema_max_chars: int = 0,
    on_error: str = "raise",
    **load_kwargs: Any,
):
    """Spider as a `datasets.Dataset` of prompt/completion records, in file order.

    Args:
        source: a release-layout folder, None/"spider" for `$T2S_SPIDER_DIR` (default
            `../shared/spider`), or a Hub id in the `xlangai/spider` layout.
        split: `dev` (= `validation`), `train` (`train_spider.json`, plus `train_others.json` with
            `include_others=True`) or `test` (the 2023 release's `test.json`); any other name, or a
            split whose Spider file is absent, reads `<split>.json` (your own data: `train.json`...).
        limit, fraction, seed: keep a deterministic subset, still in file order.
        schema_format, num_sample_rows: what the prompt shows of the database (`t2s.data.prompt`).
        db_dir: for a Hub source, the local folder with `tables.json` and `database/`.
        require_database: an example whose database file is missing is an error (default); with
            False it is kept for training (its prompt comes from `tables.json`) with `db_path` "",
            and cannot be scored.
        check_gold: run every gold query on its database (in the metric's sandbox) and treat one that
            fails as a bad example. For your own data: a query that does not run would be trained on.
        link_values, prune_tables: schema and value linking (`t2s.data.linking`): show the stored values the
            question mentions, and keep only the `prune_tables` tables it refers to most plus the foreign-key
            paths between them (0: all). The prompt then depends on the question.
        schema_max_chars: a budget for the schema slot (0: none): the lowest-ranked tables are dropped until the
            schema text, values line included, fits (the top table always stays), so a database of any size fits
            the model's context.
        on_error: `"raise"` stops at the first bad example with its location; `"skip"` drops bad
            examples and reports how many, and why.
        load_kwargs: passed to `datasets.load_dataset` for Hub sources (revision, data_files…).
    """
    import datasets

    check_schema_format(schema_format)
    check_on_error(on_error)
    local = resolve_spider_dir(source)
    if local is not None:
        raw_examples = read_local_split(local, split, include_others)
    else:
        databases = Path(db_dir).expanduser() if db_dir else default_spider_dir()
        if not is_spider_dir(databases):
            raise FileNotFoundError(
                f"{source} is read from the Hub, which has Spider's questions but not its databases: db_dir="
                f"{databases} must be a folder with tables.json and database/ (or set {ENV_SPIDER_DIR})"
            )
        raw_examples = read_hub_split(str(source), split, databases, **load_kwargs)

    if prune_tables < 0:
        raise ValueError(f"prune_tables={prune_tables} must be 0 (every table) or a number of tables")
    if schema_max_chars < 0:
        raise ValueError(f"schema_max_chars={schema_max_chars} must be 0 (no budget) or a number of characters")
    cache = PromptCache(bool(link_values), int(prune_tables), int(schema_max_chars))

    def build(item: SpiderItem) -> dict[str, Any]:
        record = make_record(item, schema_format, num_sample_rows, require_database, cache)
        if check_gold and record["db_path"]:
            check_gold_runs(record, item.where)
        return record

    records, skipped = collect_records(
        raw_examples, build, dataset="Spider", source=source or default_spider_dir(), on_error=on_error,
        errors=(SpiderFormatError,), explain=lambda item, e: (str(e), getattr(e, "kind", "bad example")),
        raise_as=SpiderFormatError,
    )  # fmt: skip
    total = len(records)
    records = [records[i] for i in subset_indices(total, limit, fraction, seed)]
    features = spider_features()
    label = f"Spider {split}"
    label += "" if source in LOCAL_SOURCES else f" ({source_label(source)})"
    label += f", {len(records)} of {total} questions"
    if len(records) < total:
        label += f" (seed {seed})"
    info = datasets.DatasetInfo(description=label, features=features)
    files = [local / name for name in split_files(local, split)[0]] if local is not None else None
    require_examples(records, "Spider", split, source, skipped, files=files)
    return datasets.Dataset.from_list(records, features=features, info=info)


def _error(message: str, kind: str) -> SpiderFormatError:
    e = SpiderFormatError(message)
    e.kind = kind
    return e


def make_record(
    item: SpiderItem,
    schema_format: str,
    num_sample_rows: int,
    require_database: bool,
    cache: PromptCache | None = None,
) -> dict[str, Any]:
    raw, where = item.raw, item.where
    if not isinstance(raw, Mapping):
        raise _error(f"{where}: expected an object with db_id, question and query", "not an object")
    for name in ("db_id", "question", "query"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            raise _error(f"{where}: the field '{name}' must be a string, got {value!r}.", "missing field")
        if not isinstance(value, str) or not value.strip():
            raise _error(f"{where}: the field '{name}' is missing or empty.", "missing field")
    db_id = raw["db_id"]
    cache = PromptCache() if cache is None else cache
    if item.source.databases is not None:
        target = _engine_database(item, db_id)
    else:
        target = _sqlite_database(item, db_id, require_database, cache)
    question = " ".join(raw["question"].split())
    schema_text = schema_for_question(
        target.schema, question, target.database, target.key, schema_format, num_sample_rows, cache
    )
    query = raw["query"]
    completion = normalize_whitespace(query)
    return {
        "example_id": item.example_id,
        "question": question,
        "db_id": db_id,
        "db_path": target.db_path,
        "gold_sql": query,
        "hardness": hardness(completion),
        "caveat": target.caveat,
        "prompt": fill_prompt(schema_text, question),
        "completion": completion,
        "semantics": SEMANTICS,
    }


def _sqlite_database(item: SpiderItem, db_id: str, require_database: bool, cache: PromptCache) -> QuestionDatabase:
    """The database of a question on `database/<db_id>/<db_id>.sqlite`; a training question may keep its schema from
    tables.json without the file."""
    where = item.where
    schema = item.source.schemas.get(db_id)
    db_path = item.source.db_root / db_id / f"{db_id}.sqlite"
    if schema is None and isinstance(item.source.schemas, SQLiteSchemas):
        raise _error(
            f"{where}: no database file at {db_path} for db_id '{db_id}' (and no tables.json to describe it from); "
            "put the database there or fix the db_id.",
            check_database(db_path) or "bad database",
        )
    if schema is None:
        raise _error(
            f"{where}: db_id '{db_id}' has no entry in {item.source.tables_file}; add its schema there.",
            "db_id not in tables.json",
        )
    if db_path not in cache.checks:
        cache.checks[db_path] = check_database(db_path)
    problem = cache.checks[db_path]
    if problem is not None and (require_database or problem != "no database file"):
        raise _error(
            f"{where}: {problem} at {db_path} for db_id '{db_id}'; put the database there, or (for training only) "
            "pass require_database=False to train on its schema from tables.json.",
            problem,
        )
    caveat = item.caveat or ("database file not available" if problem else "")
    # db_path names the db_id, and the db_id the schema
    usable = problem is None
    return QuestionDatabase(schema, str(db_path) if usable else None, db_path, str(db_path) if usable else "", caveat)


def _engine_database(item: SpiderItem, db_id: str) -> QuestionDatabase:
    """The same for a question whose database `databases.json` names (a URL or a DuckDB file): its schema and prompt
    in that engine's dialect."""
    databases = item.source.databases
    if db_id not in databases:
        raise _error(
            f"{item.where}: db_id '{db_id}' has no entry in {DATABASES_FILE} (it names {sorted(databases)}); "
            "add it there.",
            "db_id not in databases.json",
        )
    name = databases[db_id]
    return QuestionDatabase(item.source.schemas.get(db_id), database_for(name), name, name, item.caveat)


def schema_for_question(
    schema, question: str, database, key: Any, schema_format: str, num_sample_rows: int, cache: PromptCache
) -> str:
    """The schema slot of one question's prompt: rendered once per database (`key`), or per question with linking."""
    if cache.linking:
        return linked_schema(schema, question, database, schema_format, num_sample_rows, cache)
    if key not in cache.schemas:
        cache.schemas[key] = render_schema(schema, schema_format, num_sample_rows, database=database)
    return cache.schemas[key]


def linked_schema(schema, question: str, database, schema_format: str, num_sample_rows: int, cache: PromptCache):
    """The schema text of one question with linking on: pruned to the tables it refers to (and their foreign-key
    paths) and to the character budget, with the stored values it mentions; each database's values are indexed once."""
    link_values, prune_tables, max_chars = cache.link_values, cache.prune_tables, cache.schema_max_chars
    key = (schema.db_id, str(database))
    if key not in cache.value_indexes:
        index = {}
        if database is not None:
            engine = database if isinstance(database, Engine) else database_for(str(database))
            index = value_index(read_text_values(lambda sql: engine.run(sql).rows, schema))
        cache.value_indexes[key] = index
    found = link(schema, question, cache.value_indexes[key])
    keep = prune_tables or len(schema.tables)
    while True:
        shown = prune_schema(schema, found, keep)
        text = render_schema(shown, schema_format, num_sample_rows, database=database)
        line = values_line(found, shown.table_names()) if link_values else ""
        text = f"{text}\n{line}" if line else text
        if not max_chars or len(text) <= max_chars or keep <= 1:
            return text
        keep = min(keep, len(shown.tables)) - 1


def check_gold_runs(record: Mapping[str, Any], where: str) -> None:
    result = database_for(record["db_path"]).run(record["gold_sql"])
    if result.status != "ok":
        raise _error(
            f"{where}: the gold query does not run on {redact(record['db_path'])} ({result.status}: {result.error}); "
            "fix the query or remove the example.",
            "gold SQL does not run",
        )


def spider_features():
    import datasets

    string = datasets.Value("string")
    return datasets.Features(
        {
            name: string
            for name in (
                "example_id",
                "question",
                "db_id",
                "db_path",
                "gold_sql",
                "hardness",
                "caveat",
                "prompt",
                "completion",
                "semantics",
            )
        }
    )
