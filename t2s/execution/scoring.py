"""Score predictions against gold SQL: each gold query run once, each prediction compared under its dataset's semantics.

Every example gets the pristine database (read-only, cached per file), so one example can never affect another.
`score_all` is what the `evaluate` metric (t2s/metrics/execution_accuracy) and the commands call; `run_gold` and
`compare_with_gold` let the GRPO reward score many completions against one gold run.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from t2s.execution.engines import Engine, EngineError, is_url, open_engine
from t2s.execution.engines.sqlite import table_engine
from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Execution, Status, scan_sql
from t2s.execution.semantics import (
    Semantics,
    is_empty_result,
    results_match,
    spider_normalize,
    spider_results_match,
)
from t2s.runtime import UserError


class Outcome(str, Enum):
    """One prediction's outcome against its gold query. A `str` enum: it reads in JSON and compares as its value."""

    CORRECT = "correct"
    WRONG_RESULT = "wrong_result"
    EXEC_ERROR = "exec_error"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"  # the result passed the row or byte cap (or DuckDB's memory limit)
    REJECTED = "rejected"
    EMPTY = "empty"  # no SQL
    GOLD_ERROR = "gold_error"  # the gold query (or its database) failed: the example is left out of every denominator

    def __str__(self) -> str:
        return self.value


OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.GOLD_ERROR)  # the outcomes that are scored


@dataclass
class ScoredExample:
    """One example's outcome under its semantics, with both results (their first rows, capped) for analysis."""

    outcome: Outcome
    error: str | None = None
    gold_empty: bool | None = None
    prediction_rows: list[list[Any]] | None = None
    gold_rows: list[list[Any]] | None = None
    prediction_columns: list[str] | None = None
    gold_columns: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The metric's `details` entry: plain JSON values."""
        return {**asdict(self), "outcome": self.outcome.value}


DETAIL_ROWS = 20
DETAIL_CHARS = 500


def _capped(rows: list[tuple] | None) -> list[list[Any]] | None:
    """The first rows of a result for the details, each long value cut (a 9 MB blob would be an 18 MB hex string)."""
    if rows is None:
        return None
    return [[_shown_value(v) for v in row] for row in rows[:DETAIL_ROWS]]


def _shown_value(value: Any) -> Any:
    if isinstance(value, bytes):
        text = value[: DETAIL_CHARS // 2].hex()
        return text if len(value) <= DETAIL_CHARS // 2 else f"{text}… ({len(value):,} bytes)"
    if isinstance(value, str) and len(value) > DETAIL_CHARS:
        return f"{value[:DETAIL_CHARS]}… ({len(value):,} characters)"
    return value


@dataclass(frozen=True)
class GoldResult:
    """A gold query run once on its database, ready to be compared with any number of predictions."""

    semantics: Semantics
    sql: str  # as run (Spider: normalised like the official evaluator)
    execution: Execution
    order_matters: bool
    keep_distinct: bool

    @property
    def ok(self) -> bool:
        return self.execution.status == Status.OK

    @property
    def empty(self) -> bool | None:
        if not self.ok:
            return None
        rows = self.execution.rows
        return not rows if self.semantics == Semantics.SPIDER else is_empty_result(rows)


@dataclass(frozen=True)
class ScoringOptions:
    """How an example is scored: the result semantics and the limits every query runs under (one value handed to
    each worker process of `score_all`)."""

    semantics: Semantics
    keep_distinct: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS
    allow_privileged: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "semantics", Semantics.parse(self.semantics))
        timeout_s, max_rows = check_limits(self.timeout_s, self.max_rows)
        object.__setattr__(self, "timeout_s", timeout_s)
        object.__setattr__(self, "max_rows", max_rows)


