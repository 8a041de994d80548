"""An independent re-implementation of the official WikiSQL evaluator (lib/dbengine.py).

It builds the database the way the official `.db` files are laid out (columns `col0…colN`
typed `text`/`real`, values lower-cased) and runs the structured query with bound parameters,
exactly as `DBEngine.execute` does. Tests compare t2s's rendered SQL against it.
"""

import re
import sqlite3
from decimal import Decimal, InvalidOperation

AGG = ["", "MAX", "MIN", "COUNT", "SUM", "AVG"]
OPS = ["=", ">", "<"]
NUM_RE = re.compile(r"[-+]?\d*\.\d+|\d+")


def official_db(table):
    conn = sqlite3.connect(":memory:")
    name = "table_" + table["id"].replace("-", "_")
    cols = ", ".join(f"col{i} {t}" for i, t in enumerate(table["types"]))
    conn.execute(f"CREATE TABLE {name} ({cols})")
    for row in table["rows"]:
        vals = [v.lower() if isinstance(v, str) else v for v in row]
        conn.execute(f"INSERT INTO {name} VALUES ({', '.join('?' * len(vals))})", vals)
    return conn, name


def official_execute(table, sql):
    conn, name = official_db(table)
    select = f"col{sql['sel']}"
    if AGG[sql["agg"]]:
        select = f"{AGG[sql['agg']]}({select})"
    where, params = [], {}
    for col, op, val in sql["conds"]:
        if isinstance(val, str):
            val = val.lower()
        if table["types"][col] == "real" and not isinstance(val, (int, float)):
            try:
                val = float(Decimal(val.replace(",", "")))
            except InvalidOperation:
                val = float(NUM_RE.findall(val)[0])
        where.append(f"col{col} {OPS[op]} :col{col}")
        params[f"col{col}"] = val
    query = f"SELECT {select} AS result FROM {name}"
    if where:
        query += " WHERE " + " AND ".join(where)
    return [r[0] for r in conn.execute(query, params).fetchall()]


def normalise(values):
    """Compare as the official evaluator's answers are compared: lower-cased text, numbers by value."""

    def key(v):
        if v is None:
            return (0, "")
        if isinstance(v, str):
            return (1, v.lower())
        return (2, round(float(v), 6))

    return sorted(map(key, values))
