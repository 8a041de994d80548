"""A Spider-layout dataset copied onto DuckDB with its gold in DuckDB's dialect, keeping only the gold that carries over.

A model trained on SQLite gold writes SQLite-isms on other engines (`WHERE name = "Paris"`, which DuckDB and
PostgreSQL read as a column name: docs/engines.md). Training on gold written in the target's dialect is the fix, and
it needs data whose gold was checked there: each question's SQLite gold is transpiled (`t2s.data.copy_db.transpile`),
run on the copy and on the SQLite file, and kept only if it returns SQLite's result under Spider's semantics. A
question whose gold does not carry over is left out rather than trained on in a form nobody ran, and the report
says which and why. The copy is an ordinary Spider layout with a `databases.json`, so training, evaluation and
`ask` read it as they read any database on an engine, with prompts in its dialect.

DuckDB only: its databases are files, so the layout is self-contained. For a server engine, copy each database with
`t2s copy-db` and transpile the gold with `t2s transpile`.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from t2s.data.copy_db import copy_sqlite, transpile
from t2s.data.spider import DATABASES_FILE, SpiderFormatError, read_json_list, split_files
from t2s.execution.engines import open_engine
from t2s.execution.engines.base import Engine
from t2s.execution.scoring import GoldResult, run_gold
from t2s.execution.semantics import spider_results_match

REPORT_FILE = "dialect_copy.json"
COPYABLE_DIALECTS = ("duckdb",)
FIELDS = ("db_id", "question", "query")


class CarryOver(enum.Enum):
    """Whether a SQLite gold query means the same on another engine once transpiled, and if not, why not."""

    YES = "yes"
    NO_DATABASE = "no SQLite database file"
    FAILS_ON_SQLITE = "fails on SQLite"
    NOT_TRANSPILED = "does not transpile"
    FAILS_THERE = "fails there"
    OTHER_RESULT = "another result there"


def catalogue_names(engine: Engine) -> set[str]:
    """Every table and column name of a database: what `transpile` needs to read SQLite's double-quoted strings."""
    catalogue = engine.catalogue()
    return {t.name for t in catalogue} | {c.name for t in catalogue for c in t.columns}


def transpile_or_none(sql: str, dialect: str, names: set[str] | None) -> str | None:
    try:
        return transpile(sql, dialect, names)
    except ValueError:
        return None


def gold_carries_over(sqlite_gold: GoldResult, engine: Engine, transpiled: str | None) -> CarryOver:
    """Whether the transpiled gold returns on `engine` what the SQLite gold (`sqlite_gold`, run once) returned."""
    if not sqlite_gold.ok:
        return CarryOver.FAILS_ON_SQLITE
    if transpiled is None:
        return CarryOver.NOT_TRANSPILED
    there = run_gold(engine, transpiled, semantics="spider")
    if not there.ok:
        return CarryOver.FAILS_THERE
    same = spider_results_match(
        sqlite_gold.execution.rows, there.execution.rows, order_matters=sqlite_gold.order_matters
    )
    return CarryOver.YES if same else CarryOver.OTHER_RESULT


@dataclass
class DialectCopyReport:
    """What a copy kept and left out: per split file, the questions kept and each left-out question's reason."""

    dialect: str
    databases: int = 0
    kept: dict[str, int] = field(default_factory=dict)  # split file → questions written
    left_out: list[dict] = field(default_factory=list)  # {"where": "train_spider.json[12]", "reason": …}

    def reasons(self) -> Counter:
        return Counter(item["reason"] for item in self.left_out)


