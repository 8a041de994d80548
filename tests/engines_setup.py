"""The servers and databases the engine tests share: PostgreSQL and MariaDB started by the suite (tests/servers.py),
the shop fixture copied onto each engine with a superuser's and a read-only account's URL, and a checksum of its
contents. The fixtures themselves are declared in tests/conftest.py."""

from __future__ import annotations

import hashlib
import os

import pytest

from t2s.execution.engines import open_engine

from .conftest import ROOT
from .servers import ServerUnavailable, start_mariadb, start_postgres

OWN = ROOT / "tests" / "fixtures" / "own_data"
SHOP = OWN / "database" / "shop" / "shop.sqlite"
ENGINES = ("sqlite", "duckdb", "postgresql", "mysql")
servers = pytest.mark.servers


def _server(start, *args):
    try:
        return start(*args)
    except ServerUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e}: CI installs the servers in `make install`")
        pytest.skip(str(e))


def postgres_fixture():
    server = _server(start_postgres)
    yield server
    server.stop()


def mariadb_fixture(tmp_path_factory):
    server = _server(start_mariadb, tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


def shop_fixture(tmp_path_factory):
    """engine → (admin name, read-only name) of the shop database copied onto it."""
    from t2s.data.copy_db import copy_sqlite

    folder = tmp_path_factory.mktemp("shop")
    names = {"sqlite": (str(SHOP), str(SHOP))}
    duck = folder / "shop.duckdb"
    copy_sqlite(SHOP, str(duck))
    names["duckdb"] = (str(duck), str(duck))
    return names, folder


def names_on(shop, kind, request):
    names, _ = shop
    if kind == "postgresql":
        server = request.getfixturevalue("postgres")
    elif kind == "mysql":
        server = request.getfixturevalue("mariadb")
    else:
        return names[kind]
    if kind not in names:
        from t2s.data.copy_db import copy_sqlite

        copy_sqlite(SHOP, server.admin_url)
        if kind == "postgresql":  # tables created after the role: give it SELECT on them, as a DBA would
            import psycopg

            with psycopg.connect(server.admin_url.replace("postgresql://", "postgresql://", 1), autocommit=True) as c:
                c.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO t2s_reader")
        names[kind] = (server.admin_url, server.reader_url)
    return names[kind]


def checksum(name: str) -> str:
    """Every row of every shop table, in a fixed order, through a fresh engine."""
    digest = hashlib.sha256()
    with open_engine(name, allow_privileged=True) as engine:
        for table in sorted(t.name for t in engine.catalogue()):
            result = engine.run(f"SELECT * FROM {table}")
            assert result.status == "ok", f"{engine.label}: reading {table} for the checksum: {result}"
            digest.update(repr((table, sorted(result.rows, key=repr))).encode())
    return digest.hexdigest()
