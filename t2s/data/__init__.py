"""WikiSQL data: loading, executable gold SQL and SQLite tables that match the official evaluator."""

from t2s.data.gold_sql import AGG_OPS, COND_OPS, GoldSQLError, parse_number, render_gold_sql
from t2s.data.tables import (
    clear_table_cache,
    column_names,
    column_types,
    materialize_table,
    quote_identifier,
    register_collation,
    table_name,
)
from t2s.data.wikisql import (
    ENV_DATA_DIR,
    WikiSQLFormatError,
    default_data_dir,
    describe_protocol,
    is_heldout_table,
    load_wikisql,
)

__all__ = [
    "AGG_OPS",
    "COND_OPS",
    "ENV_DATA_DIR",
    "GoldSQLError",
    "WikiSQLFormatError",
    "clear_table_cache",
    "column_names",
    "column_types",
    "default_data_dir",
    "describe_protocol",
    "is_heldout_table",
    "load_wikisql",
    "materialize_table",
    "parse_number",
    "quote_identifier",
    "register_collation",
    "render_gold_sql",
    "table_name",
]
