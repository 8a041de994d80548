"""Skip PEFT's cast of each LoRA input to the adapter's dtype while autocast decides the matmul dtype anyway.

PEFT keeps LoRA weights in fp32 and casts every LoRA layer's input to fp32 before `lora_A`; under bf16 autocast that
matmul then casts it back to bf16. With a bf16 base model (the full CPU recipes) the round trip bf16 → fp32 → bf16 is
exact, so it changes no value, but it costs two element-wise passes over the layer's input in the forward pass,
their gradients in the backward pass, and a second bf16 copy of the input that autograd keeps (docs/benchmarks.md,
"Activation memory of a LoRA step"): on a CPU, where a LoRA step is mostly element-wise work, that is time. Outside
autocast (generation during training, evaluation without it) the cast is what makes the dtypes match, so a hook
turns it off only for the calls that run under autocast. Gradients are bit-identical (tests/test_lora_casts.py).
"""

from __future__ import annotations

import torch
from peft.tuners.tuners_utils import BaseTunerLayer


def skip_lora_input_casts_under_autocast(model) -> int:
    """Turn PEFT's LoRA input cast off for `model`'s forward passes under autocast; return how many layers it covers.

    Each LoRA layer decides as it is called: accelerate enters autocast inside the model's forward (it wraps
    `model.forward`), after any hook on the model itself has run."""
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]

    def switch(layer, args):
        layer.cast_input_dtype_enabled = not (args and torch.is_autocast_enabled(args[0].device.type))

    for layer in layers:
        layer.register_forward_pre_hook(switch)
    return len(layers)
