"""Why predictions fail: each wrong query parsed (sqlglot) and compared with the gold annotation part by part.

WikiSQL gold queries have one shape, `SELECT [agg](col) FROM t WHERE col op value AND …`, and its
structured annotation (`sel`, `agg`, `conds`) is kept with every example, so a wrong prediction can
be taken apart and compared component by component instead of guessed at with regexes.

Categories (an example can have several; the first in this order is its primary category):
`no_sql`, `truncated` (stops mid-query: the token budget ran out), `rejected` (the metric's outcome: not one
read-only query), `syntax_error` (runs into an error and does not parse), `string_escaping` (an apostrophe left unescaped inside a string literal),
`hallucinated_schema`, `exec_error`, `timeout`, `too_large` (over the row or byte cap), `select_column`,
`aggregation`, `where_column`, `missing_condition`, `extra_condition`, `where_operator`,
`where_value`, `other` (every component matches, yet the result differs).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2s.data.gold_sql import AGG_OPS, COND_OPS, parse_number
from t2s.evaluation.analysis import render
from t2s.execution.tables import column_names, column_types, table_name

CATEGORIES = (
    *render.FIRST_CATEGORIES,
    "exec_error",
    "timeout",
    "too_large",
    "select_column",
    "aggregation",
    "where_column",
    "missing_condition",
    "extra_condition",
    "where_operator",
    "where_value",
    "other",
)
AGG_LABELS = ("none", "MAX", "MIN", "COUNT", "SUM", "AVG")
QUESTION_FORMS = ("how many", "how much", "what", "which", "who", "when", "where", "name", "list", "tell")


# --------------------------------------------------------------------------- parsing


def parse_prediction(sql: str) -> dict[str, Any] | None:
    """{select: [(agg, column)], tables: [...], conds: [(column, op, value)], columns: [...]} or None."""
    import sqlglot
    from sqlglot import exp

    if not isinstance(sql, str) or not sql.strip():
        return None
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError, RecursionError):
        return None
    if not isinstance(tree, exp.Select):
        return None
    aggs = {exp.Max: "MAX", exp.Min: "MIN", exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG"}
    select = []
    for node in tree.expressions:
        node = node.this if isinstance(node, exp.Alias) else node
        agg = next((name for cls, name in aggs.items() if isinstance(node, cls)), "")
        inner = node.this if agg else node
        if isinstance(inner, exp.Distinct):
            inner = inner.expressions[0] if inner.expressions else inner
        select.append(
            (agg, inner.name if isinstance(inner, exp.Column) else ("*" if isinstance(inner, exp.Star) else None))
        )
    conds = []
    where = tree.args.get("where")
    if where is not None:
        for node in _flatten_and(where.this):
            op = {
                exp.EQ: "=",
                exp.GT: ">",
                exp.LT: "<",
                exp.GTE: ">=",
                exp.LTE: "<=",
                exp.NEQ: "!=",
                exp.Like: "LIKE",
            }.get(type(node))
            left, right = node.args.get("this"), node.args.get("expression")
            if op and isinstance(right, exp.Column) and not isinstance(left, exp.Column):
                left, right = right, left
                op = {">": "<", "<": ">", ">=": "<=", "<=": ">="}.get(op, op)
            column = left.name if isinstance(left, exp.Column) else None
            value = right.this if isinstance(right, exp.Literal) else (right.sql() if right is not None else None)
            if isinstance(right, exp.Neg) and isinstance(right.this, exp.Literal):
                value = "-" + str(right.this.this)
            conds.append((column, op or type(node).__name__, value))
    return {
        "select": select,
        "tables": [t.name for t in tree.find_all(exp.Table)],
        "conds": conds,
        "columns": sorted({c.name for c in tree.find_all(exp.Column)}),
    }


def _flatten_and(node):
    from sqlglot import exp

    if isinstance(node, exp.And):
        yield from _flatten_and(node.this)
        yield from _flatten_and(node.expression)
    elif isinstance(node, exp.Paren):
        yield from _flatten_and(node.this)
    else:
        yield node


def _same_value(predicted: Any, gold: Any, numeric: bool) -> bool:
    if predicted is None:
        return False
    if numeric:
        try:
            return math.isclose(parse_number(predicted), parse_number(gold), rel_tol=1e-9)
        except ValueError:
            return False
    return str(predicted).strip().lower() == str(gold).strip().lower()


# --------------------------------------------------------------------------- one example


def classify(
    prediction: Any, outcome: str, error: str | None, sql: Mapping[str, Any], table: Mapping[str, Any]
) -> list[str]:
    """All error categories of one prediction (empty list when it is correct)."""
    if outcome == "correct":
        return []
    if outcome == "empty":
        return ["no_sql"]
    if outcome == "exec_error" and render.looks_truncated(prediction, error):
        return ["truncated"]
    names = column_names(table["header"])
    lower_names = {n.lower() for n in names}
    parsed = parse_prediction(prediction) if outcome != "rejected" else None
    flags: list[str] = []
    if parsed is None:
        if isinstance(prediction, str) and render.UNESCAPED_QUOTE.search(prediction):
            return ["string_escaping"]
        if outcome == "exec_error" and error and re.search(r"no such (column|table)", error):
            return ["hallucinated_schema"]
        if outcome == "rejected":  # the metric's own name: not one read-only query
            return ["rejected"]
        return ["syntax_error"] if outcome == "exec_error" else [outcome]
    unknown_columns = [c for c in parsed["columns"] if c.lower() not in lower_names]
    unknown_tables = [t for t in parsed["tables"] if t.lower() != table_name(table["id"]).lower()]
    if unknown_columns or unknown_tables or (error and re.search(r"no such (column|table)", error)):
        flags.append("hallucinated_schema")
    if outcome == "exec_error" and not flags:
        flags.append("exec_error")
    if outcome in ("timeout", "too_large"):
        flags.append(outcome)

    gold_agg, gold_col = AGG_OPS[sql["agg"]], names[sql["sel"]].lower()
    pred_agg, pred_col = parsed["select"][0] if parsed["select"] else ("", None)
    if (
        len(parsed["select"]) != 1
        or (pred_col or "").lower() != gold_col
        and not (pred_col == "*" and gold_agg == "COUNT")
    ):
        flags.append("select_column")
    if pred_agg != gold_agg:
        flags.append("aggregation")

    types = column_types(table)
    gold_conds = _gold_conditions(sql, names)
    pred_by_col = defaultdict(list)
    for column, op, value in parsed["conds"]:
        pred_by_col[(column or "").lower()].append((op, value))
    gold_cols = {c for c, _, _ in gold_conds}
    pred_cols = set(pred_by_col)
    if len(parsed["conds"]) < len(gold_conds):
        flags.append("missing_condition")
    elif len(parsed["conds"]) > len(gold_conds):
        flags.append("extra_condition")
    elif gold_cols != pred_cols:
        flags.append("where_column")
    for column, op, value in gold_conds:
        matches = pred_by_col.get(column, [])
        if not matches:
            continue
        if all(p_op != op for p_op, _ in matches):
            flags.append("where_operator")
        elif not any(
            p_op == op and _same_value(p_val, value, types[names_index(names, column)] == "real")
            for p_op, p_val in matches
        ):
            flags.append("where_value")
    if not flags:
        flags.append("other")
    return sorted(set(flags), key=CATEGORIES.index)


def names_index(names: Sequence[str], lower_name: str) -> int:
    return [n.lower() for n in names].index(lower_name)


def _gold_conditions(sql: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, str, Any]]:
    conds = sql["conds"]
    if isinstance(conds, Mapping):
        conds = list(zip(conds["column_index"], conds["operator_index"], conds["condition"]))
    return [(names[c].lower(), COND_OPS[o], v) for c, o, v in conds]


def predicted_aggregation(prediction: Any) -> str:
    parsed = parse_prediction(prediction) if isinstance(prediction, str) else None
    if not parsed or not parsed["select"]:
        return "unparsed"
    return parsed["select"][0][0] or "none"


def question_form(question: str) -> str:
    q = question.strip().lower()
    return next((form for form in QUESTION_FORMS if q.startswith(form)), "other")


# --------------------------------------------------------------------------- the whole run


def analyse(
    examples: Sequence[Mapping[str, Any]],
    predictions: Sequence[Any],
    details: Sequence[Mapping[str, Any]],
    *,
    other_outcomes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Counts, rates, confusion matrix and systematic-vs-random checks for one set of predictions.

    `examples` are dataset records (question, table, sql, example_id); `details` the metric's
    per-example details; `other_outcomes` maps example_id → outcome of a second run (another seed
    or model) for the agreement check.
    """
    per_example = []
    for ex, pred, d in zip(examples, predictions, details):
        if d["outcome"] == "gold_error":
            continue
        flags = classify(pred, d["outcome"], d.get("error"), ex["sql"], ex["table"])
        per_example.append(
            {
                "example_id": ex["example_id"],
                "db_id": ex["table_id"],
                "table_id": ex["table_id"],
                "question": ex["question"],
                "prediction": pred,
                "outcome": d["outcome"],
                "categories": flags,
                "primary": flags[0] if flags else None,
                "gold_agg": AGG_LABELS[ex["sql"]["agg"]],
                "pred_agg": predicted_aggregation(pred),
                "num_conditions": len(_gold_conditions(ex["sql"], column_names(ex["table"]["header"]))),
                "select_type": column_types(ex["table"])[ex["sql"]["sel"]],
                "form": question_form(ex["question"]),
            }
        )
    confusion: dict[str, dict[str, int]] = {g: dict.fromkeys((*AGG_LABELS, "unparsed"), 0) for g in AGG_LABELS}
    for e in per_example:
        confusion[e["gold_agg"]][e["pred_agg"]] += 1

    breakdowns = {
        "aggregation_confusion": confusion,
        "by_num_conditions": render.rate_by(per_example, "num_conditions"),
        "by_select_type": render.rate_by(per_example, "select_type"),
        "by_question_form": render.rate_by(per_example, "form"),
    }
    return render.analysis_result("wikisql", per_example, CATEGORIES, breakdowns, other_outcomes, "table")


