"""t2s: fine-tune language models to write SQL with TRL, and score them by executing it."""

__version__ = "0.1.0.dev0"
