"""MySQL and MariaDB through PyMySQL.

Around every query that passed the gate: the server's time limit set before it (`max_execution_time` in
milliseconds on MySQL, `max_statement_time` in seconds on MariaDB, set afresh for each query, so nothing a query did
can change the next one's), a `READ ONLY` transaction that is always rolled back, and rows read unbuffered in batches
under the caps. The gate has already refused `INTO OUTFILE`, `LOAD_FILE`, `SLEEP`, `BENCHMARK`, `GET_LOCK` and user
variables. The catalogue comes from SQLAlchemy's inspector on the URL's database.
"""

from __future__ import annotations

import contextlib

from t2s.execution.engines.base import CatalogueTable, EngineError, expand_env
from t2s.execution.engines.server import ServerEngine, inspector_catalogue


class MySQLEngine(ServerEngine):
    kind = "mysql"
    dialect = "mysql"
    display = "MySQL"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        from sqlalchemy.engine import make_url

        url = make_url(expand_env(self.name))
        if not url.database:
            raise EngineError(f"{self.label}: the URL names no database; end it with /<database>")
        self._url = url.set(drivername="mysql+pymysql")
        self.schema_name = url.database
        self.conn = self._connect()
        self.mariadb = "mariadb" in self.conn.get_server_info().lower()

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

    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def _read_catalogue(self) -> list[CatalogueTable]:
        tables, self._views = inspector_catalogue(self, self._url, None)
        return tables

    def _execute(self, sql: str, timeout_s: float, fetch_rows):
        if self.mariadb:
            limit = f"SET SESSION max_statement_time = {max(timeout_s, 0.001):.3f}"
        else:
            limit = f"SET SESSION max_execution_time = {max(1, int(timeout_s * 1000))}"
        conn = self.conn
        cursor = conn.cursor()
        try:
            cursor.execute(limit)
            cursor.execute("START TRANSACTION READ ONLY")
            cursor.execute(sql.strip().rstrip(";"))
            columns = [d[0] for d in cursor.description or ()]
            rows, cap = fetch_rows(cursor.fetchmany)
        except Exception:
            self._abandon(cursor)
            raise
        if cap:  # an unbuffered cursor would read the rest of the result before the connection could be used again
            self._abandon(cursor)
            return columns, rows, cap
        cursor.close()
        cursor = conn.cursor()
        cursor.execute("ROLLBACK")
        cursor.close()
        return columns, rows, cap

    def _abandon(self, cursor) -> None:
        """Drop a cursor without reading the rest of its result, and the connection with it (the server ends the
        query and rolls its transaction back when the connection goes)."""
        cursor.connection, cursor._result = None, None
        self.conn._result = None
        self._reconnect()

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection
            self.conn.close()
        self.conn = self._connect()

    def _timeout_message(self, error: Exception) -> bool:
        # MySQL 3024 (max_execution_time exceeded); MariaDB 1969 (max_statement_time exceeded); 1317 interrupted.
        code = error.args[0] if getattr(error, "args", None) else None
        return code in (3024, 1969, 1317)

    def write_warning(self) -> str | None:
        with self.conn.cursor() as cursor:
            cursor.execute("SHOW GRANTS")
            grants = " ".join(r[0] for r in cursor.fetchall()).upper()
        if any(word in grants for word in ("ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DROP", "FILE")):
            return (
                f"{self.label}: the account can write (SHOW GRANTS). t2s runs every query read-only in a sandbox and "
                "does not rely on the account, but one with SELECT only is the safer URL to give it."
            )
        return None

    def close(self) -> None:
        if self.conn.open:
            self.conn.close()
