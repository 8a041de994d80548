"""The canonical prompt: the one place that turns (schema, question) into model input.

Training, inference and evaluation all call `build_prompt`, so a model is never asked a
question in a format it was not trained on. The template keeps the seed notebook's wording
with the schema and the question in their own slots, and ends with a newline after
`### SQL:` so the first SQL token is not glued to a trailing space (tokenizers merge a
trailing space into the next token, which would move the prompt/completion boundary).

The schema is rendered as `CREATE TABLE` statements (`t2s.data.schema`): one per table of the
database, with column types, primary keys and foreign keys (the relations a model needs to write
joins). WikiSQL headers such as `Area (km²)` or `No.` contain parentheses and dots, and any looser
rendering (`Name (type)`) teaches the model to copy annotations into column names.

Schema formats (how much of the database the model sees):

* `names`: column names (and keys) only.
* `types`: names and types. Default: the WikiSQL leaderboard forbids table content at inference,
  and this is the most it allows.
* `rows`: names, types and the first `num_sample_rows` rows of each table as an SQL comment. Uses
  database content, so scores with it are not comparable with schema-only ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from t2s.data.run_record import RunRecord
    from t2s.data.schema import DatabaseSchema
    from t2s.execution.engines import Engine

SCHEMA_FORMATS = ("names", "types", "rows")
DEFAULT_SCHEMA_FORMAT = "types"
DEFAULT_SAMPLE_ROWS = 3

# Everything before this marker depends on the database only: questions on one database share that prompt prefix
# (t2s.decoding.generation prefills it once per database with `prefix_cache`).
QUESTION_MARKER = "### Question:\n"
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
    schema: Mapping[str, Any] | DatabaseSchema,
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
    *,
    database: str | Engine | None = None,
) -> str:
    """The schema slot: a WikiSQL table dict, or a `DatabaseSchema` (with `database`, a file or an engine, for
    sample rows).

    WikiSQL identifiers are always quoted (headers such as `No.` or `Area (km²)` need it, and the
    trained WikiSQL models saw them that way); multi-table schemas quote only where SQLite needs it,
    as their SQL does.
    """
    # Imported here, not at the top: the dataset readers in t2s.data import this module, so a top-level import of
    # t2s.data would make `import t2s.data.prompt` (or t2s.training.training_arguments) fail when it comes first.
    from t2s.data.schema import DatabaseSchema, from_wikisql_table, render_create_tables, sample_rows

    check_schema_format(schema_format)
    with_types = schema_format != "names"
    rows = schema_format == "rows" and num_sample_rows > 0
    if isinstance(schema, DatabaseSchema):
        samples = sample_rows(database, schema, num_sample_rows) if rows and database is not None else None
        return render_create_tables(schema, with_types=with_types, quote_all=False, sample_rows=samples)
    table = schema
    db = from_wikisql_table(table)
    samples = {db.tables[0].name: table["rows"][:num_sample_rows]} if rows else None
    return render_create_tables(db, with_types=with_types, quote_all=True, sample_rows=samples)


def build_prompt(
    schema: Mapping[str, Any] | DatabaseSchema,
    question: str,
    schema_format: str = DEFAULT_SCHEMA_FORMAT,
    num_sample_rows: int = DEFAULT_SAMPLE_ROWS,
    *,
    database: str | Engine | None = None,
) -> str:
    """The model input for one question; the model's completion is the SQL query."""
    return fill_prompt(render_schema(schema, schema_format, num_sample_rows, database=database), question)


def fill_prompt(schema_text: str, question: str) -> str:
    """The template around an already rendered schema: for callers that ask many questions about one database."""
    return PROMPT_TEMPLATE.format(schema=schema_text, question=str(question).strip())


def chat_template(bos_token: bool = False) -> str:
    """Jinja: the canonical prompt, the schema from the system message and the question from the (last) user one, so
    that `apply_chat_template` gives a model exactly the prompt it was trained on. `bos_token` starts it with the
    tokenizer's `<bos>` (for tokenizers that add one to every text, as Gemma's does: a rendered chat template is
    tokenized without special tokens).

    Literal text is written as string expressions (`{{ "…" }}`), so no Jinja whitespace rule can drop a newline.
    """
    import json

    head, rest = PROMPT_TEMPLATE.split("{schema}")
    middle, tail = rest.split("{question}")
    return (
        ("{{ bos_token }}" if bos_token else "") + "{%- set ns = namespace(schema='', question='') -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{%- set ns.schema = message['content'] -%}"
        "{%- elif message['role'] == 'user' -%}{%- set ns.question = message['content'] -%}{%- endif -%}"
        "{%- endfor -%}"
        f"{{{{ {json.dumps(head)} }}}}{{{{ ns.schema }}}}{{{{ {json.dumps(middle)} }}}}"
        f"{{{{ ns.question | trim }}}}{{{{ {json.dumps(tail)} }}}}"
    )


def with_prompt_template(tokenizer):
    """Give `tokenizer` the canonical prompt as its chat template (what a trained adapter or a merged export saves):
    a base model's own template (SmolLM2's ChatML; none for Gemma's pretrained base) renders prompts the adapter never
    saw. Returns the tokenizer."""
    probe = tokenizer(text="x")["input_ids"]
    adds_bos = tokenizer.bos_token_id is not None and bool(probe) and probe[0] == tokenizer.bos_token_id
    tokenizer.chat_template = chat_template(bos_token=adds_bos)
    return tokenizer


@dataclass(frozen=True)
class PromptSettings:
    """How a model's prompts were built (recorded in its run record, `t2s_run.json`): what the schema slot shows,
    and the linking that chose it (`t2s.data.linking`: stored values the question mentions, the `prune_tables`
    tables it refers to most, a character budget). A model asked with other settings scores lower without any
    error, so whatever asks it reads these first."""

    schema_format: str = DEFAULT_SCHEMA_FORMAT
    link_values: bool = False
    prune_tables: int = 0
    schema_max_chars: int = 0

    @classmethod
    def from_run(cls, run: RunRecord) -> PromptSettings:
        """What a run record says the model learned (linking fields are recorded only when on)."""
        return cls(
            schema_format=run.schema_format or DEFAULT_SCHEMA_FORMAT,
            link_values=bool(run.link_values),
            prune_tables=int(run.prune_tables or 0),
            schema_max_chars=int(run.schema_max_chars or 0),
        )

    @property
    def linking(self) -> bool:
        return self.link_values or bool(self.prune_tables) or bool(self.schema_max_chars)

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))

    def differences(self, other: PromptSettings) -> list[tuple[str, Any, Any]]:
        """(name, self's value, other's value) for each setting that differs."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
