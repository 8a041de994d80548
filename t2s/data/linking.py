"""Schema and value linking: which tables, columns and stored values a question refers to, and a schema pruned to them.

A small model cannot guess that `France` is stored as `FR`, and a prompt that lists fifty tables fills its context.
Following BRIDGE and CodeS, each text column's distinct values are indexed once per database, the question's word
n-grams are matched against table names, column names and those values, and the result serves two ends:

* the values of a column that occur in the question are shown in the schema (`-- values in the question: 'France'`);
* optionally the schema is pruned to the highest-ranked tables within a budget, keeping every table on a foreign-key
  path between two kept tables, so a join the question needs is never cut in half.

Lexical only (no learned ranker): names and values are compared after lower-casing, splitting `snake_case` and
`camelCase`, and dropping a plural `s`. One builder (`link`, `prune_schema`) serves training and inference, so a
recipe trains on the prompts it will be asked with. Recall is measured by `python -m bench.bench_linking`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from t2s.data.schema import DatabaseSchema, ForeignKey, TableSchema

MAX_VALUES_PER_COLUMN = 5000
MAX_VALUE_CHARS = 60
MAX_NGRAM = 4
STOPWORDS = frozenset(
    """a an the of in on at to for by with and or not is are was were be been what which who whom whose how many much
    list show give find return tell all each every that this these those there their its it as from than more most
    less least number count name names do does did have has had any some me please""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def words(text: str) -> list[str]:
    """Lower-cased words of a name or question: `singer_in_concert` → singer, in, concert; `AirportCode` → airport, code."""
    return [w.lower() for part in _WORD.findall(str(text)) for w in _CAMEL.sub(" ", part).split()]


def stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@dataclass
class Link:
    """What a question refers to: scored tables and columns, and the stored values it mentions, per column."""

    table_scores: dict[str, float]
    column_scores: dict[tuple[str, str], float]
    values: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def ranked_tables(self) -> list[str]:
        return sorted(self.table_scores, key=lambda t: (-self.table_scores[t], t))


def value_index(rows_by_column: Mapping[tuple[str, str], Iterable[Any]]) -> dict[tuple[str, str], dict[str, str]]:
    """Per (table, column): each distinct text value (at most MAX_VALUE_CHARS long) by its lower-cased words, so a
    question's n-gram finds it whatever its case or spacing, and the prompt shows it as stored."""
    index = {}
    for key, values in rows_by_column.items():
        kept: dict[str, str] = {}
        for value in values:
            if isinstance(value, str) and 0 < len(value.strip()) <= MAX_VALUE_CHARS:
                kept.setdefault(" ".join(words(value)), value)
            if len(kept) >= MAX_VALUES_PER_COLUMN:
                break
        kept.pop("", None)
        index[key] = kept
    return index


def read_text_values(run_query, schema: DatabaseSchema) -> dict[tuple[str, str], list[Any]]:
    """Each text column's distinct values through `run_query(sql) -> rows` (a sandboxed engine's or a connection's)."""
    from t2s.data.schema import dialect_quote

    def quote_identifier(name: str) -> str:
        return dialect_quote(name, schema.dialect, always=True)

    out = {}
    for table in schema.tables:
        for column in table.columns:
            if column.type.lower() not in ("text", "others") and "char" not in column.type.lower():
                continue
            sql = (
                f"SELECT DISTINCT {quote_identifier(column.name)} FROM {quote_identifier(table.name)} "
                f"LIMIT {MAX_VALUES_PER_COLUMN}"
            )
            out[table.name, column.name] = [r[0] for r in run_query(sql) or []]
    return out


def question_ngrams(question: str) -> set[str]:
    tokens = words(question)
    return {" ".join(tokens[i : i + n]) for n in range(1, MAX_NGRAM + 1) for i in range(len(tokens) - n + 1)}


