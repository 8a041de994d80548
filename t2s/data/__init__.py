"""Text-to-SQL data: WikiSQL and Spider readers over one schema model, behind one entry point (`load_text2sql`)."""

from t2s.data.common import DataFormatError
from t2s.data.gold_sql import AGG_OPS, COND_OPS, GoldSQLError, parse_number, render_gold_sql
from t2s.data.hardness import HARDNESS_LEVELS, hardness
from t2s.data.schema import DatabaseSchema, SchemaError, from_sqlite, from_tables_json
from t2s.data.sources import dataset_kind, has_databases, load_text2sql
from t2s.data.spider import ENV_SPIDER_DIR, SpiderFormatError, default_spider_dir, load_spider
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
    "ENV_SPIDER_DIR",
    "HARDNESS_LEVELS",
    "DataFormatError",
    "DatabaseSchema",
    "SchemaError",
    "SpiderFormatError",
    "dataset_kind",
    "default_spider_dir",
    "from_sqlite",
    "from_tables_json",
    "hardness",
    "has_databases",
    "load_spider",
    "load_text2sql",
    "ENV_DATA_DIR",
    "GoldSQLError",
    "WikiSQLFormatError",
    "default_data_dir",
    "describe_protocol",
    "is_heldout_table",
    "load_wikisql",
    "parse_number",
    "render_gold_sql",
]
