"""Schema-constrained decoding: at every step only tokens that keep the output a valid prefix of an SQL query over
the question's own schema are allowed (PICARD's idea, Scholak et al. 2021, with a grammar instead of a parser loop).

The grammar engine is llguidance (Lark grammars compiled per example in about a millisecond, token masks in tens of
microseconds). Each example gets its own grammar, whose identifiers are that example's tables and columns only:

* WikiSQL (`wikisql_grammar`): the dataset's exact language, as t2s renders its gold SQL:
  `SELECT [AGG(]"col"[)] FROM "table" [WHERE "col" op value (AND "col" op value)*]`, values as SQL literals.
* Spider and other databases (`schema_grammar`, in the schema's dialect: PostgreSQL and DuckDB quote names with
  `"…"` and never read `"…"` as a string, MySQL with backticks): the SELECT subset Spider uses (joins with ON, aliases
  `T1`.. or of a lower-case letter and an optional digit, GROUP BY/HAVING, ORDER BY/LIMIT, nested queries, INTERSECT/UNION/EXCEPT, LIKE, BETWEEN, IN, NOT, IS NULL,
  arithmetic, the aggregate and a few scalar functions), keywords and names in any ASCII case (as SQLite compares
  them; not Lark's Unicode-folding `"..."i`, which lets `ſELECT` pass for SELECT), table and column names from the
  database (bare, double-quoted, backticked or bracketed), string literals in single quotes anywhere and in double
  quotes where a comparison, LIKE, BETWEEN or IN expects a value (Spider's gold SQL writes `name = "Paris"`; SQLite
  reads `"..."` there as a string unless it names a column). Elsewhere `"..."` can only be a real column's name. It does not check that a column
  belongs to the table it is qualified with or that an alias was declared; it rejects every name that is not in the
  schema and every syntax error.

`GrammarConstrainedLogits` is a transformers `LogitsProcessor` with one matcher per batch row. It follows each row's
own tokens, so it composes with batching (left padding), greedy, sampling and beam search (beams are reordered
between steps: a row's state is found by its token prefix). Predictions remain the model's own tokens: the mask only
removes choices, nothing is rewritten afterwards. A complete query may be followed by the end-of-sequence token
(what training taught) or a newline (where generation stops).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from t2s.data.schema import DatabaseSchema, dialect_quote, from_engine
from t2s.decoding.scope import ScopeChecker
from t2s.execution.engines import database_for
from t2s.execution.sql_text import quote_identifier
from t2s.execution.tables import column_names, table_name

AGGREGATES = ("count", "sum", "avg", "min", "max")
SCALAR_FUNCTIONS = ("abs", "lower", "upper", "length", "round", "substr", "strftime", "date", "julianday", "coalesce")
# Table aliases: Spider's `T1`, `T2`… and the short lower-case ones people write (`customers AS c`).
ALIAS_PATTERN = "/[Tt][0-9]{1,2}|[a-z][0-9]?/"
# Column scoping keeps the SCOPE_TOP_K likeliest tokens the grammar allows that break no scoping rule, looking at
# most SCOPE_SEARCH tokens down the ranking when the likeliest all fail (t2s.decoding.scope).
SCOPE_TOP_K = 8
SCOPE_SEARCH = 512


def _lark_string(text: str) -> str:
    """A Lark string literal for `text` (JSON escapes are Lark escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _ascii_case_insensitive(text: str) -> str:
    """A Lark regex matching `text` with ASCII letters in either case, as SQLite compares keywords and names.

    Not Lark's `"..."i`: that folds Unicode case too, so `ſELECT` (long s) would pass for SELECT, which SQLite rejects.
    """
    parts = []
    for ch in text:
        if ch.isascii() and ch.isalpha():
            parts.append(f"[{ch.lower()}{ch.upper()}]")
        elif ch.isascii() and (ch.isalnum() or ch in "_ "):
            parts.append(ch)
        else:
            parts.append(f"\\x{{{ord(ch):x}}}" if ord(ch) < 128 else "\\u{" + f"{ord(ch):x}" + "}")
    return "".join(parts)


def _alternatives(options: Sequence[str], case_insensitive: bool = False) -> str:
    unique = sorted(set(options), key=lambda o: (-len(o), o))
    if case_insensitive:
        return "/" + "|".join(f"(?:{_ascii_case_insensitive(o)})" for o in unique) + "/"
    return " | ".join(_lark_string(o) for o in unique)


# --------------------------------------------------------------------------- WikiSQL


def wikisql_grammar(table: Mapping[str, Any]) -> str:
    """WikiSQL's language over one table, spelled exactly as t2s renders gold SQL (and as models trained on it write)."""
    columns = [quote_identifier(n) for n in column_names(table["header"])]
    name = quote_identifier(table_name(table["id"]))
    return f"""
start: query _END?
_END: "\\n"
query: "SELECT " sel " FROM " TABLE where?
sel: COLUMN | AGG "(" COLUMN ")"
AGG: "MAX" | "MIN" | "COUNT" | "SUM" | "AVG"
where: " WHERE " cond (" AND " cond)*
cond: COLUMN " " OP " " value
OP: "=" | ">" | "<"
value: STRING | NUMBER
STRING: /'([^'\\n]|'')*'/
NUMBER: /-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?/
TABLE: {_lark_string(name)}
COLUMN: {_alternatives(columns)}
"""


# --------------------------------------------------------------------------- SQLite (Spider)


def _identifier_forms(names: Sequence[str], dialect: str = "sqlite") -> tuple[list[str], list[str]]:
    """How the dialect lets a query spell each name: (forms compared in any ASCII case, forms compared exactly).

    SQLite: bare (where legal), "quoted", `backticked`, [bracketed], all in any case. PostgreSQL: bare only where the
    name is lower case (unquoted names fold to lower case), "quoted" in its exact case. DuckDB: bare or "quoted", any
    case. MySQL: bare or `backticked` (double quotes are strings there), any case.
    """
    loose, exact = [], []
    for name in names:
        bare_ok = dialect_quote(name, dialect) == name
        if dialect == "sqlite":
            loose += ([name] if bare_ok else []) + [
                quote_identifier(name),
                "`" + name.replace("`", "``") + "`",
                f"[{name}]",
            ]
        elif dialect == "postgres":
            loose += [name] if bare_ok else []
            exact.append(dialect_quote(name, dialect, always=True))
        else:
            loose += ([name] if bare_ok else []) + [dialect_quote(name, dialect, always=True)]
    return loose, exact


def _names_rule(forms: tuple[list[str], list[str]]) -> str:
    loose, exact = forms
    parts = [_alternatives(loose, case_insensitive=True)] if loose else []
    parts += [_alternatives(exact)] if exact else []
    return " | ".join(parts)


# The few scalar functions the grammar offers besides the aggregates, in each dialect's spelling.
DIALECT_FUNCTIONS = {
    "sqlite": SCALAR_FUNCTIONS,
    "postgres": (
        "abs",
        "lower",
        "upper",
        "length",
        "round",
        "substr",
        "coalesce",
        "date_trunc",
        "date_part",
        "to_char",
    ),
    "mysql": ("abs", "lower", "upper", "length", "round", "substr", "coalesce", "year", "month", "date_format"),
    "duckdb": ("abs", "lower", "upper", "length", "round", "substr", "coalesce", "year", "month", "strftime"),
}


def schema_grammar(schema: DatabaseSchema) -> str:
    """The SQL SELECT subset Spider uses, in the schema's dialect, with this database's table and column names only.

    A PostgreSQL, MySQL or DuckDB schema gets that dialect's quoting, strings and function names (`_identifier_forms`).
    """
    dialect = schema.dialect
    tables = _names_rule(_identifier_forms(schema.table_names(), dialect))
    columns = _names_rule(_identifier_forms(sorted({c for c in schema.column_names()}), dialect))
    # Double-quoted strings: SQLite reads them as strings where no column has the name (Spider's gold SQL relies on
    # it), MySQL always; in PostgreSQL and DuckDB "..." is only ever a name.
    value_rule = "value: expr | DQ_STRING" if dialect in ("sqlite", "mysql") else "value: expr"
    functions = DIALECT_FUNCTIONS.get(dialect, SCALAR_FUNCTIONS)
    keywords = [
        "select", "from", "where", "group", "by", "having", "order", "limit", "offset", "asc", "desc", "distinct",
        "as", "join", "on", "inner", "left", "outer", "cross", "and", "or", "not", "in", "like", "between", "is",
        "null", "exists", "union", "intersect", "except", "all",
    ]  # fmt: skip
    keyword_rules = "\n".join(f"{k.upper()}: /{_ascii_case_insensitive(k)}/" for k in keywords)
    return f"""
start: _o query _o _END?
_END: "\\n"
query: select_stmt (_s setop _s select_stmt)* (_s order_by)? (_s limit)?
setop: UNION (_s ALL)? | INTERSECT | EXCEPT
select_stmt: SELECT _s (DISTINCT _s)? result_cols _s FROM _s from_src (_s where_cl)? (_s group_cl)? (_s having_cl)?
result_cols: result_col (_o "," _o result_col)*
result_col: expr (_s AS _s ALIAS)? | "*" | qualifier "." "*"
from_src: table_ref (join)*
join: _s (join_kind _s)? JOIN _s table_ref (_s ON _s cond)? | _o "," _o table_ref
join_kind: INNER | CROSS | LEFT (_s OUTER)?
table_ref: TABLE (_s (AS _s)? ALIAS)? | "(" _o query _o ")" (_s (AS _s)? ALIAS)?
where_cl: WHERE _s cond
group_cl: GROUP _s BY _s expr (_o "," _o expr)*
having_cl: HAVING _s cond
order_by: ORDER _s BY _s order_item (_o "," _o order_item)*
order_item: expr (_s (ASC | DESC))?
limit: LIMIT _s INTEGER (_s OFFSET _s INTEGER | _o "," _o INTEGER)?
cond: cond_and (_s OR _s cond_and)*
cond_and: cond_not (_s AND _s cond_not)*
cond_not: (NOT _s)? predicate
predicate: expr _o CMP _o value
    | expr _s (NOT _s)? LIKE _s value
    | expr _s (NOT _s)? BETWEEN _s value _s AND _s value
    | expr _s (NOT _s)? IN _o "(" _o (query | value (_o "," _o value)*) _o ")"
    | expr _s IS _s (NOT _s)? NULL
    | EXISTS _o "(" _o query _o ")"
    | "(" _o cond _o ")"
{value_rule}
CMP: "=" | "==" | "!=" | "<>" | ">=" | "<=" | ">" | "<"
expr: term (_o ARITH _o term)*
ARITH: "+" | "-" | "*" | "/" | "||"
term: column | literal | function | "(" _o query _o ")" | "(" _o expr _o ")" | "-" _o term
function: AGGREGATE _o "(" _o (DISTINCT _s)? (expr | "*") _o ")"
    | SCALAR _o "(" _o expr (_o "," _o expr)* _o ")"
column: COLUMN | qualifier "." COLUMN
qualifier: TABLE | ALIAS
literal: INTEGER | DECIMAL | STRING | NULL
INTEGER: /[0-9]+/
DECIMAL: /[0-9]*\\.[0-9]+([eE][-+]?[0-9]+)?/
STRING: /'([^'\\n]|'')*'/
DQ_STRING: /"([^"\\n]|"")*"/
AGGREGATE: {_alternatives(AGGREGATES, case_insensitive=True)}
SCALAR: {_alternatives(functions, case_insensitive=True)}
ALIAS: {ALIAS_PATTERN}
TABLE: {tables}
COLUMN: {columns}
{keyword_rules}
_s: / +/
_o: / */
"""


# --------------------------------------------------------------------------- records → grammars


@functools.lru_cache(maxsize=256)
def _database_schema(db_path: str) -> DatabaseSchema:
    """A database's catalogue (any engine), read once for its grammar and its column scoping."""
    return from_engine(database_for(db_path), db_path)


@functools.lru_cache(maxsize=256)
def _database_grammar(db_path: str) -> str:
    return schema_grammar(_database_schema(db_path))


@functools.lru_cache(maxsize=256)
def _database_scope(db_path: str) -> ScopeChecker:
    return ScopeChecker(_database_schema(db_path))


def scope_for(example: Mapping[str, Any]) -> ScopeChecker | None:
    """The column scoping of a record's database (`t2s.decoding.scope`); None for a WikiSQL table, whose grammar
    already offers that one table's columns only. A record may carry its database's `schema` (a question asked of a
    user's database)."""
    if isinstance(example.get("schema"), DatabaseSchema):
        return ScopeChecker(example["schema"])
    return _database_scope(str(example["db_path"])) if example.get("db_path") else None


def grammar_for(example: Mapping[str, Any]) -> str:
    """The grammar of one dataset record: its WikiSQL table, or the database (any engine) it points at or carries the
    `schema` of."""
    if isinstance(example.get("schema"), DatabaseSchema):
        return schema_grammar(example["schema"])
    if example.get("db_path"):
        return _database_grammar(str(example["db_path"]))
    if example.get("table") is not None:
        return wikisql_grammar(example["table"])
    raise ValueError(f"example {example.get('example_id', '?')} has neither a 'table' nor a 'db_path'")


# --------------------------------------------------------------------------- the logits processor


@functools.lru_cache(maxsize=8)
def _ll_tokenizer(tokenizer):
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer)


