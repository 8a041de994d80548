"""SQLite databases copied onto DuckDB, PostgreSQL or MariaDB for the engine benchmarks (bench_engines,
bench_engine_accuracy): one copy routine, as `t2s copy-db` copies, queried afterwards as a read-only account."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from t2s.data.copy_db import CopyReport, copy_sqlite


def copy_onto(
    kind: str, databases: Mapping[str, str], work: Path, server=None
) -> tuple[dict[str, str], list[CopyReport]]:
    """Each SQLite file (`databases`: name → path) copied onto `kind` ("duckdb": a file under `work/duckdb`;
    "postgresql" or "mysql": a database of that name on `server`, a tests/servers.py server, with SELECT granted to
    its read-only account). Returns name → what the read-only side opens (a file path or a URL), and the copy
    reports."""
    if kind == "duckdb":
        (work / "duckdb").mkdir(parents=True, exist_ok=True)
        files = {name: str(work / "duckdb" / f"{name}.duckdb") for name in databases}
        return files, [copy_sqlite(path, files[name]) for name, path in databases.items()]
    admin, reader = server.admin_url.rsplit("/", 1)[0], server.reader_url.rsplit("/", 1)[0]
    reports = []
    if kind == "postgresql":
        import psycopg

        with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
            for name in databases:
                conn.execute(f'CREATE DATABASE "{name}"')
        for name, path in databases.items():
            reports.append(copy_sqlite(path, f"{admin}/{name}"))
            with psycopg.connect(f"{admin}/{name}", autocommit=True) as conn:
                conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO t2s_reader")
    else:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=int(admin.rsplit(":", 1)[1]), user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for name in databases:
                    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            for name, path in databases.items():
                reports.append(copy_sqlite(path, f"{admin}/{name}"))
                with conn.cursor() as cursor:
                    cursor.execute(f"GRANT SELECT ON `{name}`.* TO 't2s_reader'@'%'")
        finally:
            conn.close()
    return {name: f"{reader}/{name}" for name in databases}, reports
