"""Run untrusted SQL safely and decide whether two queries return the same answer.

Model output is untrusted input. Every query runs under four independent guards:

1. a statement gate: one statement, starting with SELECT, WITH or VALUES (SQLite itself refuses
   a second statement);
2. SQLite's authorizer: only SELECT, column reads, functions (not `load_extension`) and
   recursive CTEs are allowed, so DROP/DELETE/INSERT/UPDATE/CREATE/ATTACH/DETACH/PRAGMA/VACUUM
   and transactions are denied at prepare time, whatever their spelling;
3. read-only connections (`PRAGMA query_only` for in-memory tables, `mode=ro` for files);
4. resource limits: a time budget enforced inside SQLite's VM by a progress handler, a cap on
   fetched rows, and caps on string/blob and statement length.

The sandbox is the same for every dataset. What "the same answer" means is not: each dataset is
scored with its official semantics (`SEMANTICS`), chosen by the kind of database.

* `wikisql` (a table dict, materialised as the official `dev.db`): text compares
  case-insensitively, numbers by value (within 1e-6), rows as multisets (in order when the gold
  query has ORDER BY), an empty or all-NULL gold result matches an empty or all-NULL prediction.
  SQLite reads a double-quoted name that is not in the schema as a string literal (its legacy
  "DQS" behaviour), so `SELECT "Nmae"` would quietly return the text 'Nmae'; t2s's WikiSQL gold
  SQL double-quotes every identifier, so double-quoted tokens are rewritten to backtick-quoted
  ones, which SQLite only reads as identifiers, and a hallucinated column is `no such column`.
* `spider` (an SQLite file): the execution match of the official evaluator
  (taoyds/test-suite-sql-eval, `exec_eval.py`, its defaults): `> =`, `< =`, `! =` closed up,
  `YEAR(CURDATE())` read as 2020, DISTINCT removed from both queries (unless `keep_distinct`),
  results equal as multisets of rows under some permutation of the columns, in order only when
  the gold query contains `order by`; values compare exactly as SQLite returns them (Python `==`:
  no case folding, `3 == 3.0`); two empty results match. Spider's SQL follows SQLite's
  conventions, double-quoted string literals included (213 of the 1,034 dev gold queries), so
  double quotes are left to SQLite. Text is decoded as the official evaluator does (invalid UTF-8
  bytes dropped).
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2s.data.tables import materialize_table, register_collation
from t2s.sql_text import SQL_TOKEN_RE

OUTCOMES = ("correct", "wrong_result", "exec_error", "timeout", "rejected", "empty")
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_ROWS = 100_000
MAX_SQL_CHARS = 100_000
MAX_VALUE_BYTES = 10_000_000
DETAIL_ROWS = 20
READ_ONLY_STARTS = ("select", "with", "values")
REL_TOL, ABS_TOL = 1e-6, 1e-9
SEMANTICS = ("wikisql", "spider")

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_DENIED_FUNCTIONS = {"load_extension"}
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ")
    for name in dir(sqlite3)
    if name.startswith("SQLITE_")
    and name not in ("SQLITE_OK", "SQLITE_DENY", "SQLITE_IGNORE")
    and isinstance(getattr(sqlite3, name), int)
    and not name.startswith("SQLITE_LIMIT")
}
_WORD_RE = re.compile(r"[A-Za-z_]+")
_ORDER_BY_RE = re.compile(r"\border\s+by\b", re.IGNORECASE)


@dataclass
class Execution:
    """What running one query gave: `status` is ok, exec_error, timeout, rejected or empty."""

    status: str
    rows: list[tuple] | None = None
    error: str | None = None
    columns: list[str] | None = None  # the result's column names (for display)


@dataclass(frozen=True)
class ScannedSQL:
    sql: str  # with double-quoted identifiers rewritten to backtick-quoted ones
    first_word: str
    has_order_by: bool
    is_blank: bool


_TOKEN_RE = SQL_TOKEN_RE


def scan_sql(sql: str, rewrite_double_quotes: bool = True) -> ScannedSQL:
    """Find the statement's shape; optionally rewrite double-quoted tokens to backtick-quoted identifiers."""
    # Gold queries are scanned once per example and again per comparison: memoise short ones.
    if len(sql) <= 4096:
        return _scan_cached(sql, rewrite_double_quotes)
    return _scan(sql, rewrite_double_quotes)