def compile_grammar(tokenizer, grammar: str):
    """An llguidance matcher for `grammar`; a grammar error is raised here, not discovered mid-generation."""
    import llguidance

    matcher = llguidance.LLMatcher(
        _ll_tokenizer(tokenizer), llguidance.LLMatcher.grammar_from_lark(grammar), log_level=0
    )
    if matcher.is_error():
        raise ValueError(f"invalid grammar: {matcher.get_error()}")
    return matcher


def complete_prefix(
    tokenizer, grammar: str, token_ids: Sequence[int], scope: ScopeChecker | None = None
) -> str | None:
    """The longest prefix of a constrained answer that is a complete query in its grammar (with `scope`, the longest
    that also breaks no scoping rule, if one does), as text; None if none is complete.

    An answer the token budget cuts mid-query is a syntax error however good its start; this returns the query it
    had finished before (`SELECT name FROM singer WHERE age >` → `SELECT name FROM singer`), never an unfinished one.
    """
    matcher = compile_grammar(tokenizer, grammar)
    complete = [0] if matcher.is_accepting() else []
    for i, token in enumerate(token_ids, 1):
        if not matcher.consume_token(int(token)):
            break
        if matcher.is_accepting():
            complete.append(i)
    if not complete:
        return None

    def text(last: int) -> str:
        return tokenizer.decode(list(token_ids[:last]), skip_special_tokens=True).split("\n", 1)[0].strip()

    if scope is not None:  # the longest that also passes scoping; else the longest complete one (scoping may err)
        passing = (t for t in map(text, reversed(complete)) if scope.consistent(t, finished=True))
        found = next(passing, None)
        if found is not None:
            return found
    return text(complete[-1])


