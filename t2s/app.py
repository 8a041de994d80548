"""The t2s web page: ask a database a question, and open an evaluation to read its errors (Gradio).

    pip install 't2s[app]'
    t2s app --model outputs/demo_spider/adapter                      # http://127.0.0.1:7860
    t2s app --model outputs/demo_spider/adapter --database shop.sqlite --port 8080

*Ask*: a database (an SQLite or DuckDB file, a PostgreSQL/MySQL URL, or uploaded CSV/Parquet files) and a model or
adapter; the SQL, its result and a chart when one fits; the same prompt and sandbox as `t2s ask`. *Evaluation*: a
`t2s evaluate` output folder: accuracy by group, error classes, each wrong answer with both queries and both results,
and a paired comparison with another run. It listens on 127.0.0.1 unless told otherwise: anyone who can reach the page
can ask the database questions.
"""

from __future__ import annotations

import argparse
import sys

from t2s.decoding.embedded import DEFAULT_ASK_MODEL
from t2s.runtime import UserError, run_command


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        help=f"model or adapter the page starts with (default: {DEFAULT_ASK_MODEL}, shipped with t2s, when installed)",
    )
    parser.add_argument("--database", default="", help="database the page starts with (path or URL)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--allow_privileged",
        action="store_true",
        help="let the page open a server account that may do more than read (refused by default; docs/engines.md)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise UserError("the web page needs Gradio: pip install 't2s[app]'") from None
    from t2s.webapp.ui import build, launch

    page = build(default_model=args.model, default_database=args.database, allow_privileged=args.allow_privileged)
    launch(page, args.host, args.port)
    return page


if __name__ == "__main__":
    run_command(main)
