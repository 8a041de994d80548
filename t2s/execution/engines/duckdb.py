"""DuckDB, in process.

A database file is opened `read_only` with external access off (no files, no network, no extensions loaded or
installed) and the configuration locked, so no query can switch those back on; a timer interrupts a query at its time
limit; memory is capped. CSV and Parquet files (`from_files`) are read by DuckDB's own readers into a private
temporary database file, which is then opened the same way: the user's files are only read, and types are inferred
by a real engine.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path

from t2s.execution.engines.base import CatalogueColumn, CatalogueTable, EngineError
from t2s.execution.engines.server import ServerEngine

LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
    "max_memory": "2GB",
    "threads": 2,
}


def duckdb_path(name: str) -> str:
    from sqlalchemy.engine import make_url

    if re.match(r"^duckdb://", name, re.IGNORECASE):
        path = make_url(name).database or ""
        if not path or path == ":memory:":
            raise EngineError(f"{name}: a DuckDB URL must name a database file (duckdb:///path/to/file.duckdb)")
        return path
    return name


class DuckDBEngine(ServerEngine):
    kind = "duckdb"
    dialect = "duckdb"
    display = "DuckDB"

    def __init__(self, name: str, *, owned_folder: str | None = None) -> None:
        super().__init__(name)
        import duckdb

        path = Path(duckdb_path(self.name)).expanduser()
        if not path.is_file():
            raise EngineError(f"{self.label}: no such DuckDB file")
        try:
            self.conn = duckdb.connect(str(path), read_only=True, config=dict(LOCKED_CONFIG))
        except duckdb.Error as e:
            raise EngineError(f"{self.label}: not a readable DuckDB database ({e})") from None
        self.schema_name = "main"
        self._owned_folder = owned_folder

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

    def _execute(self, sql: str, timeout_s: float, fetch_rows):
        conn = self.conn
        timer = threading.Timer(timeout_s, conn.interrupt)
        timer.start()
        try:
            cursor = conn.execute(sql.strip().rstrip(";"))
            columns = [d[0] for d in cursor.description or ()]
            rows, cap = fetch_rows(cursor.fetchmany)
            return columns, rows, cap
        finally:
            timer.cancel()

    def _timeout_message(self, error: Exception) -> bool:
        import duckdb

        return isinstance(error, duckdb.InterruptException)

    def close(self) -> None:
        self.conn.close()
        if self._owned_folder:
            shutil.rmtree(self._owned_folder, ignore_errors=True)


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