def copy_spider_dialect(
    source: Path,
    out: Path,
    *,
    dialect: str = "duckdb",
    splits: Iterable[str] = ("train", "dev"),
    on_question: Callable[[], None] | None = None,
) -> DialectCopyReport:
    """The questions of `splits` in the Spider layout `source`, with their databases copied onto `dialect` and their
    gold transpiled and checked (module docstring), written as a new Spider layout at `out`.

    `out` must not exist; the layout is built beside it and moved into place only when complete, so an interrupted
    copy leaves nothing that looks finished. Writes the split files under the source's names, `databases.json`
    (relative paths) and `dialect_copy.json` (what was left out, and why). `on_question` is called once per question
    (progress)."""
    if dialect not in COPYABLE_DIALECTS:
        raise ValueError(
            f"dialect={dialect!r}: only {', '.join(COPYABLE_DIALECTS)} copies into a self-contained layout; for a "
            "server engine, copy each database with `t2s copy-db` and transpile the gold with `t2s transpile`"
        )
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder (nothing was written)")
    if (source / DATABASES_FILE).exists():
        raise SpiderFormatError(
            f"{source / DATABASES_FILE}: this dataset's databases are already on an engine; copy-dataset reads a "
            "layout whose databases are SQLite files (database/<db_id>/<db_id>.sqlite)"
        )
    files = []
    for split in splits:
        names, _, db_folder = split_files(source, split)
        files += [(name, split, db_folder) for name in names]
    for name, split, _ in files:
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} not found (split {split!r})")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "database").mkdir(parents=True)
    try:
        report = _copy(source, partial, dialect, files, on_question)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, out)
    return report


def _copy(source: Path, partial: Path, dialect: str, files, on_question) -> DialectCopyReport:
    report = DialectCopyReport(dialect)
    copies: dict[str, str] = {}
    opened: dict[str, tuple[Engine, Engine, set[str]] | None] = {}
    try:
        for name, _, db_folder in files:
            kept = []
            for i, raw in enumerate(read_json_list(source / name)):
                where = f"{name}[{i}]"
                if on_question is not None:
                    on_question()
                if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in FIELDS):
                    raise SpiderFormatError(f"{source / where}: expected an object with {', '.join(FIELDS)} (strings)")
                db_id = raw["db_id"]
                if db_id not in opened:
                    opened[db_id] = _open_pair(source / db_folder, partial, db_id, copies)
                if opened[db_id] is None:
                    report.left_out.append({"where": where, "reason": CarryOver.NO_DATABASE.value})
                    continue
                sqlite_engine, engine, names = opened[db_id]
                sqlite_gold = run_gold(sqlite_engine, raw["query"], semantics="spider")
                transpiled = transpile_or_none(raw["query"], dialect, names)
                verdict = gold_carries_over(sqlite_gold, engine, transpiled)
                if verdict is not CarryOver.YES:
                    report.left_out.append({"where": where, "reason": verdict.value})
                    continue
                kept.append({"db_id": db_id, "question": raw["question"], "query": transpiled, "source": where})
            (partial / name).write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
            report.kept[name] = len(kept)
    finally:
        for pair in opened.values():
            if pair is not None:
                pair[0].close()
                pair[1].close()
    report.databases = len(copies)
    (partial / DATABASES_FILE).write_text(json.dumps(copies, indent=1) + "\n")
    (partial / REPORT_FILE).write_text(
        json.dumps(
            {"source": str(source), "dialect": dialect, "databases": report.databases, "kept": report.kept,
             "left_out_by_reason": dict(report.reasons()), "left_out": report.left_out},
            indent=1,
        ) + "\n"
    )  # fmt: skip
    return report


def _open_pair(db_root: Path, partial: Path, db_id: str, copies: dict[str, str]):
    """The SQLite database of `db_id` and its copy (made here, once: the first split that names a db_id gives its
    file), with its names; None without a SQLite file."""
    path = db_root / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        return None
    relative = f"database/{db_id}.duckdb"
    copy_sqlite(path, str(partial / relative))
    copies[db_id] = relative
    sqlite_engine = open_engine(str(path))
    return sqlite_engine, open_engine(str(partial / relative)), catalogue_names(sqlite_engine)
