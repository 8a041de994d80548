"""Run records for `results/`: what an evaluation decided per question, small enough to commit, so that any later
run on the same questions can be paired with it (McNemar's test, `t2s.evaluation.compare`).

An evaluation folder (`t2s evaluate --output_dir`) holds prompts, SQL and result rows; its record keeps one
`{"example_id", "outcome"}` line per question (`NAME.jsonl`) and the protocol it was measured under
(`NAME.protocol.json`: dataset, split and subset, decoding, semantics, the score). No local paths, no times.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from t2s.data.common import read_jsonl
from t2s.runtime import UserError

SCORE_KEYS = ("execution_accuracy", "num_scored", "num_examples")


@dataclass(frozen=True)
class Protocol:
    """What a score was measured on, as `metrics.json` and a record's `.protocol.json` hold it (same keys: `protocol`
    is the description). Two runs are paired only on the same questions of the same dataset under the same semantics;
    their prompts and decoding may differ, since that is what a comparison usually measures, and are reported."""

    protocol: str  # the questions: dataset, split, subset and its seed ("Spider dev, 300 of 1034 questions (seed 42)")
    dataset: str | None = None
    decoding: str | None = None
    semantics: str | None = None
    schema_format: str | None = None
    link_values: bool | None = None  # absent from older records: read as not set
    prune_tables: int | None = None
    schema_max_chars: int | None = None

    SAME_QUESTIONS = ("dataset", "semantics")  # what a paired comparison needs equal
    PROMPT = ("schema_format", "link_values", "prune_tables", "schema_max_chars")

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> Protocol:
        """The protocol of an evaluation's metrics (or of a record's protocol file); other keys are left out."""
        if "protocol" not in metrics:
            raise UserError("no 'protocol' in these metrics: not an evaluation's metrics.json or a run record")
        return cls(**{f.name: metrics[f.name] for f in fields(cls) if f.name in metrics})

    def to_json(self) -> dict[str, Any]:
        """The keys a record writes, in field order; unset prompt settings are left out as `metrics.json` does."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def prompt_differences(self, other: Protocol) -> dict[str, list[Any]]:
        """{setting: [this run's, the other's]} for each prompt setting the two runs differ in."""
        return {k: [getattr(self, k), getattr(other, k)] for k in self.PROMPT if getattr(self, k) != getattr(other, k)}

    def check_comparable(self, other: Protocol, a: str, b: str) -> None:
        """Refuse to pair runs on different datasets or semantics (their question ids may coincide: `dev[3]`)."""
        for key in self.SAME_QUESTIONS:
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine is not None and theirs is not None and mine != theirs:
                raise UserError(
                    f"{a} and {b} were not measured on the same thing: {key} {mine!r} against {theirs!r}; a paired "
                    "comparison needs the same questions scored under the same semantics"
                )


def keep_outcomes(folder: str | Path, record: str | Path) -> Path:
    """Write the run record of the evaluation in `folder` as `record`.jsonl and `record`.protocol.json."""
    folder, record = Path(folder), Path(record)
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = read_jsonl(folder / "predictions.jsonl")
    record.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"example_id": r["example_id"], "outcome": r["outcome"]}) + "\n" for r in rows)
    record.with_suffix(".jsonl").write_text(lines)
    protocol = {**Protocol.of(metrics).to_json(), **{k: metrics[k] for k in SCORE_KEYS if k in metrics}}
    record.with_suffix(".protocol.json").write_text(json.dumps(protocol, indent=2) + "\n")
    return record.with_suffix(".jsonl")


def read_outcomes(record: str | Path) -> dict[str, str]:
    """{example_id: outcome} of a run record (or of an evaluation folder's predictions.jsonl)."""
    path = Path(record)
    path = path / "predictions.jsonl" if path.is_dir() else path
    return {r["example_id"]: r["outcome"] for r in read_jsonl(path)}
