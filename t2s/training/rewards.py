"""Rewards for GRPO, in TRL's reward-function signature, from the same sandbox and semantics as the metric.

TRL calls a reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`: one value per
generated completion, with every dataset column except `prompt` and `completion` repeated for each completion,
plus TRL's own keywords (`trainer_state`, `log_extra`, `log_metric`). The gold query therefore travels as
`gold_sql` (a column named `completion` never reaches a reward), and the database as `table` (WikiSQL) or
`db_path` (a database), exactly as `t2s.execution.scoring.score_records` reads them, and the results are compared
under the semantics the dataset's reader declared (its `semantics` column) or the one the reward was made with.

A completion with more than one statement is rejected (0.0) for every dataset, as the metric rejects it. Spider's
official evaluator keeps only the first statement (so `SELECT …; DROP TABLE t` would score as `SELECT …`); a reward
that allowed this would teach a model to append statements (docs/metric.md lists this difference).

A completion is read by the rule every command reads answers with (`t2s.decoding.answer`: its first line, or the
content of a Markdown fence), so the reward sees what the metric will see. A group of `num_generations` completions shares
one gold query: the gold result is computed once per example and cached, not once per completion.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from t2s.decoding.answer import answer_sql
from t2s.execution.engines import Engine, EngineError, database_for, redact
from t2s.execution.engines.sqlite import table_engine
from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Status
from t2s.execution.scoring import GoldResult, Outcome, compare_with_gold, default_semantics, run_gold
from t2s.execution.semantics import Semantics
from t2s.execution.tables import table_fingerprint

DEFAULT_PARTIAL_CREDIT = 0.1  # Arctic-Text2SQL-R1's value: a query that runs is better than one that does not
GOLD_CACHE_SIZE = 4096
GOLD_RETRY_FACTOR = 4


def completion_text(completion: Any) -> str:
    """The SQL of a completion: a string, or a conversation whose last message is the answer (chat datasets)."""
    if isinstance(completion, str):
        text = completion
    elif isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        text = str(completion[-1].get("content") or "")
    else:
        text = str(completion or "")
    return answer_sql(text)


class ExecutionReward:
    """1.0 when the result matches the gold result under the dataset's semantics, `partial_credit` when the query
    runs but answers differently, 0.0 for an error, a timeout, a rejected statement or an empty completion.

    An instance is a TRL reward function (its `__name__` names the reward in TRL's logs).
    """

    def __init__(
        self,
        partial_credit: float = DEFAULT_PARTIAL_CREDIT,
        *,
        keep_distinct: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_rows: int = DEFAULT_MAX_ROWS,
        name: str = "execution_reward",
        allow_privileged: bool = False,
        semantics: Semantics | str | None = None,
    ) -> None:
        """`semantics`: the comparison rules for every completion; None reads each example's `semantics` column
        (t2s's readers set it), and without one falls back to the metric's deprecated default (WikiSQL's rules for a
        `table`, Spider's for a `db_path`) with a warning."""
        if not 0.0 <= partial_credit < 1.0:
            raise ValueError(f"partial_credit={partial_credit} must be in [0, 1): a wrong answer is worth less")
        self.partial_credit = partial_credit
        self.keep_distinct = keep_distinct
        self.limits = {"timeout_s": timeout_s, "max_rows": max_rows}
        self.__name__ = name
        self.allow_privileged = allow_privileged
        self.semantics = None if semantics is None else Semantics.parse(semantics)
        self._gold_cache: OrderedDict[tuple, GoldResult] = OrderedDict()
        self._gold_lock = threading.Lock()
        self.gold_failures: Counter[str] = Counter()  # completions left without a reward, by gold query
        self.database_failures: Counter[str] = Counter()  # completions whose database could not be opened
        self.scored = 0  # completions this process scored (each GRPO process scores the completions it generated)
        self._tables: dict[tuple, Mapping[str, Any]] = {}
        # called with (TRL's trainer state, example ids, completions, rewards) after each call: a run's rollout log
        self.record = None

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        gold_sql: Sequence[str] | None = None,
        table: Sequence[Mapping[str, Any]] | None = None,
        db_path: Sequence[str] | None = None,
        semantics: Sequence[str] | None = None,
        **columns: Any,
    ) -> list[float]:
        if gold_sql is None:
            raise ValueError("execution_reward needs the dataset's gold_sql column (t2s records carry it)")
        if (table is None) == (db_path is None):
            raise ValueError("execution_reward needs exactly one of the columns table (WikiSQL) or db_path (SQLite)")
        self.scored += len(completions)
        rewards = [
            self.score_one(
                completion, gold, table[i] if table is not None else None, db_path and db_path[i],
                semantics=semantics[i] if semantics is not None else None,
            )
            for i, (completion, gold) in enumerate(zip(completions, gold_sql, strict=True))
        ]  # fmt: skip
        if self.record is not None:
            self.record(columns.get("trainer_state"), columns.get("example_id"), completions, rewards)
        return rewards

    def _semantics(self, given: str | None, table) -> Semantics:
        if self.semantics is not None:
            return self.semantics
        if given:
            return Semantics.parse(given)
        fallback = default_semantics(table)
        warnings.warn(
            f"execution_reward: the examples have no 'semantics' column and the reward was made without semantics=, "
            f"so {fallback.value!r} applies (the metric's deprecated default)",
            FutureWarning,
            stacklevel=4,
        )
        return fallback

    def outcome(
        self, completion: Any, gold_sql: str, table=None, db_path: str | None = None, *, semantics: str | None = None
    ) -> Outcome:
        """The metric's outcome for one completion (`t2s.execution.scoring.Outcome`)."""
        sql = completion_text(completion)
        if not sql:
            return Outcome.EMPTY
        try:
            conn, gold = self._connection_and_gold(gold_sql, table, db_path, self._semantics(semantics, table))
        except EngineError as e:
            name = redact(str(db_path))
            if not self.database_failures[name]:
                warnings.warn(f"{e}: its completions get no reward", stacklevel=3)
            self.database_failures[name] += 1
            return Outcome.GOLD_ERROR
        return compare_with_gold(conn, sql, gold, **self.limits).outcome

    def score_one(
        self, completion: Any, gold_sql: str, table=None, db_path: str | None = None, *, semantics: str | None = None
    ) -> float | None:
        """The reward, or None (TRL's "no reward": the completion adds no gradient) when the gold query itself
        fails; such completions are counted in `gold_failures` and the first of each gold query is reported."""
        outcome = self.outcome(completion, gold_sql, table, db_path, semantics=semantics)
        if outcome == Outcome.GOLD_ERROR:
            if db_path and self.database_failures[redact(str(db_path))]:
                return None
            if not self.gold_failures[gold_sql]:
                gold = self._connection_and_gold(gold_sql, table, db_path, self._semantics(semantics, table))[1]
                warnings.warn(
                    f"gold query {gold_sql!r} failed on its database ({gold.execution.status}: {gold.execution.error}), "
                    "also with a longer budget: its completions get no reward (check the example, e.g. check_gold)",
                    stacklevel=2,
                )
            self.gold_failures[gold_sql] += 1
            return None
        return 1.0 if outcome == Outcome.CORRECT else self.partial_credit if outcome == Outcome.WRONG_RESULT else 0.0

    def _connection_and_gold(self, gold_sql: str, table, db_path: str | None, semantics: Semantics):
        if db_path:
            key: tuple = ("database", str(db_path))
        else:
            key = ("table", table_fingerprint(table))
            self._tables.setdefault(key, table)
        return self._connect(key), self._gold(key, gold_sql, semantics)

    def _connect(self, key: tuple) -> Engine:
        # Both read-only and cached: one engine per database and thread, one in-memory database per WikiSQL table.
        if key[0] == "database":
            return database_for(key[1], allow_privileged=self.allow_privileged)
        return table_engine(self._tables[key])

    def _gold(self, key: tuple, gold_sql: str, semantics: Semantics) -> GoldResult:
        """The gold result, computed once per example; not kept when the server could not be reached (tried again
        with the next completion)."""
        entry = (key, semantics, gold_sql)
        with self._gold_lock:
            if entry in self._gold_cache:
                self._gold_cache.move_to_end(entry)
                return self._gold_cache[entry]
        gold = self._run_gold(key, gold_sql, semantics)
        if not gold.execution.lost_connection:
            with self._gold_lock:
                self._gold_cache[entry] = gold
                while len(self._gold_cache) > GOLD_CACHE_SIZE:
                    self._gold_cache.popitem(last=False)
        return gold

    def _run_gold(self, key: tuple, gold_sql: str, semantics: Semantics) -> GoldResult:
        options = {"semantics": semantics, "keep_distinct": self.keep_distinct}
        gold = run_gold(self._connect(key), gold_sql, **options, **self.limits)
        if gold.execution.status == Status.TIMEOUT:
            # A gold query that ran past the budget on a loaded CPU gets one more try with four times the time.
            limits = {**self.limits, "timeout_s": GOLD_RETRY_FACTOR * self.limits["timeout_s"]}
            gold = run_gold(self._connect(key), gold_sql, **options, **limits)
        return gold


def execution_reward(
    prompts: Sequence[Any] | None = None,
    completions: Sequence[Any] = (),
    gold_sql: Sequence[str] | None = None,
    **columns: Any,
) -> list[float]:
    """The default execution reward (1.0 / 0.1 / 0.0) as a plain function, for `GRPOTrainer(reward_funcs=...)`."""
    return _DEFAULT(prompts, completions, gold_sql, **columns)


_DEFAULT = ExecutionReward()
