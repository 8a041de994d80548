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
                batch, extra = _plain_batch(model, tokenizer, [prompts[i] for i in idx], device, settings)
            else:
                batch, extra = prefixes.batch_inputs(
                    tokenizer, [prompts[i] for i in idx], prefix, k, device, settings.max_new_tokens
                )
            rows_grammars = [grammars[i] for i in idx] if grammars is not None else None
            rows_scopes = [scopes[i] for i in idx] if scopes is not None else None
            new_tokens = _generate_batch(model, tokenizer, batch, extra, settings, rows_grammars, rows_scopes)
            texts = [answer_sql(t) for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
            if grammars is not None:
                from t2s.decoding.constrained import finish_cut_answers

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


def _plain_batch(model, tokenizer, prompts: Sequence[str], device, settings: GenerationSettings):
    """A left-padded batch of `prompts` and its `generate()` extras: key/value buffers preallocated for the budget."""
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True).to(device)
    cache = preallocated_cache(model, batch["input_ids"].shape[1] + settings.max_new_tokens)
    return batch, ({} if cache is None else {"cache": cache})


def _generate_batch(model, tokenizer, batch, extra: dict, settings: GenerationSettings, grammars, scopes):
    """One batch through `generate()`, constrained by `grammars` (one per prompt) if given: its new tokens, with
    `settings.num_candidates` consecutive rows per prompt."""
    prompt_length = batch["input_ids"].shape[1]
    if grammars is not None:
        from transformers import LogitsProcessorList

        from t2s.decoding.constrained import GrammarConstrainedLogits

        constraint = GrammarConstrainedLogits(
            tokenizer, grammars, prompt_length, settings.num_candidates, scopes=scopes
        )
        extra = {**extra, "logits_processor": LogitsProcessorList([constraint])}
    out = model.generate(**batch, **generate_kwargs(tokenizer, settings, prompt_length), **extra)
    return out[:, prompt_length:]


@torch.no_grad()
def sample_completion_ids(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings,
    grammars: Sequence[str] | None = None,
    scopes: Sequence[Any] | None = None,
) -> list[list[int]]:
    """One sampled completion per prompt (repeat a prompt to draw several), as the token ids the model drew, for a
    trainer that computes their log-probabilities (GRPO): the text alone would be re-tokenized differently.

    Plain batches, constrained like `generate_sql`'s. A completion runs to its end of sequence, included; one that
    ended at the newline closing its answer (where generation stops) gets the end of sequence a grammar allows
    after that newline and nothing else (`schema_grammar`'s `_END`); one the budget cut is left as it is.
    """
    if settings.num_candidates != 1 or not settings.temperature > 0:
        raise ValueError("sample_completion_ids draws one sample per prompt: num_candidates 1, temperature above 0")
    if grammars is not None and len(grammars) != len(prompts):
        raise ValueError(f"{len(grammars)} grammars for {len(prompts)} prompts")
    prepare_tokenizer(tokenizer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[list[int]] = [[] for _ in prompts]
    try:
        for idx, _ in plan_batches(tokenizer, prompts, settings.batch_size, prefix_cache=False):
            batch, extra = _plain_batch(model, tokenizer, [prompts[i] for i in idx], device, settings)
            new_tokens = _generate_batch(
                model,
                tokenizer,
                batch,
                extra,
                settings,
                [grammars[i] for i in idx] if grammars is not None else None,
                [scopes[i] for i in idx] if scopes is not None else None,
            )
            for i, row in zip(idx, new_tokens.tolist(), strict=True):
                results[i] = cut_at_answer_end(tokenizer, row)
    finally:
        model.train(was_training)
    return results


def cut_at_answer_end(tokenizer, row: list[int]) -> list[int]:
    """A generated row cut where its answer ended (see `sample_completion_ids`); generate pads what follows."""
    from t2s.decoding.answer import ends_answer, newline_token_ids

    newlines = newline_token_ids(tokenizer)
    for i, token in enumerate(row):
        if token == tokenizer.eos_token_id:
            return row[: i + 1]
        if ends_answer(tokenizer, row[: i + 1], newlines):
            return [*row[: i + 1], tokenizer.eos_token_id]
    return row
