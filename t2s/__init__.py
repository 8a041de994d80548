"""t2s: fine-tune language models to write SQL with TRL, and score them by executing it."""

__version__ = "0.1.0.dev0"

from t2s import quiet as _quiet  # noqa: E402,F401  (filters one harmless bitsandbytes warning; see t2s/quiet.py)
