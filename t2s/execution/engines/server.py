"""What PostgreSQL, MySQL and DuckDB share: the gate before a query is sent, the driver's own guards around it, a
client-side deadline and the row and byte caps while rows are fetched, and error text that says what went wrong."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

from t2s.execution.engines.base import CatalogueTable, Engine, capped_rows
from t2s.execution.engines.gate import GateError, check_query
from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Execution, check_text


class ServerEngine(Engine):
    """An engine whose queries pass `check_query` and then run in `_execute` under the server's limits."""

    schema_name: str | None = None

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._catalogue: list[CatalogueTable] | None = None
        self._views: list[str] = []  # read with the catalogue; queries may read them too

    def catalogue(self) -> list[CatalogueTable]:
        if self._catalogue is None:
            self._catalogue = self._read_catalogue()
        return self._catalogue

    def readable_tables(self) -> list[str]:
        return [t.name for t in self.catalogue()] + self._views

    @abstractmethod
    def _read_catalogue(self) -> list[CatalogueTable]: ...

    @abstractmethod
    def _execute(self, sql: str, timeout_s: float, fetch_rows) -> tuple[list[str], list[tuple], str | None]:
        """Run `sql` under the server's guards; `fetch_rows(fetchmany)` reads the capped rows."""

    @abstractmethod
    def _timeout_message(self, error: Exception) -> bool:
        """Whether a driver error is the server's time limit or a cancellation by it."""

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
        if not sql.strip().strip(";").strip():
            return Execution("empty", error="no SQL")
        try:
            sql = check_query(sql, self.dialect, self.readable_tables(), self.schema_name)
        except GateError as e:
            return Execution(e.status, error=str(e))
        deadline = time.monotonic() + timeout_s
        state: dict[str, Any] = {}

        def fetch_rows(fetchmany):
            def timed(n: int):
                if time.monotonic() > deadline:
                    state["late"] = True
                    return []
                return fetchmany(n)

            rows, cap = capped_rows(timed, max_rows)
            return rows, cap

        try:
            columns, rows, cap = self._execute(sql, timeout_s, fetch_rows)
        except Exception as e:  # noqa: BLE001 - a driver error of any kind is the query's outcome
            if self._timeout_message(e) or time.monotonic() > deadline:
                return Execution("timeout", error=f"ran past its {timeout_s:g} s budget")
            return Execution("exec_error", error=_first_line(e))
        if state.get("late"):
            return Execution("timeout", error=f"ran past its {timeout_s:g} s budget")
        if cap:
            return Execution("timeout", error=cap)
        return Execution("ok", rows=rows, columns=columns)


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
