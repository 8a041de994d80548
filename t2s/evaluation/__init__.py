"""Evaluate a model: generate or read its SQL, score it with the execution metric, compare two runs (McNemar), and
explain the errors (per-dataset classifiers over one shared report)."""
