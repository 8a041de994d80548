"""Shipping new weights keeps the outcomes of the old ones (scripts/ship_adapter.py), so they can still be paired."""

import importlib.util

import pytest

from .conftest import ROOT

# A script (scripts/ship_adapter.py), not a module of the package.
_spec = importlib.util.spec_from_file_location("ship_adapter", ROOT / "scripts" / "ship_adapter.py")
ship_adapter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ship_adapter)


def test_retire_moves_the_old_outcomes_with_their_run_record(tmp_path):
    kept = tmp_path / "shipped" / "model"
    kept.mkdir(parents=True)
    (kept / "spider-dev-greedy.jsonl").write_text('{"id": 0, "correct": true}\n')
    retired = tmp_path / "retired" / "model-0123456789ab"

    assert ship_adapter.retire(kept, retired, '{"stage": "sft"}') == retired
    assert not kept.exists()
    assert (retired / "spider-dev-greedy.jsonl").read_text() == '{"id": 0, "correct": true}\n'
    assert (retired / "t2s_run.json").read_text() == '{"stage": "sft"}'


def test_retire_refuses_to_overwrite_and_leaves_both_folders(tmp_path):
    kept, retired = tmp_path / "kept", tmp_path / "retired"
    kept.mkdir()
    retired.mkdir()
    (kept / "a.jsonl").write_text("new\n")
    (retired / "a.jsonl").write_text("old\n")
    with pytest.raises(SystemExit, match="exists already"):
        ship_adapter.retire(kept, retired, "{}")
    assert (kept / "a.jsonl").read_text() == "new\n"
    assert (retired / "a.jsonl").read_text() == "old\n"


def test_retire_without_kept_outcomes_does_nothing(tmp_path):
    assert ship_adapter.retire(tmp_path / "none", tmp_path / "retired", "{}") is None
    assert not (tmp_path / "retired").exists()
