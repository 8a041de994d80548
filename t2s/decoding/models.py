"""Load a model for generation: a base (Hub id, folder, or `embedded:` name), base + LoRA adapter, or merged.

An adapter trained by t2s names its base in its run record (`t2s_run.json`): for the embedded model that is the
dequantised GGUF copy it was trained on, not the Hub checkpoint `adapter_config.json` names for PEFT's own loaders.
"""

from __future__ import annotations

from pathlib import Path

import torch

from t2s.data.prompt import PromptSettings
from t2s.data.run_record import has_run, load_run
from t2s.decoding.embedded import DEFAULT_EMBEDDED, is_embedded, resolve_model_name, shipped_adapter, shipped_base
from t2s.runtime import UserError


def resolve_model(model: str | None, adapter: str | None, merge: bool) -> tuple[str, str | None, bool]:
    """(base model folder or Hub id, adapter, merge) for the names a command was given: a shipped adapter's name
    becomes its embedded base with the adapter merged, an adapter alone its recorded base, nothing the default."""
    shipped = shipped_adapter(model)
    if shipped is not None:  # an adapter that ships with t2s: its embedded base, merged
        if adapter is not None:
            raise UserError(f"{model} is already a base with its adapter: give --adapter without it, or neither")
        model, adapter, merge = shipped_base(model), str(shipped), True
    if adapter is not None:
        check_adapter(adapter)
    if model is None and adapter is not None:
        model = adapter_base(adapter)
    model = model or DEFAULT_EMBEDDED
    check_model(model)
    return resolve_model_name(model), adapter, merge


def load_model_and_tokenizer(
    model: str | None = None,
    adapter: str | None = None,
    *,
    merge: bool = False,
    dtype: str = "float32",
    backend: str = "transformers",
    seed: int = 42,
):
    """A causal LM ready for generation: base, base + adapter, or merged, on CUDA when present.

    `backend="vllm"` gives a `t2s.decoding.vllm_backend.VllmGenerator` instead (CUDA; the adapter merged), which
    `generate_sql` drives as it drives a transformers model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, adapter, merge = resolve_model(model, adapter, merge)
    tokenizer_source = adapter if adapter and has_tokenizer(adapter) else path
    if backend == "vllm":
        from t2s.decoding.vllm_backend import VllmGenerator

        folder = path if adapter is None else merged_folder(path, adapter)
        return VllmGenerator(folder, dtype=dtype, seed=seed), AutoTokenizer.from_pretrained(tokenizer_source)
    device = generation_device()
    if device == "cpu" and dtype == "float16":
        raise UserError("dtype float16 needs a CUDA GPU for generation; use float32 or bfloat16 on CPU")
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter)
        if merge:
            lm = lm.merge_and_unload()
    lm.eval()
    return lm, tokenizer


def merged_folder(path: str, adapter: str) -> str:
    """Base + adapter merged (the weights the transformers path runs with --merge_adapter) in a temporary folder that
    is removed at exit: what vLLM loads for an adapter."""
    import atexit
    import shutil
    import tempfile

    merged, tokenizer = load_model_and_tokenizer(path, adapter, merge=True, dtype="float32")
    folder = tempfile.mkdtemp(prefix="t2s-merged-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del merged
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # vLLM sizes its cache from the GPU memory free when it starts
    return folder


def generation_device() -> str:
    """CUDA when present, this process's own GPU under `accelerate launch` (LOCAL_RANK); else the CPU."""
    import os

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0) % torch.cuda.device_count()}"


def check_model(model: str) -> None:
    """Refuse, before anything loads, a model name that is neither an embedded name, a folder nor a Hub id."""
    if is_embedded(model):
        return
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"{model} has no config.json: not a model folder (an adapter folder: --adapter)")
        return
    looks_like_hub_id = model.count("/") <= 1 and not model.startswith((".", "/", "~")) and " " not in model
    if not looks_like_hub_id:
        raise UserError(f"{model}: no such model folder (a Hub id has the form owner/name)")


def check_adapter(adapter: str) -> None:
    """Refuse, before any weights load, an adapter that is neither a PEFT folder nor shaped like a Hub id."""
    path = Path(adapter).expanduser()
    if path.exists():
        if not (path / "adapter_config.json").is_file():
            raise UserError(
                f"{adapter} has no adapter_config.json: not a LoRA adapter folder (a merged model: --model)"
            )
        return
    looks_like_hub_id = adapter.count("/") == 1 and not adapter.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise UserError(f"{adapter}: no such adapter folder (a Hub id has the form owner/name)")


def adapter_base(adapter: str) -> str:
    """The base an adapter was trained on: t2s's run record first (it names the embedded model, whose weights are
    a dequantised GGUF copy, not the Hub checkpoint in adapter_config.json), else PEFT's config."""
    from peft import PeftConfig

    run = load_run(adapter) if Path(adapter).is_dir() else None
    base = run.base_model if run is not None else None
    if base:
        return base
    return PeftConfig.from_pretrained(adapter).base_model_name_or_path


def trained_prompt_settings(model: str | None = None, adapter: str | None = None) -> PromptSettings | None:
    """The prompt settings a model learned, from the run record beside its adapter (or its merged export); None
    when there is none to read (a base model, a Hub id)."""
    shipped = shipped_adapter(model)
    for folder in (adapter, shipped or model):
        if has_run(folder):
            return PromptSettings.from_run(load_run(folder))
    return None


def untuned_note(model: str) -> str:
    """What `ask` and the page say about a model without a t2s run record, most likely a base model."""
    from t2s.decoding.embedded import DEFAULT_ASK_MODEL

    return (
        f"{model} has no t2s run record: if it is a base model, it was not tuned to write SQL and will answer poorly. "
        f"{DEFAULT_ASK_MODEL} (the default) is."
    )


def has_tokenizer(adapter: str) -> bool:
    """Whether an adapter carries its own tokenizer (a Hub id is assumed to: its files are not local)."""
    path = Path(adapter)
    return not path.exists() or (path / "tokenizer_config.json").exists()
