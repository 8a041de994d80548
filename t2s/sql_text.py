"""SQLite's lexical rules for the few places t2s reads SQL as text (not as a parse tree).

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
    out, pos = [], 0
    for match in SQL_TOKEN_RE.finditer(sql):
        out.append(re.sub(r"\s+", " ", sql[pos : match.start()]))
        token = match.group(0)
        out.append(" " if token.startswith("--") else token)  # a line comment would swallow the rest
        pos = match.end()
    out.append(re.sub(r"\s+", " ", sql[pos:]))
    text = "".join(out).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text
