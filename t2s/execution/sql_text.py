"""SQLite's lexical rules for the few places t2s reads or writes SQL as text (not as a parse tree): tokens,
keywords, identifier and string quoting.

Written here rather than taken from sqlparse, whose lexer honours backslash escapes inside quotes,
which SQLite does not: a mismatch would change what gets executed or trained on.
"""

from __future__ import annotations

import re

# '..' literal, ".." `..` [..] identifiers, -- and /* */ comments.
SQL_TOKEN_RE = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|\Z)""",
    re.DOTALL,
)


def normalize_whitespace(sql: str) -> str:
    """One line: runs of whitespace outside quotes become one space, a trailing `;` goes.

    Spider's gold queries carry the tokenizer's spacing (`T1.id  =  T2.id`, tabs). Trained as they
    are, a model would spend tokens on spaces and could not stop at the newline that ends its answer;
    outside quotes whitespace means nothing to SQLite, so this changes no query's result.
    """
    out, pos, blank = [], 0, ""
    for match in SQL_TOKEN_RE.finditer(sql):
        token = match.group(0)
        blank += sql[pos : match.start()]
        pos = match.end()
        if token.startswith("--"):  # a line comment would swallow the rest of a one-line query: a blank instead
            blank += " "
            continue
        out += [re.sub(r"\s+", " ", blank), token]
        blank = ""
    out.append(re.sub(r"\s+", " ", blank + sql[pos:]))
    text = "".join(out).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


# SQLite's keywords (sqlite.org/lang_keywords.html): an identifier equal to one of them must be quoted.
SQLITE_KEYWORDS = frozenset(
    """ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY CASCADE
    CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME
    CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE
    EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB GROUP
    GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN
    KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER
    OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX
    RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN
    TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW
    WITH WITHOUT""".split()  # noqa: SIM905
)
_BARE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def needs_quotes(name: str) -> bool:
    return not _BARE_IDENTIFIER.fullmatch(name) or name.upper() in SQLITE_KEYWORDS


def quote_identifier(name: str, always: bool = True) -> str:
    """Double-quote an SQLite identifier (doubling embedded quotes); with always=False only where needed."""
    name = str(name)
    if not always and not needs_quotes(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    """Single-quote an SQL string literal, doubling embedded quotes."""
    return "'" + str(value).replace("'", "''") + "'"