def apply_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Set to -inf, in place, every logit whose bit in llguidance's packed int32 bitmask is 0 (bit j of word i is
    token 32 i + j); tokens past the mask's width are disallowed.

    llguidance's own `apply_token_bitmask_inplace` does the same through `torch.compile`, which on a machine without
    CUDA builds a C++ kernel at the first call (a compiler must be present) and logs "No CUDA runtime is found";
    these eager tensor operations give the same mask (tests/test_constrained.py) without either.
    """
    rows, vocab = logits.shape
    shifts = torch.arange(32, device=bitmask.device, dtype=torch.int32)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).reshape(rows, -1).bool()
    if allowed.shape[1] < vocab:
        allowed = torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]), value=False)
    return logits.masked_fill_(~allowed[:, :vocab], float("-inf"))


class GrammarConstrainedLogits(LogitsProcessor):
    """Masks every token that would leave its row's grammar; one grammar per prompt, shared by that prompt's rows.

    `grammars[i]` belongs to prompt i of the batch; rows are `rows_per_prompt` consecutive copies of each prompt
    (num_return_sequences / beams), as `generate` lays them out.
    """

    def __init__(
        self,
        tokenizer,
        grammars: Sequence[str],
        prompt_length: int,
        rows_per_prompt: int = 1,
        scopes: Sequence[ScopeChecker | None] | None = None,
        scope_top_k: int = SCOPE_TOP_K,
    ) -> None:
        self.tokenizer = tokenizer
        self.templates = [compile_grammar(tokenizer, g) for g in grammars]
        self.prompt_length = prompt_length
        self.rows_per_prompt = rows_per_prompt
        self.states: list[tuple[tuple[int, ...], Any]] = []  # per row: (tokens consumed, matcher)
        self.scopes = scopes
        self.scope_top_k = scope_top_k
        self.stops = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        self._pieces: dict[int, str] = {}
        self.dead_ends: set[int] = set()  # prompts (batch positions) where scoping had to let a row go unchecked

    def _state_for(self, row: int, generated: tuple[int, ...]):
        """The matcher that has consumed exactly `generated`: this row's own, else a sibling's (beam reordering)."""
        prompt = row // self.rows_per_prompt
        siblings = range(prompt * self.rows_per_prompt, (prompt + 1) * self.rows_per_prompt)
        for candidate in [row, *siblings]:
            consumed, matcher = self.states[candidate]
            if consumed == generated[:-1]:
                matcher = matcher.deep_copy()
                matcher.consume_token(generated[-1])
                return generated, matcher
            if consumed == generated:
                return consumed, matcher.deep_copy()
        matcher = self.templates[prompt].deep_copy()  # not reachable through generate's own bookkeeping
        matcher.consume_tokens(list(generated))
        return generated, matcher

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        import llguidance.torch

        rows = input_ids.shape[0]
        generated = [tuple(r) for r in input_ids[:, self.prompt_length :].tolist()]
        if not self.states:
            self.states = [((), self.templates[r // self.rows_per_prompt].deep_copy()) for r in range(rows)]
        else:
            self.states = [self._state_for(r, generated[r]) for r in range(rows)]
        # A fresh bitmask allows every token; rows that are finished keep it (generate pads them anyway). Columns of
        # the model's padded vocabulary beyond the tokenizer's are never allowed.
        bitmask = llguidance.torch.allocate_token_bitmask(rows, _ll_tokenizer(self.tokenizer).vocab_size)
        for r, (_, matcher) in enumerate(self.states):
            if not (matcher.is_error() or matcher.is_stopped()):
                llguidance.torch.fill_next_token_bitmask(matcher, bitmask, r)
        out = scores.clone()
        apply_bitmask_(out, bitmask.to(scores.device))
        if self.scopes is not None:
            self._apply_scopes(out, generated)
        return out

    def _piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return self._pieces[token]

    def _apply_scopes(self, out: torch.Tensor, generated: list[tuple[int, ...]]) -> None:
        """Keep, of each row's allowed tokens, the `scope_top_k` likeliest whose text breaks no scoping rule
        (`ScopeChecker.consistent`), looking at most `SCOPE_SEARCH` tokens down the row's ranking. Greedy decoding
        and beams thus take the likeliest consistent token, sampling draws among the likeliest consistent ones. A
        row with no consistent token within reach (an earlier choice left no way out) is left as the grammar left
        it, and counted in `dead_ends`."""
        for r, (_, matcher) in enumerate(self.states):
            checker = self.scopes[r // self.rows_per_prompt]
            if checker is None or matcher.is_error() or matcher.is_stopped():
                continue
            prefix = self.tokenizer.decode(list(generated[r]), skip_special_tokens=True)
            if not checker.consistent(prefix.split("\n", 1)[0]):  # already wrong: no token can make it right again
                self.dead_ends.add(r // self.rows_per_prompt)
                continue
            kept: list[int] = []
            seen = 0
            for width in (2 * self.scope_top_k, SCOPE_SEARCH):  # the few likeliest first; further only if needed
                values, ids = out[r].topk(min(width, out.shape[1]))
                for value, token in list(zip(values.tolist(), ids.tolist()))[seen:]:
                    if value == float("-inf") or len(kept) == self.scope_top_k:
                        break
                    text = prefix + self._piece(token)
                    finished = token in self.stops or "\n" in text
                    if checker.consistent(text.split("\n", 1)[0], finished=finished):
                        kept.append(token)
                seen = width
                if kept:
                    break
            if not kept:
                self.dead_ends.add(r // self.rows_per_prompt)
                continue
            row = torch.full_like(out[r], float("-inf"))
            row[kept] = out[r, kept]
            out[r] = row


def finish_cut_answers(
    tokenizer, new_tokens, texts: list[str], grammars: Sequence[str], scopes: Sequence[Any] | None = None
) -> list[str]:
    """Constrained answers the token budget cut (no end of sequence, no newline) become the longest complete query
    they contain (`t2s.decoding.constrained.complete_prefix`; with `scopes`, preferably one that passes scoping),
    or no SQL when they contain none; answers that ended on their own are left alone."""
    from t2s.decoding.answer import answer_complete

    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    out = []
    rows = new_tokens.tolist() if hasattr(new_tokens, "tolist") else new_tokens  # a tensor, or lists (vLLM)
    for i, (row, text, grammar) in enumerate(zip(rows, texts, grammars)):
        ended = any(t in stops for t in row) or answer_complete(tokenizer.decode(row, skip_special_tokens=True))
        if ended:
            out.append(text)
            continue
        scope = scopes[i] if scopes is not None else None
        out.append(complete_prefix(tokenizer, grammar, row, scope) or "")  # nothing finished: no SQL, not a cut one
    return out