@functools.lru_cache(maxsize=65536)
def _scan_cached(sql: str, rewrite_double_quotes: bool) -> ScannedSQL:
    return _scan(sql, rewrite_double_quotes)


def _scan(sql: str, rewrite_double_quotes: bool = True) -> ScannedSQL:
    out: list[str] = []
    code: list[str] = []  # text outside literals, identifiers and comments
    pos = 0
    has_quoted = False  # a literal or quoted identifier (comments do not count)
    for match in _TOKEN_RE.finditer(sql):
        start, token = match.start(), match.group(0)
        out.append(sql[pos:start])
        code.append(sql[pos:start])
        has_quoted = has_quoted or token[0] not in "-/"
        if token[0] == '"' and rewrite_double_quotes:
            token = "`" + token[1:-1].replace('""', '"').replace("`", "``") + "`"
        out.append(token)
        code.append(" ")
        pos = match.end()
    out.append(sql[pos:])
    code.append(sql[pos:])
    code_text = "".join(code)
    first = _WORD_RE.search(code_text)
    return ScannedSQL(
        sql="".join(out),
        first_word=first.group(0).lower() if first else "",
        has_order_by=bool(_ORDER_BY_RE.search(code_text)),
        is_blank=not code_text.replace(";", "").strip() and not has_quoted,
    )


