"""Ask questions about your own database: the prompt the model learned, from its schema → SQL → result, in the
sandbox.

    t2s ask --db shop.sqlite "How many orders shipped in May?"         # the shipped model: SmolLM2-135M on Spider
    t2s ask --db 'postgresql://reader:${PGPASSWORD}@host/shop' "How many orders shipped in May?"
    t2s ask --adapter outputs/my_run --csv orders.csv --parquet customers.parquet "Top 3 customers?"
    t2s ask --model embedded:smollm2-135m-instruct --db shop.duckdb     # no question: interactive

The prompt is built as the model learned it (its run record's schema format and linking; flags override them, with a
warning), from the database's own schema, in its engine's dialect. Decoding is greedy, constrained to the database's
schema with column scoping by default (the most accurate choice that still answers interactively on a CPU: the
measured table is in docs/decoding.md); --no-constrained_decoding gives plain greedy decoding, --execution_guided and --num_samples add
execution-guided decoding and voting. The SQL runs in the engine's sandbox (docs/engines.md): your data is never
modified. CSV and Parquet files are read by DuckDB's own readers (types inferred by the engine), one table per file,
named after it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from t2s.data.prompt import SCHEMA_FORMATS, PromptSettings
from t2s.data.schema import from_engine
from t2s.decoding.asker import DEFAULT_ASK_DECODING, Asker
from t2s.decoding.embedded import DEFAULT_ASK_MODEL, default_ask_model
from t2s.decoding.models import (
    check_adapter,
    check_model,
    load_model_and_tokenizer,
    trained_prompt_settings,
    untuned_note,
)
from t2s.decoding.settings import Decoding
from t2s.decoding.vllm_backend import BACKENDS, check_backend
from t2s.execution.engines import is_url, open_engine
from t2s.execution.engines.duckdb import from_files as duckdb_from_files
from t2s.runtime import UserError, run_command

MAX_SHOWN_ROWS = 50
console = Console()


def show(question: str, sql: str, result) -> None:
    console.print(f"[bold]Q:[/] {question}")
    console.print(Syntax(sql or "(no SQL)", "sql", word_wrap=True))
    if result.status != "ok":
        console.print(f"[red]{result.status}:[/] {result.error}")
        return
    table = Table(*(result.columns or []), title=f"{len(result.rows)} row(s)")
    for row in result.rows[:MAX_SHOWN_ROWS]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    if len(result.rows) > MAX_SHOWN_ROWS:
        console.print(f"(first {MAX_SHOWN_ROWS} of {len(result.rows)} rows)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="*", help="the question; none opens an interactive prompt")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--db",
        help="an SQLite or DuckDB file, or a URL: postgresql://…, mysql+pymysql://… (${VAR} from the environment)",
    )
    source.add_argument("--csv", action="append", help="a CSV file with a header row; repeat for several tables")
    source.add_argument("--parquet", action="append", help="a Parquet file; repeat for several tables")
    parser.add_argument("--adapter", help="a t2s LoRA adapter folder or Hub id")
    parser.add_argument(
        "--model",
        help=f"base or merged model, or an embedded name (default: the adapter's base; without an adapter, "
        f"{DEFAULT_ASK_MODEL}, SmolLM2-135M tuned on Spider, which ships with t2s)",
    )
    parser.add_argument(
        "--schema_format",
        choices=SCHEMA_FORMATS,
        help="what the prompt's schema shows (default: what the model learned, from its run record; else types)",
    )
    parser.add_argument(
        "--link_values",
        action=argparse.BooleanOptionalAction,
        help="show the stored values the question mentions (default: as the model learned)",
    )
    parser.add_argument(
        "--prune_tables", type=int, help="keep the N tables the question refers to most (default: as learned; 0: all)"
    )
    parser.add_argument(
        "--schema_max_chars", type=int, help="the schema slot's character budget (default: as learned; 0: none)"
    )
    default = DEFAULT_ASK_DECODING
    switches = (
        ("constrained_decoding", default.constrained,
         "decode under the database's schema grammar: only its tables and columns"),
        ("scoped_columns", None, "with constrained decoding, a column must belong to a table the query names "
         "(default: on with constrained decoding)"),
        ("execution_guided", default.execution_guided,
         "where the answer fails or returns no rows, search beams for one that runs and returns rows"),
    )  # fmt: skip
    for name, value, text in switches:
        parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=value, help=text)
    parser.add_argument(
        "--num_candidates", type=int, default=default.num_candidates, help="beams of --execution_guided"
    )
    parser.add_argument(
        "--num_samples",
        type=int,
        default=default.num_samples,
        help="above 1: the answer and num_samples - 1 samples vote by their results",
    )
    parser.add_argument(
        "--sample_temperature", type=float, default=default.sample_temperature, help="temperature of the samples"
    )
    parser.add_argument("--max_new_tokens", type=int, default=128, help="token budget of the SQL")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="transformers",
        help="what generates: transformers, or vllm (CUDA, pip install 't2s[vllm]'; constrained decoding without "
        "column scoping, no execution-guided decoding: docs/decoding.md)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds the query may run")
    parser.add_argument(
        "--allow_privileged",
        action="store_true",
        help="accept a server account that may do more than read (a superuser, FILE, any write privilege); refused "
        "by default, since model-written SQL runs on it (docs/engines.md)",
    )
    return parser.parse_args(argv)


def prompt_settings(args) -> PromptSettings:
    """The prompt the model learned (its run record), with what the user set on the command line over it; a
    difference from what it learned is said, since it costs accuracy without any error, and so is a model without a
    record, which is likely a base model never tuned to write SQL."""
    trained = trained_prompt_settings(args.model, args.adapter)
    if trained is None and args.adapter is None:
        console.print(f"[yellow]{untuned_note(args.model)}[/]")
    given = {f.name: getattr(args, f.name) for f in fields(PromptSettings) if getattr(args, f.name) is not None}
    chosen = replace(trained or PromptSettings(), **given)
    if trained is not None and trained != chosen:
        changed = "; ".join(f"{name}: {a!r} → {b!r}" for name, a, b in trained.differences(chosen))
        console.print(f"[yellow]The model learned other prompts than these ({changed}): expect lower accuracy.[/]")
    return chosen


def decoding(args) -> Decoding:
    """The decoding asked for; column scoping is on with constrained decoding unless turned off, except with vLLM,
    which cannot run it (then the schema grammar alone, as said; asked for explicitly, it is refused)."""
    default_scoped = args.constrained_decoding and args.backend == "transformers"
    scoped = default_scoped if args.scoped_columns is None else args.scoped_columns
    try:
        check_backend(
            args.backend, constrained=args.constrained_decoding, scoped=scoped,
            execution_guided=args.execution_guided, processes=1,
        )  # fmt: skip
        if args.backend != "transformers" and args.scoped_columns is None and args.constrained_decoding:
            console.print(
                "[yellow]vLLM decodes under the schema grammar without column scoping (docs/decoding.md).[/]"
            )
        return Decoding(
            constrained=args.constrained_decoding, scoped=scoped, execution_guided=args.execution_guided,
            num_candidates=args.num_candidates, num_samples=args.num_samples, sample_temperature=args.sample_temperature,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.question and not " ".join(args.question).strip():
        raise UserError("the question is empty: ask something, or give no question for the interactive prompt")
    chosen = decoding(args)
    if args.db:
        engine = open_engine(args.db, allow_privileged=args.allow_privileged)
        name = engine.label if is_url(args.db) else Path(args.db).stem
    else:
        engine = duckdb_from_files([*(args.csv or []), *(args.parquet or [])])
        name = "files"
    schema = from_engine(engine, name)
    if not schema.tables:
        raise UserError(f"{engine.label if args.db else args.csv or args.parquet}: the database has no tables")
    warning = engine.write_warning()
    if warning:
        console.print(f"[bold red]{warning}[/]")
    if args.model is None and args.adapter is None:
        args.model = default_ask_model()
    if args.model:
        check_model(args.model)
    if args.adapter:
        check_adapter(args.adapter)
    settings = prompt_settings(args)
    model, tokenizer = load_model_and_tokenizer(
        args.model, args.adapter, merge=args.adapter is not None, backend=args.backend
    )
    asker = Asker(
        model, tokenizer, engine, schema, prompt_settings=settings, max_new_tokens=args.max_new_tokens,
        timeout_s=args.timeout, decoding=chosen,
    )  # fmt: skip
    if args.question:
        question = " ".join(args.question).strip()
        sql, result = asker.ask(question)
        show(question, sql, result)
        return sql, result
    console.print(f"Tables: {', '.join(schema.table_names())}. Ask a question (empty line or Ctrl-D to quit).")
    while True:
        try:
            question = input("question> ").strip()
        except EOFError:
            break
        if not question:
            break
        show(question, *asker.ask(question))
    return None


if __name__ == "__main__":
    run_command(main)
