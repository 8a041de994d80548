"""The test suite's own process handling: a terminated run still stops what its session fixtures started."""

import os
import signal
import subprocess
import sys
import time

from .conftest import ROOT

SESSION_TEST = """
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def server():
    yield
    (HERE / "torn_down").write_text("stopped")  # what tests/servers.py's Server.stop stands for


def test_runs_until_terminated(server):
    (HERE / "started").write_text("")
    time.sleep(120)
"""


def test_sigterm_tears_down_session_fixtures(tmp_path):
    (tmp_path / "test_slow.py").write_text(SESSION_TEST)
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_sessionstart  # noqa: F401\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()[-2000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert (tmp_path / "torn_down").read_text() == "stopped", output[-2000:]
    assert process.returncode == 2 and "terminated by signal 15" in output  # pytest's "interrupted" status
