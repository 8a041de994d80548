"""Answer a question about a database: the canonical prompt from its own schema, greedy SQL, its result.

The prompt is built exactly as in training, from the database's catalogue (tables, types, primary and foreign
keys); the SQL runs in the metric's sandbox on a read-only connection.
"""

from __future__ import annotations

import sqlite3

from t2s.data.prompt import fill_prompt, render_schema
from t2s.data.schema import DatabaseSchema
from t2s.execution.sandbox import Execution, run_query


class Asker:
    """A model and a database; `ask(question)` returns the SQL and its execution."""

    def __init__(
        self,
        model,
        tokenizer,
        conn: sqlite3.Connection,
        schema: DatabaseSchema,
        *,
        schema_format: str = "types",
        max_new_tokens: int = 128,
        timeout_s: float = 5.0,
    ) -> None:
        self.model, self.tokenizer, self.conn = model, tokenizer, conn
        self.max_new_tokens, self.timeout_s = max_new_tokens, timeout_s
        # Rendered once for every question; sample rows (schema_format rows) come from the open connection, so
        # they are there for CSVs too.
        self.schema_text = render_schema(schema, schema_format, database=conn)

    def ask(self, question: str) -> tuple[str, Execution]:
        # Looked up at call time: tests stand in for the model's answer by patching the generation module.
        from t2s.decoding import generation
        from t2s.decoding.settings import GenerationSettings

        prompt = fill_prompt(self.schema_text, question)
        settings = GenerationSettings(max_new_tokens=self.max_new_tokens, batch_size=1)
        sql = generation.generate_sql(self.model, self.tokenizer, [prompt], settings)[0][0]
        return sql, run_query(self.conn, sql, timeout_s=self.timeout_s, rewrite_double_quotes=False)
