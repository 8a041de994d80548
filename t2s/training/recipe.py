"""Parse a recipe: `t2s/sft.py recipes/x.yaml --any_field value` into (script, training, model) arguments.

TRL's `TrlParser` reads a YAML through `--config`; this adds the positional form used throughout
the README, and checks the YAML before TRL sees it, because `TrlParser` copies YAML values into
argparse defaults unchecked: an unknown key would only surface after model loading and a wrong
type (`lora_r: 8.5`, `learning_rate: [1]`) not at all. Errors name the recipe file and the key.
"""

from __future__ import annotations

from t2s.runtime import UserError, shorten_negated_help

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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


def parse_training_command(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """(recipe path, parsed dataclasses) for a training script: GPU settings on a machine without CUDA and missing
    optional kernels stop it before the dataclasses are built (help needs no device check)."""
    from t2s.training.device import check_device_support, check_optional_kernels

    def preflight(settings: dict[str, Any], recipe: str | None) -> None:
        check_device_support(settings, recipe)
        check_optional_kernels(settings)

    argv = sys.argv[1:] if argv is None else list(argv)
    recipe, _ = split_recipe_argument(argv)
    wants_help = any(a in ("-h", "--help") for a in argv)
    return recipe, parse_recipe(dataclass_types, argv, check=None if wants_help else preflight)
