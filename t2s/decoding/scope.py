"""Column scoping for constrained decoding: a column qualified by a table or alias must belong to that table, and an
unqualified one to a table in scope (PICARD's incremental check, Scholak et al. 2021, over the text written so far).

The grammar (`t2s.decoding.constrained`) is context-free: it knows the database's names, not which table has which
column, and SQL names the tables (FROM) after the columns (SELECT). `ScopeChecker.consistent(text)` reads a partial
query and says whether it is already wrong, judging only what is decided:

* `T2.na…` or `singer.na…` where `T2`/`singer` is known: the column written so far must be (the start of) a column of
  that table; once a scope's FROM clause has ended, an undeclared qualifier is wrong too, as is a table name that
  FROM does not name.
* An alias declared for a table (`JOIN concert AS T2`) must have every column the query already asked of it
  (`SELECT T2.name …`); and since SQL writes aliases after the columns, a table is judged as it is named: in a FROM
  clause whose earlier tables took `T1`, `T2`… in order (the convention of Spider's gold SQL, which a trained model
  follows), the next table is the next `Tn`, and a table that lacks a column already asked of that alias is wrong.
* When a scope's FROM clause ends (a WHERE, GROUP BY… or the end of the query; also a word being written that can
  only become one of those keywords), every column written before it must resolve; after it, every column as it is
  written. An unqualified column resolves to a table of its scope or an enclosing one, or to an output alias, and a
  finished one must belong to exactly one table of the first scope that has it (SQLite refuses an ambiguous name).
  An ON clause is judged at the end of FROM, since SQLite lets it name a table joined after it.

Nested queries (`IN (SELECT …)`, `FROM (SELECT …)`) are scopes of their own; a derived table's columns are unknown and
never judged. Names are compared in lower case: the grammar has already checked their spelling. The check runs on
the likeliest tokens the grammar allows at each step (`GrammarConstrainedLogits` with `scopes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from t2s.data.schema import DatabaseSchema

KEYWORDS = frozenset(
    """select from where group by having order limit offset asc desc distinct as join on inner left right full
    outer cross natural and or not in like between is null exists union intersect except all case when then else
    end cast using glob collate escape""".split()  # noqa: SIM905
)
# Words a partial name may still become, so it is not judged as a column yet.
FUNCTIONS = frozenset(
    """count sum avg min max abs lower upper length round substr strftime date julianday coalesce year month ifnull
    cast""".split()  # noqa: SIM905
)
UNJUDGED_WORDS = KEYWORDS | FUNCTIONS
# What may follow a table in a FROM clause (besides its alias and `,`).
FROM_FOLLOWERS = frozenset(
    """as join inner left right full outer cross natural on using where group having order limit union intersect
    except""".split()  # noqa: SIM905
)
CLAUSE_ENDS_FROM = frozenset({"where", "group", "having", "order", "limit", "union", "intersect", "except"})
_ALIAS_LIKE = re.compile(r"t[0-9]{0,2}|[a-z][0-9]?")  # t2s's alias grammar (`constrained.ALIAS_PATTERN`), lower-cased
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<sq>'(?:[^']|'')*(?:'|$))
    |(?P<dq>"(?:[^"]|"")*(?:"|$))
    |(?P<bt>`[^`]*(?:`|$))
    |(?P<br>\[[^\]]*(?:\]|$))
    |(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<op>[<>!=]=|<>|\|\||[-+*/%<>=.,();])
    |(?P<other>.)""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str  # name, keyword, string, number, op
    text: str  # names and keywords lower-cased, quotes removed
    closed: bool  # False for the last token when the text may still extend it


@dataclass
class _Scope:
    parent: _Scope | None
    tables: list[str] = field(default_factory=list)  # FROM order, lower-case; "" for a derived table
    aliases: dict[str, str] = field(default_factory=dict)  # alias → table ("" derived)
    output_aliases: set[str] = field(default_factory=set)
    from_started: bool = False
    from_done: bool = False
    deferred: list[tuple[str | None, str]] = field(default_factory=list)  # column refs written before FROM ended

    def resolve(self, qualifier: str) -> str | None:
        """The table a qualifier stands for here or in an enclosing scope ("" unknown: derived), else None."""
        scope: _Scope | None = self
        while scope is not None:
            if qualifier in scope.aliases:
                return scope.aliases[qualifier]
            if qualifier in scope.tables:
                return qualifier
            scope = scope.parent
        return None

    def visible_tables(self) -> list[str]:
        out, scope = [], self
        while scope is not None:
            out.extend(scope.tables)
            scope = scope.parent
        return out


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        at_end = m.end() == len(text)
        if kind == "ws":
            continue
        if kind == "sq":
            toks.append(_Tok("string", value, not at_end or (len(value) > 1 and value.endswith("'"))))
        elif kind in ("dq", "bt", "br"):
            closer = {"dq": '"', "bt": "`", "br": "]"}[kind]
            closed = len(value) > 1 and value.endswith(closer)
            inner = value[1:-1] if closed else value[1:]
            toks.append(_Tok("quoted", inner.lower(), closed))
        elif kind == "word":
            low = value.lower()
            toks.append(_Tok("keyword" if low in KEYWORDS else "name", low, not at_end))
        elif kind == "num":
            toks.append(_Tok("number", value, not at_end))
        else:
            toks.append(_Tok("op", value, True))
    return toks


class ScopeChecker:
    """Judges partial queries over one database schema (names compared in lower case, as SQLite does)."""

    def __init__(self, schema: DatabaseSchema) -> None:
        self.columns: dict[str, frozenset[str]] = {
            t.name.lower(): frozenset(c.name.lower() for c in t.columns) for t in schema.tables
        }
        self.all_columns = frozenset(c for cols in self.columns.values() for c in cols)

    # ----------------------------------------------------------------------------------------------- helpers

    def _has(self, table: str, column: str, complete: bool) -> bool:
        if table == "" or table not in self.columns:
            return True  # derived table or unknown: not judged
        cols = self.columns[table]
        return column in cols if complete else any(c.startswith(column) for c in cols)

    def _resolves(self, scope: _Scope, column: str, complete: bool) -> bool:
        """An unqualified column: (the start of) a column of a table in scope, an output alias, or a derived table's.
        A finished name is looked up from the innermost scope out, as SQL does, and must belong to exactly one table
        of the first scope that has it (else SQLite answers `ambiguous column name`)."""
        if column in scope.output_aliases or (
            not complete and any(a.startswith(column) for a in scope.output_aliases)
        ):
            return True
        tables = scope.visible_tables()
        if "" in tables or not tables:
            return True
        if not complete:
            return any(self._has(t, column, False) for t in tables)
        level: _Scope | None = scope
        while level is not None:
            owners = sum(column in self.columns.get(t, ()) for t in level.tables)
            if owners:
                return owners == 1
            level = level.parent
        return False

    def _table_candidates(self, partial: str, complete: bool) -> list[str]:
        if complete:
            return [partial] if partial in self.columns else []
        return [t for t in self.columns if t.startswith(partial)]

    # ----------------------------------------------------------------------------------------------- the check

    def consistent(self, text: str, finished: bool = False) -> bool:
        """False when `text` (a partial query; `finished`: nothing follows) already breaks a scoping rule."""
        toks = _lex(text)
        if finished and toks:
            toks[-1].closed = True
        scope = _Scope(parent=None)
        # Per open parenthesis: the scope and reading state to return to, and whether it opened a subquery.
        stack: list[tuple[_Scope, bool, str, bool, bool]] = []
        clause, expect_table, in_on = "start", False, False
        expect_alias: str | None = None  # the table whose alias may follow
        n, i = len(toks), 0
        while i < n:
            tok = toks[i]
            nxt = toks[i + 1] if i + 1 < n else None
            if tok.kind == "keyword":
                word = tok.text
                if not tok.closed:  # a keyword still being written decides nothing yet, unless it can only end FROM
                    if (
                        clause == "from"
                        and not expect_table
                        and self._only_ends_from(scope, word, expect_alias, in_on)
                    ):
                        return self._end_from(scope)
                    return True
                if word != "as":
                    expect_alias = None
                if word == "select":
                    if clause == "setop":
                        scope = _Scope(parent=scope.parent)
                    clause, expect_table, in_on = "select", False, False
                elif word == "from":
                    scope.from_started, clause, expect_table, in_on = True, "from", True, False
                elif word == "join":
                    expect_table, in_on = True, False
                elif word == "on":
                    in_on = True
                elif word in CLAUSE_ENDS_FROM:
                    if clause == "from" and not self._end_from(scope):
                        return False
                    expect_table, in_on = False, False
                    clause = "setop" if word in ("union", "intersect", "except") else word
                i += 1
                continue
            if tok.kind == "op":
                if tok.text == "(":
                    is_sub = nxt is not None and nxt.kind == "keyword" and nxt.text == "select"
                    stack.append((scope, is_sub, clause, expect_table, in_on))
                    if is_sub:
                        scope, clause, expect_table, in_on = _Scope(parent=scope), "start", False, False
                elif tok.text == ")" and stack:
                    inner = scope
                    outer, was_sub, outer_clause, outer_expect_table, outer_in_on = stack.pop()
                    if was_sub:
                        if inner.from_started and not inner.from_done and not self._end_from(inner):
                            return False
                        scope, clause, in_on = outer, outer_clause, outer_in_on
                        if outer_expect_table:  # a derived table: `FROM (SELECT …) AS T1`
                            scope.tables.append("")
                            expect_table, expect_alias = False, ""
                            i += 1
                            continue
                elif tok.text == "," and clause == "from" and not in_on:
                    expect_table = True
                if tok.text != ".":
                    expect_alias = None
                i += 1
                continue
            if tok.kind not in ("name", "quoted"):
                expect_alias = None
                i += 1
                continue
            name = tok.text
            after_tables = clause == "from" and not expect_table and not tok.closed and tok.kind == "name"
            if after_tables and self._only_ends_from(scope, name, expect_alias, in_on):  # `GR…`: GROUP BY
                return self._end_from(scope)
            if not tok.closed and (tok.kind == "quoted" or any(w.startswith(name) for w in UNJUDGED_WORDS)):
                return True  # may still become a keyword or a function name, or be a "…" string
            # ---- a table in a FROM clause
            if expect_table:
                if not tok.closed:
                    return self._table_fits(scope, name)
                scope.tables.append(name)
                if not self._table_fits(scope, name, placed=True):
                    return False
                expect_table, expect_alias = False, name
                i += 1
                continue
            # ---- an alias for the table just named
            if expect_alias is not None and not (nxt is not None and nxt.kind == "op" and nxt.text in (".", "(")):
                if not tok.closed:
                    return True  # the alias is still being written
                scope.aliases[name] = expect_alias
                if not self._alias_fits(scope, name, expect_alias):
                    return False
                expect_alias = None
                i += 1
                continue
            expect_alias = None
            # ---- a function call (`count (` may still come)
            if (nxt is not None and nxt.kind == "op" and nxt.text == "(") or (nxt is None and name in FUNCTIONS):
                i += 1
                continue
            # ---- an output alias: `expr AS name`
            if i > 0 and toks[i - 1].kind == "keyword" and toks[i - 1].text == "as":
                scope.output_aliases.add(name)
                i += 1
                continue
            # ---- a qualified column: qualifier . column
            if nxt is not None and nxt.kind == "op" and nxt.text == ".":
                col = toks[i + 2] if i + 2 < n else None
                if col is not None and col.kind in ("name", "quoted"):
                    if not self._qualified_fits(scope, name, col.text, col.closed):
                        return False
                    i += 3
                    continue
                if col is None and not self._qualified_fits(scope, name, "", False):
                    return False  # `T2.` with nothing after it yet: T2 must already make sense
                i += 2
                continue
            # ---- an unqualified column (or a double-quoted string, where SQLite reads one)
            if tok.kind == "quoted" and tok.closed and name not in self.all_columns:
                i += 1
                continue
            if not self._unqualified_fits(scope, name, tok.closed):
                return False
            i += 1
        if finished:
            while scope is not None:
                if scope.from_started and not scope.from_done and not self._end_from(scope):
                    return False
                scope = scope.parent
        return True

    def _qualified_fits(self, scope: _Scope, qualifier: str, column: str, complete: bool) -> bool:
        table = scope.resolve(qualifier)
        if table is not None:
            return self._has(table, column, complete)
        if qualifier in self.columns and not self._has(qualifier, column, complete):
            return False  # `singer.capa…`: whatever FROM says, singer has no such column
        if scope.from_done:
            return False  # an undeclared alias once the FROM clause has declared them
        if complete:  # before FROM, or in an ON clause (SQLite lets ON name a table joined after it)
            scope.deferred.append((qualifier, column))
        return True

    def _unqualified_fits(self, scope: _Scope, column: str, complete: bool) -> bool:
        if not complete and self._may_qualify(scope, column):
            return True  # `T1` may still be followed by `.`
        if scope.from_done:
            return self._resolves(scope, column, complete)
        if complete:
            scope.deferred.append((None, column))
        return True

    def _only_ends_from(self, scope: _Scope, partial: str, expect_alias: str | None, in_on: bool) -> bool:
        """Whether a word being written after a FROM clause's tables can only become a keyword that ends the clause
        (`GR` → GROUP, `WHE` → WHERE), so the model cannot slip past the end-of-FROM check one letter at a time."""
        followers = {w for w in FROM_FOLLOWERS if w.startswith(partial)}
        if not followers or not followers <= CLAUSE_ENDS_FROM:
            return False
        if expect_alias is not None and _ALIAS_LIKE.fullmatch(partial):
            return False  # may be the alias of the table just named
        if in_on:
            columns = {c for t in scope.visible_tables() for c in self.columns.get(t, ())}
            if self._may_qualify(scope, partial) or any(c.startswith(partial) for c in columns):
                return False
        return True

    def _may_qualify(self, scope: _Scope, partial: str) -> bool:
        """Whether an unfinished name may still become a qualifier: an alias pattern, a declared alias or a table."""
        if _ALIAS_LIKE.fullmatch(partial):
            return True
        names = set(self.columns)
        while scope is not None:
            names.update(scope.aliases)
            scope = scope.parent
        return any(n.startswith(partial) for n in names)

    def _table_fits(self, scope: _Scope, partial: str, placed: bool = False) -> bool:
        """Whether the table being named (`partial`, possibly unfinished) can serve the alias convention's next
        alias: every column the query asked of `Tn` before FROM, where n is its place in the FROM clause."""
        candidates = self._table_candidates(partial, complete=placed)
        if not candidates:
            return True  # not a table of the database: the grammar's business
        place = len(scope.tables) if placed else len(scope.tables) + 1
        earlier = scope.tables[: place - 1]
        for k, table in enumerate(earlier, 1):  # the convention holds so far: table k took Tk
            if scope.aliases.get(f"t{k}") != table:
                return True
        alias = f"t{place}"
        if alias in scope.aliases:
            return True
        asked = [c for q, c in scope.deferred if q == alias]
        return any(all(c in self.columns[t] for c in asked) for t in candidates)

    def _alias_fits(self, scope: _Scope, alias: str, table: str) -> bool:
        return all(self._has(table, c, True) for q, c in scope.deferred if q == alias)

    def _end_from(self, scope: _Scope) -> bool:
        """The FROM clause has ended: every column written before it must now resolve."""
        scope.from_done = True
        for qualifier, column in scope.deferred:
            if qualifier is None:
                if not self._resolves(scope, column, True):
                    return False
                continue
            table = scope.resolve(qualifier)  # a table name qualifies only if FROM names that table
            if table is None or not self._has(table, column, True):
                return False
        return True
