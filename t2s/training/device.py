"""Refuse, before anything loads, a recipe that needs a GPU on a machine without CUDA.

Without this, a GPU recipe on a CPU machine dies deep inside transformers or bitsandbytes, or
worse, a CPU run quietly drops a GPU feature and its numbers get reported as if it had used it.
The check reads the recipe's effective settings (YAML plus command-line overrides) so it runs
before argument parsing, where transformers would raise its own less helpful error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from t2s.runtime import UserError


class DeviceSupportError(UserError, RuntimeError):
    """The recipe asks for a GPU feature this machine cannot provide."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def gpu_requirements(settings: Mapping[str, Any]) -> list[str]:
    """What in these settings needs CUDA (empty when they run on a CPU as written)."""
    needs = []
    use_cpu = _truthy(settings.get("use_cpu", False))
    if _truthy(settings.get("fp16", False)):
        needs.append("fp16 mixed precision (fp16: true)")
    bf16 = settings.get("bf16")
    if bf16 is None and not _truthy(settings.get("fp16", False)) and not use_cpu:
        needs.append("bf16 mixed precision (TRL's SFTConfig turns bf16 on when a recipe leaves it unset)")
    elif bf16 is not None and _truthy(bf16) and not use_cpu:
        needs.append("bf16 mixed precision on a GPU (bf16: true without use_cpu: true)")
    if "flash" in str(settings.get("attn_implementation") or ""):
        needs.append(f"attn_implementation: {settings['attn_implementation']}")
    if _truthy(settings.get("use_vllm", False)):
        needs.append("vLLM generation (use_vllm: true)")
    if _truthy(settings.get("load_in_4bit", False)) and str(settings.get("dtype")) in ("float16", "bfloat16"):
        needs.append(f"4-bit QLoRA with {settings['dtype']} compute")
    return needs


def check_device_support(settings: Mapping[str, Any], recipe: str | None = None) -> None:
    """Raise DeviceSupportError naming every GPU-only setting, when there is no CUDA device."""
    needs = gpu_requirements(settings)
    if not needs or cuda_available():
        return
    name = recipe or "this configuration"
    raise DeviceSupportError(
        f"{name} needs a CUDA GPU, and this machine has none. It asks for: {'; '.join(needs)}. "
        "Nothing was loaded or trained. Run it on a GPU machine, or for a CPU run use recipes/smollm2-135m/wikisql/sft_cpu.yaml "
        "(fp32, no quantisation), or override the settings above (e.g. --fp16 false --bf16 false --use_cpu true)."
    )


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has oneDNN's bf16 matrix kernels (AVX-512 BW/VL/DQ, AMX or AVX-NE-CONVERT: the check torch's
    own CPU bf16 path makes). Without them a bf16 matmul falls back to a scalar loop: 57 times slower than fp32 on an
    AVX2 EPYC here (docs/training.md, "Precision on a CPU")."""
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if probe is not None:
        return bool(probe())
    return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "NO AVX", "AVX2")


def bf16_on_cpu(settings: Mapping[str, Any]) -> list[str]:
    """The settings that compute in bf16 on a CPU: bf16 autocast with use_cpu, or a base model loaded in bf16."""
    needs = []
    if _truthy(settings.get("bf16", False)) and (_truthy(settings.get("use_cpu", False)) or not cuda_available()):
        needs.append("bf16 autocast (bf16: true)")
    if str(settings.get("dtype")) == "bfloat16" and not cuda_available():
        needs.append("bf16 base weights (dtype: bfloat16)")
    return needs


def check_cpu_bf16(settings: Mapping[str, Any], recipe: str | None = None) -> None:
    """Refuse bf16 on a CPU without bf16 kernels: the run would not fail, it would take tens of times longer than
    in fp32 and look hung. fp32 gives the same training, only exact where bf16 rounds."""
    needs = bf16_on_cpu(settings)
    if not needs or cpu_has_bf16_matmul():
        return
    import torch

    raise DeviceSupportError(
        f"{recipe or 'this configuration'} computes in bf16 on the CPU ({'; '.join(needs)}), and this CPU "
        f"({torch.backends.cpu.get_cpu_capability()}) has no bf16 matrix kernels: each bf16 matmul would run tens of "
        "times slower than in fp32. Nothing was loaded or trained. Train in fp32 here: add --bf16 false --dtype "
        "float32 (the run record and card then say fp32)."
    )


def check_optional_kernels(settings: Mapping[str, Any]) -> None:
    """flash-attn and vLLM are not dependencies: say how to get them instead of failing at model load."""
    if _truthy(settings.get("use_vllm", False)) and importlib.util.find_spec("vllm") is None:
        raise DeviceSupportError(
            "use_vllm: true needs vLLM in a version TRL supports: pip install -e '.[vllm]' (see pyproject.toml), "
            "or set use_vllm: false to generate with transformers."
        )
    if settings.get("attn_implementation") == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise DeviceSupportError(
            "attn_implementation: flash_attention_2 needs the flash-attn package "
            "(pip install flash-attn --no-build-isolation), or set attn_implementation: sdpa and padding_free: false."
        )
