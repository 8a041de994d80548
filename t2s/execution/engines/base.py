"""What every database engine gives t2s: its catalogue, its dialect, and one sandboxed way to run a query.

A database is named by an SQLite file path, a DuckDB file path (`.duckdb`/`.ddb`), or a URL in SQLAlchemy's form
(`postgresql://…`, `postgresql+psycopg://…`, `mysql+pymysql://…`, `duckdb:///file.duckdb`, `sqlite:///file.sqlite`).
`${VAR}` in a URL is read from the environment when the connection is made, so a record, a recipe or a model card
can carry the URL without its password; wherever a URL is shown, its password is hidden (`redact`).

Drivers give values in their own types (PostgreSQL `Decimal` for `numeric` and `avg`, `datetime.date` for dates,
`bool`); `t2s.execution.rows.normalize_value` turns them into what SQLite would return (float, ISO text, 0/1), so
one result semantics compares results on every engine (docs/metric.md).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from t2s.execution.sandbox import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Execution
from t2s.runtime import UserError

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class EngineError(UserError):
    """A database cannot be opened or described: the message names it (password hidden) and what to do."""


@dataclass
class CatalogueColumn:
    name: str
    type: str  # as the engine shows it (`integer`, `character varying(40)`, `DOUBLE`…)


@dataclass
class CatalogueTable:
    name: str
    columns: list[CatalogueColumn]
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)  # (column, parent table, parent column)


def is_url(name: str) -> bool:
    return bool(URL_RE.match(str(name)))


def expand_env(url: str) -> str:
    """`${VAR}` replaced by the environment's value, percent-encoded (a password with `@`, `/` or `:` stays one
    field of the URL); a missing variable is an error that names it."""
    from urllib.parse import quote

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise EngineError(f"{redact(url)}: the environment variable {name} is not set; export it first")
        return quote(os.environ[name], safe="")

    return _ENV_RE.sub(value, url)


def parse_url(name: str, label: str | None = None):
    """SQLAlchemy's URL of a database name, `${VAR}`s filled in; a malformed URL (a port that is not a number, no
    host) is an error that names it, password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    label = label or redact(name)
    check_password_spelling(name)
    try:
        url = make_url(expand_env(name))
        url.port  # noqa: B018 - SQLAlchemy reads the port lazily: a bad one fails here, not at connect time
    except (ArgumentError, ValueError) as e:
        raise EngineError(f"{label}: not a valid database URL ({_hide(str(e), name)}); write "
                          "scheme://user:password@host:port/database, port a number") from None  # fmt: skip
    return url


def _hide(text: str, name: str) -> str:
    """`text` with any piece of the URL's password removed (a parser's message may quote the URL)."""
    hidden = redact(name)
    return text.replace(name, hidden) if hidden != name else text


def _literal_password_span(name: str) -> tuple[int, int] | None:
    """Where a URL's password lies, written out (not a `${VAR}`): from the first `:` after the user name to the last
    `@` (a host holds no `@`; a password may hold any character). None when the URL has no literal password."""
    if not is_url(name):
        return None
    start = name.index("://") + 3
    at = name.rfind("@")
    colon = name.find(":", start, at) if at >= start else -1
    if colon < 0 or _ENV_RE.fullmatch(name[colon + 1 : at]):
        return None
    return colon + 1, at


def redact(name: str) -> str:
    """A database name fit to show: a URL's password replaced by `***`, whatever characters it holds (a `${VAR}`
    stays as written); a URL without a password is shown as it is."""
    name = str(name)
    span = _literal_password_span(name)
    return name if span is None else name[: span[0]] + "***" + name[span[1] :]


def check_password_spelling(name: str) -> None:
    """A literal password with `@`, `/`, `?` or `#` makes the URL mean something else to its parser (a piece of
    the password read as the host): refused, with the two spellings that work."""
    span = _literal_password_span(str(name))
    if span is not None and any(c in name[span[0] : span[1]] for c in "@/?#"):
        raise EngineError(
            f"{redact(name)}: the password holds '@', '/', '?' or '#', which a URL reads as the end of the password: "
            "percent-encode them (%40, %2F, %3F, %23), or put the password in an environment variable and write "
            "${VAR} (t2s encodes it)"
        )


class Engine(ABC):
    """One database on one engine. `run` never raises: every failure is an `Execution` status, as on SQLite."""

    kind: ClassVar[str]  # sqlite, postgresql, mysql, duckdb
    dialect: ClassVar[str]  # sqlglot's name for the SQL it speaks
    display: ClassVar[str]  # the dialect's name in prompts ("PostgreSQL")

    def __init__(self, name: str) -> None:
        self.name = str(name)
        self.label = redact(self.name)

    @abstractmethod
    def run(self, sql: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS) -> Execution:
        """Execute one untrusted query in this engine's sandbox."""

    @abstractmethod
    def catalogue(self) -> list[CatalogueTable]:
        """The user's tables, their columns and types as the engine shows them, primary and foreign keys."""

    @abstractmethod
    def sample_rows(self, table: str, n: int) -> list[tuple]:
        """The first `n` rows of one of the catalogue's tables (for `schema_format='rows'`)."""

    def write_warning(self) -> str | None:
        """A loud sentence when a privileged account was accepted (`allow_privileged`), else None."""
        return None

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"
