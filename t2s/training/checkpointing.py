"""Activation checkpointing for the longest batches only.

A CPU step's peak memory grows with the tokens of its batch: what autograd saves for the backward pass is most of
it (docs/benchmarks.md, "Activation memory of a LoRA step"). With length-grouped batches the longest batches are
several times the median (the sampler puts the longest of all first, then the longest of each group of 50 batches),
and a few of them set the whole run's peak. Checkpointing recomputes each decoder layer's forward pass during the
backward pass instead of keeping its activations: on every batch that is one more forward pass per step, on the
few long ones little over a run. The switch is transformers' own per-layer flag (`gradient_checkpointing` on
each `GradientCheckpointingLayer`), set before each training forward pass by the batch's padded size. Gradients are
the same either way (tests/test_checkpointing.py).
"""

from __future__ import annotations

import torch
from transformers.modeling_layers import GradientCheckpointingLayer

from t2s.runtime import UserError


def checkpoint_long_batches(model, above_tokens: int) -> list[GradientCheckpointingLayer]:
    """Checkpoint `model`'s decoder layers on training batches of more than `above_tokens` tokens (padding counted,
    as memory counts it); return the layers it switches."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise UserError(
            f"activation_checkpointing_above_tokens: {type(base).__name__} does not support activation "
            "checkpointing; set it to 0"
        )
    if any(getattr(m, "gradient_checkpointing", False) for m in base.modules()):
        raise UserError(
            "activation_checkpointing_above_tokens checkpoints the long batches only, but the recipe already "
            "checkpoints every batch (activation_checkpointing: true): keep one of the two"
        )
    base.activation_checkpointing_enable()  # non-reentrant: no input needs requires_grad
    base.disable_input_require_grads()  # so that short batches compute exactly what they did before
    layers = [m for m in base.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]

    def switch(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        long = module.training and torch.is_grad_enabled() and ids is not None and ids.numel() > above_tokens
        for layer in layers:
            layer.gradient_checkpointing = long

    model.register_forward_pre_hook(switch, with_kwargs=True)
    switch(model, (), {})  # off until a long training batch comes
    return layers