# --------------------------------------------------------------------------- reports


def render_markdown(result: dict[str, Any], title: str, protocol: str) -> str:
    lines = [
        *render.heading_lines(result, title, protocol),
        *render.category_table_lines(result),
        "",
        "## Aggregation confusion (rows: gold, columns: predicted)",
        "",
    ]
    cols = (*AGG_LABELS, "unparsed")
    lines += ["| gold \\ predicted | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for g, row in result["aggregation_confusion"].items():
        lines.append(f"| {g} | " + " | ".join(str(row[c]) for c in cols) + " |")
    lines += render.group_table_lines(result["by_num_conditions"], "Error rate by number of gold conditions")
    lines += render.group_table_lines(result["by_select_type"], "Error rate by type of the selected column")
    lines += render.group_table_lines(result["by_question_form"], "Error rate by question form")
    lines += render.systematic_lines(result, "table")
    lines += render.example_lines(result)
    return "\n".join(lines) + "\n"


def write_reports(result: dict[str, Any], out_dir: str | Path, title: str, protocol: str) -> dict[str, Path]:
    return render.write_files(result, out_dir, title, protocol, render_markdown, plot)


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.3, 1.1, 0.8]})
    render.primary_category_bars(axes[0], result, CATEGORIES)

    ax = axes[1]
    cols = (*AGG_LABELS, "unparsed")
    matrix = [[result["aggregation_confusion"][g][c] for c in cols] for g in AGG_LABELS]
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(AGG_LABELS)), AGG_LABELS)
    ax.set_xlabel("predicted aggregation")
    ax.set_ylabel("gold aggregation")
    ax.set_title("Aggregation confusion")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, v, ha="center", va="center", color="white" if v > max(map(max, matrix)) / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)

    ax = axes[2]
    groups = result["by_num_conditions"]
    keys = sorted(groups, key=int)
    ax.bar(keys, [groups[k]["error_rate"] * 100 for k in keys], color="#1f77b4")
    for x, k in enumerate(keys):
        ax.text(x, groups[k]["error_rate"] * 100, f"n={groups[k]['n']}", ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("gold WHERE conditions")
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, 112)  # room for the n= labels above full bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Error rate by number of conditions")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
