"""Parse a recipe: `t2s/sft.py recipes/x.yaml --any_field value` into (script, training, model) arguments.

TRL's `TrlParser` reads a YAML through `--config`; this adds the positional form used throughout
the README, and checks the YAML before TRL sees it, because `TrlParser` copies YAML values into
argparse defaults unchecked: an unknown key would only surface after model loading and a wrong
type (`lora_r: 8.5`, `learning_rate: [1]`) not at all. Errors name the recipe file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from t2s.runtime import UserError, shorten_negated_help


class RecipeError(UserError, ValueError):
    """A recipe key is unknown or has a value of the wrong type."""


def split_recipe_argument(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(recipe path, remaining args) from either `recipe.yaml …` or `--config recipe.yaml …`."""
    args = list(argv)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            raise RecipeError("--config needs a path to a recipe YAML")
        path = args[i + 1]
        del args[i : i + 2]
        return path, args
    if args and not args[0].startswith("-") and args[0].endswith((".yaml", ".yml")):
        return args[0], args[1:]
    return None, args


def cli_overrides(args: Sequence[str]) -> dict[str, str]:
    """`--key value` / `--key=value` / bare `--flag` pairs from the command line, as raw strings."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    value = args[i + 1]
                    i += 1
                else:
                    value = "true"
            out[key] = value
        i += 1
    return out


def _field_types(dataclass_types: Sequence[type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in dataclass_types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                out[f.name] = hints.get(f.name, Any)
    return out


def _accepts(annotation: Any, value: Any) -> bool:
    if annotation is Any or value is None and _is_optional(annotation):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple, set, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return all(_accepts(item, v) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) or _parses(value, float)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool) or _parses(value, int)
    if annotation is bool:
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    if annotation is str:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type) and issubclass(annotation, __import__("enum").Enum):
        return value in [e.value for e in annotation] or value in [e.name for e in annotation]
    return True


def _parses(value: Any, kind: type) -> bool:
    if not isinstance(value, str):
        return False
    try:
        kind(value)
        return True
    except ValueError:
        return False


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def validate_recipe(path: str | Path, dataclass_types: Sequence[type]) -> dict[str, Any]:
    """Load a recipe YAML and check every key exists and every value has the field's type."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"recipe {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(config, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping of field: value")
    fields = _field_types(dataclass_types)
    problems = []
    for key, value in config.items():
        if key == "env":
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown key '{key}'{hint}")
        elif not _accepts(fields[key], value):
            problems.append(f"'{key}' must be {_describe(fields[key])}, got {value!r} ({type(value).__name__})")
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems))
    return config


