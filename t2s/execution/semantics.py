"""What "the same answer" means: each dataset is scored with its official semantics (`SEMANTICS`).

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

import math
import re
from collections import Counter
from collections.abc import Sequence
from enum import Enum
from typing import Any

from t2s.execution.sandbox import MAX_SQL_CHARS
from t2s.execution.sql_text import SQL_TOKEN_RE


class Semantics(str, Enum):
    """Which dataset's official rules decide that two results are the same answer (the module docstring). A `str`
    enum: it reads in JSON and compares as its value."""

    WIKISQL = "wikisql"
    SPIDER = "spider"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Semantics | str) -> Semantics:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"semantics={value!r} must be one of {[s.value for s in cls]}") from None


SEMANTICS = tuple(s.value for s in Semantics)
REL_TOL, ABS_TOL = 1e-6, 1e-9


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


# --------------------------------------------------------------------------- Spider's official rule


_CUR_YEAR_RE = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def spider_normalize(sql: str, keep_distinct: bool = False) -> str:
    """The official evaluator's rewrites of both queries before execution.

    A query longer than the sandbox accepts is returned as it is: the sandbox rejects it, and rewriting megabytes of
    text first would cost seconds for nothing.
    """
    if len(sql) > MAX_SQL_CHARS:
        return sql
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    sql = _CUR_YEAR_RE.sub("2020", sql)
    if not keep_distinct:
        sql = remove_distinct(sql)
    return sql


def remove_distinct(sql: str) -> str:
    """Drop every DISTINCT keyword token (sqlparse's tokens, as the official evaluator does).

    sqlparse refuses statements nested over 100 levels or longer than 10,000 tokens (`SQLParseError`), where the
    official evaluator would crash; such a query is still scored: DISTINCT is then removed outside quotes and
    comments by SQLite's lexical rules, which on every query sqlparse parses removes the same tokens.
    """
    import sqlparse
    from sqlparse.exceptions import SQLParseError

    try:
        statements = sqlparse.parse(sql)
    except (SQLParseError, RecursionError):
        return _remove_distinct_by_tokens(sql)
    # Every statement is kept (the official code keeps the first and drops the rest unrun): a prediction with a second
    # statement is then rejected by the sandbox in both modes, with or without keep_distinct (docs/metric.md).
    return "".join(t.value for statement in statements for t in statement.flatten() if t.value.lower() != "distinct")


_DISTINCT_RE = re.compile(r"\bdistinct\b", re.IGNORECASE)


def _remove_distinct_by_tokens(sql: str) -> str:
    out, pos = [], 0
    for match in SQL_TOKEN_RE.finditer(sql):
        out.append(_DISTINCT_RE.sub("", sql[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_DISTINCT_RE.sub("", sql[pos:]))
    return "".join(out)


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
