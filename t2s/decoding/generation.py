"""Turn canonical prompts into SQL with a causal LM: batched, left-padded, greedy by default, one line each.

One entry point, `generate_sql`, for every way t2s decodes: plain batches through transformers' `generate()` with
preallocated key/value buffers (`t2s.decoding.kv_cache`), batches sharing their database's schema prefix
(`t2s.decoding.prefix_cache`), continuous batching for greedy answers and samples (`t2s.decoding.continuous`), and
grammar-constrained decoding (`t2s.decoding.constrained`). Each gives the SQL of plain batched generation (tests);
samples drawn with continuous batching follow `generate()`'s distribution, not its random stream.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from t2s.decoding import continuous
from t2s.decoding.answer import answer_sql
from t2s.decoding.kv_cache import plain_kv_layers, preallocated_cache
from t2s.decoding.prefix_cache import PrefixStore, plan_batches
from t2s.decoding.settings import GenerationSettings, generate_kwargs, prepare_tokenizer
from t2s.decoding.vllm_backend import VllmGenerator


@torch.no_grad()
def generate_sql(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    progress: Callable[[int], None] | None = None,
    grammars: Sequence[str] | None = None,
    scopes: Sequence[Any] | None = None,
) -> list[list[str]]:
    """For each prompt, `settings.num_candidates` SQL strings (best first for beam search).

    `grammars` (one Lark grammar per prompt, `t2s.decoding.constrained`) constrains decoding to valid SQL over each prompt's
    schema; without it decoding is unconstrained. `scopes` (one `t2s.decoding.scope.ScopeChecker` or None per prompt)
    adds column scoping to the grammar.
    """
    if grammars is not None and len(grammars) != len(prompts):
        raise ValueError(f"{len(grammars)} grammars for {len(prompts)} prompts")
    settings = settings or GenerationSettings()
    if isinstance(model, VllmGenerator):  # --backend vllm
        if scopes is not None and any(s is not None for s in scopes):
            raise ValueError("column scoping does not run through vLLM: use the transformers backend")
        return model.generate_sql(tokenizer, prompts, settings, progress, grammars)
    prepare_tokenizer(tokenizer)
    if (settings.prefix_cache or settings.continuous_batching) and plain_kv_layers(model) is None:
        dropped = [name for name, on in (("prefix cache", settings.prefix_cache),
                                         ("continuous batching", settings.continuous_batching)) if on]  # fmt: skip
        warnings.warn(
            f"{type(model).__name__} has no plain key/value cache (sliding-window or recurrent layers): no "
            f"{' and no '.join(dropped)}, plain batches",
            stacklevel=2,
        )
        settings = replace(settings, prefix_cache=False, continuous_batching=False)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[list[str]] = [[] for _ in prompts]
    k = settings.num_candidates
    prefixes = PrefixStore(model) if settings.prefix_cache else None
    plan = plan_batches(tokenizer, prompts, settings.batch_size, settings.prefix_cache)
    # greedy answers and samples; not beams (several greedy candidates) nor grammars
    use_continuous = settings.continuous_batching and grammars is None and (k == 1 or settings.temperature > 0)
    try:
        if use_continuous:
            return continuous.continuous_sql(
                model, tokenizer, prompts, settings, prefixes or PrefixStore(model), plan, progress
            )
        for idx, prefix in plan:
            if prefix is None:
                batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
                cache = preallocated_cache(model, batch["input_ids"].shape[1] + settings.max_new_tokens)
                extra = {} if cache is None else {"cache": cache}
            else:
                batch, extra = prefixes.batch_inputs(
                    tokenizer, [prompts[i] for i in idx], prefix, k, device, settings.max_new_tokens
                )
            if grammars is not None:
                from transformers import LogitsProcessorList

                from t2s.decoding.constrained import GrammarConstrainedLogits, finish_cut_answers

                constraint = GrammarConstrainedLogits(
                    tokenizer,
                    [grammars[i] for i in idx],
                    batch["input_ids"].shape[1],
                    settings.num_candidates,
                    scopes=[scopes[i] for i in idx] if scopes is not None else None,
                )
                extra["logits_processor"] = LogitsProcessorList([constraint])
            kwargs = generate_kwargs(tokenizer, settings, batch["input_ids"].shape[1])
            out = model.generate(**batch, **kwargs, **extra)
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = [answer_sql(t) for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
            if grammars is not None:
                texts = finish_cut_answers(
                    tokenizer,
                    new_tokens,
                    texts,
                    [grammars[i] for i in idx for _ in range(k)],
                    [scopes[i] for i in idx for _ in range(k)] if scopes is not None else None,
                )
            for j, i in enumerate(idx):
                results[i] = texts[j * k : (j + 1) * k]
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    return results
