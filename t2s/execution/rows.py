"""Reading a result's rows under the caps every engine shares: at most `max_rows` rows and `MAX_RESULT_BYTES` bytes,
each value as SQLite would give it. One reader for SQLite's sandbox and the server engines alike."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

MAX_RESULT_BYTES = 32_000_000  # all values of a result together (strings and blobs by length, numbers as 8)


def normalize_value(value: Any) -> Any:
    """A driver's value as SQLite would give it: numbers as int/float, text as str, bytes as bytes."""
    if value is None or isinstance(value, (int, float, str, bytes)):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, decimal.Decimal):
        if value.is_nan() or value.is_infinite():
            return float(value)
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def result_size(row: Sequence[Any]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


BATCH_BYTES = 1_000_000  # what one fetch may bring at most, as far as the rows seen so far tell
MAX_BATCH_ROWS = 1000


def capped_rows(fetch: Callable[[int], Sequence[Sequence[Any]]], max_rows: int) -> tuple[list[tuple], str | None]:
    """Normalised rows from `fetch(n)` batches until the row or byte cap is passed; the error says which.

    Batches are sized by bytes, not rows: the first fetch takes one row, and each next one takes as many rows as
    `BATCH_BYTES` holds at the size of the largest row seen so far, so wide rows never arrive a thousand at a time.
    """
    rows: list[tuple] = []
    size = 0
    widest = 0
    batch_rows = 1
    while True:
        batch = fetch(min(batch_rows, max_rows + 1 - len(rows)))
        if not batch:
            return rows, None
        for row in batch:
            row = tuple(normalize_value(v) for v in row)
            row_size = result_size(row)
            rows.append(row)
            size += row_size
            widest = max(widest, row_size)
            if len(rows) > max_rows:
                return rows, f"returned more than max_rows={max_rows:,} rows"
            if size > MAX_RESULT_BYTES:
                return rows, f"returned more than {MAX_RESULT_BYTES:,} bytes"
        batch_rows = max(1, min(MAX_BATCH_ROWS, BATCH_BYTES // max(widest, 1)))
