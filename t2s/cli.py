"""The `t2s` console command: one subcommand per t2s command, so an installed t2s needs no file paths.

    t2s sft recipes/smollm2-135m/wikisql/sft_cpu.yaml --max_steps 20
    t2s evaluate --adapter outputs/demo/adapter --table_split heldout --limit 500 --output_dir outputs/eval
    t2s compare outputs/eval/zero_shot outputs/eval/finetuned
    t2s ask --adapter outputs/demo_spider/adapter --db my.sqlite "How many orders shipped in May?"

Each subcommand takes exactly the arguments of the script it stands for (`t2s sft …` is `python t2s/sft.py …`);
`t2s SUBCOMMAND --help` shows them. Training runs in this process; for several processes or a GPU configuration use
`accelerate launch --config_file accelerate_configs/….yaml t2s/sft.py RECIPE`.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Sequence

import t2s
from t2s.runtime import run_command


def _script(target: str) -> Callable[[list[str]], object]:
    """The `main` of a command module, imported only when its subcommand runs (`t2s --help` stays fast)."""
    module, function = target.split(":")

    def run(argv: list[str]):
        return getattr(importlib.import_module(module), function)(argv)

    return run


def _compare(argv):
    from t2s.evaluate_sql import compare_main

    return compare_main(argv)


# name → (what it does, the function taking the rest of the command line)
COMMANDS: dict[str, tuple[str, Callable[[list[str]], object]]] = {
    "sft": ("fine-tune with LoRA/QLoRA from a recipe (t2s/sft.py)", _script("t2s.sft:cli")),
    "grpo": ("reinforcement learning with the execution reward (t2s/grpo.py)", _script("t2s.grpo:cli")),
    "generate": (
        "write SQL for dataset questions to a JSON Lines file (t2s/generate.py)",
        _script("t2s.generate:main"),
    ),
    "evaluate": (
        "execution accuracy, error analysis, model-card record (t2s/evaluate_sql.py)",
        _script("t2s.evaluate_sql:main"),
    ),
    "compare": ("paired comparison of two evaluations, McNemar's test (evaluate_sql.py compare)", _compare),
    "ask": (
        "ask your own database (SQLite, DuckDB, PostgreSQL, MySQL) or CSV/Parquet files a question (t2s/ask.py)",
        _script("t2s.ask:main"),
    ),
    "app": ("the web page: ask a database, read an evaluation (t2s/app.py; needs t2s[app])", _script("t2s.app:main")),
    "copy-db": (
        "copy an SQLite database into PostgreSQL, MySQL or DuckDB (t2s/dbtools.py)",
        _script("t2s.dbtools:copy_main"),
    ),
    "transpile": ("SQLite SQL in another engine's dialect (t2s/dbtools.py)", _script("t2s.dbtools:transpile_main")),
    "copy-dataset": (
        "a Spider-layout dataset on DuckDB, its gold transpiled and checked there (t2s/dbtools.py)",
        _script("t2s.dbtools:copy_dataset_main"),
    ),
    "export": ("merge an adapter into a standalone model, verified (t2s/export.py)", _script("t2s.export:main")),
    "push": ("push an adapter folder with its model card to the Hub (t2s/push.py)", _script("t2s.push:main")),
    "grpo-report": ("reward curve and zero-std share of a GRPO run", _script("t2s.training.grpo_report:main")),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {what}" for name, (what, _) in COMMANDS.items()]
    return (
        "usage: t2s COMMAND [ARGS...]   (t2s COMMAND --help for its arguments)\n\n"
        "Teach language models to write SQL, and score them by executing it.\n\ncommands:\n" + "\n".join(lines)
    )


def main(argv: Sequence[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return None
    if argv[0] == "--version":
        print(f"t2s {t2s.__version__}")
        return None
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"t2s: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    # Each command's parser names itself after sys.argv[0]: `t2s ask`, not `t2s` or `ask.py`, in its usage line.
    program = sys.argv[0]
    sys.argv[0] = f"t2s {name}"
    try:
        return run_command(COMMANDS[name][1], rest)
    finally:
        sys.argv[0] = program


def entry_point() -> None:
    """The installed `t2s` script: exit status 0 unless a command raised SystemExit."""
    main()


if __name__ == "__main__":
    entry_point()
