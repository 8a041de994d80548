"""PostgreSQL through psycopg 3.

Around every query that passed the gate: a `READ ONLY` transaction that is always rolled back, `statement_timeout`,
`lock_timeout` and `idle_in_transaction_session_timeout` set for that transaction only (`SET LOCAL`), rows read
through a server-side cursor in batches (the client never holds more than the caps), and `DISCARD ALL` afterwards, so
nothing a query did to the session (settings, advisory locks, prepared statements, temporary tables) reaches the next
one. The catalogue comes from SQLAlchemy's inspector on the connection's current schema (normally `public`).
"""

from __future__ import annotations

import itertools

from t2s.execution.engines.base import CatalogueTable, EngineError, expand_env
from t2s.execution.engines.server import ServerEngine, inspector_catalogue

_cursor_ids = itertools.count()


class PostgresEngine(ServerEngine):
    kind = "postgresql"
    dialect = "postgres"
    display = "PostgreSQL"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(expand_env(self.name))
        self._url = url.set(drivername="postgresql+psycopg")
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self.conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10, application_name="t2s")
        except psycopg.Error as e:
            raise EngineError(f"{self.label}: cannot connect to PostgreSQL ({str(e).strip()})") from None
        self.schema_name = self.conn.execute("SELECT current_schema()").fetchone()[0]

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _read_catalogue(self) -> list[CatalogueTable]:
        tables, self._views = inspector_catalogue(self, self._url, self.schema_name)
        return tables

    def _execute(self, sql: str, timeout_s: float, fetch_rows) -> tuple[list[str], list[tuple], str | None]:
        conn = self.conn
        ms = max(1, int(timeout_s * 1000))
        conn.autocommit = False
        conn.read_only = True
        try:
            conn.execute(f"SET LOCAL statement_timeout = {ms}")
            conn.execute(f"SET LOCAL lock_timeout = {ms}")
            conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {ms + 5000}")
            with conn.cursor(name=f"t2s_{next(_cursor_ids)}") as cursor:
                cursor.execute(sql.strip().rstrip(";"))
                columns = [d.name for d in cursor.description or ()]
                rows, cap = fetch_rows(cursor.fetchmany)
            return columns, rows, cap
        finally:
            self._reset()

    def _reset(self) -> None:
        conn = self.conn
        try:
            conn.rollback()
            conn.autocommit = True
            conn.read_only = None
            conn.execute("DISCARD ALL")
        except Exception:  # noqa: BLE001 - a connection the server closed: open a fresh one for the next query
            import psycopg

            conn.close()
            conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10, application_name="t2s")

    def _timeout_message(self, error: Exception) -> bool:
        import psycopg

        return isinstance(error, (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable))

    def write_warning(self) -> str | None:
        row = self.conn.execute(
            "SELECT r.rolsuper, EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
            "AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')) "
            "FROM pg_roles r WHERE r.rolname = current_user"
        ).fetchone()
        if row and (row[0] or row[1]):
            who = "a superuser" if row[0] else "allowed to write its tables"
            return (
                f"{self.label}: the role is {who}. t2s runs every query read-only in a sandbox and does not rely on "
                "the role, but a read-only role (GRANT SELECT only) is the safer URL to give it."
            )
        return None

    def close(self) -> None:
        self.conn.close()
