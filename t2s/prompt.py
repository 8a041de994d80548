"""The canonical prompt: the one place that turns (table, question) into model input.

Training, inference and evaluation all call `build_prompt`, so a model is never asked a
question in a format it was not trained on. The template keeps the seed notebook's wording
with the schema and the question in their own slots, and ends with a newline after
`### SQL:` so the first SQL token is not glued to a trailing space (tokenizers merge a
trailing space into the next token, which would move the prompt/completion boundary).

The schema is rendered as a `CREATE TABLE` statement with quoted identifiers: WikiSQL headers
such as `Area (km²)` or `No.` already contain parentheses and dots, and any looser rendering
(`Name (type)`) teaches the model to copy annotations into column names.

Schema formats (how much of the table the model sees):

* `names`: column names only.
* `types`: names and types (`TEXT` / `REAL`). Default: the WikiSQL leaderboard forbids table
  content at inference, and this is the most it allows.
* `rows`: names, types and the first `num_sample_rows` rows as an SQL comment. Uses table
  content, so scores with it are not comparable with the leaderboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from t2s.data.tables import column_names, column_types, quote_identifier, table_name

SCHEMA_FORMATS = ("names", "types", "rows")
DEFAULT_SCHEMA_FORMAT = "types"
DEFAULT_SAMPLE_ROWS = 3

PROMPT_TEMPLATE = """You are an expert SQL generator.

### Database Schema:
{schema}

### Question:
{question}

### SQL:
"""


def check_schema_format(schema_format: str) -> str:
    if schema_format not in SCHEMA_FORMATS:
        raise ValueError(f"schema_format={schema_format!r} is not one of {SCHEMA_FORMATS}")
    return schema_format


def render_schema(
    table: Mapping[str, Any],
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> str:
    check_schema_format(schema_format)
    names = [quote_identifier(n) for n in column_names(table["header"])]
    if schema_format == "names":
        columns = names
    else:
        columns = [f"{n} {t.upper()}" for n, t in zip(names, column_types(table))]
    schema = f"CREATE TABLE {quote_identifier(table_name(table['id']))} (\n  " + ",\n  ".join(columns) + "\n);"
    if schema_format == "rows" and num_sample_rows > 0:
        sample = table["rows"][:num_sample_rows]
        lines = [" | ".join(_cell_text(c) for c in row) for row in sample]
        schema += f"\n/* {len(sample)} example rows:\n" + "\n".join(lines) + "\n*/"
    return schema


def _cell_text(cell: Any) -> str:
    """A cell as it may appear inside the `/* … */` comment: one line, no comment terminator."""
    return "" if cell is None else " ".join(str(cell).split()).replace("*/", "* /")


def build_prompt(
    table: Mapping[str, Any],
    question: str,
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> str:
    """The model input for one question; the model's completion is the SQL query."""
    schema = render_schema(table, schema_format, num_sample_rows)
    return PROMPT_TEMPLATE.format(schema=schema, question=str(question).strip())
