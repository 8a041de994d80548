"""The run record (`t2s_run.json`) t2s writes beside an adapter or exported model: the one module that reads and
writes it.

It keeps what was trained on what, how, and every score computed on it since (`t2s.publish.card` renders the model
card from it). Every reader goes through `load_run`, so a change of layout is handled in one place: a record carries
the layout `version` it was written in (records written before versions existed read as version 0, whose layout
version 1 keeps unchanged), and a record from a newer t2s is refused with the reason rather than misread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t2s.runtime import UserError

RUN_FILE = "t2s_run.json"
RECORD_VERSION = 1  # 1: the layout of 0 with the version named


def run_path(folder: str | Path) -> Path:
    return Path(folder).expanduser() / RUN_FILE


def has_run(folder: str | Path | None) -> bool:
    return folder is not None and run_path(folder).is_file()


def load_run(folder: str | Path) -> dict[str, Any]:
    """The record in `folder` (empty when there is none), in the current layout."""
    path = run_path(folder)
    if not path.is_file():
        return {}
    try:
        run = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not a t2s run record ({e}); remove it or restore it from the run") from None
    version = run.get("version", 0)
    if not isinstance(version, int) or version > RECORD_VERSION:
        raise UserError(f"{path}: written by a newer t2s (record version {version!r}, this one reads up to "
                        f"{RECORD_VERSION}); upgrade t2s to read it")  # fmt: skip
    return {**run, "version": RECORD_VERSION}  # 0 → 1: the same keys


def save_run(folder: str | Path, run: dict[str, Any]) -> None:
    """Write the record atomically (a crash leaves the old one whole), in the current layout."""
    path = run_path(folder)
    tmp = path.with_suffix(".json.tmp")
    record = {"version": RECORD_VERSION, **{k: v for k, v in run.items() if k != "version"}}
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
