"""Render WikiSQL's structured annotation (`sel`, `agg`, `conds`) as executable SQLite.

One renderer serves both training targets and metric references, so what the model learns
to write is exactly what it is scored against. Literals follow the official evaluator:
a condition on a `real` column is compared as a number (`"55,767"` → `55767`, parsed like
babel's `parse_decimal`, falling back to the first number in the string); any other value
is a single-quoted string literal. Text comparison is case-insensitive through the table's
collation (see `tables.py`), so the literal keeps the case the annotation gives it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from t2s.execution.sql_text import quote_identifier, quote_string
from t2s.execution.tables import column_names, column_types, table_name

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS = ("=", ">", "<")
_NUMBER_RE = re.compile(r"[-+]?\d*\.\d+|\d+")


class GoldSQLError(ValueError):
    """The annotation cannot be rendered (bad index, unknown operator, non-numeric value on a number column)."""


def parse_number(value: Any) -> float:
    """A condition value as the official evaluator reads it for a `real` column."""
    if isinstance(value, bool):
        raise GoldSQLError(f"condition value {value!r} is a boolean, not a number")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        number = float(Decimal(text.replace(",", "")))
        if math.isfinite(number):
            return number
    except InvalidOperation:
        pass
    match = _NUMBER_RE.search(text)
    if match is None:
        raise GoldSQLError(f"condition value {value!r} is compared with a numeric column but contains no number")
    return float(match.group(0))


def format_number(number: float) -> str:
    """The shortest SQL literal for a number: `55767` rather than `55767.0`."""
    if number.is_integer() and abs(number) < 2**63:
        return str(int(number))
    return repr(number)


def format_text_value(value: Any) -> str:
    """A condition value on a text column as the string SQLite would compare it as."""
    if isinstance(value, float) and value.is_integer():
        # SQLite renders a REAL bound to a TEXT column as '3.0'; the official evaluator did too.
        return repr(value)
    return str(value)


def render_gold_sql(sql: Mapping[str, Any], table: Mapping[str, Any]) -> str:
    """`SELECT agg("col") FROM "table_…" WHERE "col" op literal AND …` for one annotation."""
    names = column_names(table["header"])
    types = column_types(table)
    sel, agg = sql["sel"], sql["agg"]
    if not isinstance(sel, int) or not 0 <= sel < len(names):
        raise GoldSQLError(f"sql.sel={sel!r} is not a column index of table {table['id']} ({len(names)} columns)")
    if not isinstance(agg, int) or not 0 <= agg < len(AGG_OPS):
        raise GoldSQLError(f"sql.agg={agg!r} is not an aggregation index (0-{len(AGG_OPS) - 1}: {AGG_OPS})")
    select = quote_identifier(names[sel])
    if AGG_OPS[agg]:
        select = f"{AGG_OPS[agg]}({select})"
    where = [render_condition(cond, names, types, table["id"]) for cond in sql.get("conds") or []]
    query = f"SELECT {select} FROM {quote_identifier(table_name(table['id']))}"
    if where:
        query += " WHERE " + " AND ".join(where)
    return query


def render_condition(cond: Sequence[Any], names: Sequence[str], types: Sequence[str], table_id: str) -> str:
    if len(cond) != 3:
        raise GoldSQLError(f"condition {cond!r} is not [column_index, operator_index, value]")
    col, op, value = cond
    if not isinstance(col, int) or not 0 <= col < len(names):
        raise GoldSQLError(
            f"condition column {col!r} is not a column index of table {table_id} ({len(names)} columns)"
        )
    if not isinstance(op, int) or not 0 <= op < len(COND_OPS):
        raise GoldSQLError(f"condition operator {op!r} is not an operator index (0-{len(COND_OPS) - 1}: {COND_OPS})")
    if types[col] == "real":
        literal = format_number(parse_number(value))
    else:
        literal = quote_string(format_text_value(value))
    return f"{quote_identifier(names[col])} {COND_OPS[op]} {literal}"
