"""Why predictions on multi-table databases fail: each wrong query compared with the gold query clause by clause.

Spider-style records carry no structured annotation a prediction could be matched against, so both
queries are parsed with sqlglot and compared component by component, after the same normalisation
(identifiers lower-cased, table aliases and qualifiers dropped), on the first SELECT of each:

`no_sql` (nothing generated), `truncated` (stops mid-query: the token budget ran out), `rejected` (the metric's
outcome: not one read-only query), `syntax_error` (runs into an error and does not parse), `string_escaping` (an
unescaped quote inside a string literal, e.g. `'O'Neal'`), `hallucinated_schema` (a table or
column the database does not have), `wrong_table_column` (a real column of the database, asked of a table or
alias that does not have it: `no such column: T2.name`), `exec_error`, `timeout`, `too_large` (over the row or byte cap), `tables_joins` (other tables or
another number of joins), `select` (select columns or aggregates), `where`, `group_by_having`,
`order_by_limit`, `set_operation` (INTERSECT/UNION/EXCEPT missing, extra or another),
`nesting` (another number of subqueries), and `other` (every compared clause matches, yet the
result differs: values inside subqueries, DISTINCT, join conditions…). An example can have several;
the first in this order is its primary category. Accuracy is also reported by the official hardness.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2s.data.hardness import HARDNESS_LEVELS, UNKNOWN
from t2s.data.schema import from_engine
from t2s.evaluation.analysis.render import (
    FIRST_CATEGORIES,
    UNESCAPED_QUOTE,
    analysis_result,
    category_table_lines,
    example_lines,
    group_table_lines,
    heading_lines,
    looks_truncated,
    primary_category_bars,
    rate_by,
    systematic_lines,
    write_files,
)
from t2s.execution.engines import database_for, dialect_for

CATEGORIES = (
    *FIRST_CATEGORIES,
    "wrong_table_column",
    "exec_error",
    "timeout",
    "too_large",
    "tables_joins",
    "select",
    "where",
    "group_by_having",
    "order_by_limit",
    "set_operation",
    "nesting",
    "other",
)
COMPONENTS = ("tables_joins", "select", "where", "group_by_having", "order_by_limit", "set_operation", "nesting")
# "A name the database lacks", as each engine says it: SQLite, PostgreSQL, MySQL/MariaDB, DuckDB.
_UNKNOWN_NAME = re.compile(
    r"no such (column|table)|(column|relation) \S+ does not exist|Unknown column|Table '[^']*' doesn't exist"
    r"|Referenced (column|table) .* not found|Table with name .* does not exist|does not have a column named",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=256)
def schema_names(db_path: str) -> tuple[frozenset[str], frozenset[str]]:
    """Lower-cased table and column names of a database (read from its own catalogue, on any engine)."""
    schema = from_engine(database_for(db_path), db_path)
    return (
        frozenset(t.lower() for t in schema.table_names()),
        frozenset(c.lower() for c in schema.column_names()),
    )


def parse(sql: Any, dialect: str = "sqlite"):
    import sqlglot
    from sqlglot import exp

    if not isinstance(sql, str) or not sql.strip():
        return None
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError, RecursionError):
        return None
    return tree if isinstance(tree, exp.Query) else None


def components(tree) -> dict[str, Any]:
    """Normalised clause texts of a query's first SELECT, its set operation and its nesting."""
    from sqlglot import exp

    set_op = type(tree).__name__.lower() if isinstance(tree, exp.SetOperation) else "none"
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    select = select.copy()
    for column in select.find_all(exp.Column):
        column.set("table", None)
    for table in select.find_all(exp.Table):
        table.set("alias", None)

    def text(node) -> str:
        return "" if node is None else node.sql(dialect="sqlite").lower()

    def clause(key: str) -> str:
        node = select.args.get(key)
        return text(node)

    from_ = select.args.get("from") or select.args.get("from_")
    joins = select.args.get("joins") or []
    select_items = sorted(text(e.this if isinstance(e, exp.Alias) else e) for e in select.expressions)
    return {
        "tables_joins": (
            sorted(t.name.lower() for t in tree.find_all(exp.Table)),
            len(joins) + (1 if from_ is not None else 0),
        ),
        "select": (select_items, bool(select.args.get("distinct"))),
        "where": clause("where"),
        "group_by_having": (clause("group"), clause("having")),
        "order_by_limit": (clause("order"), clause("limit")),
        "set_operation": set_op,
        "nesting": sum(1 for _ in tree.find_all(exp.Subquery)),
    }


def double_quoted_values(tree) -> set[int]:
    """ids of `"..."` tokens a comparison, LIKE, BETWEEN or IN uses as a value (`name = "Paris"`).

    sqlglot reads every double-quoted token as a column; SQLite reads one that names no column as a string, and
    Spider's gold SQL writes string values that way, so these are values, not (hallucinated) names.
    """
    from sqlglot import exp

    values = set()
    for node in tree.find_all(exp.Binary, exp.Like, exp.In, exp.Between):
        operands = [node.args.get(k) for k in ("expression", "low", "high")] + list(node.args.get("expressions") or [])
        values |= {id(v) for v in operands if isinstance(v, exp.Column) and v.this.quoted}
    return values


def unknown_names(tree, db_path: str) -> list[str]:
    """Tables and columns the query names that the database does not have (aliases it defines are fine)."""
    from sqlglot import exp

    if not db_path:
        return []
    # `"..."` is a value only where SQLite's rule reads it so; PostgreSQL and DuckDB read it as a name.
    values = double_quoted_values(tree) if dialect_for(db_path) == "sqlite" else set()
    tables, columns = schema_names(db_path)
    defined = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
    defined |= {t.alias.lower() for t in tree.find_all(exp.Table) if t.alias}
    defined |= {s.alias.lower() for s in tree.find_all(exp.Subquery) if s.alias}
    unknown = [t.name for t in tree.find_all(exp.Table) if t.name.lower() not in tables]
    unknown += [
        c.name
        for c in tree.find_all(exp.Column)
        if c.name
        and c.name != "*"
        and c.name.lower() not in columns
        and c.name.lower() not in defined
        and id(c) not in values
    ]
    return unknown


