"""What the web page does, as plain functions: open a database, ask it a question, read an evaluation, compare two.

The page (`t2s.webapp.ui`) only lays these out; they are tested without a browser. Asking uses exactly what
`t2s ask` uses (the prompt the model learned, from the database's catalogue; the same decoding choices; the engine's
sandbox), so the page answers as the terminal does. Uploaded files are only read: an SQLite file is opened read-only and immutable, CSV and
Parquet files are read by DuckDB into a private copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2s.data.common import read_jsonl
from t2s.data.prompt import PromptSettings
from t2s.data.schema import DatabaseSchema, from_engine
from t2s.decoding.asker import ASK_CHOICES, Asker
from t2s.evaluation.compare import compare
from t2s.execution.engines import Engine, is_url, open_engine
from t2s.execution.sandbox import Execution
from t2s.runtime import UserError

MAX_SHOWN_ROWS = 200
MAX_CHART_ROWS = 50
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


@dataclass
class Answer:
    question: str
    sql: str
    execution: Execution
    seconds: float

    @property
    def status(self) -> str:
        if self.execution.status != "ok":
            return f"{self.execution.status}: {self.execution.error}"
        rows = self.execution.rows or []
        shown = f" (first {MAX_SHOWN_ROWS} shown)" if len(rows) > MAX_SHOWN_ROWS else ""
        return f"{len(rows)} row(s){shown} in {self.seconds:.1f} s"

    def table(self) -> dict[str, Any]:
        """Headers and rows for a table widget (values as text, NULL shown as such)."""
        rows = (self.execution.rows or [])[:MAX_SHOWN_ROWS]
        if self.execution.columns is not None:
            headers = _unique_headers(self.execution.columns)  # a result without rows keeps its columns' names
        else:
            headers = _blank_headers(len(rows[0]) if rows else 0)
        return {"headers": headers, "data": [["NULL" if v is None else str(v) for v in row] for row in rows]}

    def chart(self) -> dict[str, Any] | None:
        """A bar chart when the result is a label column and a number column with a few rows, else None."""
        rows = self.execution.rows or []
        if self.execution.status != "ok" or not 2 <= len(rows) <= MAX_CHART_ROWS or len(rows[0]) != 2:
            return None
        labels, values = zip(*rows)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        if all(isinstance(v, (int, float)) for v in labels) and len(set(labels)) != len(labels):
            return None
        headers = _unique_headers(self.execution.columns or ["label", "value"])
        return {"x": headers[0], "y": headers[1], "rows": [{"x": str(a), "y": float(b)} for a, b in rows]}


def _unique_headers(headers: Sequence[str]) -> list[str]:
    """Headers a table widget can hold (distinct): a repeated name gets its rank."""
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        name = str(h) or "?"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _blank_headers(width: int) -> list[str]:
    """Headers for columns whose names are unknown: blank, yet distinct as a table widget needs (runs of spaces)."""
    return [" " * (i + 1) for i in range(width)]


@dataclass
class Session:
    """One open database and the model that answers about it."""

    engine: Engine
    schema: DatabaseSchema
    asker: Asker | None = None
    warning: str | None = None
    history: list[Answer] = field(default_factory=list)

    def describe(self) -> str:
        tables = ", ".join(f"{t.name} ({len(t.columns)} columns)" for t in self.schema.tables)
        dialect = self.engine.display
        text = f"**{self.schema.db_id}** ({dialect}): {len(self.schema.tables)} tables: {tables}"
        return text + (f"\n\n⚠️ {self.warning}" if self.warning else "")

    def close(self) -> None:
        self.engine.close()


def open_session(
    *,
    path_or_url: str | None = None,
    files: Sequence[str] | None = None,
    name: str | None = None,
    allow_privileged: bool = False,
) -> Session:
    """A database from a path or URL (SQLite, DuckDB, PostgreSQL, MySQL) or from data files (CSV, Parquet)."""
    from t2s.execution.engines.duckdb import from_files

    files = [str(f) for f in files or [] if f]
    if files and path_or_url:
        raise UserError("choose a database file or URL, or data files, not both")
    if files:
        sqlite_files = [f for f in files if Path(f).suffix.lower() not in DATA_SUFFIXES]
        if sqlite_files and len(files) == 1:
            return open_session(path_or_url=files[0], name=name, allow_privileged=allow_privileged)
        if sqlite_files:
            raise UserError(f"{Path(sqlite_files[0]).name}: upload one database file, or CSV/Parquet files")
        engine = from_files(files)
        label = name or "files"
    elif path_or_url and path_or_url.strip():
        engine = open_engine(path_or_url.strip(), allow_privileged=allow_privileged)
        label = name or (engine.label if is_url(path_or_url) else Path(path_or_url).stem)
    else:
        raise UserError("give a database: a file, a URL, or CSV/Parquet files")
    try:
        schema = from_engine(engine, label)
        if not schema.tables:
            raise UserError(f"{engine.label}: the database has no tables")
        warning = engine.write_warning()
    except BaseException:
        engine.close()
        raise
    return Session(engine, schema, warning=warning)


def attach_model(
    session: Session, model, tokenizer, *, prompt_settings: PromptSettings | None = None, max_new_tokens: int = 128
):
    """The model answers the session's questions with the prompts it learned (`prompt_settings`, from its run
    record; None: the canonical defaults)."""
    session.asker = Asker(
        model, tokenizer, session.engine, session.schema, prompt_settings=prompt_settings,
        max_new_tokens=max_new_tokens,
    )  # fmt: skip
    return session


def ask(session: Session, question: str, decoding: str | None = None) -> Answer:
    """`decoding`: one of `ASK_CHOICES` by name (None: as the session's asker was made, the default)."""
    if not question or not question.strip():
        raise UserError("ask a question")
    if session.asker is None:
        raise UserError("no model is loaded")
    if decoding is not None:
        if decoding not in ASK_CHOICES:
            raise UserError(f"{decoding!r} is not a decoding the page offers: {', '.join(ASK_CHOICES)}")
        session.asker.decoding = ASK_CHOICES[decoding]
    started = time.perf_counter()
    sql, execution = session.asker.ask(question.strip())
    answer = Answer(question.strip(), sql, execution, time.perf_counter() - started)
    session.history.append(answer)
    return answer


# --------------------------------------------------------------------------- evaluations


@dataclass
class Evaluation:
    """An evaluation output folder (`t2s evaluate --output_dir`), read once."""

    folder: Path
    metrics: dict[str, Any]
    analysis: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["example_id"]: r for r in self.records}

    def summary(self) -> str:
        m = self.metrics
        lines = [
            f"**{self.folder.name}**: execution accuracy **{m['execution_accuracy']:.1%}** "
            f"({m['outcomes']['correct']}/{m['num_scored']})",
            f"- protocol: {m.get('protocol')}",
            f"- decoding: {m.get('decoding')}; schema in prompt: {m.get('schema_format')}",
            f"- semantics: {m.get('semantics')}; without empty-gold examples: "
            f"{m['execution_accuracy_nonempty_gold']:.1%}",
            "- outcomes: " + ", ".join(f"{k} {v}" for k, v in m["outcomes"].items()),
        ]
        if m.get("gold_errors"):
            lines.append(f"- gold errors (left out): {m['gold_errors']}")
        return "\n".join(lines)

    def breakdown(self) -> tuple[str, list[list[Any]]]:
        """The dataset's own breakdown: accuracy by hardness (Spider) or by number of conditions (WikiSQL)."""
        for key, title in (("by_hardness", "hardness"), ("by_num_conditions", "gold conditions")):
            groups = self.analysis.get(key)
            if groups:
                rows = [[name, g["n"], f"{1 - g['error_rate']:.1%}", _top(g)] for name, g in groups.items()]
                return title, rows
        return "group", []

    def classes(self) -> list[list[Any]]:
        """Error classes by how many wrong answers they explain first."""
        primary = self.analysis.get("primary_categories", {})
        n = self.analysis.get("num_examples") or 1
        return [[name, e["count"], f"{e['count'] / n:.1%}"] for name, e in primary.items()]

    def questions(self, category: str | None) -> list[list[Any]]:
        """The questions of one class (or every wrong one): id, question, outcome, predicted SQL."""
        rows = []
        for e in self.analysis.get("examples", []):
            if not e.get("primary") or (category and e["primary"] != category):
                continue
            rows.append([e["example_id"], e["question"], e["outcome"], e.get("prediction") or ""])
        return rows

    def example(self, example_id: str) -> dict[str, Any]:
        """One question with gold and predicted SQL and both results."""
        record = self.by_id.get(example_id)
        if record is None:
            raise UserError(f"{example_id}: not a question of {self.folder}")
        return {
            "question": record["question"],
            "db_id": record.get("db_id"),
            "gold_sql": record.get("gold_sql", ""),
            "prediction": record.get("prediction") or "",
            "outcome": record.get("outcome"),
            "error": record.get("error"),
            "gold_rows": record.get("gold_rows"),
            "prediction_rows": record.get("prediction_rows"),
            "gold_columns": record.get("gold_columns"),
            "prediction_columns": record.get("prediction_columns"),
        }


