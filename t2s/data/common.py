"""What every dataset reader shares: the error type, deterministic subsets, bad examples stopped or skipped and
reported, and
JSON Lines files (predictions) read with line numbers in errors and written atomically."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from t2s.runtime import UserError


class DataFormatError(UserError, ValueError):
    """An input file or example is not in the layout t2s reads; the message says where and what to do."""


def subset_indices(n: int, limit: int | None, fraction: float | None, seed: int) -> list[int]:
    """A deterministic subset of range(n), in original order."""
    if limit is not None and fraction is not None:
        raise ValueError("pass either limit or fraction, not both")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction={fraction} must be in (0, 1]")
        limit = max(1, round(n * fraction))
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 0:
        raise ValueError(f"limit={limit} must be >= 0")
    return sorted(random.Random(seed).sample(range(n), limit))


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r} must be 'raise' or 'skip'")


def report_skipped(dataset: str, skipped: Counter[str], total: int, source: Any) -> None:
    from rich.console import Console

    detail = ", ".join(f"{n} {kind}" for kind, n in skipped.most_common())
    Console(stderr=True).print(
        f"[yellow]{dataset} ({source}): skipped {sum(skipped.values())} of {total} examples ({detail}).[/]",
        soft_wrap=True,
    )


def collect_records(
    items: Iterable[Any],
    build: Callable[[Any], dict[str, Any]],
    *,
    dataset: str,
    source: Any,
    on_error: str,
    errors: tuple[type[Exception], ...],
    explain: Callable[[Any, Exception], tuple[str, str]],
    raise_as: type[Exception],
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """One record per item, built by `build`; an item that raises one of `errors` stops the load with its location
    (`on_error="raise"`) or is dropped and counted by kind, and the count reported (`"skip"`). `explain(item, error)`
    gives the message, which names where the item is, and the kind it is counted under."""
    records: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        try:
            records.append(build(item))
        except errors as e:
            message, kind = explain(item, e)
            if on_error == "raise":
                raise raise_as(
                    f"{message} Fix the example, or pass on_error='skip' to drop bad examples (they are counted and "
                    "reported)."
                ) from None
            skipped[kind] += 1
    if skipped:
        report_skipped(dataset, skipped, len(records) + sum(skipped.values()), source)
    return records, skipped


def source_label(source: str | os.PathLike) -> str:
    """How a protocol names data that is not the configured copy: a Hub id as it is, a folder by its name only
    (an absolute path would end up in model cards pushed to the Hub)."""
    path = Path(source).expanduser()
    return path.resolve().name if path.exists() else str(source)


def read_utf8(path: Path, error: type[Exception] = None) -> str:
    """A data file's text; one that is not UTF-8 (often UTF-16 from a spreadsheet or an editor) names itself."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise (error or DataFormatError)(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8"
        ) from None


_JSON_TYPES = {list: "list", dict: "object"}


def read_json(path: Path, expected: type, error: type[Exception], hint: str) -> Any:
    """The one JSON value of type `expected` (list or dict) that `path` holds, or `error` naming the file, where it
    broke, and `hint`: what the file should hold or what to do."""
    try:
        data = json.loads(read_utf8(path, error))
    except json.JSONDecodeError as e:
        raise error(f"{path}: malformed JSON ({e.msg} at line {e.lineno}, column {e.colno}); {hint}") from None
    if not isinstance(data, expected):
        raise error(f"{path}: expected a JSON {_JSON_TYPES[expected]}, got {type(data).__name__}; {hint}")
    return data


def require_examples(
    records: list, dataset: str, split: str, source: Any, skipped: Counter, *, files: list[Path] | None = None
) -> None:
    """An empty result is an error that says why: a file without examples (named when known), or every example
    skipped."""
    if records:
        return
    where = f"{dataset} {split} ({source_label(source) if source else 'the configured copy'})"
    if skipped:
        raise DataFormatError(
            f"{where}: every example was skipped as bad ({sum(skipped.values())}; counts above): nothing to use"
        )
    if files:
        raise DataFormatError(f"{where} has no examples: {', '.join(map(str, files))} holds none; add examples to it")
    raise DataFormatError(f"{where} has no examples: its file is empty")


def read_jsonl(path: str | Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(
                        f"{path}:{lineno}: malformed JSON ({e.msg}); expected one prediction per line"
                    ) from None
    return records


def write_jsonl(path: str | Path, records) -> None:
    """Write through a temporary file, so an interrupted run never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
