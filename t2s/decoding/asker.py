"""Answer a question about a database: the canonical prompt from its own schema, greedy SQL, its result.

The prompt is built exactly as in training, from the database's catalogue (tables, types, primary and foreign
keys), in its engine's dialect; the SQL runs in the engine's sandbox.
"""

from __future__ import annotations

from t2s.data.prompt import fill_prompt, render_schema
from t2s.data.schema import DatabaseSchema
from t2s.execution.engines import Engine
from t2s.execution.sandbox import Execution


class Asker:
    """A model and a database; `ask(question)` returns the SQL and its execution."""

    def __init__(
        self,
        model,
        tokenizer,
        engine: Engine,
        schema: DatabaseSchema,
        *,
        schema_format: str = "types",
        max_new_tokens: int = 128,
        timeout_s: float = 5.0,
    ) -> None:
        self.model, self.tokenizer, self.engine = model, tokenizer, engine
        self.max_new_tokens, self.timeout_s = max_new_tokens, timeout_s
        # Rendered once for every question; sample rows (schema_format rows) come from the engine.
        self.schema_text = render_schema(schema, schema_format, database=engine)

    def ask(self, question: str) -> tuple[str, Execution]:
        # Looked up at call time: tests stand in for the model's answer by patching the generation module.
        from t2s.decoding import generation
        from t2s.decoding.settings import GenerationSettings

        prompt = fill_prompt(self.schema_text, question)
        settings = GenerationSettings(max_new_tokens=self.max_new_tokens, batch_size=1)
        sql = generation.generate_sql(self.model, self.tokenizer, [prompt], settings)[0][0]
        return sql, self.engine.run(sql, timeout_s=self.timeout_s)