def _cut_in_a_name(prediction: str, unknown: list[str], db_path: str) -> bool:
    """The only unknown name is the answer's last word and begins a real one: the token budget cut it."""
    last = re.split(r"[^\w]", prediction.rstrip())[-1]
    if len(unknown) != 1 or unknown[0] != last or not last:
        return False
    tables, columns = schema_names(db_path)
    return any(name.startswith(last.lower()) for name in tables | columns)


def classify(prediction: Any, outcome: str, error: str | None, gold_sql: str, db_path: str) -> list[str]:
    """All error categories of one prediction (empty when it is correct)."""
    if outcome == "correct":
        return []
    if outcome == "empty":
        return ["no_sql"]
    if outcome == "exec_error" and looks_truncated(prediction, error):
        return ["truncated"]
    dialect = dialect_for(db_path) if db_path else "sqlite"
    tree = parse(prediction, dialect) if outcome != "rejected" else None
    if tree is None:
        if isinstance(prediction, str) and UNESCAPED_QUOTE.search(prediction):
            return ["string_escaping"]
        if outcome == "exec_error" and error and _UNKNOWN_NAME.search(error):
            return ["hallucinated_schema"]
        if outcome == "rejected":  # the metric's own name: not one read-only query
            return ["rejected"]
        return ["syntax_error"] if outcome == "exec_error" else [outcome]
    flags = []
    unknown = unknown_names(tree, db_path)
    if unknown and _cut_in_a_name(prediction, unknown, db_path):
        return ["truncated"]
    if unknown:
        flags.append("hallucinated_schema")
    elif error and _UNKNOWN_NAME.search(error):
        # every name exists in the database: one is used on a table (or alias) that does not have it
        flags.append("wrong_table_column" if db_path and "column" in error else "hallucinated_schema")
    if outcome == "exec_error" and not flags:
        flags.append("exec_error")
    if outcome in ("timeout", "too_large"):
        flags.append(outcome)
    gold_tree = parse(gold_sql, dialect)
    if gold_tree is not None:
        predicted, gold = components(tree), components(gold_tree)
        flags += [c for c in COMPONENTS if predicted[c] != gold[c]]
    if not flags:
        flags.append("other")
    return sorted(set(flags), key=CATEGORIES.index)


def analyse(
    examples: Sequence[Mapping[str, Any]],
    predictions: Sequence[Any],
    details: Sequence[Mapping[str, Any]],
    *,
    other_outcomes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Error classes, accuracy by hardness, per-database rates and the systematic-vs-random checks."""
    per_example = []
    for ex, pred, d in zip(examples, predictions, details):
        if d["outcome"] == "gold_error":
            continue
        flags = classify(pred, d["outcome"], d.get("error"), ex["gold_sql"], ex.get("db_path") or "")
        per_example.append(
            {
                "example_id": ex["example_id"],
                "db_id": ex["db_id"],
                "question": ex["question"],
                "prediction": pred,
                "outcome": d["outcome"],
                "categories": flags,
                "primary": flags[0] if flags else None,
                "hardness": ex.get("hardness") or UNKNOWN,
                "caveat": ex.get("caveat") or "",
            }
        )
    breakdowns = {
        "by_hardness": rate_by(per_example, "hardness", order=(*HARDNESS_LEVELS, UNKNOWN)),
        "by_database": rate_by(per_example, "db_id"),
    }
    return analysis_result("spider", per_example, CATEGORIES, breakdowns, other_outcomes, "database")


def render_markdown(result: dict[str, Any], title: str, protocol: str) -> str:
    n = result["num_examples"]
    lines = [
        *heading_lines(result, title, protocol),
        "## Execution accuracy by hardness (official Spider levels)",
        "",
        "| hardness | n | correct | execution accuracy | most common error |",
        "|---|---|---|---|---|",
    ]
    for level, e in result["by_hardness"].items():
        top = f"{e['top_category']} ({e['top_share']:.0%})" if "top_category" in e else "–"
        right = e["n"] - e["wrong"]
        lines.append(f"| {level} | {e['n']} | {right} | {right / e['n']:.1%} | {top} |")
    total_right = n - result["num_wrong"]
    lines += [f"| all | {n} | {total_right} | {total_right / n if n else 0:.1%} | |", ""]
    lines += category_table_lines(result)
    lines += group_table_lines(result["by_database"], "Error rate by database")
    lines += systematic_lines(result, "database")
    lines += example_lines(result)
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [0.8, 1.2]})
    ax = axes[0]
    levels = list(result["by_hardness"])
    accuracy = [100 * (1 - result["by_hardness"][k]["error_rate"]) for k in levels]
    ax.bar(levels, accuracy, color="#2ca02c")
    for x, k in enumerate(levels):
        ax.text(x, accuracy[x], f"{accuracy[x]:.0f}%\nn={result['by_hardness'][k]['n']}", ha="center", va="bottom")
    ax.set_ylim(0, 115)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("execution accuracy (%)")
    ax.set_title("Execution accuracy by hardness")

    primary_category_bars(axes[1], result, CATEGORIES)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(result: dict[str, Any], out_dir: str | Path, title: str, protocol: str) -> dict[str, Path]:
    return write_files(result, out_dir, title, protocol, render_markdown, plot)
