"""Error analysis: per-dataset classifiers (`wikisql`, `spider`) over one shared report (`report`).

`analyse` picks the classifier from the records: a WikiSQL record carries its structured annotation
(`sql`) and `table`; a record over an SQLite file (`db_path`: Spider, a user's database) is compared
with its gold query clause by clause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2s.evaluation.analysis import spider, wikisql
from t2s.evaluation.analysis.render import print_summary

__all__ = ["analyse", "print_summary", "write_reports"]


def analyse(examples: Sequence[Mapping[str, Any]], predictions: Sequence[Any], details, **options: Any) -> dict:
    """The error analysis by the classifier the records call for (see above); `options` are that classifier's
    (`other_outcomes`: another run's outcomes by question, for the systematic-vs-random checks)."""
    module = spider if examples and "db_path" in examples[0] else wikisql
    return module.analyse(examples, predictions, details, **options)


def write_reports(result: dict[str, Any], out_dir: str | Path, title: str, protocol: str) -> dict[str, Path]:
    module = spider if result.get("dataset") == "spider" else wikisql
    return module.write_reports(result, out_dir, title, protocol)