def link(
    schema: DatabaseSchema, question: str, values: Mapping[tuple[str, str], Mapping[str, str]] | None = None
) -> Link:
    """Score every table and column by the question's words, and find the stored values the question mentions."""
    asked = {stem(w) for w in words(question) if w not in STOPWORDS}
    grams = question_ngrams(question)
    table_scores: dict[str, float] = {}
    column_scores: dict[tuple[str, str], float] = {}
    matched: dict[tuple[str, str], list[str]] = {}
    for table in schema.tables:
        name_words = {stem(w) for w in words(table.name)}
        score = 2.0 * len(name_words & asked) / max(len(name_words), 1)
        for column in table.columns:
            column_words = {stem(w) for w in words(column.name)} - {"id"}
            hit = len(column_words & asked) / max(len(column_words), 1) if column_words else 0.0
            found = []
            for key, stored in (values or {}).get((table.name, column.name), {}).items():
                if key in grams and (len(key) > 2 or key.isdigit()) and key not in STOPWORDS:
                    found.append(stored)
            if found:
                matched[table.name, column.name] = sorted(found, key=lambda v: (-len(v), v))[:3]
                hit += 1.5
            column_scores[table.name, column.name] = hit
            score += 0.5 * hit
        table_scores[table.name] = score
    return Link(table_scores, column_scores, matched)


def _neighbours(schema: DatabaseSchema) -> dict[str, list[str]]:
    """Each table's foreign-key neighbours (either direction), in schema order: the search below then breaks ties
    between equally short paths the same way in every process (a set's order changes with Python's hash seed, and
    with it which tables a pruned prompt kept)."""
    order = {t.name.lower(): i for i, t in enumerate(schema.tables)}
    graph: dict[str, set[str]] = {name: set() for name in order}
    for table in schema.tables:
        for fk in table.foreign_keys:
            parent = str(fk.ref_table).lower()
            if parent in graph and parent != table.name.lower():
                graph[table.name.lower()].add(parent)
                graph[parent].add(table.name.lower())
    return {name: sorted(near, key=order.__getitem__) for name, near in graph.items()}


def connect(schema: DatabaseSchema, kept: Iterable[str]) -> set[str]:
    """`kept` plus every table on a shortest foreign-key path between two of them."""
    graph = _neighbours(schema)
    kept = list(dict.fromkeys(k.lower() for k in kept))  # in the order given (ranked), each once
    result = set(kept)
    for start in kept:
        previous = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in graph.get(node, ()):
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        for goal in kept:
            if goal != start and goal in previous:
                node = goal
                while node is not None:
                    result.add(node)
                    node = previous[node]
    return result


def prune_schema(schema: DatabaseSchema, found: Link, max_tables: int) -> DatabaseSchema:
    """The `max_tables` highest-ranked tables (at least one), joined by their foreign-key paths, in schema order."""
    if max_tables <= 0 or len(schema.tables) <= max_tables:
        return schema
    top = found.ranked_tables()[: max(1, max_tables)]
    keep = connect(schema, top)
    tables = [
        TableSchema(
            t.name,
            list(t.columns),
            list(t.primary_key),
            [
                ForeignKey(fk.column, fk.ref_table, fk.ref_column)
                for fk in t.foreign_keys
                if fk.ref_table.lower() in keep
            ],
        )
        for t in schema.tables
        if t.name.lower() in keep
    ]
    return DatabaseSchema(schema.db_id, tables, schema.dialect)


def values_line(found: Link, tables: Iterable[str]) -> str:
    """The schema's last line when values are linked: the stored values the question mentions, in kept tables."""
    from t2s.execution.sql_text import quote_string

    kept = {t.lower() for t in tables}
    pairs = [
        f"{table}.{column} = {quote_string(value)}"
        for (table, column), values in sorted(found.values.items())
        if table.lower() in kept
        for value in values
    ]
    return "-- values the question mentions: " + "; ".join(pairs) if pairs else ""
