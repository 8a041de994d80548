"""Execution accuracy: run predicted and gold SQL on the real table and compare the results.

Load it offline from its folder: `evaluate.load("t2s/metrics/execution_accuracy")`. The
sandbox and the comparison live in `t2s.execution.sandbox`, so training-time evaluation, execution-
guided decoding and this metric all judge SQL the same way.
"""

import warnings

import datasets
import evaluate

from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S
from t2s.execution.scoring import ScoringOptions, default_semantics, score_with, summarise

_CITATION = """\
@article{zhongSeq2SQL2017,
  author  = {Victor Zhong and Caiming Xiong and Richard Socher},
  title   = {Seq2SQL: Generating Structured Queries from Natural Language using Reinforcement Learning},
  journal = {CoRR},
  volume  = {abs/1709.00103},
  year    = {2017}
}
@article{wang2018execution,
  author  = {Chenglong Wang and Kedar Tatwawadi and Marc Brockschmidt and Po-Sen Huang and Yi Mao
             and Oleksandr Polozov and Rishabh Singh},
  title   = {Robust Text-to-SQL Generation with Execution-Guided Decoding},
  journal = {CoRR},
  volume  = {abs/1807.03100},
  year    = {2018}
}
@inproceedings{zhong2020semantic,
  author    = {Ruiqi Zhong and Tao Yu and Dan Klein},
  title     = {Semantic Evaluation for Text-to-SQL with Distilled Test Suites},
  booktitle = {EMNLP},
  year      = {2020}
}
"""

