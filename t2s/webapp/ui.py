"""The t2s web page (Gradio): ask a database a question; open an evaluation and read its errors; compare two runs.

Layout only: every action is a function of `t2s.webapp.functions`. One model is loaded per name and shared by every
visitor (generation runs one question at a time); each visitor's database is their own (`gr.State`), closed when they
open another.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from typing import Any

from t2s.decoding.asker import ASK_CHOICES
from t2s.runtime import UserError, user_error_types
from t2s.webapp import functions as f

CSS = """
#t2s-title h1 { margin-bottom: 0; }
.t2s-muted { color: var(--body-text-color-subdued); }
"""
EXAMPLES_HINT = (
    "A database: an SQLite or DuckDB file on this machine, a URL (`postgresql://reader:${PGPASSWORD}@host/db`, "
    "`mysql+pymysql://…`), or upload one database file or CSV/Parquet files. Your data is only read."
)


@functools.lru_cache(maxsize=2)
def _load_model(name: str):
    from pathlib import Path

    from t2s.decoding.models import load_model_and_tokenizer

    is_adapter = (Path(name) / "adapter_config.json").is_file()
    if is_adapter:
        return load_model_and_tokenizer(None, name, merge=True)
    return load_model_and_tokenizer(name or None)


def _trained_settings(name: str):
    """The prompt settings the named model or adapter learned (its run record), or None."""
    from t2s.decoding.models import trained_prompt_settings

    return trained_prompt_settings(model=name) if name else None


def launch(page, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True):
    """Serve the page: no server-side rendering (it would start a Node.js server), no usage analytics and system
    fonts rather than Google's (t2s runs where the network may be closed), the page's own CSS."""
    import gradio as gr

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "Consolas", "monospace"]
    )
    return page.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        ssr_mode=False,
        css=CSS,
        theme=theme,
        quiet=not block,
    )


def build(
    default_model: str | None = None,
    default_database: str = "",
    loader=None,
    *,
    allow_privileged: bool = False,
):
    """The Blocks of the page. `loader(name) -> (model, tokenizer)` replaces model loading (tests); the model box
    starts with `default_model`, else the shipped SQL model (`default_ask_model`)."""
    from t2s.decoding.embedded import default_ask_model

    default_model = default_model or default_ask_model()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's queue calls pandas options that pandas 3 deprecates, once per event: noise in the app's console.
    for message in ("'future.no_silent_downcasting' is deprecated", "The copy keyword is deprecated"):
        warnings.filterwarnings("ignore", message=message, module="gradio")
    import gradio as gr
    import pandas as pd

    load = loader or _load_model

    def errors(fn):
        """Every error as its text on the page, and one line on the server's console, never a traceback."""

        @functools.wraps(fn)
        def wrapped(*args):
            try:
                return fn(*args)
            except gr.Error:
                raise
            except user_error_types() as e:
                raise gr.Error(str(e)) from None
            except Exception as e:  # noqa: BLE001 - a library's error (a Hub id that is not one…): its text, said
                text = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                logging.getLogger("t2s.app").warning("%s failed: %s", fn.__name__, text)
                raise gr.Error(text) from None

        return wrapped

    @errors
    def open_database(text: str, files: list[str] | None, model_name: str, session: f.Session | None):
        # The new database is opened first: a failure leaves the open one as it was, and the page with it.
        opened = f.open_session(path_or_url=text or None, files=files or None, allow_privileged=allow_privileged)
        try:
            model, tokenizer = load(model_name.strip())
            learned = _trained_settings(model_name.strip())
            f.attach_model(opened, model, tokenizer, prompt_settings=learned)
            if learned is None:
                from t2s.decoding.models import untuned_note

                opened.warning = "\n\n".join(filter(None, [opened.warning, untuned_note(model_name.strip())]))
        except BaseException:
            opened.close()
            raise
        if session is not None:
            session.close()
        return opened, opened.describe()

    @errors
    def ask(question: str, decoding: str, session: f.Session | None):
        if session is None:
            raise UserError("open a database first")
        answer = f.ask(session, question, decoding)
        table = answer.table()
        chart = answer.chart()
        # No result (an error): no table at all, rather than an empty one with made-up headers.
        frame = (
            gr.Dataframe(value=pd.DataFrame(table["data"], columns=table["headers"]), visible=True)
            if table["headers"]
            else gr.Dataframe(value=None, visible=False)
        )
        if chart:
            data = pd.DataFrame(chart["rows"]).rename(columns={"x": chart["x"], "y": chart["y"]})
            plot = gr.BarPlot(value=data, x=chart["x"], y=chart["y"], visible=True, label="Chart")
        else:
            plot = gr.BarPlot(visible=False)
        return answer.sql, answer.status, frame, plot

    @errors
    def open_evaluation(folder: str):
        evaluation = f.open_evaluation(folder)
        title, rows = evaluation.breakdown()
        breakdown = pd.DataFrame(rows, columns=[title, "questions", "accuracy", "most common error"])
        classes = pd.DataFrame(evaluation.classes(), columns=["error class", "questions", "share of all"])
        choices = ["all wrong answers", *[c[0] for c in evaluation.classes()]]
        return (
            evaluation,
            evaluation.summary(),
            breakdown,
            classes,
            gr.Dropdown(choices=choices, value=choices[0]),
            _questions(evaluation, None),
            # what belonged to the evaluation open before: its picked question, both queries and results, comparison
            "", "", "", None, None, "",
        )  # fmt: skip

    def _questions(evaluation: f.Evaluation, category: str | None):
        rows = evaluation.questions(None if category in (None, "all wrong answers") else category)
        return pd.DataFrame(rows, columns=["id", "question", "outcome", "predicted SQL"])

    @errors
    def pick_category(category: str, evaluation: f.Evaluation | None):
        if evaluation is None:
            raise UserError("open an evaluation folder first")
        return _questions(evaluation, category)

    def pick_question(evaluation: f.Evaluation | None, frame: Any, event):
        if evaluation is None:
            raise UserError("open an evaluation folder first")
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        example = evaluation.example(str(frame.iloc[row, 0]))
        gold = f.rows_table(example["gold_rows"], example["gold_columns"])
        predicted = f.rows_table(example["prediction_rows"], example["prediction_columns"])
        heading = f"**{example['question']}** ({example['db_id']}): {example['outcome']}"
        if example["error"]:
            heading += f": {example['error']}"
        return (
            heading,
            example["gold_sql"],
            example["prediction"],
            pd.DataFrame(gold["data"], columns=gold["headers"]),
            pd.DataFrame(predicted["data"], columns=predicted["headers"]),
        )

    # Gradio finds the selection argument by its annotation, which must be the class itself (this module's annotations
    # are strings).
    pick_question.__annotations__["event"] = gr.SelectData
    pick_question = errors(pick_question)

    @errors
    def compare(a: str, b: str):
        if not a or not b:
            raise UserError("give two evaluation folders of the same questions")
        return f.compare_evaluations(a, b)

    with gr.Blocks(title="t2s: ask a database, read an evaluation") as page:
        gr.Markdown("# t2s\nAsk a database in plain language, and read how a model's SQL fares.", elem_id="t2s-title")
        with gr.Tab("Ask", id="ask-tab"):
            # A visitor's database is closed when their session ends, not only when they open another.
            session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    database = gr.Textbox(
                        label="Database (file path or URL)", value=default_database, elem_id="database",
                        placeholder="shop.sqlite, shop.duckdb, postgresql://reader:${PGPASSWORD}@host/shop",
                    )  # fmt: skip
                    uploads = gr.File(
                        label="…or upload a database file or CSV/Parquet files",
                        file_count="multiple",
                        type="filepath",
                        elem_id="uploads",
                    )
                    model_name = gr.Textbox(label="Model or adapter", value=default_model, elem_id="model")
                    open_button = gr.Button("Open database", elem_id="open-database")
                    gr.Markdown(EXAMPLES_HINT, elem_classes="t2s-muted")
                    description = gr.Markdown(elem_id="database-description")
                with gr.Column(scale=2):
                    question = gr.Textbox(  # one line: Enter asks
                        label="Question", placeholder="Which customers live in Lyon?", elem_id="question", lines=1
                    )
                    with gr.Row():
                        decoding = gr.Dropdown(
                            label="Decoding (docs/decoding.md: accuracy and time of each)", choices=list(ASK_CHOICES),
                            value=next(iter(ASK_CHOICES)), elem_id="decoding", scale=3,
                        )  # fmt: skip
                        ask_button = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                    sql = gr.Code(label="SQL", language="sql", elem_id="sql", interactive=False, wrap_lines=True)
                    status = gr.Markdown(elem_id="status")
                    result = gr.Dataframe(label="Result", elem_id="result", interactive=False, wrap=True)
                    chart = gr.BarPlot(visible=False, elem_id="chart")
            # Opening and asking share one queue (one at a time, in order, for every visitor: generation takes the
            # CPU anyway): a question asked while a database is opening waits for it, and is answered by it.
            queue = {"concurrency_id": "database", "concurrency_limit": 1}
            open_event = {"fn": open_database, "inputs": [database, uploads, model_name, session],
                          "outputs": [session, description], **queue}  # fmt: skip
            open_button.click(**open_event)
            if default_database:  # `t2s app --database X` opens it when the page loads
                page.load(**open_event)
            ask_event = {
                "fn": ask,
                "inputs": [question, decoding, session],
                "outputs": [sql, status, result, chart],
                **queue,
            }
            ask_button.click(**ask_event)
            question.submit(**ask_event)

        with gr.Tab("Evaluation", id="evaluation-tab"):
            evaluation = gr.State(None)
            with gr.Row():
                folder = gr.Textbox(
                    label="Evaluation folder (t2s evaluate --output_dir)", scale=4, elem_id="evaluation-folder"
                )
                open_eval = gr.Button("Open", scale=1, elem_id="open-evaluation")
            summary = gr.Markdown(elem_id="evaluation-summary")
            with gr.Row():
                breakdown = gr.Dataframe(label="Accuracy by group", interactive=False, elem_id="breakdown")
                classes = gr.Dataframe(label="Error classes", interactive=False, elem_id="classes")
            category = gr.Dropdown(label="Questions of", choices=[], elem_id="category")
            questions = gr.Dataframe(
                label="Wrong answers (select one to see both queries and both results)",
                interactive=False,
                wrap=True,
                column_widths=["14%", "40%", "10%", "36%"],
                elem_id="questions",
            )
            picked = gr.Markdown(elem_id="picked")
            with gr.Row():
                gold_sql = gr.Code(
                    label="Gold SQL", language="sql", interactive=False, elem_id="gold-sql", wrap_lines=True
                )
                predicted_sql = gr.Code(
                    label="Predicted SQL", language="sql", interactive=False, elem_id="pred-sql", wrap_lines=True
                )
            with gr.Row():
                gold_rows = gr.Dataframe(label="Gold result (first rows)", interactive=False, elem_id="gold-rows")
                predicted_rows = gr.Dataframe(
                    label="Predicted result (first rows)", interactive=False, elem_id="pred-rows"
                )
            with gr.Accordion("Compare with another run of the same questions", open=False):
                with gr.Row():
                    other = gr.Textbox(label="Other evaluation folder", scale=4, elem_id="other-folder")
                    compare_button = gr.Button("Compare", scale=1, elem_id="compare")
                comparison = gr.Markdown(elem_id="comparison")
            open_eval.click(
                open_evaluation,
                [folder],
                [evaluation, summary, breakdown, classes, category, questions,
                 picked, gold_sql, predicted_sql, gold_rows, predicted_rows, comparison],
            )  # fmt: skip
            category.change(pick_category, [category, evaluation], [questions])
            questions.select(
                pick_question, [evaluation, questions], [picked, gold_sql, predicted_sql, gold_rows, predicted_rows]
            )
            compare_button.click(compare, [folder, other], [comparison])
    return page
