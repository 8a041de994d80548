"""WikiSQL tables as SQLite databases that behave like the official evaluator's `dev.db`.

Execution accuracy is only comparable with published numbers if the table a query runs on
holds the same values, with the same types, as the database the official evaluator used.
That database has three quirks, reproduced here on purpose:

* Text is stored lower-cased. Results therefore come back lower-cased, as in the official
  `dev.db`, and gold results in `dev.answers.json`.
* Cells of `real` columns are inserted as the release gives them, and SQLite's REAL affinity
  decides their storage: `"16000"` becomes the number 16000.0 but `"16,000"` stays the text
  `'16,000'`. Aggregates and comparisons over such a column follow SQLite's rules (text sorts
  after every number; `SUM` reads a text cell's numeric prefix), and the official answers
  depend on that.
* Text compares case-insensitively. The official evaluator lower-cases both the stored value
  and the literal; SQLite's own `NOCASE` folds ASCII only, and WikiSQL has Cyrillic, Greek
  and accented names, so every column is declared with the `T2S_NOCASE` collation, which
  compares `str.lower()` forms (equal to the official behaviour for every code point).

Column names are the table's header, double-quoted (headers contain spaces, `/`, `#`, `.`
and quotes). Headers that SQLite would treat as the same name (it ignores ASCII case) are
made unique with a `_2`, `_3`… suffix; `column_names` is the single place that decides this,
so prompts, gold SQL and the database always agree.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from t2s.execution.sql_text import quote_identifier

COLLATION = "T2S_NOCASE"
COLUMN_TYPES = ("text", "real")
TABLE_CACHE_SIZE = 4096


def table_name(table_id: str) -> str:
    """The SQLite table name the official `.db` files use: `1-10015132-11` → `table_1_10015132_11`."""
    table_id = str(table_id)
    if table_id.startswith("table"):
        return table_id
    return "table_" + table_id.replace("-", "_")


def column_names(header: Sequence[str]) -> list[str]:
    """Unique column names for a header, as SQLite sees them (ASCII case-insensitive)."""
    names: list[str] = []
    seen: set[str] = set()
    for raw in header:
        name = str(raw)
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        names.append(candidate)
    return names


def column_types(table: Mapping[str, Any]) -> list[str]:
    """The table's column types, defaulting to `text` where the table gives none."""
    header = table["header"]
    types = table.get("types") or ["text"] * len(header)
    return [str(t).lower() for t in types]


def _nocase(a: str, b: str) -> int:
    a, b = a.lower(), b.lower()
    return (a > b) - (a < b)


def register_collation(conn: sqlite3.Connection) -> None:
    """Make `T2S_NOCASE` available on a connection (needed before touching a materialised table)."""
    conn.create_collation(COLLATION, _nocase)


def _normalise_cell(cell: Any) -> Any:
    if cell is None or isinstance(cell, (int, float)):
        return cell
    return str(cell).lower()


def create_table_sql(table: Mapping[str, Any]) -> str:
    """The `CREATE TABLE` statement of a materialised WikiSQL table."""
    columns = ", ".join(
        f"{quote_identifier(name)} {ctype.upper()} COLLATE {COLLATION}"
        for name, ctype in zip(column_names(table["header"]), column_types(table))
    )
    return f"CREATE TABLE {quote_identifier(table_name(table['id']))} ({columns})"


def build_table_database(table: Mapping[str, Any]) -> sqlite3.Connection:
    """A new in-memory database holding one WikiSQL table; read-only once built.

    The connection refuses writes afterwards (`PRAGMA query_only`), so a cached table cannot
    be changed by one query and seen changed by the next.
    """
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    register_collation(conn)
    conn.execute(create_table_sql(table))
    width = len(table["header"])
    placeholders = ", ".join("?" * width)
    rows = [[_normalise_cell(c) for c in row] for row in table["rows"]]
    if width:
        conn.executemany(f"INSERT INTO {quote_identifier(table_name(table['id']))} VALUES ({placeholders})", rows)
    conn.commit()
    conn.execute("PRAGMA query_only = ON")
    return conn


def table_fingerprint(table: Mapping[str, Any]) -> tuple:
    """A key that changes whenever the table's content does (two tables may share an id)."""
    return (
        str(table["id"]),
        tuple(map(str, table["header"])),
        tuple(column_types(table)),
        tuple(tuple(row) for row in table["rows"]),
    )


class _TableCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, sqlite3.Connection] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, table: Mapping[str, Any]) -> sqlite3.Connection:
        key = table_fingerprint(table)
        with self._lock:
            conn = self._items.get(key)
            if conn is not None:
                self._items.move_to_end(key)
                return conn
        conn = build_table_database(table)
        with self._lock:
            self._items[key] = conn
            while len(self._items) > self.size:
                _, old = self._items.popitem(last=False)
                old.close()
        return conn

    def clear(self) -> None:
        with self._lock:
            for conn in self._items.values():
                conn.close()
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_CACHE = _TableCache(TABLE_CACHE_SIZE)


def materialize_table(table: Mapping[str, Any], *, cache: bool = True) -> sqlite3.Connection:
    """An SQLite connection holding `table` as the official evaluator's database would.

    With `cache=True` (default) the same read-only connection is returned for the same table,
    so evaluating many questions on one table builds it once. Do not close a cached
    connection; pass `cache=False` for a private one.
    """
    return _CACHE.get(table) if cache else build_table_database(table)


def clear_table_cache() -> None:
    _CACHE.clear()
