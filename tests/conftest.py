import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "wikisql"
SHARED_WIKISQL = Path(os.environ.get("T2S_WIKISQL_DIR", ROOT.parent / "shared" / "wikisql"))


@pytest.fixture(scope="session")
def shared_wikisql() -> Path:
    """The real WikiSQL dev split. CI always has it; elsewhere its absence skips (never silently in CI)."""
    if not (SHARED_WIKISQL / "dev.jsonl").exists():
        if os.environ.get("CI"):
            pytest.fail(f"WikiSQL dev data missing at {SHARED_WIKISQL}; CI must have ../shared/wikisql")
        pytest.skip(f"WikiSQL dev data not at {SHARED_WIKISQL} (set T2S_WIKISQL_DIR)")
    return SHARED_WIKISQL


@pytest.fixture(scope="session")
def fixture_dev():
    from t2s.data import load_wikisql

    return load_wikisql(FIXTURES, "dev")
