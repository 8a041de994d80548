"""What each engine's reader (`parse_postgres`, `parse_duckdb`, `parse_mysql`) reports to the gate (`gate.py`): the
relations, functions and CTEs of one reading query, or why it is not one."""

from __future__ import annotations

from dataclasses import dataclass, field


class GateError(Exception):
    """Why a query may not run: `status` is `rejected` (not a reading query) or `exec_error` (not valid SQL)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Reading:
    """What an engine's parser found in one reading query: each relation as (qualifier, name) with the qualifier
    lower-cased and "" when unqualified, each function called, and the names the query's CTEs define."""

    relations: list[tuple[str, str]] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)


def refuse(what: str) -> GateError:
    return GateError("rejected", f"{what} is not allowed: only reading queries are evaluated")
