"""Run SQL safely and judge its result: the SQLite sandbox, each dataset's result semantics, and scoring.

The base of t2s: the data readers check gold SQL with it, decoding runs candidates through it (execution-guided
decoding), the `evaluate` metric, the evaluation commands and the GRPO reward score with it.
"""
