"""MySQL and MariaDB through PyMySQL.

A connection is refused when its account may do more than read (any privilege but `SELECT`, `SHOW VIEW` and
`USAGE`: `FILE`, `SUPER`, `PROCESS`, any write, `WITH GRANT OPTION`, a granted role, which `SHOW GRANTS` does not
expand), unless `allow_privileged`.

Around every query that passed the gate: one `SET` of the session (`utf8mb4`, an `sql_mode` without `ANSI_QUOTES`
and `NO_BACKSLASH_ESCAPES`, so the server tokenizes as the gate's reader did, and the server's time limit:
`max_execution_time` in milliseconds on MySQL, `max_statement_time` in seconds on MariaDB), a `READ ONLY`
transaction that is always rolled back, rows read unbuffered in batches sized by bytes, a watchdog that sends
`KILL QUERY` from a second connection at the deadline and cuts the connection at twice the budget, and a reset of
the connection afterwards (`COM_RESET_CONNECTION`: user variables, locks, temporary tables, session settings), so
nothing a query did reaches the next one. The catalogue comes from SQLAlchemy's inspector on the URL's database.
"""

from __future__ import annotations

import contextlib
import re
import socket

from t2s.execution.engines.base import CatalogueTable, EngineError
from t2s.execution.engines.server import LostConnection, UrlServerEngine, inspector_catalogue

_READ_PRIVILEGES = {"SELECT", "SHOW VIEW", "USAGE"}
_COM_RESET_CONNECTION = 0x1F  # not wrapped by PyMySQL; MySQL 5.7+, MariaDB 10.2+
_LOST = (0, 2006, 2013, 2014, 2055)  # connection gone, lost during a query, out of sync, read error
_GRANT_RE = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>.+?) TO ", re.IGNORECASE)


class MySQLEngine(UrlServerEngine):
    kind = "mysql"
    dialect = "mysql"
    display = "MySQL"
    driver = "mysql+pymysql"

    def _prepare(self, url) -> None:
        if not url.database:
            raise EngineError(f"{self.label}: the URL names no database; end it with /<database>")
        self.schema_name = url.database
        self._killer = None  # the watchdog's own connection, opened at its first use

    def _inspect_server(self) -> None:
        self.mariadb = "mariadb" in self.conn.get_server_info().lower()
        with self.conn.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.sql_mode")
            modes = str(cursor.fetchone()[0] or "").split(",")
        self._sql_mode = ",".join(m for m in modes if m and m not in ("ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI"))

    def _connect(self):
        import pymysql

        url = self._url
        options = dict(url.query)
        try:
            return pymysql.connect(
                host=url.host or "localhost",
                port=url.port or 3306,
                user=url.username,
                password=url.password or "",
                database=url.database,
                unix_socket=options.get("unix_socket"),
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=10,
                cursorclass=pymysql.cursors.SSCursor,
            )
        except pymysql.Error as e:
            raise EngineError(f"{self.label}: cannot connect to MySQL ({e})") from None

    def privileges(self) -> list[str]:
        with self.conn.cursor() as cursor:
            cursor.execute("SHOW GRANTS")
            grants = [str(r[0]) for r in cursor.fetchall()]
        found: list[str] = []
        for grant in grants:
            match = _GRANT_RE.match(grant)
            if match is None:
                if grant.upper().startswith("GRANT "):
                    found.append(f"a granted role ({grant.split(' TO ')[0][6:]})")
                continue
            names = re.sub(r"\([^)]*\)", "", match["privileges"]).upper()  # column lists: SELECT (a, b)
            extra = [p.strip() for p in names.split(",") if p.strip() not in _READ_PRIVILEGES]
            if extra:
                found.append(f"{', '.join(extra)} ON {match['target']}")
            if "WITH GRANT OPTION" in grant.upper():
                found.append(f"GRANT OPTION ON {match['target']}")
        return found

    def read_only_account_sql(self) -> list[str]:
        database = self.quote(self.schema_name or "")
        return [
            "CREATE USER 't2s_reader'@'%' IDENTIFIED BY '<a password>';",
            f"GRANT SELECT ON {database}.* TO 't2s_reader'@'%';",
            "FLUSH PRIVILEGES;",
        ]

    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def _read_catalogue(self) -> list[CatalogueTable]:
        tables, self._views = inspector_catalogue(self, self._url, None)
        return tables

    def _session(self, timeout_s: float) -> str:
        if self.mariadb:
            limit = f"max_statement_time = {max(timeout_s, 0.001):.3f}"
        else:
            limit = f"max_execution_time = {max(1, int(timeout_s * 1000))}"
        return f"SET NAMES utf8mb4, SESSION sql_mode = '{self._sql_mode}', SESSION {limit}"

    def _execute(self, sql: str, timeout_s: float, max_rows: int, fetch_rows):
        import pymysql

        conn = self.conn
        cursor = None
        fetching = False
        try:
            cursor = conn.cursor()
            cursor.execute(self._session(timeout_s))
            cursor.execute("START TRANSACTION READ ONLY")
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description or ()]
            fetching = True
            rows, cap = fetch_rows(cursor.fetchmany)
            if cap:  # an unbuffered cursor would read the rest of the result before the connection could be reused
                self._abandon(cursor)
                return columns, rows, cap
            cursor.close()
            self._end()
            return columns, rows, cap
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            if isinstance(e, pymysql.err.InterfaceError) or code in _LOST:
                self._stale = True
                raise LostConnection(str(e)) from None
            self._abandon(cursor) if fetching else self._end()
            raise
        except Exception:
            self._abandon(cursor) if fetching else self._end()
            raise

    def _end(self) -> None:
        """Roll back and reset, after a query that left no unread result."""
        try:
            with self.conn.cursor() as end:
                end.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a connection that cannot be rolled back is not reused
            self._stale = True
            return
        self._reset()

    def _reset(self) -> None:
        """COM_RESET_CONNECTION: the session as new (variables, locks, temporary tables, settings)."""
        try:
            self.conn._execute_command(_COM_RESET_CONNECTION, b"")
            self.conn._read_ok_packet()
        except Exception:  # noqa: BLE001 - a connection that cannot be reset is not reused
            self._stale = True

    def _abandon(self, cursor) -> None:
        """Drop a cursor without reading the rest of its result, and the connection with it (the server ends the
        query and rolls its transaction back when the connection goes); a new one is opened before the next query."""
        if cursor is not None:
            cursor.connection, cursor._result = None, None
        self.conn._result = None
        with contextlib.suppress(Exception):
            self.conn.close()
        self._stale = True

    def _is_timeout(self, error: Exception) -> bool:
        # MySQL 3024 (max_execution_time exceeded); MariaDB 1969 (max_statement_time exceeded); 1317 interrupted.
        code = error.args[0] if getattr(error, "args", None) else None
        return code in (3024, 1969, 1317)

    def _cancel(self) -> None:
        import pymysql

        thread = self.conn.thread_id()
        for _ in range(2):  # the watchdog's connection may have timed out since its last use
            try:
                if self._killer is None:
                    self._killer = self._connect()
                with self._killer.cursor() as cursor:
                    cursor.execute(f"KILL QUERY {int(thread)}")
                return
            except pymysql.Error:
                with contextlib.suppress(Exception):
                    self._killer.close()
                self._killer = None

    def _sever(self) -> None:
        sock = self.conn._sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for conn in (self.conn, self._killer):
            if conn is not None and conn.open:
                conn.close()