def run_gold(
    engine: Engine,
    reference: str,
    *,
    semantics: Semantics | str,
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> GoldResult:
    """Run the gold query under `semantics` (a reward scores many completions against one gold run).

    Either semantics applies on any engine. How double quotes read belongs to the database, not to the semantics: a
    WikiSQL table's engine reads them as names (`t2s.execution.engines.sqlite.table_engine`).
    """
    semantics = Semantics.parse(semantics)
    spider = semantics == Semantics.SPIDER
    sql = spider_normalize(reference, keep_distinct) if spider else reference
    execution = engine.run(sql, timeout_s=timeout_s, max_rows=max_rows)
    order_matters = "order by" in sql.lower() if spider else scan_sql(reference).has_order_by
    return GoldResult(semantics, sql, execution, order_matters, keep_distinct)


def compare_with_gold(
    engine: Engine,
    prediction: Any,
    gold: GoldResult,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ScoredExample:
    """One prediction's outcome against a gold result from `run_gold` on the same engine."""
    if not gold.ok:
        return data_error(f"gold query failed ({gold.execution.status}): {gold.execution.error}")
    spider = gold.semantics == Semantics.SPIDER
    if spider and isinstance(prediction, str):
        prediction = spider_normalize(prediction, gold.keep_distinct)
    pred = engine.run(prediction, timeout_s=timeout_s, max_rows=max_rows)
    gold_rows = gold.execution.rows
    if pred.status != Status.OK:
        outcome = Outcome(Status(pred.status).value)
    elif spider:
        same = spider_results_match(gold_rows, pred.rows, order_matters=gold.order_matters)
        outcome = Outcome.CORRECT if same else Outcome.WRONG_RESULT
    elif gold.empty and is_empty_result(pred.rows):
        outcome = Outcome.CORRECT
    else:
        same = results_match(pred.rows, gold_rows, ordered=gold.order_matters, casefold=True)
        outcome = Outcome.CORRECT if same else Outcome.WRONG_RESULT
    return ScoredExample(
        outcome, pred.error, gold.empty, _capped(pred.rows), _capped(gold_rows), pred.columns, gold.execution.columns
    )


def score_example(engine: Engine, prediction: Any, reference: str, options: ScoringOptions) -> ScoredExample:
    """One example's outcome under `options.semantics`, with both result sets (capped) for analysis."""
    limits = {"timeout_s": options.timeout_s, "max_rows": options.max_rows}
    gold = run_gold(engine, reference, semantics=options.semantics, keep_distinct=options.keep_distinct, **limits)
    return compare_with_gold(engine, prediction, gold, **limits)


def default_semantics(tables: Any) -> Semantics:
    """The metric's documented default, kept for callers that name none: WikiSQL's rules for WikiSQL tables (given
    `tables`), Spider's for databases. Deprecated: a user's own databases would silently get Spider's rules (pass `semantics`)."""
    return Semantics.WIKISQL if tables is not None else Semantics.SPIDER


def _score_batch(
    predictions: Sequence[Any],
    references: Sequence[str],
    tables: Sequence[Mapping[str, Any]] | None,
    db_paths: Sequence[str] | None,
    options: ScoringOptions,
) -> list[ScoredExample]:
    """Per-example results for a batch; each example gets the pristine database (read-only, cached). A database that
    cannot be opened (a bad URL, a server that refuses, a privileged account) fails its own examples, as gold errors
    that name it, never the batch."""
    opened: dict[str, Any] = {}
    results = []
    try:
        for i, (prediction, reference) in enumerate(zip(predictions, references)):
            if tables is not None:
                try:
                    engine = table_engine(tables[i])
                except (KeyError, TypeError, ValueError, IndexError, sqlite3.Error) as e:
                    results.append(_bad_database(i, f"table {i} cannot be built ({type(e).__name__}: {e})"))
                    continue
            else:
                path = str(db_paths[i])
                if path not in opened:
                    try:
                        opened[path] = open_engine(path, allow_privileged=options.allow_privileged)
                    except (EngineError, UserError, OSError, sqlite3.Error) as e:
                        opened[path] = e
                if isinstance(opened[path], Exception):
                    results.append(_unopened(opened[path]))
                    continue
                engine = opened[path]
            results.append(score_example(engine, prediction, reference, options))
    finally:
        for engine in opened.values():
            if not isinstance(engine, Exception):
                engine.close()
    return results


def _unopened(error: Exception) -> ScoredExample:
    """An example whose database cannot be opened: a data error, with the reason (its URL's password hidden)."""
    return data_error(f"the database cannot be opened: {error}")


def _bad_database(index: int, why: str) -> ScoredExample:
    return data_error(f"{why}: a WikiSQL table needs 'id', 'header' and rows as wide as the header")


def data_error(why: str) -> ScoredExample:
    """A data error: like a gold query that fails, the example is left out of every denominator."""
    return ScoredExample(Outcome.GOLD_ERROR, why)


def check_limits(timeout_s: Any, max_rows: Any) -> tuple[float, int]:
    """Numbers given as text are accepted ("2"); a limit that would make every query fail is an error that says so."""
    try:
        timeout_s, max_rows = float(timeout_s), int(max_rows)
    except (TypeError, ValueError):
        raise ValueError(f"timeout={timeout_s!r} and max_rows={max_rows!r} must be numbers") from None
    if not timeout_s > 0:
        raise ValueError(f"timeout={timeout_s} must be a positive number of seconds")
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows} must be at least 1: with fewer, every gold query would fail")
    return timeout_s, max_rows


def _score_chunk(args: tuple) -> list[ScoredExample]:
    return _score_batch(*args)


def score_all(
    predictions: Sequence[Any],
    references: Sequence[str],
    tables: Sequence[Mapping[str, Any]] | None = None,
    db_paths: Sequence[str] | None = None,
    *,
    semantics: Semantics | str,
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    num_proc: int | None = None,
    allow_privileged: bool = False,
) -> list[ScoredExample]:
    """Per-example results under `semantics`, optionally split over `num_proc` worker processes.

    `db_paths` name each example's database: an SQLite file, a DuckDB file or a URL (t2s.execution.engines).
    """
    options = ScoringOptions(semantics, bool(keep_distinct), timeout_s, max_rows, bool(allow_privileged))
    return score_with(options, predictions, references, tables, db_paths, num_proc=num_proc)


def score_with(
    options: ScoringOptions,
    predictions: Sequence[Any],
    references: Sequence[str],
    tables: Sequence[Mapping[str, Any]] | None = None,
    db_paths: Sequence[str] | None = None,
    *,
    num_proc: int | None = None,
) -> list[ScoredExample]:
    """`score_all` with its options as one value (what the metric builds from its own arguments)."""
    n = len(references)
    if len(predictions) != n:
        raise ValueError(f"{len(predictions)} predictions for {n} references")
    if (tables is None) == (db_paths is None):
        raise ValueError("pass exactly one of tables= (WikiSQL table dicts) or databases=/db_paths= (database names)")
    context = tables if tables is not None else db_paths
    if len(context) != n:
        raise ValueError(f"{len(context)} {'tables' if tables is not None else 'db_paths'} for {n} references")
    if db_paths is not None:
        files = [str(p) for p in db_paths if not p or not is_url(str(p))]
        missing = sorted({p for p in files if not p or not Path(p).is_file()})
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} database file(s) do not exist (first: {missing[0]!r}); "
                "databases must name SQLite or DuckDB files, or URLs"
            )
    if not num_proc or num_proc <= 1 or n < 2 * num_proc:
        return _score_batch(predictions, references, tables, db_paths, options)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = math.ceil(n / num_proc)
    chunks = []
    for start in range(0, n, size):
        end = start + size
        chunks.append(
            (
                list(predictions[start:end]),
                list(references[start:end]),
                list(tables[start:end]) if tables is not None else None,
                list(db_paths[start:end]) if db_paths is not None else None,
                options,
            )
        )
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=num_proc, mp_context=ctx) as pool:
        return [r for part in pool.map(_score_chunk, chunks) for r in part]