_DESCRIPTION = """\
Execution accuracy executes each predicted SQL query and its gold query against the same database
and counts the prediction correct when both return the same result, under the dataset's official
semantics. WikiSQL (`tables`: a table materialised as the official evaluator's database): rows as
multisets (in order if the gold query has ORDER BY), numbers by value, text case-insensitively, an
empty or all-NULL gold result matched by an empty or all-NULL prediction. Spider and other SQLite
files (`db_paths`): the official Spider execution match (test-suite-sql-eval, its defaults): DISTINCT
removed from both queries, rows as multisets under any permutation of the columns, ordered only if
the gold query has ORDER BY, values exactly as SQLite returns them (`3 == 3.0`, no case folding),
double quotes left to SQLite. Model SQL runs in the same sandbox for both: one read-only statement,
SQLite's authorizer, read-only connections, a time budget and a row cap.
Databases on other engines (`databases`: PostgreSQL or MySQL URLs, DuckDB files) are scored with the same Spider
execution match; each engine runs the query in its own sandbox (one read-only query parsed in its dialect, a
read-only transaction always rolled back, the server's time limit, row and byte caps), and values are made what
SQLite would return before comparing: DECIMAL as int when whole else float, booleans as 0/1, dates and times as ISO
text, intervals, UUIDs, arrays and JSON as text.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): model SQL, untrusted.
    references (`list` of `str`): gold SQL.
    tables (`list` of `dict`, optional): one WikiSQL table dict (`id`, `header`, `types`, `rows`) per
        example. Text compares case-insensitively, as in the official evaluator.
    db_paths (`list` of `str`, optional): one SQLite file per example (Spider-style databases), opened
        read-only; scored with Spider's official execution match. Pass `tables` or `db_paths`, not both.
    databases (`list` of `str`, optional): one database per example on any engine: an SQLite or DuckDB file, or a
        URL (`postgresql://…`, `mysql+pymysql://…`, `${VAR}` read from the environment); `db_paths` generalised.
    semantics (`str`): the comparison rules, "wikisql" or "spider" (above), for any kind of database. Name it: the
        default, kept for backward compatibility and deprecated (a FutureWarning says so), is "wikisql" with
        `tables` and "spider" with `db_paths`/`databases`, which gives a user's own databases Spider's rules without
        anyone choosing them. t2s's dataset readers declare theirs in the records' `semantics` column.
    keep_distinct (`bool`, default False): Spider semantics only: keep DISTINCT in both queries.
    timeout (`float`, default 2.0): seconds each query may run.
    max_rows (`int`, default 100000): rows fetched per query; more (or more than 32 MB of values) counts as `too_large`.
    num_proc (`int`, optional): worker processes.
    allow_privileged (`bool`, default False): accept a server URL whose account may do more than read (a
        superuser, FILE, any write privilege). Refused by default: such a database's examples are scored as
        gold errors, with the reason (docs/engines.md).
    return_details (`bool`, default False): add one dict per example under `details`.
Returns:
    execution_accuracy (`float`): correct / scored examples, empty-gold examples included (official protocol).
    execution_accuracy_nonempty_gold (`float`): the same over examples whose gold result is not empty.
    semantics (`str`): "wikisql" or "spider", the comparison rules applied.
    outcomes (`dict`): counts of correct, wrong_result, exec_error, timeout, too_large, rejected, empty.
    num_examples, num_scored, num_empty_gold, gold_errors (`int`): gold queries that fail are data errors,
        left out of every denominator.
    details (`list`, with return_details=True): outcome, error, gold_empty, prediction_rows, gold_rows (20 rows at most),
        prediction_columns, gold_columns (the column names of each result, for display).
Examples:
    >>> metric = evaluate.load("t2s/metrics/execution_accuracy")
    >>> table = {"id": "1-1-1", "header": ["Player", "No."], "types": ["text", "real"], "rows": [["Ann", "7"]]}
    >>> metric.compute(predictions=['SELECT "Player" FROM "table_1_1_1" WHERE "No." = 7.0'],
    ...                references=['SELECT "Player" FROM "table_1_1_1" WHERE "No." = 7'],
    ...                tables=[table], semantics="wikisql")["execution_accuracy"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExecutionAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/salesforce/WikiSQL", "https://arxiv.org/abs/1807.03100"],
        )

    # Model output is untrusted and arrives as anything: None, numbers, lone surrogates that Arrow cannot store. The
    # metric's features are strings, so inputs are made text before `evaluate` stores them, and scored as text.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (any values: they are made text)."""
        return super().add_batch(predictions=_as_text(predictions), references=_as_text(references), **kwargs)

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score the predictions (any values: they are made text); see the arguments below."""
        return super().compute(predictions=_as_text(predictions), references=_as_text(references), **kwargs)

    def _compute(
        self,
        predictions,
        references,
        tables=None,
        db_paths=None,
        databases=None,
        timeout=DEFAULT_TIMEOUT_S,
        max_rows=DEFAULT_MAX_ROWS,
        num_proc=None,
        return_details=False,
        keep_distinct=False,
        allow_privileged=False,
        semantics=None,
    ):
        if databases is not None and db_paths is not None:
            raise ValueError("pass databases= or db_paths= (its older name), not both")
        db_paths = databases if databases is not None else db_paths
        if semantics is None:
            semantics = default_semantics(tables)
            warnings.warn(
                f"execution_accuracy: no semantics= given, so {semantics.value!r} applies (the default for "
                f"{'tables' if tables is not None else 'databases'}); name it: the default will go",
                FutureWarning,
                stacklevel=2,
            )
        options = ScoringOptions(semantics, bool(keep_distinct), timeout, max_rows, bool(allow_privileged))
        details = score_with(options, predictions, references, tables, db_paths, num_proc=num_proc)
        result = summarise(details)
        result["semantics"] = options.semantics.value
        if return_details:
            result["details"] = [d.as_dict() for d in details]
        return result


def _as_text(values):
    """None stays empty (`""`: the outcome `empty`), anything else becomes its text, UTF-8 encodable."""
    if values is None:
        return None
    return [
        "" if v is None else (v if isinstance(v, str) else str(v)).encode("utf-8", "replace").decode("utf-8")
        for v in values
    ]
