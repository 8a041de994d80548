"""t2s: fine-tune language models to write SQL with TRL, and score them by executing it.

The package reads as the pipeline (docs/architecture.md): `execution` (the SQL sandbox and each dataset's result
semantics) → `data` (readers, schema, the canonical prompt) → `decoding` (models and generation) → `publish` (run
record, model card, Hub, export) → `evaluation` (scoring runs, paired comparison, error analysis) → `training` (SFT,
GRPO). The modules directly in `t2s/` are the commands; `t2s.cli` is the `t2s` console command over them.
"""

__version__ = "0.1.0.dev0"
