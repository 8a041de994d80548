"""A DuckDB query read by DuckDB's own parser: `extract_statements` counts the statements and names their kind, and
`json_serialize_sql` gives the parse tree of a SELECT as JSON, which is walked here.

The parser runs on a private in-memory connection with external access off and its configuration locked: parsing
reads nothing, and the query is never executed there. The walk is an allowlist of expression classes, table
references, query nodes and result modifiers; anything else (a lambda, a parameter, `SUMMARIZE`/`DESCRIBE`, `PIVOT`,
a file path in `FROM`, a qualified function) is refused.
"""

from __future__ import annotations

import json
import threading

from t2s.execution.engines.reading import GateError, Reading, refuse

_CLASSES = frozenset(
    [
        "COLUMN_REF",
        "CONSTANT",
        "FUNCTION",
        "WINDOW",
        "OPERATOR",
        "COMPARISON",
        "CONJUNCTION",
        "CASE",
        "CAST",
        "SUBQUERY",
        "STAR",
        "BETWEEN",
        "COLLATE",
        "POSITIONAL_REFERENCE",
        "TYPE",
    ]
)
_TABLE_REFS = frozenset(["BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "TABLE_FUNCTION"])
_QUERY_NODES = frozenset(["SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"])
_MODIFIERS = frozenset(["ORDER_MODIFIER", "LIMIT_MODIFIER", "DISTINCT_MODIFIER", "LIMIT_PERCENT_MODIFIER"])
# Bare names DuckDB's binder turns into functions when no column has them: they tell who and where the query runs.
_WHO_AND_WHERE = {"current_user", "current_role", "session_user", "user", "current_schema", "current_catalog"}
_PARSER_CONFIG = {"enable_external_access": False, "autoload_known_extensions": False,
                  "autoinstall_known_extensions": False, "lock_configuration": True}  # fmt: skip

_local = threading.local()


def _parser():
    """One parsing connection per thread (a DuckDB connection is not to be shared between threads)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        import duckdb

        conn = _local.conn = duckdb.connect(":memory:", config=dict(_PARSER_CONFIG))
    return conn


def read_duckdb(text: str) -> Reading:
    import duckdb

    conn = _parser()
    try:
        statements = conn.extract_statements(text)
    except duckdb.Error as e:
        raise GateError("exec_error", f"syntax error (duckdb): {str(e).splitlines()[0]}") from None
    if not statements:
        raise GateError("exec_error", "no SQL statement")
    if len(statements) > 1:
        raise GateError("rejected", "more than one statement")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise GateError("rejected", f"{kind} statement: only SELECT/WITH/VALUES queries are evaluated")
    tree = json.loads(conn.execute("SELECT json_serialize_sql($1)", [text]).fetchone()[0])
    if tree.get("error") or len(tree.get("statements") or ()) != 1:
        raise GateError("rejected", f"the query cannot be checked ({tree.get('error_message', 'no parse tree')})")
    reading = Reading()
    _walk(tree["statements"][0]["node"], reading)
    return reading


def _walk(root, reading: Reading) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "class" in node:
            _expression(node, reading)
        elif "type" in node and isinstance(node["type"], str):
            _typed(node, reading)
        if "cte_map" in node:
            reading.ctes.update(entry["key"] for entry in node["cte_map"].get("map", ()))
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))


def _expression(node: dict, reading: Reading) -> None:
    kind = node["class"]
    if kind not in _CLASSES:
        raise refuse(f"{kind.lower()} (DuckDB expression)")
    names = node.get("column_names") or ()
    if kind == "COLUMN_REF" and len(names) == 1 and names[0].lower() in _WHO_AND_WHERE:
        raise refuse(names[0])
    if kind == "TYPE" and (node.get("schema") or node.get("catalog")):
        raise refuse(f"the type {node.get('schema')}.{node.get('type_name')}")
    if kind in ("FUNCTION", "WINDOW"):
        name = node.get("function_name", "")
        if node.get("schema") or node.get("catalog"):
            raise GateError("rejected", f"function {node.get('schema')}.{name}() is not allowed in the duckdb sandbox")
        if node.get("export_state"):
            raise refuse(f"EXPORT_STATE of {name}()")
        if not (kind == "FUNCTION" and node.get("is_operator") and not name.isidentifier()):
            reading.functions.append(name)  # named functions and operators spelt as names (`~~`, `+` are not)


def _typed(node: dict, reading: Reading) -> None:
    kind = node["type"]
    if "alias" in node and "sample" in node:  # a table reference
        if kind not in _TABLE_REFS:
            raise refuse(f"{kind.lower().replace('_', ' ')} (DuckDB table reference)")
        if kind == "BASE_TABLE":
            if node.get("catalog_name") or node.get("at_clause"):
                raise GateError("rejected", f"table {node.get('table_name')} is outside the database's own tables")
            reading.relations.append(((node.get("schema_name") or "").lower(), node.get("table_name", "")))
    elif "cte_map" in node or "modifiers" in node:  # a query node
        if kind not in _QUERY_NODES:
            raise refuse(f"{kind.lower().replace('_', ' ')} (DuckDB query node)")
    elif kind.endswith("_MODIFIER") and kind not in _MODIFIERS:
        raise refuse(f"{kind.lower().replace('_', ' ')} (DuckDB)")
    # Any other "type" is an enum value inside an allowed node (ORDER_DEFAULT, VALUE_CONSTANT…): its children are
    # walked all the same.
