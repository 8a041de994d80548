"""Answer a question about a database: the prompt the model learned, from the database's own schema; its SQL; the
result.

The prompt is built as in training: the schema slot in the model's recorded settings (`PromptSettings`, read from its
run record), from the database's catalogue (tables, types, primary and foreign keys) in its engine's dialect, and,
when the model learned linked prompts, linked to each question as training linked them (the stored values it
mentions, the tables it refers to most, the character budget; `t2s.data.spider.linked_schema`). The SQL runs in the
engine's sandbox.

The answer is decoded as `evaluate` decodes (`t2s.decoding.predict`), with the choices it offers (`Decoding`):
schema-constrained decoding and column scoping, execution-guided decoding, voting. The default is the most accurate
choice that still answers interactively on a CPU (docs/decoding.md has the measured table).
"""

from __future__ import annotations

from t2s.data.prompt import DEFAULT_SAMPLE_ROWS, PromptSettings, fill_prompt, render_schema
from t2s.data.schema import DatabaseSchema
from t2s.data.spider import PromptCache, linked_schema
from t2s.decoding.settings import GREEDY, Decoding
from t2s.execution.engines import Engine
from t2s.execution.sandbox import Execution

DEFAULT_ASK_DECODING = Decoding(constrained=True, scoped=True)
# What the page offers, by name (the default first): the settings measured in docs/decoding.md.
ASK_CHOICES = {
    d.describe(): d
    for d in (
        DEFAULT_ASK_DECODING, GREEDY, Decoding(constrained=True),
        Decoding(constrained=True, scoped=True, execution_guided=True),
        Decoding(constrained=True, scoped=True, num_samples=4),
    )
}  # fmt: skip


class Asker:
    """A model and a database; `ask(question)` returns the SQL and its execution."""

    def __init__(
        self,
        model,
        tokenizer,
        engine: Engine,
        schema: DatabaseSchema,
        *,
        prompt_settings: PromptSettings | None = None,
        max_new_tokens: int = 128,
        timeout_s: float = 5.0,
        decoding: Decoding = DEFAULT_ASK_DECODING,
    ) -> None:
        self.model, self.tokenizer, self.engine, self.schema = model, tokenizer, engine, schema
        self.max_new_tokens, self.timeout_s, self.decoding = max_new_tokens, timeout_s, decoding
        self.settings = prompt_settings or PromptSettings()
        # Linking reads the database's text values once (the cache keeps them), as data loading does.
        s = self.settings
        self._cache = PromptCache(s.link_values, s.prune_tables, s.schema_max_chars)
        # Without linking the schema slot is the same for every question: rendered once (sample rows from the engine).
        self.schema_text = (
            None if s.linking else render_schema(schema, s.schema_format, DEFAULT_SAMPLE_ROWS, database=engine)
        )

    def prompt(self, question: str) -> str:
        """The model's input for `question`, exactly as its training data was built."""
        text = self.schema_text
        if text is None:
            text = linked_schema(
                self.schema, question, self.engine, self.settings.schema_format, DEFAULT_SAMPLE_ROWS,
                self._cache,
            )  # fmt: skip
        return fill_prompt(text, question)

    def ask(self, question: str) -> tuple[str, Execution]:
        from t2s.decoding.predict import predict
        from t2s.decoding.settings import GenerationSettings

        settings = GenerationSettings(max_new_tokens=self.max_new_tokens, batch_size=1)
        # One record, as a dataset's: it carries the open engine (execution-guided decoding and voting run their
        # candidates on it) and the schema (the grammar and the scoping are built from it).
        record = {
            "example_id": "asked", "question": question, "db_id": self.schema.db_id, "gold_sql": None,
            "prompt": self.prompt(question), "engine": self.engine, "schema": self.schema,
        }  # fmt: skip
        (answer,) = predict(self.model, self.tokenizer, [record], settings, self.decoding, show_progress=False)
        sql = answer["prediction"]
        return sql, self.engine.run(sql, timeout_s=self.timeout_s)
