"""User errors versus bugs: what a command prints when it stops.

A wrong recipe key, a missing data file or a GPU recipe on a CPU is the user's to fix, and the message
already says how: the command prints it and exits with status 2, without a traceback. Anything else is
a bug in t2s or below it and keeps its full traceback. `T2S_TRACEBACK=1` shows tracebacks for user
errors too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Raised for input the user must change (recipe, data, files, flags); the message says what to do."""


def user_error_types() -> tuple[type[BaseException], ...]:
    return (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def run_command(main: Callable[..., Any], argv: list[str] | None = None) -> Any:
    """Run a command's `main`, turning user errors into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except user_error_types() as e:
        if os.environ.get("T2S_TRACEBACK"):
            raise
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
        raise SystemExit(2) from None
