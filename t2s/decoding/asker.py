"""Answer a question about a database: the prompt the model learned, from the database's own schema; its SQL; the
result.

The prompt is built as in training: the schema slot in the model's recorded settings (`PromptSettings`, read from its
run record), from the database's catalogue (tables, types, primary and foreign keys) in its engine's dialect, and,
when the model learned linked prompts, linked to each question as training linked them (the stored values it
mentions, the tables it refers to most, the character budget; `t2s.data.spider.linked_schema`). The SQL runs in the
engine's sandbox.

The answer is decoded as `evaluate` decodes (`t2s.decoding.predict`), with the choices it offers (`AskDecoding`):
schema-constrained decoding and column scoping, execution-guided decoding, voting. The default is the most accurate
choice that still answers interactively on a CPU (docs/decoding.md has the measured table).
"""

from __future__ import annotations

from dataclasses import dataclass

from t2s.data.prompt import DEFAULT_SAMPLE_ROWS, PromptSettings, fill_prompt, render_schema
from t2s.data.schema import DatabaseSchema
from t2s.data.spider import PromptCache, linked_schema
from t2s.decoding.settings import check_decoding
from t2s.execution.engines import Engine
from t2s.execution.sandbox import Execution


@dataclass(frozen=True)
class AskDecoding:
    """How `ask` and the page decode: the same choices as `t2s evaluate`'s decoding flags (docs/decoding.md)."""

    constrained: bool = True  # the database's schema grammar (`t2s.decoding.constrained`)
    scoped: bool = True  # column scoping inside the grammar (`t2s.decoding.scope`); needs `constrained`
    execution_guided: bool = False  # beam search when the answer fails or returns no rows
    num_candidates: int = 4  # beams of execution-guided decoding
    num_samples: int = 1  # > 1: voting among the answer and num_samples - 1 samples
    sample_temperature: float = 0.7

    def __post_init__(self) -> None:
        check_decoding(
            constrained=self.constrained, scoped=self.scoped, num_samples=self.num_samples,
            sample_temperature=self.sample_temperature,
        )  # fmt: skip
        if self.num_candidates < 2 and self.execution_guided:
            raise ValueError(f"execution-guided decoding needs at least 2 beams, not {self.num_candidates}")

    def describe(self) -> str:
        parts = ["column-scoped constrained" if self.scoped else "constrained" if self.constrained else "greedy"]
        if self.execution_guided:
            parts.append(f"execution-guided ({self.num_candidates} beams)")
        if self.num_samples > 1:
            parts.append(f"voting ({self.num_samples} answers)")
        return ", ".join(parts)


GREEDY = AskDecoding(constrained=False, scoped=False)
DEFAULT_ASK_DECODING = AskDecoding()
# What the page offers, by name (the default first): the settings measured in docs/decoding.md.
ASK_CHOICES = {
    d.describe(): d
    for d in (
        DEFAULT_ASK_DECODING, GREEDY, AskDecoding(scoped=False), AskDecoding(execution_guided=True),
        AskDecoding(num_samples=4),
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
        decoding: AskDecoding = DEFAULT_ASK_DECODING,
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

        d = self.decoding
        settings = GenerationSettings(max_new_tokens=self.max_new_tokens, batch_size=1)
        # One record, as a dataset's: it carries the open engine (execution-guided decoding and voting run their
        # candidates on it) and the schema (the grammar and the scoping are built from it).
        record = {
            "example_id": "asked", "question": question, "db_id": self.schema.db_id, "gold_sql": None,
            "prompt": self.prompt(question), "engine": self.engine, "schema": self.schema,
        }  # fmt: skip
        (answer,) = predict(
            self.model, self.tokenizer, [record], settings, execution_guided=d.execution_guided,
            num_candidates=d.num_candidates, constrained=d.constrained, scoped=d.scoped, num_samples=d.num_samples,
            sample_temperature=d.sample_temperature, show_progress=False,
        )  # fmt: skip
        sql = answer["prediction"]
        return sql, self.engine.run(sql, timeout_s=self.timeout_s)
