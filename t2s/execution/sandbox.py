"""Run untrusted SQL on SQLite without letting it write, escape or run away.

Model output is untrusted input. Every query runs under four independent guards:

1. a statement gate: one statement, starting with SELECT, WITH or VALUES (SQLite itself refuses
   a second statement);
2. SQLite's authorizer: only SELECT, column reads, functions (not `load_extension`) and
   recursive CTEs are allowed, so DROP/DELETE/INSERT/UPDATE/CREATE/ATTACH/DETACH/PRAGMA/VACUUM
   and transactions are denied at prepare time, whatever their spelling;
3. read-only connections (`PRAGMA query_only` for in-memory tables; files read-only and immutable, `database_uri`);
4. resource limits: a time budget enforced inside SQLite's VM by a progress handler, a cap on
   fetched rows, and caps on string/blob and statement length.

The sandbox is the same for every dataset; what "the same answer" means is not (`t2s.execution.semantics`).
A database is either an SQLite file (Spider, your own data) or a WikiSQL table dict, materialised in memory as the
official `dev.db` would hold it (`t2s.execution.tables`); `t2s.execution.engines.connect_example` opens the one a record names.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from t2s.execution.rows import capped_rows
from t2s.execution.sql_text import SQL_TOKEN_RE
from t2s.execution.tables import register_collation

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_ROWS = 100_000
MAX_SQL_CHARS = 100_000
MAX_VALUE_BYTES = 1_000_000  # any one string or blob; text-to-SQL data has no longer value
MAX_LIKE_PATTERN_BYTES = 100  # LIKE/GLOB cost the value's length times the pattern's, in one uninterruptible call
# printf/format widths and precisions: SQLite loops over them even once the result is too big.
MAX_PRINTF_WIDTH = 100_000
PROGRESS_EVERY = 100  # VM instructions between time checks
MAX_SEARCH_PAIRS = 100_000_000  # instr/replace/trim on non-text arguments: value length × pattern length
READ_ONLY_STARTS = ("select", "with", "values")

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# Functions that reach outside the query: loading code, and FTS3's tokenizer registry (it returns a process address
# and, given a second argument, replaces a tokenizer for every later query on the connection).
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
# The authorizer's action codes 1-33, in sqlite3.h's order. The sqlite3 module's constants cannot be inverted into
# names: result codes share their numbers (SQLITE_TOOBIG is 18, like SQLITE_INSERT).
_ACTION_NAMES = dict(
    enumerate(
        (
            "CREATE INDEX", "CREATE TABLE", "CREATE TEMP INDEX", "CREATE TEMP TABLE", "CREATE TEMP TRIGGER",
            "CREATE TEMP VIEW", "CREATE TRIGGER", "CREATE VIEW", "DELETE", "DROP INDEX", "DROP TABLE",
            "DROP TEMP INDEX", "DROP TEMP TABLE", "DROP TEMP TRIGGER", "DROP TEMP VIEW", "DROP TRIGGER", "DROP VIEW",
            "INSERT", "PRAGMA", "READ", "SELECT", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER TABLE",
            "REINDEX", "ANALYZE", "CREATE VTABLE", "DROP VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE",
        ),
        start=1,
    )
)  # fmt: skip
_WORD_RE = re.compile(r"[A-Za-z_]+")
_ORDER_BY_RE = re.compile(r"\border\s+by\b", re.IGNORECASE)


class Status(str, Enum):
    """What running one query gave. A `str` enum: it compares, prints and reads in JSON as its value."""

    OK = "ok"
    EXEC_ERROR = "exec_error"  # the engine refused or failed it
    TIMEOUT = "timeout"  # it ran past its time budget
    TOO_LARGE = "too_large"  # its result passed the row or byte cap, or its work the memory limit (DuckDB)
    REJECTED = "rejected"  # the gate refused it before it ran: not a single read-only query
    EMPTY = "empty"  # there was no SQL to run

    def __str__(self) -> str:
        return self.value


@dataclass
class Execution:
    """What running one query gave: its `Status`, and its rows or its error."""

    status: Status
    rows: list[tuple] | None = None
    error: str | None = None
    columns: list[str] | None = None  # the result's column names (for display)
    # The server could not be reached, also after reconnecting once: says nothing about the query (not to be
    # cached as its result; a gold query that failed so is tried again later).
    lost_connection: bool = False


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


def clear_scan_cache() -> None:
    """Forget memoised scans (benchmarks time scoring from a cold start)."""
    _scan_cached.cache_clear()


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
            if action == sqlite3.SQLITE_UPDATE and str(arg1).lower() in ("sqlite_master", "sqlite_schema"):
                # what SQLite asks when a query first uses a virtual table: json_each, pragma_*, dbstat…
                what, target = "a virtual table or table-valued function", None
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
        self.conn.set_progress_handler(self._progress, PROGRESS_EVERY)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.conn.set_progress_handler(None, 0)
        self.conn.set_authorizer(None)


def harden(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Resource limits that stay on the connection (values, statements, attached databases, LIKE patterns), and the
    functions whose cost SQLite cannot interrupt replaced by bounded ones (below)."""
    _limit(conn)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 4)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    for name, narg, function in _BOUNDED_FUNCTIONS:
        conn.create_function(name, narg, function, deterministic=True)
    return conn


