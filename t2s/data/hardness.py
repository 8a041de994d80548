"""Spider's hardness levels (easy / medium / hard / extra), computed from the SQL text.

Every Spider paper reports execution accuracy by hardness, and the official evaluator
(taoyds/spider `evaluation.py`, also in test-suite-sql-eval) decides it by counting components of
its own parse (`process_sql`). The Hub copy of Spider has no such parse, and neither do a user's
own examples, so t2s parses the SQL with sqlglot and counts the same things, quirks included:

* component 1: WHERE, GROUP BY, ORDER BY, LIMIT present (one each), one per joined table beyond
  the first, one per `OR` and per `LIKE` in ON/WHERE/HAVING conditions (process_sql stops reading
  an ON clause at its first OR, so what follows it is not counted);
* component 2: nested queries that are condition values (ON/WHERE/HAVING), plus one for a set
  operation (INTERSECT/UNION/EXCEPT) after the first SELECT;
* others: more than one aggregate (see below), more than one select item, more than one WHERE
  condition, more than one GROUP BY column.

The official aggregate count reads the first field of each unit, which for a condition is its
`NOT` flag and for a HAVING connector is the string 'and'/'or': so `NOT IN`/`NOT LIKE` conditions
in WHERE and HAVING, and every AND/OR between HAVING conditions, count as aggregates there, while
an aggregate inside a condition does not. Only the first SELECT of a set operation is counted, and
an ORDER BY/LIMIT after a set operation belongs to its last SELECT, as in `process_sql`.
A test checks that this agrees with the official rule applied to `dev.json`'s own parse on all
1,034 dev questions.
"""

from __future__ import annotations

from dataclasses import dataclass

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")
UNKNOWN = "unknown"


@dataclass
class Counts:
    component1: int
    component2: int
    others: int


def classify_counts(c: Counts) -> str:
    """The official decision rule over the three counts."""
    comp1, comp2, others = c.component1, c.component2, c.others
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"


def hardness(sql: str) -> str:
    """The official hardness of one query, or 'unknown' if sqlglot cannot parse it."""
    counts = count_components(sql)
    return classify_counts(counts) if counts is not None else UNKNOWN


def count_components(sql: str) -> Counts | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError, RecursionError):
        return None
    set_op = isinstance(tree, exp.SetOperation)
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if isinstance(select, exp.Subquery):
        select = select.unnest()
    if not isinstance(select, exp.Select):
        return None
    if set_op:
        # The trailing ORDER BY / LIMIT of `A UNION B ORDER BY x` belong to B in process_sql.
        select = select.copy()
        select.set("order", None)
        select.set("limit", None)

    on_conditions = [c for join in select.args.get("joins") or [] if (c := join.args.get("on")) is not None]
    where = select.args.get("where")
    having = select.args.get("having")
    where_leaves, where_ors = _condition_leaves(where.this) if where is not None else ([], 0)
    having_leaves, having_ors = _condition_leaves(having.this) if having is not None else ([], 0)
    on_leaves, on_ors = [], 0
    for condition in on_conditions:
        # process_sql stops reading an ON clause at its first OR: `ON a = b OR a = c` is `ON a = b`.
        while isinstance(condition, exp.Or):
            condition = condition.this
        leaves, ors = _condition_leaves(condition)
        on_leaves += leaves
        on_ors += ors

    group = select.args.get("group")
    group_items = list(group.expressions) if group is not None else []
    order = select.args.get("order")
    order_items = [o.this for o in order.expressions] if order is not None else []
    from_ = select.args.get("from") or select.args.get("from_")
    table_units = (1 if from_ is not None else 0) + len(select.args.get("joins") or [])

    comp1 = sum(
        (
            where is not None,
            bool(group_items),
            bool(order_items),
            select.args.get("limit") is not None,
        )
    )
    comp1 += max(table_units - 1, 0)
    comp1 += on_ors + where_ors + having_ors
    comp1 += sum(_is_like(leaf) for leaf in on_leaves + where_leaves + having_leaves)

    comp2 = sum(_nested_values(leaf) for leaf in on_leaves + where_leaves + having_leaves) + int(set_op)

    aggs = sum(_leading_aggregate(item) for item in select.expressions)
    aggs += sum(_is_negated(leaf) for leaf in where_leaves)
    aggs += sum(_column_unit_aggregates(item) for item in group_items)
    aggs += sum(_column_unit_aggregates(item) for item in order_items)
    aggs += sum(_is_negated(leaf) for leaf in having_leaves) + max(len(having_leaves) - 1, 0)
    others = sum(
        (
            aggs > 1,
            len(select.expressions) > 1,
            len(where_leaves) > 1,
            len(group_items) > 1,
        )
    )
    return Counts(comp1, comp2, others)


def _condition_leaves(node) -> tuple[list, int]:
    """The comparisons joined by AND/OR (not looking into subqueries), and how many ORs join them."""
    from sqlglot import exp

    if isinstance(node, exp.Paren) and not isinstance(node.this, exp.Query):
        return _condition_leaves(node.this)
    if isinstance(node, exp.Connector):
        left, left_ors = _condition_leaves(node.this)
        right, right_ors = _condition_leaves(node.expression)
        return left + right, left_ors + right_ors + isinstance(node, exp.Or)
    return [node], 0


def _is_negated(leaf) -> bool:
    """process_sql's `not_op`: `x NOT IN`, `x NOT LIKE`, `x NOT BETWEEN` (not `IS NOT NULL`)."""
    from sqlglot import exp

    return isinstance(leaf, exp.Not) and isinstance(leaf.this, (exp.In, exp.Like, exp.Between))


def _is_like(leaf) -> bool:
    from sqlglot import exp

    inner = leaf.this if isinstance(leaf, exp.Not) else leaf
    return isinstance(inner, exp.Like)


def _nested_values(leaf) -> int:
    """Subqueries that are a condition's values (process_sql's val1/val2), not deeper ones."""
    from sqlglot import exp

    inner = leaf.this if isinstance(leaf, exp.Not) else leaf
    count = 0
    for key, value in inner.args.items():
        if key == "this":
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (exp.Subquery, exp.Select, exp.SetOperation)):
                count += 1
    return count


_AGGREGATES = ("Max", "Min", "Count", "Sum", "Avg")


def _is_aggregate(node) -> bool:
    return type(node).__name__ in _AGGREGATES


def _leading_aggregate(item) -> bool:
    """A select item counts one aggregate when it *starts* with one (`max(a) - min(a)` counts once)."""
    from sqlglot import exp

    node = item.this if isinstance(item, exp.Alias) else item
    while isinstance(node, exp.Binary) and not isinstance(node, exp.Connector):
        node = node.this
    return _is_aggregate(node)


def _column_unit_aggregates(item) -> int:
    """Aggregated column units of an ORDER BY / GROUP BY value (both sides of `a + b`)."""
    from sqlglot import exp

    if isinstance(item, exp.Paren):
        item = item.this
    if isinstance(item, exp.Binary) and not isinstance(item, exp.Connector):
        return int(_is_aggregate(item.this)) + int(_is_aggregate(item.expression))
    return int(_is_aggregate(item))
