import os
import signal
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "wikisql"
SHARED_WIKISQL = Path(os.environ.get("T2S_WIKISQL_DIR", ROOT.parent / "shared" / "wikisql"))
SHARED_SPIDER = Path(os.environ.get("T2S_SPIDER_DIR", ROOT.parent / "shared" / "spider"))


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def pytest_sessionstart(session):
    """A terminated run (a CI time-out, `kill`) ends as Ctrl-C does: pytest still tears down its session fixtures, so
    the PostgreSQL and MariaDB servers they started (tests/servers.py) stop and their folders go."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupted)


def _shared(path: Path, marker: str, name: str, env: str) -> Path:
    """Real data under ../shared. CI always has it; elsewhere its absence skips (never silently in CI)."""
    if not (path / marker).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{name} data missing at {path}; CI must have ../shared/{path.name}")
        pytest.skip(f"{name} data not at {path} (set {env})")
    return path


@pytest.fixture(scope="session")
def shared_wikisql() -> Path:
    """The real WikiSQL dev split."""
    return _shared(SHARED_WIKISQL, "dev.jsonl", "WikiSQL dev", "T2S_WIKISQL_DIR")


@pytest.fixture(scope="session")
def shared_spider() -> Path:
    """The real Spider dev and train splits."""
    return _shared(SHARED_SPIDER, "dev.json", "Spider", "T2S_SPIDER_DIR")


@pytest.fixture(scope="session")
def fixture_dev():
    from t2s.data import load_wikisql

    return load_wikisql(FIXTURES, "dev")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Llama saved to disk (tests/tiny_model.py), shared by the training-script tests."""
    from .tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


# The engine tests' servers and databases (tests/engines_setup.py), shared by every test module that needs them.
@pytest.fixture(scope="session")
def postgres():
    from .engines_setup import postgres_fixture

    yield from postgres_fixture()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    from .engines_setup import mariadb_fixture

    yield from mariadb_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    from .engines_setup import shop_fixture

    return shop_fixture(tmp_path_factory)
