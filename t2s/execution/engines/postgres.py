"""PostgreSQL through psycopg 3.

A connection is refused when its role is privileged (a superuser; a member of `pg_read_server_files`,
`pg_write_server_files`, `pg_execute_server_program`, `pg_read_all_data`, `pg_write_all_data` or
`pg_signal_backend`; a role that can create roles or databases, replicate or bypass row security; one that can write
a table or create objects in its schema), unless `allow_privileged`. Functions on the allowlist that the database
defines again outside `pg_catalog` (by an extension such as `dblink`, or by hand) are refused by name.

Around every query that passed the gate: a `READ ONLY` transaction that is always rolled back, `statement_timeout`,
`lock_timeout` and `idle_in_transaction_session_timeout` set for that transaction only (`SET LOCAL`), rows read
through a server-side cursor in batches sized by bytes, a watchdog that sends PostgreSQL's cancel request on a
second connection at the deadline (whatever the query did to its own settings) and cuts the connection at twice
the budget, and `DISCARD ALL` afterwards, so nothing a query did to the session (settings, advisory locks, prepared
statements, temporary tables) reaches the next one. The catalogue comes from SQLAlchemy's inspector on the
connection's current schema (normally `public`).
"""

from __future__ import annotations

import itertools
import os
import socket

from t2s.execution.engines.base import CatalogueTable, EngineError
from t2s.execution.engines.functions import allowed_functions
from t2s.execution.engines.server import LostConnection, UrlServerEngine, inspector_catalogue

_cursor_ids = itertools.count()
_PREDEFINED_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                     "pg_read_all_data", "pg_write_all_data", "pg_signal_backend")  # fmt: skip


class PostgresEngine(UrlServerEngine):
    kind = "postgresql"
    dialect = "postgres"
    display = "PostgreSQL"
    driver = "postgresql+psycopg"

    def _prepare(self, url) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _inspect_server(self) -> None:
        self.schema_name = self.conn.execute("SELECT current_schema()").fetchone()[0]
        self.shadowed_functions = frozenset(
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT lower(proname) FROM pg_proc WHERE pronamespace <> 'pg_catalog'::regnamespace "
                "AND lower(proname) = ANY(%s)",
                [sorted(allowed_functions(self.dialect))],
            )
        )

    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10, application_name="t2s")
        except psycopg.Error as e:
            raise EngineError(
                f"{self.label}: cannot connect to PostgreSQL ({_without(str(e).strip(), self)})"
            ) from None

    def privileges(self) -> list[str]:
        row = self.conn.execute(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, "
            "ARRAY(SELECT p.rolname FROM pg_roles p WHERE p.rolname = ANY(%s) "
            "      AND pg_has_role(current_user, p.oid, 'MEMBER') ORDER BY 1), "
            "EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') "
            "        AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), "
            "has_schema_privilege(current_schema(), 'CREATE'), has_database_privilege(current_database(), 'CREATE') "
            "FROM pg_roles r WHERE r.rolname = current_user",
            [list(_PREDEFINED_ROLES)],
        ).fetchone()
        if row is None:
            return ["its role cannot be read from pg_roles"]
        found = [label for flag, label in zip(row[:5], ("superuser", "CREATEROLE", "CREATEDB", "REPLICATION",
                                                       "BYPASSRLS")) if flag]  # fmt: skip
        found += [f"member of {role}" for role in row[5]]
        if row[6]:
            found.append("can write tables of its schema")
        if row[7]:
            found.append("can create objects in its schema")
        if row[8]:
            found.append("can create schemas in its database")
        return found

    def read_only_account_sql(self) -> list[str]:
        schema = self.quote(self.schema_name or "public")
        lines = [
            "CREATE ROLE t2s_reader LOGIN PASSWORD '<a password>';",
            f"GRANT USAGE ON SCHEMA {schema} TO t2s_reader;",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO t2s_reader;",
        ]
        if "can create objects in its schema" in self._privileges:  # PostgreSQL 14 and older grant it to PUBLIC
            lines.append(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC;  -- if every role may create objects there")
        return lines

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _read_catalogue(self) -> list[CatalogueTable]:
        tables, self._views = inspector_catalogue(self, self._url, self.schema_name)
        return tables

    def _execute(
        self, sql: str, timeout_s: float, max_rows: int, fetch_rows
    ) -> tuple[list[str], list[tuple], str | None]:
        import psycopg

        conn = self.conn
        if conn.closed or conn.broken:
            raise LostConnection("the connection is closed")
        ms = max(1, int(timeout_s * 1000))
        try:
            conn.autocommit = False
            conn.read_only = True
            try:
                conn.execute(f"SET LOCAL statement_timeout = {ms}")
                conn.execute(f"SET LOCAL lock_timeout = {ms}")
                conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {ms + 5000}")
                with conn.cursor(name=f"t2s_{next(_cursor_ids)}") as cursor:
                    cursor.execute(sql)
                    columns = [d.name for d in cursor.description or ()]
                    rows, cap = fetch_rows(cursor.fetchmany)
                return columns, rows, cap
            finally:
                self._reset()
        except psycopg.OperationalError as e:
            if conn.closed or conn.broken:
                raise LostConnection(_without(str(e).strip().splitlines()[0], self)) from None
            raise

    def _reset(self) -> None:
        conn = self.conn
        if conn.closed or conn.broken:
            return
        try:
            conn.rollback()
            conn.autocommit = True
            conn.read_only = None
            conn.execute("DISCARD ALL")
        except Exception:  # noqa: BLE001 - a connection that cannot be reset is not reused
            self._stale = True

    def _is_timeout(self, error: Exception) -> bool:
        import psycopg

        return isinstance(error, (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable))

    def _cancel(self) -> None:
        self.conn.cancel_safe(timeout=1.0)

    def _sever(self) -> None:
        with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.conn.close()


def _without(text: str, engine: PostgresEngine) -> str:
    """A driver message without the connection string's password, if the driver repeated it."""
    password = engine._url.password
    return text.replace(password, "***") if password else text
