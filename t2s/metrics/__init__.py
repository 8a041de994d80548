"""Hugging Face `evaluate` modules shipped with t2s.

    import evaluate
    from t2s.metrics import EXECUTION_ACCURACY
    metric = evaluate.load(EXECUTION_ACCURACY)     # from any directory, offline

`EXECUTION_ACCURACY` is the installed module's folder, so the call does not depend on the working directory.
"""

from pathlib import Path

EXECUTION_ACCURACY = str(Path(__file__).resolve().parent / "execution_accuracy")

__all__ = ["EXECUTION_ACCURACY"]
