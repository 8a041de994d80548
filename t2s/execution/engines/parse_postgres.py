"""A PostgreSQL query read by PostgreSQL's own parser (libpg_query, through `pglast`): the server will read the same.

The walk is an allowlist of the parse tree's node types: the parts of a reading query (targets, joins, subqueries,
expressions, CTEs, windows, casts). Anything else anywhere in the tree, `SELECT … INTO`, `FOR UPDATE`, a
data-modifying CTE, a parameter, a column definition list (`dblink(…) AS t(x int)`), XML or JSON constructors, is
refused, and so are a few leaves: functions and operators qualified by any schema but `pg_catalog`, the
`current_user`/`session_user`/`current_schema`/`current_catalog` keywords (they tell who and where the query runs),
and casts to the `reg*` types, which look names up in the system catalogues.
"""

from __future__ import annotations

from t2s.execution.engines.reading import GateError, Reading, refuse

# The node types a reading query is made of (pglast.ast class names).
_NODES = frozenset(
    [
        "RawStmt",
        "SelectStmt",
        "ResTarget",
        "ColumnRef",
        "String",
        "Integer",
        "Float",
        "Boolean",
        "BitString",
        "A_Const",
        "A_Star",
        "A_Expr",
        "BoolExpr",
        "FuncCall",
        "RangeVar",
        "JoinExpr",
        "RangeSubselect",
        "RangeFunction",
        "SubLink",
        "SortBy",
        "WindowDef",
        "CaseExpr",
        "CaseWhen",
        "CoalesceExpr",
        "MinMaxExpr",
        "NullTest",
        "BooleanTest",
        "TypeCast",
        "TypeName",
        "A_Indirection",
        "A_Indices",
        "A_ArrayExpr",
        "RowExpr",
        "WithClause",
        "CommonTableExpr",
        "Alias",
        "GroupingSet",
        "SQLValueFunction",
        "CollateClause",
    ]
)
_WHO_AND_WHERE = {"SVFOP_CURRENT_ROLE", "SVFOP_CURRENT_USER", "SVFOP_USER", "SVFOP_SESSION_USER",
                  "SVFOP_CURRENT_CATALOG", "SVFOP_CURRENT_SCHEMA"}  # fmt: skip
_CATALOGUE_TYPES = {"regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
                    "regoperator", "regproc", "regprocedure", "regrole", "regtype"}  # fmt: skip


def read_postgres(text: str) -> Reading:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(text)
    except ParseError as e:
        raise GateError("exec_error", f"syntax error (postgres): {str(e).splitlines()[0]}") from None
    if not statements:
        raise GateError("exec_error", "no SQL statement")
    if len(statements) > 1:
        raise GateError("rejected", "more than one statement")
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        raise GateError("rejected", f"{_statement_name(statement)}: only SELECT/WITH/VALUES queries are evaluated")
    reading = Reading()
    _walk(statements[0], reading, ast)
    return reading


def _statement_name(node) -> str:
    name = type(node).__name__
    return name[: -len("Stmt")].upper() + " statement" if name.endswith("Stmt") else name


def _walk(node, reading: Reading, ast) -> None:
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
            continue
        if not isinstance(node, ast.Node):
            continue  # a leaf value (a name, a number, an enum)
        kind = type(node).__name__
        if kind not in _NODES:
            raise refuse(_statement_name(node) if kind.endswith("Stmt") else f"{kind} (PostgreSQL parse node)")
        _check_leaf(node, kind, reading)
        stack.extend(getattr(node, slot) for slot in node.__slots__)


def _names(parts) -> list[str]:
    return [p.sval for p in parts or () if hasattr(p, "sval")]


def _check_leaf(node, kind: str, reading: Reading) -> None:
    if kind == "SelectStmt":
        if node.intoClause is not None:
            raise refuse("SELECT … INTO")
        if node.lockingClause:
            raise refuse("FOR UPDATE/SHARE")
    elif kind == "CommonTableExpr":
        if node.search_clause is not None or node.cycle_clause is not None:
            raise refuse("a CTE's SEARCH or CYCLE clause")
        reading.ctes.add(node.ctename)
    elif kind == "RangeVar":
        if node.catalogname:
            raise GateError("rejected", f"table {node.catalogname}.{node.schemaname}.{node.relname} is outside the "
                            "database's own tables")  # fmt: skip
        reading.relations.append(((node.schemaname or "").lower(), node.relname))
    elif kind == "FuncCall":
        names = _names(node.funcname)
        if len(names) > 1 and (len(names) > 2 or names[0] != "pg_catalog"):
            raise GateError("rejected", f"function {'.'.join(names)}() is not allowed in the postgres sandbox")
        if node.func_variadic:
            raise refuse(f"VARIADIC in {names[-1]}()")
        reading.functions.append(names[-1])
    elif kind == "A_Expr":
        names = _names(node.name)
        if len(names) > 1 and names[0] != "pg_catalog":
            raise GateError("rejected", f"operator {'.'.join(names)} is not allowed in the postgres sandbox")
    elif kind == "SQLValueFunction":
        op = getattr(node.op, "name", str(node.op))
        if op in _WHO_AND_WHERE:
            raise refuse(op.removeprefix("SVFOP_").lower())
    elif kind == "TypeName":
        names = _names(node.names)
        if names and names[-1].lower() in _CATALOGUE_TYPES:
            raise refuse(f"a cast to {names[-1]}")
        if len(names) > 1 and names[0] != "pg_catalog":
            raise refuse(f"the type {'.'.join(names)}")
    elif kind == "ColumnRef":
        names = _names(node.fields)
        if len(names) > 2:  # schema.table.column: only the database's own schema (checked by the relations read)
            reading.relations.append((names[-3].lower(), names[-2]))
