"""Turn canonical prompts into SQL with a causal LM: batched, left-padded, greedy, one line.

Prompts are tokenized exactly as TRL tokenizes them for training (`tokenizer(text=prompt)`,
special tokens included), so the model sees at inference the token sequence it was trained on.
Generation stops at the first newline or EOS; the only post-processing is cutting at that
newline and trimming whitespace, so scores reflect what the model wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

STOP_STRINGS = ["\n"]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 96
    batch_size: int = 32
    temperature: float = 0.0  # 0 = greedy
    num_candidates: int = 1  # > 1: beam search (greedy settings) or sampling (temperature > 0)
    top_p: float = 1.0
    top_k: int | None = None  # sampling: None keeps the model's generation config (often 50); 0 turns it off


def first_line(text: str) -> str:
    """The generated SQL: everything before the first newline, trimmed."""
    return text.split("\n", 1)[0].strip()


def prepare_tokenizer(tokenizer):
    """Left padding (generation appends on the right) and a pad token (many causal LMs have none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _generate_kwargs(tokenizer, settings: GenerationSettings) -> dict:
    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "stop_strings": STOP_STRINGS,
        "tokenizer": tokenizer,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        if settings.top_k is not None:
            kwargs["top_k"] = settings.top_k
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if settings.num_candidates > 1:
        kwargs["num_return_sequences"] = settings.num_candidates
        if settings.temperature <= 0:
            kwargs["num_beams"] = settings.num_candidates
    return kwargs


@torch.no_grad()
def generate_sql(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    progress: Callable[[int], None] | None = None,
    grammars: Sequence[str] | None = None,
) -> list[list[str]]:
    """For each prompt, `settings.num_candidates` SQL strings (best first for beam search).

    `grammars` (one Lark grammar per prompt, `t2s.constrained`) constrains decoding to valid SQL over each prompt's
    schema; without it decoding is unconstrained.
    """
    if grammars is not None and len(grammars) != len(prompts):
        raise ValueError(f"{len(grammars)} grammars for {len(prompts)} prompts")
    settings = settings or GenerationSettings()
    prepare_tokenizer(tokenizer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    kwargs = _generate_kwargs(tokenizer, settings)
    # Sorting by length keeps padding (and wasted compute) small inside each batch.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[str]] = [[] for _ in prompts]
    try:
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            extra = {}
            if grammars is not None:
                from transformers import LogitsProcessorList

                from t2s.constrained import GrammarConstrainedLogits

                constraint = GrammarConstrainedLogits(
                    tokenizer, [grammars[i] for i in idx], batch["input_ids"].shape[1], settings.num_candidates
                )
                extra["logits_processor"] = LogitsProcessorList([constraint])
            out = model.generate(**batch, **kwargs, **extra)
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            k = settings.num_candidates
            for j, i in enumerate(idx):
                results[i] = [first_line(t) for t in texts[j * k : (j + 1) * k]]
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    return results
