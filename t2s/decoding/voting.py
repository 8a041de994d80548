"""Self-consistency by execution: sample several queries per question, run each, answer with the largest group of
queries that return the same result.

Candidates are the greedy query (always one of them) and `num_samples - 1` sampled ones, generated together from the
question's prompt. Each runs in the sandbox, as the metric would run it; candidates whose results are equal as bags of
rows (the column order and the row order ignored, numbers by value) form one group. The answer is the largest group's
most frequent query (the greedy one first on a tie), and a group's size breaks ties in favour of the greedy query's
group. A query that fails, times out or is rejected never wins over one that runs; if none runs, the greedy query is
kept. Likewise, by default, a query that returns no rows never wins over one that returns rows (the rule
execution-guided decoding applies): a small model's wrong queries often agree on an empty result, and counting that
agreement as a majority made voting lose to greedy on WikiSQL (docs/experiments.md). Composes with constrained decoding
(the samples are drawn under the same grammar) and with execution-guided decoding (its answer is the first candidate).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from t2s.execution.engines import connect_example


def result_key(rows: Sequence[Sequence[Any]]) -> tuple:
    """A result as a bag of rows, each a bag of values: queries that differ only in column or row order agree."""

    def value(v: Any) -> tuple:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (0, round(float(v), 6))
        return (1, repr(v))

    return tuple(sorted(tuple(sorted(value(v) for v in row)) for row in rows))


def _result_keys(candidates: Sequence[str], example) -> list[tuple | None]:
    """Each candidate's result key, None where it failed; a query text repeated among the candidates runs once."""
    engine = connect_example(example)
    keys: dict[str, tuple | None] = {}
    for sql in candidates:
        if sql not in keys:
            result = engine.run(sql)
            keys[sql] = result_key(result.rows or []) if result.status == "ok" else None
    return [keys[sql] for sql in candidates]


def _choose(
    candidates: Sequence[str], keys: Sequence[tuple | None], rows_first: bool = True
) -> tuple[str, dict[str, Any]]:
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    info = {
        "num_candidates": len(candidates),
        "failed": sum(key is None for key in keys),
        "groups": sorted(map(len, groups.values()), reverse=True),
    }
    if rows_first and len(groups) > 1 and () in groups:
        info["empty_set_aside"] = len(groups.pop(()))  # an empty result only answers when nothing returns rows
    if not groups:
        info["choice"] = "greedy (no candidate ran)"
        return candidates[0], info
    best = max(groups.values(), key=lambda members: (len(members), 0 in members))
    counts = Counter(candidates[i] for i in best)
    chosen = max(
        counts, key=lambda sql: (counts[sql], sql == candidates[0], -best[[candidates[i] for i in best].index(sql)])
    )
    info["choice"] = "greedy" if chosen == candidates[0] else "sample"
    info["votes"] = len(best)
    return chosen, info


def vote(candidates: Sequence[str], example, rows_first: bool = True) -> tuple[str, dict[str, Any]]:
    """The chosen query and what the vote saw (group sizes, failures) for `candidates[0]` = greedy.

    `rows_first`: queries that return no rows vote only when no candidate returns any, as execution-guided decoding
    treats an empty result; otherwise the empty result is one more group.
    """
    return _choose(candidates, _result_keys(candidates, example), rows_first)


def votes_by_size(candidates: Sequence[str], example, sizes: Sequence[int], rows_first: bool = True) -> dict[int, str]:
    """What a vote among the first k candidates chooses, for each k in `sizes` (each query runs once).

    Samples are independent draws, so the first k − 1 samples of a run with more are a k-candidate vote's samples:
    one run with N candidates gives the accuracy of every smaller vote (bench/bench_voting.py).
    """
    keys = _result_keys(candidates, example)
    return {k: _choose(candidates[:k], keys[:k], rows_first)[0] for k in sizes}