class _Sandbox:
    """Authorizer + time budget installed on a connection for one query."""

    def __init__(self, conn: sqlite3.Connection, timeout_s: float) -> None:
        self.conn, self.timeout_s = conn, timeout_s
        self.denied: str | None = None
        self.deadline = 0.0
        self.timed_out = False

    def _authorize(self, action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
        if action in _ALLOWED_ACTIONS and not (
            action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS
        ):
            return sqlite3.SQLITE_OK
        if self.denied is None:
            what = _ACTION_NAMES.get(action, f"action {action}")
            target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
            self.denied = (
                f"{what}{f' ({target})' if target else ''} is not allowed: only reading queries are evaluated"
            )
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        if time.perf_counter() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def __enter__(self) -> _Sandbox:
        self.conn.set_authorizer(self._authorize)
        self.deadline = time.perf_counter() + self.timeout_s
        self.conn.set_progress_handler(self._progress, 1000)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.conn.set_progress_handler(None, 0)
        self.conn.set_authorizer(None)


def harden(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Resource limits that stay on the connection (values, statements, attached databases)."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 4)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return conn


def run_query(
    conn: sqlite3.Connection,
    sql: Any,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    rewrite_double_quotes: bool = True,
) -> Execution:
    """Execute one untrusted query under the sandbox; never raises.

    `rewrite_double_quotes=False` leaves `"…"` to SQLite (an identifier if one exists, else a string).
    """
    if sql is None:
        return Execution("empty", error="no SQL")
    if not isinstance(sql, str):
        return Execution("rejected", error=f"prediction is a {type(sql).__name__}, not a string")
    if "\x00" in sql:
        return Execution("rejected", error="the query contains a NUL byte")
    if len(sql) > MAX_SQL_CHARS:
        return Execution("rejected", error=f"the query is {len(sql):,} characters long (limit {MAX_SQL_CHARS:,})")
    scanned = scan_sql(sql, rewrite_double_quotes)
    if scanned.is_blank:
        return Execution("empty", error="no SQL")
    if scanned.first_word not in READ_ONLY_STARTS:
        what = f"{scanned.first_word.upper()} statement" if scanned.first_word else "not an SQL statement"
        return Execution("rejected", error=f"{what}: only SELECT/WITH/VALUES queries are evaluated")
    harden(conn)
    sandbox = _Sandbox(conn, timeout_s)
    try:
        with sandbox:
            cursor = conn.execute(scanned.sql)
            rows = cursor.fetchmany(max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
            cursor.close()
    except sqlite3.ProgrammingError as e:
        if "one statement" in str(e):
            return Execution("rejected", error="more than one statement")
        return Execution("exec_error", error=str(e))
    except sqlite3.Error as e:
        if sandbox.denied:
            return Execution("rejected", error=sandbox.denied)
        if sandbox.timed_out:
            return Execution("timeout", error=f"ran past its {timeout_s:g} s budget")
        return Execution("exec_error", error=str(e))
    except (OverflowError, MemoryError, ValueError, RecursionError) as e:
        return Execution("exec_error", error=f"{type(e).__name__}: {e}")
    if len(rows) > max_rows:
        return Execution("timeout", error=f"returned more than max_rows={max_rows:,} rows")
    return Execution("ok", rows=rows, columns=columns)


# --------------------------------------------------------------------------- comparison


def _value_key(value: Any, casefold: bool) -> tuple:
    if value is None:
        return (0, 0.0)
    if isinstance(value, (int, float)):
        return (1, float(value))
    if isinstance(value, str):
        return (2, value.lower() if casefold else value)
    return (3, bytes(value))


def _values_equal(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == 1:
        return math.isclose(a[1], b[1], rel_tol=REL_TOL, abs_tol=ABS_TOL) or a[1] == b[1]
    return a[1] == b[1]


def is_empty_result(rows: Sequence[Sequence[Any]]) -> bool:
    """No rows, or only NULLs (what `MAX` over no rows returns)."""
    return all(v is None for row in rows for v in row)


def results_match(
    predicted: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], *, ordered: bool, casefold: bool
) -> bool:
    """Same rows, as multisets (or in order): numbers by value, text as the collation compares it."""
    if len(predicted) != len(gold):
        return False
    p = [tuple(_value_key(v, casefold) for v in row) for row in predicted]
    g = [tuple(_value_key(v, casefold) for v in row) for row in gold]
    if not ordered:
        p.sort()
        g.sort()
    for prow, grow in zip(p, g):
        if len(prow) != len(grow) or not all(_values_equal(a, b) for a, b in zip(prow, grow)):
            return False
    return True


# --------------------------------------------------------------------------- scoring


def _capped(rows: list[tuple] | None) -> list[list[Any]] | None:
    if rows is None:
        return None
    return [[v if not isinstance(v, bytes) else v.hex() for v in row] for row in rows[:DETAIL_ROWS]]


# --------------------------------------------------------------------------- Spider's official rule


_CUR_YEAR_RE = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def spider_normalize(sql: str, keep_distinct: bool = False) -> str:
    """The official evaluator's rewrites of both queries before execution."""
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    sql = _CUR_YEAR_RE.sub("2020", sql)
    if not keep_distinct:
        sql = remove_distinct(sql)
    return sql


def remove_distinct(sql: str) -> str:
    """Drop every DISTINCT keyword token (sqlparse's tokens, as the official evaluator does)."""
    import sqlparse

    statements = sqlparse.parse(sql)
    if not statements:
        return sql
    return "".join(t.value for t in statements[0].flatten() if t.value.lower() != "distinct")


def _unordered_row(row: Sequence[Any]) -> tuple:
    return tuple(sorted(row, key=lambda v: str(v) + str(type(v))))


def spider_results_match(gold: Sequence[tuple], predicted: Sequence[tuple], *, order_matters: bool) -> bool:
    """Equal as bags of rows (lists, if order matters) under some permutation of the predicted columns.

    The official `result_eq` samples rows at random to prune the column permutations it tries;
    pruning only drops permutations that cannot match, so pruning with every row (here) gives the
    same verdict, deterministically.
    """
    if not gold and not predicted:
        return True
    if len(gold) != len(predicted):
        return False
    width = len(gold[0])
    if len(predicted[0]) != width:
        return False
    gold_unordered = [_unordered_row(r) for r in gold]
    pred_unordered = [_unordered_row(r) for r in predicted]
    if (gold_unordered != pred_unordered) if order_matters else (set(gold_unordered) != set(pred_unordered)):
        return False
    gold_columns = [{row[i] for row in gold} for i in range(width)]
    candidates = [
        [j for j in range(width) if all(row[j] in gold_columns[i] for row in predicted)] for i in range(width)
    ]
    gold_list = [tuple(r) for r in gold]
    gold_counts = Counter(gold_list)

    def matches(perm: tuple[int, ...]) -> bool:
        permuted = [tuple(row[j] for j in perm) for row in predicted]
        if order_matters:
            return gold_list == permuted
        return set(gold_list) == set(permuted) and gold_counts == Counter(permuted)

    def search(i: int, used: tuple[int, ...]) -> bool:
        if i == width:
            return matches(used)
        return any(search(i + 1, (*used, j)) for j in candidates[i] if j not in used)

    return search(0, ())


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class GoldResult:
    """A gold query run once on its database, ready to be compared with any number of predictions."""

    semantics: str
    sql: str  # as run (Spider: normalised like the official evaluator)
    execution: Execution
    order_matters: bool
    keep_distinct: bool

    @property
    def ok(self) -> bool:
        return self.execution.status == "ok"

    @property
    def empty(self) -> bool | None:
        if not self.ok:
            return None
        rows = self.execution.rows
        return not rows if self.semantics == "spider" else is_empty_result(rows)


def run_gold(
    conn: sqlite3.Connection,
    reference: str,
    *,
    semantics: str = "wikisql",
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> GoldResult:
    """Run the gold query under the dataset's semantics (a reward scores many completions against one gold run)."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics={semantics!r} must be one of {SEMANTICS}")
    spider = semantics == "spider"
    sql = spider_normalize(reference, keep_distinct) if spider else reference
    execution = run_query(conn, sql, timeout_s=timeout_s, max_rows=max_rows, rewrite_double_quotes=not spider)
    order_matters = "order by" in sql.lower() if spider else scan_sql(reference).has_order_by
    return GoldResult(semantics, sql, execution, order_matters, keep_distinct)


def compare_with_gold(
    conn: sqlite3.Connection,
    prediction: Any,
    gold: GoldResult,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict[str, Any]:
    """One prediction's outcome against a gold result from `run_gold` on the same connection."""
    if not gold.ok:
        return {
            "outcome": "gold_error",
            "error": f"gold query failed ({gold.execution.status}): {gold.execution.error}",
            "gold_empty": None,
            "prediction_rows": None,
            "gold_rows": None,
        }
    spider = gold.semantics == "spider"
    if spider and isinstance(prediction, str):
        prediction = spider_normalize(prediction, gold.keep_distinct)
    pred = run_query(conn, prediction, timeout_s=timeout_s, max_rows=max_rows, rewrite_double_quotes=not spider)
    gold_rows = gold.execution.rows
    if pred.status != "ok":
        outcome = pred.status
    elif spider:
        same = spider_results_match(gold_rows, pred.rows, order_matters=gold.order_matters)
        outcome = "correct" if same else "wrong_result"
    elif gold.empty and is_empty_result(pred.rows):
        outcome = "correct"
    else:
        same = results_match(pred.rows, gold_rows, ordered=gold.order_matters, casefold=True)
        outcome = "correct" if same else "wrong_result"
    return {
        "outcome": outcome,
        "error": pred.error,
        "gold_empty": gold.empty,
        "prediction_rows": _capped(pred.rows),
        "gold_rows": _capped(gold_rows),
    }


def score_example(
    conn: sqlite3.Connection,
    prediction: Any,
    reference: str,
    *,
    semantics: str = "wikisql",
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict[str, Any]:
    """One example's outcome under the dataset's semantics, with both result sets (capped) for analysis."""
    limits = {"timeout_s": timeout_s, "max_rows": max_rows}
    gold = run_gold(conn, reference, semantics=semantics, keep_distinct=keep_distinct, **limits)
    return compare_with_gold(conn, prediction, gold, **limits)


def _decode_text(data: bytes) -> str:
    # The official Spider evaluator's text factory: invalid UTF-8 bytes are dropped, not fatal.
    return data.decode(errors="ignore")


def open_database(path: str) -> sqlite3.Connection:
    """A database file opened read-only: the file is never written, not even its journal."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"database file {path} does not exist")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.text_factory = _decode_text
    register_collation(conn)
    conn.execute("PRAGMA query_only = ON")
    return conn


@functools.lru_cache(maxsize=64)
def cached_database(path: str) -> sqlite3.Connection:
    """One read-only connection per database file, reused (execution-guided decoding, rewards)."""
    return open_database(path)


def connect_example(example: Mapping[str, Any]) -> tuple[sqlite3.Connection, str]:
    """The database a record's SQL runs on, and the semantics that scores it."""
    if example.get("db_path"):
        return cached_database(str(example["db_path"])), "spider"
    if example.get("table") is not None:
        return materialize_table(example["table"]), "wikisql"
    raise ValueError(
        f"example {example.get('example_id', '?')} has neither a 'table' nor a 'db_path': its SQL cannot be executed"
    )


def score_batch(
    predictions: Sequence[Any],
    references: Sequence[str],
    tables: Sequence[Mapping[str, Any]] | None = None,
    db_paths: Sequence[str] | None = None,
    *,
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[dict[str, Any]]:
    """Per-example results for a batch; each example gets the pristine database (read-only, cached)."""
    opened: dict[str, sqlite3.Connection] = {}
    results = []
    options = {"keep_distinct": keep_distinct, "timeout_s": timeout_s, "max_rows": max_rows}
    try:
        for i, (prediction, reference) in enumerate(zip(predictions, references)):
            if tables is not None:
                conn, semantics = materialize_table(tables[i]), "wikisql"
            else:
                path = str(db_paths[i])
                if path not in opened:
                    opened[path] = open_database(path)
                conn, semantics = opened[path], "spider"
            results.append(score_example(conn, prediction, reference, semantics=semantics, **options))
    finally:
        for conn in opened.values():
            conn.close()
    return results


def _score_chunk(args: tuple) -> list[dict[str, Any]]:
    predictions, references, tables, db_paths, options = args
    return score_batch(predictions, references, tables, db_paths, **options)


def score_all(
    predictions: Sequence[Any],
    references: Sequence[str],
    tables: Sequence[Mapping[str, Any]] | None = None,
    db_paths: Sequence[str] | None = None,
    *,
    keep_distinct: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    num_proc: int | None = None,
) -> list[dict[str, Any]]:
    """`score_batch`, optionally split over `num_proc` worker processes."""
    n = len(references)
    if len(predictions) != n:
        raise ValueError(f"{len(predictions)} predictions for {n} references")
    if (tables is None) == (db_paths is None):
        raise ValueError("pass exactly one of tables= (WikiSQL table dicts) or db_paths= (SQLite files)")
    context = tables if tables is not None else db_paths
    if len(context) != n:
        raise ValueError(f"{len(context)} {'tables' if tables is not None else 'db_paths'} for {n} references")
    if db_paths is not None:
        missing = sorted({str(p) for p in db_paths if not p or not Path(str(p)).is_file()})
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} database file(s) do not exist (first: {missing[0]!r}); "
                "db_paths must name SQLite files"
            )
    options = {"keep_distinct": keep_distinct, "timeout_s": timeout_s, "max_rows": max_rows}
    if not num_proc or num_proc <= 1 or n < 2 * num_proc:
        return score_batch(predictions, references, tables, db_paths, **options)
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


def score_records(predictions: Sequence[Any], examples, **options: Any) -> list[dict[str, Any]]:
    """Score predictions against dataset records of any kind (WikiSQL `table` or SQLite `db_path`).

    `examples` is a `datasets.Dataset` or a list of record dicts.
    """
    if hasattr(examples, "column_names"):  # a Dataset: read whole columns, not row by row

        def column(name):
            return list(examples[name]) if name in examples.column_names else None
    else:

        def column(name):
            return [e[name] for e in examples] if examples and name in examples[0] else None

    paths = column("db_path")
    if paths is not None:
        return score_all(predictions, column("gold_sql"), db_paths=paths, **options)
    return score_all(predictions, column("gold_sql"), tables=column("table"), **options)


def summarise(details: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy with and without empty-gold examples, outcome counts, gold errors."""
    outcomes = dict.fromkeys(OUTCOMES, 0)
    gold_errors = 0
    nonempty_total = nonempty_correct = 0
    for d in details:
        if d["outcome"] == "gold_error":
            gold_errors += 1
            continue
        outcomes[d["outcome"]] += 1
        if not d["gold_empty"]:
            nonempty_total += 1
            nonempty_correct += d["outcome"] == "correct"
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
