"""What PostgreSQL, MySQL and DuckDB share: the gate before a query is sent, a watchdog that ends it at its deadline
whatever it does, the row and byte caps while rows are fetched, one engine per thread (or a lock), one reconnection
when the server went away, and error text that says what went wrong.

The second wall does not depend on the parser: each engine refuses a privileged account unless told otherwise
(`allow_privileged`), runs the query read-only under its own limits, and resets the session afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from abc import abstractmethod
from typing import Any, ClassVar

from t2s.execution.engines.base import CatalogueTable, Engine, EngineError, parse_url
from t2s.execution.engines.gate import GateError, check_query
from t2s.execution.rows import capped_rows
from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Execution, Status, check_text

# Past its budget a query is cancelled by the server's own means; past twice its budget and this much, its
# connection is cut, so no query holds its caller longer than 2 x budget + 1 s.
SEVER_AFTER_S = 0.5


class LostConnection(Exception):
    """The server closed the connection or cannot be reached: the query may be tried again on a new one."""


class Watchdog:
    """Ends one query from a second thread: `cancel()` at the deadline (the engine's own cancellation, on another
    connection), `sever()` at twice the budget plus `SEVER_AFTER_S` if the query still has not returned."""

    def __init__(self, budget_s: float, cancel, sever) -> None:
        self.fired: str | None = None
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._watch, args=(budget_s, cancel, sever), daemon=True)
        self._thread.start()

    def _watch(self, budget_s: float, cancel, sever) -> None:
        if self._done.wait(budget_s):
            return
        self.fired = "cancel"
        with contextlib.suppress(Exception):  # the cut below still comes
            cancel()
        if self._done.wait(max(0.0, self._started + 2 * budget_s + SEVER_AFTER_S - time.monotonic())):
            return
        self.fired = "sever"
        with contextlib.suppress(Exception):  # nothing more can be done from here
            sever()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class ServerEngine(Engine):
    """An engine whose queries pass `check_query` and then run in `_execute` under the server's limits.

    One engine may be shared between threads: its queries then run one at a time (`cached_engine` gives each thread
    its own engine instead)."""

    schema_name: str | None = None
    shadowed_functions: frozenset[str] = frozenset()  # allowlisted names the database defines itself

    def __init__(self, name: str, *, allow_privileged: bool = False) -> None:
        super().__init__(name)
        self.allow_privileged = allow_privileged
        self._catalogue: list[CatalogueTable] | None = None
        self._views: list[str] = []  # read with the catalogue; queries may read them too
        self._lock = threading.RLock()
        self._privileges: list[str] = []
        self._stale = False  # the connection was cut: reopen it before the next query

    def check_privileges(self) -> None:
        """Refuse a privileged account (what `privileges` lists) unless `allow_privileged`; then say what it risks."""
        self._privileges = self.privileges()
        if not self._privileges:
            return
        if not self.allow_privileged:
            self.close()
            raise EngineError(
                f"{self.label}: the account is privileged ({'; '.join(self._privileges)}), and model-written SQL runs "
                f"on it. t2s refuses such a URL by default. Give it a read-only account instead:\n"
                + "\n".join(f"  {line}" for line in self.read_only_account_sql())
                + "\nor accept the risk with allow_privileged=True (--allow_privileged; docs/engines.md)."
            )
        warnings.warn(self.write_warning(), stacklevel=3)

    def privileges(self) -> list[str]:
        """What the account may do beyond reading its tables (empty: a read-only account)."""
        return []

    def read_only_account_sql(self) -> list[str]:
        return []

    def write_warning(self) -> str | None:
        if not self._privileges:
            return None
        return (
            f"{self.label}: PRIVILEGED ACCOUNT ACCEPTED (allow_privileged): {'; '.join(self._privileges)}. Every query "
            "still passes the statement gate and runs read-only under a time limit, but a flaw in either would run "
            "with these privileges (docs/engines.md says what stays at risk). Use a read-only account."
        )

    def catalogue(self) -> list[CatalogueTable]:
        with self._lock:
            if self._catalogue is None:
                self._catalogue = self._read_catalogue()
            return self._catalogue

    def readable_tables(self) -> list[str]:
        return [t.name for t in self.catalogue()] + self._views

    @abstractmethod
    def _read_catalogue(self) -> list[CatalogueTable]: ...

    @abstractmethod
    def _execute(
        self, sql: str, timeout_s: float, max_rows: int, fetch_rows
    ) -> tuple[list[str], list[tuple], str | None]:
        """Run `sql` under the server's guards; `fetch_rows(fetchmany)` reads the capped rows. Raises
        `LostConnection` when the connection is gone."""

    @abstractmethod
    def _is_timeout(self, error: Exception) -> bool:
        """Whether a driver error is the server's time limit or a cancellation by it."""

    @abstractmethod
    def _cancel(self) -> None:
        """Cancel the running query from another thread, by the server's own means."""

    @abstractmethod
    def _sever(self) -> None:
        """Cut the running query's connection from another thread (it is reopened before the next query)."""

    def _connect(self):
        """A new connection to the server; `EngineError` when it cannot be reached."""
        raise NotImplementedError

    def _ready(self) -> None:
        """Whatever a query needs and may take a while to set up (DuckDB: its query process), done before the query's
        budget starts, so that the budget times the query alone; `EngineError` when it cannot be set up."""

    def _reconnect(self) -> None:
        """A fresh connection in place of the current one (`self.conn`); `EngineError` when the server cannot be
        reached."""
        with contextlib.suppress(Exception):  # closing a broken connection
            self.conn.close()
        self.conn = self._connect()

    @abstractmethod
    def quote(self, name: str) -> str: ...

    def sample_rows(self, table: str, n: int) -> list[tuple]:
        result = self.run(f"SELECT * FROM {self.quote(table)} LIMIT {int(n)}", max_rows=max(int(n), 1))
        if result.status != "ok":
            raise RuntimeError(f"{self.label}: reading sample rows of {table} failed: {result.error}")
        return result.rows or []

    def run(self, sql: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS) -> Execution:
        refused = check_text(sql)
        if refused is not None:
            return refused
        try:
            tables = self.readable_tables()
        except EngineError as e:
            return Execution(Status.EXEC_ERROR, error=str(e), lost_connection=True)
        try:
            text = check_query(sql, self.dialect, tables, self.schema_name, denied_functions=self.shadowed_functions)
        except GateError as e:
            return Execution(Status(e.status), error=str(e))
        with self._lock:
            lost = ""
            for _ in range(2):  # once more on a new connection when the server went away
                try:
                    if self._stale:
                        self._reconnect()
                        self._stale = False
                    self._ready()
                    return self._run_checked(text, timeout_s, max_rows)
                except LostConnection as e:
                    lost, self._stale = str(e), True
                except EngineError as e:
                    return Execution(Status.EXEC_ERROR, error=str(e), lost_connection=True)
            return Execution(
                Status.EXEC_ERROR, error=f"{self.label}: the connection was lost twice ({lost})", lost_connection=True
            )

    def _run_checked(self, text: str, timeout_s: float, max_rows: int) -> Execution:
        deadline = time.monotonic() + timeout_s
        late = False

        def fetch_rows(fetchmany):
            def timed(n: int):
                nonlocal late
                if time.monotonic() > deadline:
                    late = True
                    return []
                return fetchmany(n)

            return capped_rows(timed, max_rows)

        watchdog = Watchdog(timeout_s, self._cancel, self._sever)
        try:
            columns, rows, cap = self._execute(text, timeout_s, max_rows, fetch_rows)
        except LostConnection:
            if watchdog.fired:  # the watchdog cut it: a new connection before the next query
                self._stale = True
                return Execution(Status.TIMEOUT, error=f"ran past its {timeout_s:g} s budget")
            raise
        except Exception as e:  # noqa: BLE001 - a driver error of any kind is the query's outcome
            if watchdog.fired or self._is_timeout(e) or time.monotonic() > deadline:
                return Execution(Status.TIMEOUT, error=f"ran past its {timeout_s:g} s budget")
            return Execution(Status.EXEC_ERROR, error=_first_line(e))
        finally:
            watchdog.stop()
            if watchdog.fired == "sever":
                self._stale = True
        if late or watchdog.fired:
            return Execution(Status.TIMEOUT, error=f"ran past its {timeout_s:g} s budget")
        if cap:
            return Execution(Status.TOO_LARGE, error=cap)
        return Execution(Status.OK, rows=rows, columns=columns)


