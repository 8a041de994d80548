"""What every t2s process shares: how a command stops on a user error, and two process-wide settings.

* The end of a launched process. Under `accelerate launch` with several processes, each one leaves its process group
  before it exits (`end_process_group`): a gloo process group still alive at interpreter exit can abort the process
  (SIGABRT, "terminate called without an active exception"; pytorch/pytorch#190489; docs/training.md, "Several
  processes"), and torchrun then stops the main process in the middle of writing its records.
* User errors versus bugs. A wrong recipe key, a missing data file or a GPU recipe on a CPU is the user's to fix,
  and the message already says how: the command prints it and exits with status 2, without a traceback. Anything
  else is a bug in t2s or below it and keeps its full traceback. `T2S_TRACEBACK=1` shows tracebacks for user
  errors too.
* Harmless library messages dropped. peft imports bitsandbytes at import time, and bitsandbytes on a CPU with AVX-512
  BF16 then tries to fetch an optional 4-bit GEMM kernel through the `kernels` package and logs "Failed to load CPU
  gemm_4bit_forward from kernels-community". Nothing is wrong: 4-bit layers fall back to bitsandbytes' own CPU
  code. A command filters that one message (and three library deprecation warnings, below) when it starts
  (`prepare_process`, called by `run_command` before the command imports anything heavy, and by the training entry
  points); every other message still shows. Importing t2s changes nothing in the importing process: no filter, no
  allocator setting (tests/test_layout.py checks it).
* An opt-in for CPU runs short of memory (`T2S_MALLOC=mmap`): keep resident memory close to what the tensors use,
  at a cost in speed. glibc's malloc serves blocks above its mmap threshold with mmap (returned to the system when
  freed) and smaller ones from its heap; the threshold starts at 128 KiB but rises, up to 32 MiB, each time a large
  mmapped block is freed. PyTorch on a CPU frees large blocks all the time, so after a few steps tensors of a few
  MiB come from the heap, fragment it, and are not returned. Pinning the threshold (what `MALLOC_MMAP_THRESHOLD_`
  sets before a process starts, `mallopt` after) keeps every larger block on mmap; every large tensor then costs
  fresh pages from the kernel, so it is off by default (docs/benchmarks.md, "Memory"). It changes where memory
  comes from, never a result.
* Which allocator a run used. Over a long CPU training run glibc's heap fragments so far that malloc itself takes a
  large share of each step, and the run slows down as it goes. jemalloc, preloaded by `scripts/with_jemalloc.sh`
  (what the full CPU recipes' make targets run), spends no such time and holds less than half the memory; `allocator()`
  says which one served a process, and run records keep it (docs/training.md, "Memory allocator").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Raised for input the user must change (recipe, data, files, flags); the message says what to do."""


