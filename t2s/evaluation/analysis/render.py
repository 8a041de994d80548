"""What every dataset's error analysis shares: rates by group, systematic-vs-random checks, the report files.

The per-dataset modules (`t2s.evaluation.analysis.wikisql`, `t2s.evaluation.analysis.spider`) classify each wrong
prediction by the parts of SQL their gold annotation allows them to compare; this module turns
those per-example verdicts into the same kinds of tables and files.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# A string literal closed early by an apostrophe inside a word (`'antonio o'neal'`, `'children's'`): the model knew
# the value but not SQL's quote escaping (`''`). Seen by both classifiers before anything else about a broken query.
UNESCAPED_QUOTE = re.compile(r"'[^']*\w'\w[^']*'")
_UNRECOGNIZED_TAIL = re.compile(r'unrecognized token: "(.*)"\s*$', re.DOTALL)


# The classes every dataset's analysis starts with, in priority order: the answer is not a runnable query over the
# schema. Each classifier appends its own component classes after them.
FIRST_CATEGORIES = ("no_sql", "truncated", "rejected", "syntax_error", "string_escaping", "hallucinated_schema")


def primary_category_bars(ax, result: Mapping[str, Any], categories: Sequence[str]) -> None:
    """The chart panel every analysis has: how many wrong predictions fall in each primary class."""
    cats = [c for c in categories if c in result["primary_categories"]]
    counts = [result["primary_categories"][c]["count"] for c in cats]
    ax.barh(cats[::-1], counts[::-1], color="#d62728")
    for y, v in enumerate(counts[::-1]):
        ax.text(v, y, f" {v}", va="center")
    ax.set_xlabel("predictions")
    ax.set_title(f"Why {result['num_wrong']} of {result['num_examples']} predictions fail (primary category)")


def analysis_result(
    dataset: str,
    per_example: list[dict[str, Any]],
    categories: Sequence[str],
    breakdowns: Mapping[str, Any],
    other_outcomes: Mapping[str, str] | None,
    unit: str,
) -> dict[str, Any]:
    """The result every analysis returns: class counts, the dataset's own breakdowns, the systematic-vs-random
    checks, every example, and (given another run's outcomes) the agreement between the two runs."""
    wrong = [e for e in per_example if e["primary"]]
    result = {
        "dataset": dataset,
        **category_counts(per_example, categories),
        **breakdowns,
        "systematic": systematic(wrong, unit),
        "examples": per_example,
    }
    if other_outcomes is not None:
        result["agreement"] = agreement(per_example, other_outcomes)
    return result


def heading_lines(result: Mapping[str, Any], title: str, protocol: str) -> list[str]:
    """The top of every analysis.md: title, protocol, error count, the chart."""
    n = result["num_examples"]
    return [
        f"# Error analysis: {title}",
        "",
        f"Protocol: {protocol}. {result['num_wrong']} of {n} predictions are wrong ({result['error_rate']:.1%}).",
        "",
        "![error analysis](analysis.png)",
        "",
    ]


def looks_truncated(prediction: Any, error: str | None) -> bool:
    """The answer stops mid-query: SQLite wants more input, or chokes on a literal left open at the very end.

    What a model that runs out of `max_new_tokens` leaves (often one looping `AND x = 1 AND …`).
    """
    if not isinstance(prediction, str) or not error:
        return False
    if "incomplete input" in error:
        return True
    match = _UNRECOGNIZED_TAIL.search(error)
    return bool(match) and prediction.rstrip().endswith(match.group(1).rstrip())


def rate_by(per_example, key: str, order: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Error rate and most common primary error per group (groups by size, or in `order`)."""
    groups = defaultdict(list)
    for e in per_example:
        groups[str(e[key])].append(e)
    out = {}
    names = [k for k in order if k in groups] if order else sorted(groups, key=lambda k: (-len(groups[k]), k))
    for name in names:
        items = groups[name]
        wrong = [e for e in items if e["primary"]]
        entry = {"n": len(items), "wrong": len(wrong), "error_rate": len(wrong) / len(items)}
        if wrong:
            top, count = Counter(e["primary"] for e in wrong).most_common(1)[0]
            entry["top_category"], entry["top_share"] = top, count / len(wrong)
        out[name] = entry
    return out


PERMUTATIONS = 2000
MIN_PAIRS = 10


def _same_cause_pairs(groups: Sequence[Sequence[str]]) -> int:
    return sum(n * (n - 1) // 2 for cats in groups for n in Counter(cats).values())


def systematic(wrong, unit: str = "table", permutations: int = PERMUTATIONS, seed: int = 0) -> dict[str, Any]:
    """Do wrong answers on one table (or database) share their primary cause more often than chance?

    A permutation test: under the null hypothesis the causes are spread over the errors regardless of table, so
    shuffling the causes among the errors (each table keeps its number of errors) gives the distribution of the
    number of same-cause pairs within tables. The p-value is the share of shuffles with at least as many such pairs as
    observed (one-sided, with the observed arrangement counted). Seeded: the same errors give the same p-value.
    """
    import random

    total = Counter(e["primary"] for e in wrong)
    n = len(wrong)
    baseline = sum((c / n) ** 2 for c in total.values()) if n else 0.0
    by_table = defaultdict(list)
    for e in wrong:
        by_table[e["db_id"]].append(e["primary"])
    groups = [cats for cats in by_table.values() if len(cats) > 1]
    pairs = sum(len(c) * (len(c) - 1) // 2 for c in groups)
    same = _same_cause_pairs(groups)
    within = same / pairs if pairs else None
    result = {
        "pairs_of_errors_on_one_table": pairs,
        "same_category_within_table": within,
        "same_category_at_random": baseline,
        "test": f"permutation test, {permutations} shuffles of the causes among the errors, seed {seed}",
        "p_value": None,
    }
    if pairs < MIN_PAIRS:
        result["verdict"] = f"too few pairs of errors on a shared {unit} ({pairs}) to tell"
        return result
    labels = [cat for cats in groups for cat in cats] + [
        cats[0] for cats in by_table.values() if len(cats) == 1
    ]  # single errors take part in the shuffle but form no pair
    sizes = [len(c) for c in groups]
    rng = random.Random(seed)
    at_least = 0
    for _ in range(permutations):
        rng.shuffle(labels)
        shuffled, start = [], 0
        for size in sizes:
            shuffled.append(labels[start : start + size])
            start += size
        at_least += _same_cause_pairs(shuffled) >= same
    p_value = (at_least + 1) / (permutations + 1)
    result["p_value"] = p_value
    result["verdict"] = (
        f"systematic: errors on one {unit} share a cause more often than chance"
        if p_value < 0.05
        else f"no evidence that errors on one {unit} share a cause"
    )
    return result


def agreement(per_example, other: Mapping[str, str]) -> dict[str, Any]:
    both = [
        (e["outcome"] == "correct", other[e["example_id"]] == "correct")
        for e in per_example
        if e["example_id"] in other
    ]
    n = len(both)
    if not n:
        return {"n": 0}
    a_right = sum(a for a, _ in both) / n
    b_right = sum(b for _, b in both) / n
    observed = sum(a == b for a, b in both) / n
    expected = a_right * b_right + (1 - a_right) * (1 - b_right)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 1.0
    return {
        "n": n,
        "both_wrong": sum(not a and not b for a, b in both),
        "only_this_wrong": sum(not a and b for a, b in both),
        "only_other_wrong": sum(a and not b for a, b in both),
        "agreement": observed,
        "cohen_kappa": kappa,
    }


def category_counts(per_example: Sequence[Mapping[str, Any]], categories: Sequence[str]) -> dict[str, Any]:
    """Primary and any-category counts and rates over all scored examples."""
    n = len(per_example)
    wrong = [e for e in per_example if e["primary"]]
    primary = Counter(e["primary"] for e in wrong)
    any_flag = Counter(flag for e in wrong for flag in e["categories"])
    return {
        "num_examples": n,
        "num_wrong": len(wrong),
        "error_rate": len(wrong) / n if n else 0.0,
        "categories_order": list(categories),
        "primary_categories": {
            c: {"count": primary[c], "rate": primary[c] / n if n else 0.0} for c in categories if primary[c]
        },
        "any_categories": {
            c: {"count": any_flag[c], "rate": any_flag[c] / n if n else 0.0} for c in categories if any_flag[c]
        },
    }


def write_files(
    result: dict[str, Any],
    out_dir: str | Path,
    title: str,
    protocol: str,
    render: Callable[[dict[str, Any], str, str], str],
    plot: Callable[[dict[str, Any], Path, str], None],
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "md": out / "analysis.md", "png": out / "analysis.png"}
    paths["json"].write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text(render(result, title, protocol))
    plot(result, paths["png"], title)
    return paths


def category_table_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Error categories",
        "",
        "Primary = the first category in the order below; any = the example shows this error among others.",
        "",
        "| category | primary | % of all | any | % of all |",
        "|---|---|---|---|---|",
    ]
    for c in result["categories_order"]:
        p = result["primary_categories"].get(c, {"count": 0, "rate": 0})
        a = result["any_categories"].get(c, {"count": 0, "rate": 0})
        if p["count"] or a["count"]:
            lines.append(f"| {c} | {p['count']} | {p['rate']:.1%} | {a['count']} | {a['rate']:.1%} |")
    return lines


def group_table_lines(groups: Mapping[str, Mapping[str, Any]], heading: str) -> list[str]:
    lines = [
        "",
        f"## {heading}",
        "",
        "| group | n | wrong | error rate | most common error |",
        "|---|---|---|---|---|",
    ]
    for name, e in groups.items():
        top = f"{e['top_category']} ({e['top_share']:.0%})" if "top_category" in e else "–"
        lines.append(f"| {name} | {e['n']} | {e['wrong']} | {e['error_rate']:.1%} | {top} |")
    return lines


def systematic_lines(result: dict[str, Any], unit: str = "table") -> list[str]:
    s = result["systematic"]
    lines = [
        "",
        "## Systematic or random?",
        "",
        f"- Pairs of wrong predictions on the same {unit}: {s['pairs_of_errors_on_one_table']}; they share their "
        f"primary category {_pct(s['same_category_within_table'])} of the time, against "
        f"{_pct(s['same_category_at_random'])} for two errors drawn at random. "
        f"Verdict: {s['verdict']}"
        + (f" (p = {s['p_value']:.2g}, {s['test']})." if s.get("p_value") is not None else "."),
    ]
    if "agreement" in result and result["agreement"].get("n"):
        a = result["agreement"]
        lines.append(
            f"- Against the other run ({a['n']} shared examples): both wrong {a['both_wrong']}, only this run wrong "
            f"{a['only_this_wrong']}, only the other wrong {a['only_other_wrong']}; agreement {a['agreement']:.1%}, "
            f"Cohen's kappa {a['cohen_kappa']:.2f}: how far the two runs get the same questions right or wrong beyond "
            "what their accuracies alone would give. It says which questions defeat both runs, not why; the paired "
            "test of whether one run is better is McNemar's (`evaluate_sql.py compare`)."
        )
    return lines


def example_lines(result: dict[str, Any], per_category: int = 2) -> list[str]:
    lines = ["", "## Examples", "", "| category | question | prediction |", "|---|---|---|"]
    shown: Counter[str] = Counter()
    for e in result["examples"]:
        if e["primary"] and shown[e["primary"]] < per_category:
            shown[e["primary"]] += 1
            pred = str(e["prediction"]).replace("|", "\\|")[:160]
            lines.append(f"| {e['primary']} | {e['question'].replace('|', '/')} | `{pred}` |")
    return lines


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def print_summary(result: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Errors: {title}")
    for column in ("category", "primary", "% of all", "any"):
        table.add_column(column, justify="right" if column != "category" else "left")
    for c in result["categories_order"]:
        if c in result["any_categories"]:
            p = result["primary_categories"].get(c, {"count": 0, "rate": 0})
            table.add_row(c, str(p["count"]), f"{p['rate']:.1%}", str(result["any_categories"][c]["count"]))
    Console().print(table)