def _limit(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN_BYTES)
    return conn


# --------------------------------------------------------------------------- functions with bounded cost
# SQLite's time budget (the progress handler) is checked between VM instructions, and one function call is one
# instruction. A few built-ins can run for many seconds in one call on values within the length limit: printf/format
# loop over their width and precision even after the result has grown too big, and replace/instr compare the pattern
# at every position (1 MB × 0.5 MB: tens of seconds), and so does trim with a set of characters. They are replaced on every sandboxed connection by functions that
# give SQLite's own results: text arguments through Python's linear-time string search, anything else (and printf
# within its bounds) through the built-in on a private connection with the same limits.

_BUILTINS = _limit(sqlite3.connect(":memory:", check_same_thread=False))
_BUILTINS_LOCK = threading.Lock()
_PRINTF_SPEC = re.compile(r"%([-+ #!0,]*)(\*|\d+)?(?:\.(\*|\d+))?(?:ll|l)?(.)", re.DOTALL)


def _builtin(name: str, *args: Any) -> Any:
    with _BUILTINS_LOCK:
        return _BUILTINS.execute(f"SELECT {name}({', '.join('?' * len(args))})", args).fetchone()[0]


_NUMERIC_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _magnitude(value: Any) -> float:
    """The size of a number as SQLite reads an argument as an integer: text and blobs by their numeric prefix."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "ignore")
    if isinstance(value, str):
        match = _NUMERIC_PREFIX.match(value)
        value = match.group(0) if match else 0
    try:
        return abs(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _printf(fmt: Any = None, *args: Any) -> Any:
    if isinstance(fmt, str):
        position = 0
        for match in _PRINTF_SPEC.finditer(fmt):
            if match.group(4) == "%":
                continue
            for part in (match.group(2), match.group(3)):
                if part == "*":
                    value = args[position] if position < len(args) else 0
                    position += 1
                else:
                    value = part
                if part is not None and _magnitude(value) > MAX_PRINTF_WIDTH:
                    raise ValueError(f"printf width or precision over {MAX_PRINTF_WIDTH:,}")
            position += 1
    return _builtin("printf", fmt, *args)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes)) else 32


def _bounded_search(name: str, *args: Any) -> Any:
    """The built-in, on arguments small enough for its quadratic search."""
    if _size(args[0]) * _size(args[1]) > MAX_SEARCH_PAIRS:
        raise ValueError(f"{name}() over more than {MAX_SEARCH_PAIRS:,} character pairs")
    return _builtin(name, *args)


def _instr(haystack: Any, needle: Any) -> Any:
    if isinstance(haystack, str) and isinstance(needle, str):
        return haystack.find(needle) + 1
    if isinstance(haystack, bytes) and isinstance(needle, bytes):
        return haystack.find(needle) + 1
    return _bounded_search("instr", haystack, needle)


def _replace(text: Any, old: Any, new: Any) -> Any:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        return text if old == "" else text.replace(old, new)
    return _bounded_search("replace", text, old, new)


def _trimmer(name: str, strip: str):
    def trim(text: Any, chars: Any) -> Any:
        if isinstance(text, str) and isinstance(chars, str):
            return getattr(text, strip)(chars)
        return _bounded_search(name, text, chars)

    return trim


_BOUNDED_FUNCTIONS = (
    ("printf", -1, _printf),
    ("format", -1, _printf),
    ("instr", 2, _instr),
    ("replace", 3, _replace),
    ("trim", 2, _trimmer("trim", "strip")),  # SQLite tries every character of the set at every position
    ("ltrim", 2, _trimmer("ltrim", "lstrip")),
    ("rtrim", 2, _trimmer("rtrim", "rstrip")),
)


def check_text(sql: Any) -> Execution | None:
    """What every engine refuses before looking at a query: no SQL, not a string, a NUL byte, too long."""
    if sql is None:
        return Execution(Status.EMPTY, error="no SQL")
    if not isinstance(sql, str):
        return Execution(Status.REJECTED, error=f"prediction is a {type(sql).__name__}, not a string")
    if "\x00" in sql:
        return Execution(Status.REJECTED, error="the query contains a NUL byte")
    if len(sql) > MAX_SQL_CHARS:
        return Execution(Status.REJECTED, error=f"the query is {len(sql):,} characters long (limit {MAX_SQL_CHARS:,})")
    return None


_CONNECTION_LOCKS: dict[int, threading.Lock] = {}
_CONNECTION_LOCKS_GUARD = threading.Lock()


def _connection_lock(conn: sqlite3.Connection) -> threading.Lock:
    """One lock per connection: a connection shared by threads (a cached WikiSQL table) runs one query at a time,
    so no thread's query ever runs under another's authorizer, or none."""
    with _CONNECTION_LOCKS_GUARD:
        return _CONNECTION_LOCKS.setdefault(id(conn), threading.Lock())


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
    refused = check_text(sql)
    if refused is not None:
        return refused
    scanned = scan_sql(sql, rewrite_double_quotes)
    if scanned.is_blank:
        return Execution(Status.EMPTY, error="no SQL")
    if scanned.first_word not in READ_ONLY_STARTS:
        what = f"{scanned.first_word.upper()} statement" if scanned.first_word else "not an SQL statement"
        return Execution(Status.REJECTED, error=f"{what}: only SELECT/WITH/VALUES queries are evaluated")
    sandbox = _Sandbox(conn, timeout_s)
    try:
        with _connection_lock(conn), sandbox:  # the authorizer and budget belong to this query alone
            harden(conn)
            cursor = conn.execute(scanned.sql)
            rows, over_cap = capped_rows(cursor.fetchmany, max_rows)
            columns = [d[0] for d in cursor.description or ()]
            cursor.close()
    except sqlite3.ProgrammingError as e:
        if "one statement" in str(e):
            return Execution(Status.REJECTED, error="more than one statement")
        return Execution(Status.EXEC_ERROR, error=str(e))
    except sqlite3.Error as e:
        if sandbox.denied:
            return Execution(Status.REJECTED, error=sandbox.denied)
        if sandbox.timed_out:
            return Execution(Status.TIMEOUT, error=f"ran past its {timeout_s:g} s budget")
        if "user-defined function raised exception" in str(e):  # one of the bounded functions above refused
            return Execution(
                Status.EXEC_ERROR,
                error=f"a function's arguments are too large for the sandbox (printf/format width or precision over "
                f"{MAX_PRINTF_WIDTH:,}, or instr/replace/trim over more than {MAX_SEARCH_PAIRS:,} character pairs)",
            )
        return Execution(Status.EXEC_ERROR, error=str(e))
    except (OverflowError, MemoryError, ValueError, RecursionError) as e:
        return Execution(Status.EXEC_ERROR, error=f"{type(e).__name__}: {e}")
    if over_cap:
        return Execution(Status.TOO_LARGE, error=over_cap)
    return Execution(Status.OK, rows=rows, columns=columns)


def _decode_text(data: bytes) -> str:
    # The official Spider evaluator's text factory: invalid UTF-8 bytes are dropped, not fatal.
    return data.decode(errors="ignore")


def database_uri(path: str | Path) -> str:
    """The `file:` URI of a database file, read-only and immutable.

    The path is percent-encoded (`pathlib.Path.as_uri`): pasted raw into a URI, `?` or `#` in a file name would end
    the path (SQLite would then create and open another file) and `%` would be decoded. `immutable=1` tells SQLite
    the file cannot change, so it takes no locks (a writer elsewhere cannot make a query wait past its time budget)
    and creates no `-wal`/`-shm` files beside a WAL-mode database. The price: changes another process is making to
    the file while t2s reads it are not seen consistently (evaluation databases do not change; a live database is
    best queried from a copy or a read-only replica).
    """
    return Path(path).expanduser().resolve().as_uri() + "?mode=ro&immutable=1"


def open_database(path: str) -> sqlite3.Connection:
    """A database file opened read-only: the file is never written, not even its journal, and nothing is created."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"database file {path} does not exist")
    conn = sqlite3.connect(database_uri(path), uri=True, check_same_thread=False)
    conn.text_factory = _decode_text
    register_collation(conn)
    conn.execute("PRAGMA query_only = ON")
    return conn
