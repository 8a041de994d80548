"""DuckDB, in a process of its own.

A database file is opened `read_only` with external access off (no files, no network, no extensions loaded or
installed) and the configuration locked, so no query can switch those back on. Untrusted queries run in a child
process (`duckdb_worker.py`) that may add at most `QUERY_MEMORY_MB` of writable memory to what it holds once DuckDB is
loaded (RLIMIT_DATA), with DuckDB's own `max_memory` below that and `interrupt()` at the budget; the
watchdog kills that process at twice the budget, for the functions that heed neither (DuckDB's list functions). The
parent keeps its own read-only connection for the catalogue and DuckDB's parser for the gate. CSV and Parquet files
(`from_files`) are read by DuckDB's own readers into a private temporary database file, which is then opened the same
way: the user's files are only read, and types are inferred by a real engine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from t2s.execution.engines.base import CatalogueColumn, CatalogueTable, EngineError
from t2s.execution.engines.server import LostConnection, ServerEngine

LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
    "max_memory": "256MB",
    "threads": 2,
}
QUERY_MEMORY_MB = 400  # writable memory the query process may add to what it holds once DuckDB is loaded


def duckdb_path(name: str) -> str:
    from sqlalchemy.engine import make_url

    if re.match(r"^duckdb://", name, re.IGNORECASE):
        path = make_url(name).database or ""
        if not path or path == ":memory:":
            raise EngineError(f"{name}: a DuckDB URL must name a database file (duckdb:///path/to/file.duckdb)")
        return path
    return name


class QueryProcess:
    """The child process that runs one database's queries (`duckdb_worker.py`)."""

    def __init__(self, path: str, label: str) -> None:
        from t2s.execution.engines.duckdb_worker import read_frame

        self.process = subprocess.Popen(
            [sys.executable, "-m", "t2s.execution.engines.duckdb_worker", path, str(QUERY_MEMORY_MB),
             json.dumps(LOCKED_CONFIG)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        ready = read_frame(self.process.stdout)
        if not ready or ready[0] != "ready":
            self.kill()
            why = ready[1] if ready else "its query process did not start"
            raise EngineError(f"{label}: not a readable DuckDB database ({why})")

    def query(self, sql: str, timeout_s: float, max_rows: int):
        from t2s.execution.engines.duckdb_worker import read_frame, write_frame

        try:
            write_frame(self.process.stdin, (sql, timeout_s, max_rows))
        except (BrokenPipeError, OSError):
            return None
        return read_frame(self.process.stdout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class DuckDBEngine(ServerEngine):
    kind = "duckdb"
    dialect = "duckdb"
    display = "DuckDB"

    def __init__(self, name: str, *, owned_folder: str | None = None, allow_privileged: bool = False) -> None:
        # DuckDB has no accounts: a file opened read-only is the same for everyone (allow_privileged changes nothing)
        super().__init__(name, allow_privileged=allow_privileged)
        import duckdb

        path = Path(duckdb_path(self.name)).expanduser()
        if path.is_dir():
            raise EngineError(f"{self.label}: is a folder, not a DuckDB database file")
        if not path.is_file():
            raise EngineError(f"{self.label}: no such DuckDB file")
        try:
            self.conn = duckdb.connect(str(path), read_only=True, config=dict(LOCKED_CONFIG))
        except Exception as e:  # noqa: BLE001 - DuckDB raises several kinds for a file that is not its own
            raise EngineError(f"{self.label}: not a readable DuckDB database ({str(e).splitlines()[0]})") from None
        self.path = str(path)
        self.schema_name = "main"
        self._owned_folder = owned_folder
        self._worker: QueryProcess | None = None

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _read_catalogue(self) -> list[CatalogueTable]:
        tables = []
        names = self.conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary ORDER BY table_oid"
        ).fetchall()
        for (name,) in names:
            columns = self.conn.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
                "ORDER BY column_index",
                [name],
            ).fetchall()
            constraints = self.conn.execute(
                "SELECT constraint_type, constraint_column_names, referenced_table, referenced_column_names "
                "FROM duckdb_constraints() WHERE schema_name = 'main' AND table_name = ? ORDER BY constraint_index",
                [name],
            ).fetchall()
            pk, fks = [], []
            for kind, cols, ref_table, ref_cols in constraints:
                if kind == "PRIMARY KEY":
                    pk = list(cols)
                elif kind == "FOREIGN KEY":
                    fks.extend((c, ref_table, r) for c, r in zip(cols, ref_cols or []))
            tables.append(CatalogueTable(name, [CatalogueColumn(c, t) for c, t in columns], pk, fks))
        self._views = [
            r[0]
            for r in self.conn.execute(
                "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal"
            ).fetchall()
        ]
        return tables

    def _ready(self) -> None:
        if self._worker is None:
            self._worker = QueryProcess(self.path, self.label)

    def _execute(self, sql: str, timeout_s: float, max_rows: int, fetch_rows):
        for _ in range(2):
            self._ready()  # after a memory retry: a new process within this query's budget
            answer = self._worker.query(sql, timeout_s, max_rows)
            if answer is None:  # the process is gone: killed by the watchdog, or by its memory limit
                self._stale = True
                raise LostConnection("the query process ended")
            if answer[0] != "memory":
                break
            # DuckDB keeps memory it freed for later queries: a query may meet the limit because of earlier ones.
            # Once more in a new process; what fails there too needs the memory itself.
            self._reconnect()
        kind = answer[0]
        if kind == "ok":
            return answer[1], answer[2], answer[3]
        if kind == "memory":
            return None, [], answer[1]
        if kind == "timeout":
            raise _Interrupted(answer[1])
        raise _QueryError(answer[1])

    def _is_timeout(self, error: Exception) -> bool:
        return isinstance(error, _Interrupted)

    def _cancel(self) -> None:
        """Nothing: the query process interrupts its own query at the budget."""

    def _sever(self) -> None:
        if self._worker is not None and self._worker.process.poll() is None:
            self._worker.process.kill()

    def _reconnect(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None  # a new one at the next query

    def close(self) -> None:
        self._reconnect()
        self.conn.close()
        if self._owned_folder:
            shutil.rmtree(self._owned_folder, ignore_errors=True)


class _Interrupted(Exception):
    pass


class _QueryError(Exception):
    pass


def from_files(paths: list[str]) -> DuckDBEngine:
    """CSV and Parquet files as the tables of a private DuckDB database (one table per file, named after it)."""
    import duckdb

    from t2s.execution.databases import check_csv, table_name_for

    folder = tempfile.mkdtemp(prefix="t2s-duckdb-")
    target = Path(folder) / "files.duckdb"
    conn = duckdb.connect(str(target))
    taken: set[str] = set()
    try:
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.is_file():
                raise EngineError(f"{path}: no such file")
            parquet = path.suffix.lower() in (".parquet", ".pq")
            reader = "read_parquet(?)" if parquet else "read_csv(?, delim = ?, header = true)"
            arguments = [str(path)] if parquet else [str(path), check_csv(path)]
            table = table_name_for(path, taken)
            try:
                conn.execute(f'CREATE TABLE "{table}" AS SELECT * FROM {reader}', arguments)
            except duckdb.Error as e:
                raise EngineError(
                    f"{path}: DuckDB cannot read it as {'Parquet' if parquet else 'CSV'} ({e})"
                ) from None
    except BaseException:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    conn.close()
    return DuckDBEngine(str(target), owned_folder=folder)