def _top(group: dict[str, Any]) -> str:
    if "top_category" not in group:
        return ""
    return f"{group['top_category']} ({group['top_share']:.0%} of its errors)"


def open_evaluation(folder: str | Path) -> Evaluation:
    folder = Path(str(folder)).expanduser()
    missing = [n for n in ("predictions.jsonl", "metrics.json") if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder}: not an evaluation folder (no {', '.join(missing)}; `t2s evaluate --output_dir`)")
    metrics = json.loads((folder / "metrics.json").read_text())
    analysis_path = folder / "analysis.json"
    analysis = json.loads(analysis_path.read_text()) if analysis_path.is_file() else {}
    return Evaluation(folder, metrics, analysis, read_jsonl(folder / "predictions.jsonl"))


def compare_evaluations(a: str | Path, b: str | Path) -> str:
    """Both accuracies on the same questions, fixed/broken counts and McNemar's exact test, as Markdown."""
    result = compare(str(a), str(b))
    lines = [
        f"**{Path(str(a)).name}** {result['accuracy_a']:.1%} → **{Path(str(b)).name}** {result['accuracy_b']:.1%} "
        f"on {result['n']} paired questions",
        f"- fixed (wrong → right): {result['fixed']}; broken (right → wrong): {result['broken']}",
        f"- both right {result['both_correct']}, both wrong {result['both_wrong']}",
        f"- McNemar's exact test: p = {result['mcnemar_p']:.3g}",
    ]
    return "\n".join(lines)


def rows_table(rows: list | None, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """A result's first rows (as the run recorded them) for a table widget, headed by the result's column names;
    a run recorded before t2s kept them has none, and its columns get blank headers rather than made-up ones."""
    rows = rows or []
    width = max((len(r) for r in rows), default=len(columns or ()))
    known = columns is not None and len(columns) == width
    return {
        "headers": _unique_headers(columns) if known else _blank_headers(width),
        "data": [["NULL" if v is None else str(v) for v in r] for r in rows],
    }