def _checkpointing_default(dataclass_types: Sequence[type], settings: dict[str, Any]) -> list[str]:
    """TRL's configs default the deprecated `gradient_checkpointing` to True, so every run that sets neither name
    gets transformers' FutureWarning about a field the user never wrote. Passing TRL's default under the new name,
    `activation_checkpointing`, keeps the behaviour and the warning for recipes that do write the old name."""
    if "activation_checkpointing" in settings or "gradient_checkpointing" in settings:
        return []
    for kind in dataclass_types:
        fields = {f.name: f for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else {}
        if "activation_checkpointing" in fields and "gradient_checkpointing" in fields:
            default = fields["gradient_checkpointing"].default
            if isinstance(default, bool):
                return ["--activation_checkpointing", str(default).lower()]
    return []


def parse_recipe(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    check: Callable[[dict[str, Any], str | None], None] | None = None,
) -> tuple:
    """Parse a recipe plus command-line overrides into dataclass instances, with TRL's `TrlParser`.

    `check(settings, recipe)` sees the effective raw settings (YAML, then command-line overrides)
    before the dataclasses are built, for checks that must precede their own validation (the GPU
    guard: transformers rejects fp16 on a CPU with a less helpful message).
    """
    from trl import TrlParser

    argv = sys.argv[1:] if argv is None else list(argv)
    recipe, rest = split_recipe_argument(argv)
    settings = dict(validate_recipe(recipe, dataclass_types)) if recipe is not None else {}
    if check is not None:
        check({**settings, **cli_overrides(rest)}, recipe)
    rest = [*rest, *_checkpointing_default(dataclass_types, {**settings, **cli_overrides(rest)})]
    if recipe is not None:
        rest = ["--config", recipe, *rest]
    parser = shorten_negated_help(TrlParser(dataclass_types))
    try:
        return parser.parse_args_and_config(rest)
    except ValueError as e:
        raise RecipeError(f"{recipe or 'command line'}: {e}") from None


def parse_training_command(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, description: str | None = None
) -> tuple:
    """(recipe path, parsed dataclasses) for a training script: GPU settings on a machine without CUDA, bf16 on a CPU
    without bf16 kernels and missing optional kernels stop it before the dataclasses are built (help needs no device check). `--help` shows t2s's
    own options and names TRL's and transformers' (`training_help`); `--help_all` gives every option's help."""
    from t2s.training.device import check_cpu_bf16, check_device_support, check_optional_kernels

    def preflight(settings: dict[str, Any], recipe: str | None) -> None:
        check_device_support(settings, recipe)
        check_cpu_bf16(settings, recipe)
        check_optional_kernels(settings)

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help_all" in argv:
        argv = ["--help" if a == "--help_all" else a for a in argv]
    elif any(a in ("-h", "--help") for a in argv):
        print(training_help(dataclass_types, description))
        raise SystemExit(0)
    recipe, _ = split_recipe_argument(argv)
    wants_help = any(a in ("-h", "--help") for a in argv)
    return recipe, parse_recipe(dataclass_types, argv, check=None if wants_help else preflight)


def own_fields(dataclass_types: Sequence[type]) -> set[str]:
    """The fields t2s itself declares (in its own classes), as opposed to those it inherits from TRL or transformers."""
    names: set[str] = set()
    for cls in dataclass_types:
        for klass in cls.__mro__:
            if klass.__module__.startswith("t2s.") and "__annotations__" in vars(klass):
                names.update(vars(klass)["__annotations__"])
    return names


def training_help(dataclass_types: Sequence[type], description: str | None = None, width: int = 100) -> str:
    """A training command's help a reader can finish: t2s's own options in full, then TRL's and transformers' by
    name only (several hundred of them, each documented upstream); `--help_all` prints all of them in full."""
    import argparse
    import textwrap

    from trl import TrlParser

    parser = shorten_negated_help(TrlParser(dataclass_types))
    own = own_fields(dataclass_types)
    prog = Path(sys.argv[0]).name if sys.argv[0].endswith(".py") else sys.argv[0]
    short = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} RECIPE.yaml [--FIELD VALUE ...]",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    group = short.add_argument_group("t2s's options (data, prompt, LoRA layers, training extras)")
    others: dict[str, list[str]] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "config"):
            continue
        if action.dest in own:
            group._add_action(action)
        else:
            owner = next(  # the upstream class a t2s class extends: ModelConfig for t2s's ModelArguments
                (
                    next(k.__name__ for k in c.__mro__ if not k.__module__.startswith("t2s."))
                    for c in dataclass_types
                    if action.dest in getattr(c, "__dataclass_fields__", {})
                ),
                "other",
            )
            others.setdefault(owner, []).append(action.option_strings[0])
    text = short.format_help().rstrip()
    for owner, options in others.items():
        listed = textwrap.fill(" ".join(options), width=width, initial_indent="  ", subsequent_indent="  ")
        text += f"\n\n{owner}'s options ({len(options)}; TRL's and transformers' documentation):\n{listed}"
    return text + (
        "\n\nAny option may be set in the recipe or on the command line (the command line wins). "
        f"{prog} --help_all gives every option's help."
    )


def train_from_command(stage: str, argv: Sequence[str] | None, description: str | None):
    """What `t2s sft` and `t2s grpo` run: the recipe and overrides parsed with the stage's dataclasses, then its
    training (`t2s.training.sft_run.train_sft`, `t2s.training.grpo_run.train_grpo`). Imported here, after
    `run_command` has prepared the process: TRL and PEFT import bitsandbytes (t2s/runtime.py)."""
    if stage == "sft":
        from t2s.training.sft_run import DATACLASSES
        from t2s.training.sft_run import train_sft as train
    elif stage == "grpo":
        from t2s.training.grpo_run import DATACLASSES
        from t2s.training.grpo_run import train_grpo as train
    else:
        raise ValueError(f"no training stage {stage!r}: sft or grpo")
    recipe, (script_args, training_args, model_args) = parse_training_command(
        DATACLASSES, argv, description=description
    )
    return train(script_args, training_args, model_args, recipe)
