"""One connection layer for every engine a database can live on: SQLite, PostgreSQL, MySQL/MariaDB and DuckDB.

`open_engine(name)` takes what a user writes (an SQLite path, a DuckDB file, a URL in SQLAlchemy's form) and gives an
`Engine`: its catalogue, its dialect, and `run(sql, timeout_s, max_rows)` in that engine's sandbox (docs/engines.md).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections import OrderedDict
from pathlib import Path

from t2s.execution.engines.base import (
    CatalogueColumn,
    CatalogueTable,
    Engine,
    EngineError,
    expand_env,
    is_url,
    redact,
)
from t2s.execution.rows import normalize_value

DUCKDB_SUFFIXES = (".duckdb", ".ddb")
SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "duckdb": "duckdb",
}
DRIVERS = {"postgresql": ("", "psycopg"), "mysql": ("", "pymysql"), "sqlite": ("", "pysqlite"), "duckdb": ("",)}
EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}

__all__ = [
    "CatalogueColumn",
    "CatalogueTable",
    "Engine",
    "EngineError",
    "cached_engine",
    "connect_example",
    "database_for",
    "dialect_for",
    "engine_kind",
    "expand_env",
    "is_url",
    "normalize_value",
    "open_engine",
    "redact",
]


def engine_kind(name: str) -> str:
    """`sqlite`, `postgresql`, `mysql` or `duckdb` for a database name; an unknown URL scheme is an error."""
    name = str(name)
    if is_url(name):
        scheme, _, driver = name.split("://", 1)[0].lower().partition("+")
        kind = SCHEMES.get(scheme)
        if kind is None:
            raise EngineError(
                f"{redact(name)}: unknown database URL scheme {scheme!r}; use postgresql://, mysql+pymysql://, "
                "duckdb:///file.duckdb or sqlite:///file.sqlite"
            )
        if driver not in DRIVERS[kind]:
            raise EngineError(
                f"{redact(name)}: t2s runs {kind} through the driver {DRIVERS[kind][-1]!r} (its sandbox uses that "
                f"driver's own guards); write {scheme}+{DRIVERS[kind][-1]}:// or {scheme}://"
            )
        return kind
    return "duckdb" if Path(name).suffix.lower() in DUCKDB_SUFFIXES else "sqlite"


def dialect_for(name: str) -> str:
    """sqlglot's name of the SQL a database speaks (`sqlite`, `postgres`, `mysql`, `duckdb`)."""
    return DIALECTS[engine_kind(name)]


def sqlite_path(name: str) -> str:
    """The file an SQLite name points at (`sqlite:///relative.db`, `sqlite:////absolute.db` or a path)."""
    if is_url(name):
        from sqlalchemy.engine import make_url

        path = make_url(name).database or ""
        if not path or path == ":memory:":
            raise EngineError(f"{name}: an SQLite URL must name a database file (sqlite:///path/to/file.sqlite)")
        return path
    return str(Path(name).expanduser())


def open_engine(name: str, *, allow_privileged: bool = False) -> Engine:
    """The database `name` names, opened for querying in its engine's sandbox (the caller closes it).

    A server account that may do more than read its tables is refused unless `allow_privileged` (docs/engines.md).
    """
    kind = engine_kind(name)
    try:
        if kind == "sqlite":
            from t2s.execution.databases import open_sqlite
            from t2s.execution.engines.sqlite import SQLiteEngine

            path = sqlite_path(name)
            return SQLiteEngine(path, open_sqlite(path))
        if kind == "duckdb":
            from t2s.execution.engines.duckdb import DuckDBEngine

            return DuckDBEngine(name, allow_privileged=allow_privileged)
        if kind == "postgresql":
            from t2s.execution.engines.postgres import PostgresEngine

            return PostgresEngine(name, allow_privileged=allow_privileged)
        from t2s.execution.engines.mysql import MySQLEngine

        return MySQLEngine(name, allow_privileged=allow_privileged)
    except ModuleNotFoundError as e:
        raise EngineError(
            f"{redact(name)}: the {kind} driver is not installed ({e.name}); pip install 't2s[{EXTRAS[kind]}]'"
        ) from None


class _ThreadCaches(threading.local):
    """Each thread's own open databases: no connection, and no SQLite sandbox's authorizer, is shared by threads."""

    def __init__(self) -> None:
        self.open: OrderedDict[tuple, object] = OrderedDict()
        with _ALL_LOCK:
            _ALL.append(self.open)


_ALL: list[OrderedDict] = []  # every thread's cache, to close them at exit
_ALL_LOCK = threading.Lock()
_CACHES = _ThreadCaches()
CACHE_SIZE = 64  # open databases per thread; the least recently used is closed beyond it


def _cached(key: tuple, opener):
    cache = _CACHES.open
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    database = cache[key] = opener()
    while len(cache) > CACHE_SIZE:
        _close(cache.popitem(last=False)[1])
    return database


def _close(database) -> None:
    with contextlib.suppress(Exception):  # closing what may already be broken
        database.close()


@atexit.register
def close_cached() -> None:
    """Close every thread's cached databases (at exit; tests call it too)."""
    with _ALL_LOCK:
        for cache in _ALL:
            while cache:
                _close(cache.popitem()[1])


def cached_engine(name: str, *, allow_privileged: bool = False) -> Engine:
    """This thread's open engine for a database name, reused (scoring, rewards, execution-guided decoding)."""
    return _cached(
        ("engine", str(name), allow_privileged), lambda: open_engine(str(name), allow_privileged=allow_privileged)
    )


def database_for(name: str, *, allow_privileged: bool = False) -> Engine:
    """The engine of a record's `db_path`, opened once per thread and reused (an SQLite file, a DuckDB file or a
    server URL alike)."""
    return cached_engine(str(name), allow_privileged=allow_privileged)


def connect_example(example, *, allow_privileged: bool = False) -> Engine:
    """The engine a record's SQL runs on: its open `engine` (a question asked of a user's database,
    `t2s.decoding.asker`), the database its `db_path` names, or its WikiSQL `table`."""
    if isinstance(example.get("engine"), Engine):
        return example["engine"]
    if example.get("db_path"):
        return database_for(str(example["db_path"]), allow_privileged=allow_privileged)
    if example.get("table") is not None:
        from t2s.execution.engines.sqlite import table_engine

        return table_engine(example["table"])
    raise ValueError(
        f"example {example.get('example_id', '?')} has neither a 'table' nor a 'db_path': its SQL cannot be executed"
    )
