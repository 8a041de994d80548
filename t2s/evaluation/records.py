"""Run records for `results/`: what an evaluation decided per question, small enough to commit, so that any later
run on the same questions can be paired with it (McNemar's test, `t2s.evaluation.compare`).

An evaluation folder (`t2s evaluate --output_dir`) holds prompts, SQL and result rows; its record keeps one
`{"example_id", "outcome"}` line per question (`NAME.jsonl`) and the protocol it was measured under
(`NAME.protocol.json`: dataset, split and subset, decoding, semantics, the score). No local paths, no times.
"""

from __future__ import annotations

import json
from pathlib import Path

from t2s.data.common import read_jsonl

PROTOCOL_KEYS = (
    "protocol", "dataset", "decoding", "semantics", "schema_format", "link_values", "prune_tables",
    "schema_max_chars", "execution_accuracy", "num_scored", "num_examples",
)  # fmt: skip


def keep_outcomes(folder: str | Path, record: str | Path) -> Path:
    """Write the run record of the evaluation in `folder` as `record`.jsonl and `record`.protocol.json."""
    folder, record = Path(folder), Path(record)
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = read_jsonl(folder / "predictions.jsonl")
    record.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"example_id": r["example_id"], "outcome": r["outcome"]}) + "\n" for r in rows)
    record.with_suffix(".jsonl").write_text(lines)
    protocol = {k: metrics[k] for k in PROTOCOL_KEYS if k in metrics}
    record.with_suffix(".protocol.json").write_text(json.dumps(protocol, indent=2) + "\n")
    return record.with_suffix(".jsonl")


def read_outcomes(record: str | Path) -> dict[str, str]:
    """{example_id: outcome} of a run record (or of an evaluation folder's predictions.jsonl)."""
    path = Path(record)
    path = path / "predictions.jsonl" if path.is_dir() else path
    return {r["example_id"]: r["outcome"] for r in read_jsonl(path)}