class UrlServerEngine(ServerEngine):
    """A server reached through a database URL (PostgreSQL, MySQL): one opening sequence for both, so that the URL is
    parsed, the connection opened and the account checked the same way, and in the same order, on each."""

    driver: ClassVar[str]  # SQLAlchemy's drivername, used to read the server's catalogue

    def __init__(self, name: str, *, allow_privileged: bool = False) -> None:
        super().__init__(name, allow_privileged=allow_privileged)
        url = parse_url(self.name, self.label)
        self._url = url.set(drivername=self.driver)
        self._prepare(url)
        self.conn = self._connect()
        try:
            self._inspect_server()
            self.check_privileges()
        except BaseException:  # a refused account or a failed inspection leaves no connection open
            with contextlib.suppress(Exception):
                self.conn.close()
            raise

    def _prepare(self, url) -> None:
        """Read what connecting needs from the URL; `EngineError` when it lacks something."""

    def _inspect_server(self) -> None:
        """Learn what the queries depend on from the open connection, before the account is checked."""


def inspector_catalogue(engine, url, schema: str | None) -> tuple[list[CatalogueTable], list[str]]:
    """Tables (columns with their types as the dialect names them, primary and foreign keys) and views of `schema`
    (None: the connection's own) through SQLAlchemy's inspector; an error names the database (password hidden)."""
    import sqlalchemy

    from t2s.execution.engines.base import CatalogueColumn, EngineError

    sa_engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        inspector = sqlalchemy.inspect(sa_engine)
        tables = []
        for name in inspector.get_table_names(schema=schema):
            columns = [
                CatalogueColumn(c["name"], c["type"].compile(dialect=sa_engine.dialect))
                for c in inspector.get_columns(name, schema=schema)
            ]
            pk = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
            fks = [
                (child, fk["referred_table"], parent)
                for fk in inspector.get_foreign_keys(name, schema=schema)
                for child, parent in zip(fk["constrained_columns"], fk["referred_columns"])
            ]
            tables.append(CatalogueTable(name, columns, list(pk), fks))
        views = list(inspector.get_view_names(schema=schema))
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise EngineError(f"{engine.label}: cannot read the catalogue ({str(e).splitlines()[0]})") from None
    finally:
        sa_engine.dispose()
    return tables, views


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
