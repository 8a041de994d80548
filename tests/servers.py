"""Real PostgreSQL and MariaDB servers for the engine tests, started from the binaries `make install` installs
(Debian's `postgresql` and `mariadb-server`, scripts/install_system_packages.sh), each in a temporary folder on a free
loopback port, and stopped at the end of the session, also when the run is terminated (tests/conftest.py). MariaDB
runs with `lower_case_table_names=1` (table names compared in lower case, as on Windows and macOS servers), so SQLite
queries' table names find their copies. No mocks: if a server cannot start, the tests that need it fail with the
reason (deselect them with `-m "not servers and not slow"` on a machine without the packages; a `-m` replaces
pyproject.toml's default `-m "not slow"`)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ServerUnavailable(RuntimeError):
    pass


@dataclass
class Server:
    admin_url: str  # a superuser: what a careless user would pass
    reader_url: str  # a role with SELECT only
    process: subprocess.Popen
    folder: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find(name: str, patterns: list[str]) -> str:
    found = shutil.which(name)
    for pattern in patterns:
        found = found or next(iter(sorted(glob.glob(pattern), reverse=True)), None)
    if not found:
        raise ServerUnavailable(
            f"{name} not found: run `make install` (scripts/install_system_packages.sh installs it)"
        )
    return found


def _as_service_user(user: str) -> list[str]:
    """PostgreSQL refuses to run as root: under root, run it as the package's own system user."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise ServerUnavailable(f"server did not listen on port {port} within {seconds:g} s: {log.read_text()[-2000:]}")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise ServerUnavailable(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")


def start_postgres() -> Server:
    """In a fresh folder of its own under the system's temporary directory: under root the server runs as the
    `postgres` user, which cannot enter pytest's private (0700) folders."""
    import tempfile

    initdb = _find("initdb", ["/usr/lib/postgresql/*/bin/initdb"])
    bindir = Path(initdb).resolve().parent
    folder = Path(tempfile.mkdtemp(prefix="t2s-postgres-"))
    data = folder / "data"
    prefix = _as_service_user("postgres")
    if prefix:
        folder.chmod(0o755)
        shutil.chown(folder, "postgres")
    log = folder / "server.log"
    _run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    )
    port = _free_port()
    with log.open("w") as out:
        if prefix:
            shutil.chown(log, "postgres")
        process = subprocess.Popen(
            [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    _wait_for_port(port, process, log)
    import psycopg

    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    for _ in range(50):
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE ROLE t2s_reader LOGIN PASSWORD 'reader'")
                conn.execute("CREATE DATABASE shop")
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    return Server(
        admin_url=f"postgresql://postgres@127.0.0.1:{port}/shop",
        reader_url=f"postgresql://t2s_reader:reader@127.0.0.1:{port}/shop",
        process=process,
        folder=folder,
    )


def start_mariadb(folder: Path) -> Server:
    install_db = _find("mariadb-install-db", ["/usr/bin/mysql_install_db"])
    server = _find("mariadbd", ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"])
    folder.mkdir(parents=True, exist_ok=True)
    data, log, sock = folder / "data", folder / "server.log", folder / "mysqld.sock"
    user = ["--user=root"] if os.geteuid() == 0 else []
    _run([install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
          "--skip-test-db", "--lower-case-table-names=1", *user])  # fmt: skip
    port = _free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
             f"--socket={sock}", f"--pid-file={folder / 'mysqld.pid'}", "--skip-log-bin",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M", "--lower-case-table-names=1",
             *user],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    _wait_for_port(port, process, log)
    import pymysql

    for _ in range(50):
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
            break
        except pymysql.err.OperationalError:
            time.sleep(0.2)
    with conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE shop CHARACTER SET utf8mb4")
        cursor.execute("CREATE USER 't2s_reader'@'%' IDENTIFIED BY 'reader'")
        cursor.execute("GRANT SELECT ON shop.* TO 't2s_reader'@'%'")
    conn.close()
    return Server(
        admin_url=f"mysql+pymysql://root@127.0.0.1:{port}/shop",
        reader_url=f"mysql+pymysql://t2s_reader:reader@127.0.0.1:{port}/shop",
        process=process,
        folder=folder,
    )
