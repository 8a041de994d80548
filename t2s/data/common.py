"""What every dataset reader shares: the error type, deterministic subsets and the skipped-example report."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from t2s.errors import UserError


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