def score_records(predictions: Sequence[Any], examples, **options: Any) -> list[ScoredExample]:
    """Score predictions against dataset records of any kind (WikiSQL `table` or a database's `db_path`), under the
    semantics their reader declared (their `semantics` column) unless `options` name one.

    `examples` is a `datasets.Dataset` or a list of record dicts.
    """
    if hasattr(examples, "column_names"):  # a Dataset: read whole columns, not row by row

        def column(name):
            return list(examples[name]) if name in examples.column_names else None
    else:

        def column(name):
            return [e[name] for e in examples] if examples and name in examples[0] else None

    if "semantics" not in options:
        options["semantics"] = dataset_semantics(column("semantics"))
    paths = column("db_path")
    if paths is not None:
        return score_all(predictions, column("gold_sql"), db_paths=paths, **options)
    return score_all(predictions, column("gold_sql"), tables=column("table"), **options)


def dataset_semantics(column: Sequence[str] | None) -> Semantics:
    """The one semantics a dataset's records declare (their `semantics` column, set by each reader)."""
    found = set(column or ())
    if len(found) != 1:
        raise ValueError(
            f"records declare {sorted(found) or 'no'} semantics: a dataset is scored under one, which its reader sets "
            "in the 'semantics' column (or pass semantics=)"
        )
    return Semantics.parse(found.pop())


def summarise(details: Sequence[ScoredExample]) -> dict[str, Any]:
    """Accuracy with and without empty-gold examples, outcome counts, gold errors."""
    outcomes = dict.fromkeys(OUTCOMES, 0)
    gold_errors = 0
    nonempty_total = nonempty_correct = 0
    for d in details:
        if d.outcome == Outcome.GOLD_ERROR:
            gold_errors += 1
            continue
        outcomes[d.outcome.value] += 1
        if not d.gold_empty:
            nonempty_total += 1
            nonempty_correct += d.outcome == Outcome.CORRECT
    scored = len(details) - gold_errors
    return {
        "execution_accuracy": outcomes["correct"] / scored if scored else 0.0,
        "execution_accuracy_nonempty_gold": nonempty_correct / nonempty_total if nonempty_total else 0.0,
        "outcomes": outcomes,
        "num_examples": len(details),
        "num_scored": scored,
        "num_empty_gold": scored - nonempty_total,
        "gold_errors": gold_errors,
    }