def user_error_types() -> tuple[type[BaseException], ...]:
    return (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def run_command(main: Callable[..., Any], argv: list[str] | None = None) -> Any:
    """Run a command's `main` in a prepared process (`prepare_process`), turning user errors into one line on stderr
    and exit status 2."""
    prepare_process()
    try:
        return main(argv)
    except user_error_types() as e:
        if os.environ.get("T2S_TRACEBACK"):
            raise
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
        raise SystemExit(2) from None
    finally:
        end_process_group()


def end_process_group() -> None:
    """Leave the process group this process joined, if any, while the interpreter is whole (module docstring).

    Each process leaves on its own, without waiting for the others: the main one may still be scoring or writing, and
    destroying a group only closes this process's side of it. A command that never imported torch.distributed has no
    group and imports nothing here."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- the bitsandbytes kernels message


class _DropMissingKernelsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward" not in record.getMessage()


_KERNELS_FILTER = _DropMissingKernelsWarning()

# transformers 5 renamed gradient checkpointing to activation checkpointing; PEFT 0.21 (`PeftModel.__init__`) and
# TRL 1.16 (`trl/models/utils.py`) still call the old model methods, so every adapter load and training run would print
# these FutureWarnings with nothing for a t2s user to change. Exactly those three are dropped (docs/dependencies.md);
# the one about the `gradient_checkpointing` *argument* stays, since a recipe that writes it can be fixed.
LIBRARY_DEPRECATIONS = ("is_gradient_checkpointing", "gradient_checkpointing_enable", "gradient_checkpointing_disable")


def drop_library_warnings() -> None:
    """Install the filter (at a command's start; again wherever warnings filters are reset, e.g. per test)."""
    for method in LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=f"`{method}` is deprecated", category=FutureWarning)


def prepare_process() -> None:
    """What a t2s command sets in its own process, first: the two message filters above and the `T2S_MALLOC`
    choice below. Called by `run_command` and the training entry points, never at import: a library that changed
    the allocator, the logging or the warnings of the program importing it would surprise its users. Idempotent."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if _KERNELS_FILTER not in logger.filters:
        logger.addFilter(_KERNELS_FILTER)
    drop_library_warnings()
    apply_from_environment()


# --------------------------------------------------------------------------- T2S_MALLOC=mmap

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024


def _glibc(function: str, *argtypes):
    """A glibc malloc function through ctypes; None off Linux or where the C library lacks it (musl has no mallopt
    and no malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        found = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), function)
    except (OSError, AttributeError):
        return None
    found.argtypes = list(argtypes)
    return found


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold; False where there is no glibc or `MALLOC_MMAP_THRESHOLD_` already decides."""
    mallopt = None if os.environ.get("MALLOC_MMAP_THRESHOLD_") else _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Give the pages of freed heap blocks back to the system (glibc's `malloc_trim`); False without glibc.

    Unlike a pinned mmap threshold this costs nothing per allocation: the blocks stay where they are and only their
    unused pages are dropped, so a later step that reuses them takes page faults for them. It lowers what a process
    holds between steps, not the peak a step itself reaches (docs/experiments.md, "Full recipes"). False, doing nothing,
    where another malloc serves the process (jemalloc returns freed pages by itself).
    """
    trim = _glibc("malloc_trim", ctypes.c_size_t)
    if trim is None or allocator() != "glibc":
        return False
    trim(0)
    return True


def allocator() -> str:
    """Which malloc serves this process: `jemalloc` or `tcmalloc` when one is preloaded (`scripts/with_jemalloc.sh`),
    else the C library's own (`glibc`, or `system` where Python cannot tell). Run records keep it: on a CPU it decides
    how a long run's speed and memory evolve (docs/training.md, "Memory allocator")."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for name in ("jemalloc", "tcmalloc"):
        if f"/lib{name}" in maps:
            return name
    return platform.libc_ver()[0] or "system"


def _status_bytes(field: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def resident_memory() -> int | None:
    """Bytes this process holds in memory now (VmRSS); None off Linux."""
    return _status_bytes("VmRSS")


def peak_rss() -> int | None:
    """Bytes of this process's highest resident memory so far (VmHWM, what `getrusage` reports); None off Linux."""
    return _status_bytes("VmHWM")


def apply_from_environment() -> bool:
    """`T2S_MALLOC=mmap`: pin the threshold for this process (`prepare_process` calls this)."""
    return os.environ.get("T2S_MALLOC") == "mmap" and fix_mmap_threshold()


# --------------------------------------------------------------------------- command-line help


def dataclass_parser(dataclass_types, description: str | None = None):
    """transformers' `HfArgumentParser` over `dataclass_types`, with the command's docstring kept as written and each
    `--no_X` switch described in one line rather than by a copy of `--X`'s help."""
    import argparse

    from transformers import HfArgumentParser

    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        def _get_help_string(self, action):
            if any(o.startswith("--no_") for o in action.option_strings):
                return action.help  # "(default: False)" would read as the opposite of what it means
            if action.default is None or "default" in (action.help or "").lower():
                return action.help  # nothing to add, or the help already says it ("(default $T2S_SPIDER_DIR)")
            return super()._get_help_string(action)

    parser = HfArgumentParser(dataclass_types, description=description, formatter_class=Formatter)
    return shorten_negated_help(parser)


def parse_command(dataclass_types, description: str | None, argv: list[str] | None):
    """The command's arguments as its dataclasses; an option no dataclass has stops the command the way argparse
    does (usage, the unknown options, exit status 2), not with a ValueError's traceback."""
    parser = dataclass_parser(dataclass_types, description)
    *parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (--help lists every option)")
    return tuple(parsed)


def shorten_negated_help(parser):
    """HfArgumentParser gives `--no_X` the whole help of `--X`; say what it does instead."""
    for action in parser._actions:
        negated = [o for o in action.option_strings if o.startswith("--no_")]
        if negated:
            action.help = f"Turn --{negated[0].removeprefix('--no_')} off."
    return parser
