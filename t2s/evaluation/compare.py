"""Paired comparison of two evaluations of the same questions: fixed/broken counts and McNemar's exact test.

Two accuracies on the same questions are not independent samples; what tells them apart is the questions one run
gets right and the other wrong. McNemar's exact test is a binomial test on those discordant pairs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from t2s.evaluation.records import Protocol, read_outcomes
from t2s.runtime import UserError

console = Console()


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the discordant pairs.

    Computed directly (a sum of binomial terms) rather than adding scipy/statsmodels for one formula.
    """
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _load_run(run: str) -> tuple[dict[str, bool], dict]:
    """({example_id: correct}, the run's metrics) of an evaluation folder or of a run record in `results/` (its
    `.jsonl` of outcomes, with the `.protocol.json` beside it: `t2s.evaluation.records`)."""
    path = Path(run)
    if path.suffix == ".jsonl" and path.is_file():
        protocol = path.with_suffix(".protocol.json")
        if not protocol.is_file():
            raise UserError(f"{run}: a run record needs its protocol beside it ({protocol.name})")
        meta = json.loads(protocol.read_text())
    else:
        for name in ("predictions.jsonl", "metrics.json"):
            if not (path / name).is_file():
                what = "no such folder" if not path.is_dir() else f"no {name} in it"
                raise UserError(f"{run}: {what}; give the output_dir of a finished t2s evaluate, or a run record")
        meta = json.loads((path / "metrics.json").read_text())
    return {k: v == "correct" for k, v in read_outcomes(path).items()}, meta


def compare(run_a: str, run_b: str, shared_questions: bool = False) -> dict:
    """Paired comparison of two evaluations of the same questions (evaluation folders or run records).

    `shared_questions` compares two runs on different question sets (e.g. a full dev run against a demo's subset) on
    the questions both scored, with both accuracies recomputed on those; without it such runs are an error.
    """
    (a, meta_a), (b, meta_b) = _load_run(run_a), _load_run(run_b)
    protocol_a, protocol_b = Protocol.of(meta_a), Protocol.of(meta_b)
    protocol_a.check_comparable(protocol_b, run_a, run_b)
    subset = set(a) != set(b)
    if subset and not shared_questions:
        raise UserError(
            f"{run_a} and {run_b} scored different questions ({len(set(a) ^ set(b))} not shared): "
            "a paired comparison needs the same dataset options for both, or --shared_questions to compare them on "
            "the questions both scored"
        )
    shared = [k for k in a if k in b]
    if not shared:
        raise UserError(f"{run_a} and {run_b} share no question: nothing to compare")
    fixed = sum(not a[k] and b[k] for k in shared)
    broken = sum(a[k] and not b[k] for k in shared)
    result = {
        "a": run_a,
        "b": run_b,
        "n": len(shared),
        "protocol": protocol_a.protocol if len(a) <= len(b) else protocol_b.protocol,
        "accuracy_a": sum(a[k] for k in shared) / len(shared) if subset else meta_a["execution_accuracy"],
        "accuracy_b": sum(b[k] for k in shared) / len(shared) if subset else meta_b["execution_accuracy"],
        "decoding_a": protocol_a.decoding,
        "decoding_b": protocol_b.decoding,
        "both_correct": sum(a[k] and b[k] for k in shared),
        "both_wrong": sum(not a[k] and not b[k] for k in shared),
        "fixed": fixed,
        "broken": broken,
        "mcnemar_p": mcnemar_exact(fixed, broken),
    }
    prompts = protocol_a.prompt_differences(protocol_b)
    if prompts:
        result["prompt_differences"] = prompts
    if subset:
        result["questions_a"], result["questions_b"] = len(a), len(b)
        result["shared_questions"] = (
            f"compared on the {len(shared)} questions both scored (A scored {len(a)}, B {len(b)}); both accuracies "
            "are on those"
        )
    table = Table(title=f"{run_a} → {run_b} ({result['n']} questions; {result['protocol']})")
    for column in ("", "A", "B"):
        table.add_column(column)
    table.add_row("execution accuracy", f"{result['accuracy_a']:.1%}", f"{result['accuracy_b']:.1%}")
    table.add_row("decoding", result["decoding_a"], result["decoding_b"])
    for setting, (one, other) in prompts.items():
        table.add_row(f"prompt: {setting}", str(one), str(other))
    console.print(table)
    if subset:
        console.print(result["shared_questions"])
    console.print(
        f"fixed (A wrong, B right) {fixed}, broken (A right, B wrong) {broken}, both right {result['both_correct']}, "
        f"both wrong {result['both_wrong']}; McNemar exact p = {result['mcnemar_p']:.3g}"
    )
    return result
