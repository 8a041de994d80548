"""Turn canonical prompts into SQL with a causal LM: batched, left-padded, greedy, one line.

Prompts are tokenized exactly as TRL tokenizes them for training (`tokenizer(text=prompt)`,
special tokens included), so the model sees at inference the token sequence it was trained on.
Generation stops at the first newline or EOS; the only post-processing is cutting at that
newline and trimming whitespace, so scores reflect what the model wrote.

With `prefix_cache`, questions on the same database share their prompt up to the question (the schema: hundreds of
tokens on Spider). Each such group's shared tokens are run through the model once, and the key/value cache of that
prefix is reused by every batch of the group's questions; only the question and the SQL are computed per row. The
tokens, positions and attention masks the model sees are those of plain batched generation, so the SQL is the same
(tests/test_prefix_cache.py; measured on whole dev sets in docs/benchmarks.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from t2s.kv_cache import PreallocatedCache, plain_kv_layers, preallocated_cache

STOP_STRINGS = ["\n"]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 96
    batch_size: int = 32
    temperature: float = 0.0  # 0 = greedy
    num_candidates: int = 1  # > 1: beam search (greedy settings) or sampling (temperature > 0)
    top_p: float = 1.0
    top_k: int | None = None  # sampling: None keeps the model's generation config (often 50); 0 turns it off
    prefix_cache: bool = False  # prefill each database's shared prompt prefix once (see the module docstring)
    # greedy, one candidate, unconstrained: a row that stops is replaced by the next question (t2s.continuous)
    continuous_batching: bool = False


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
    results: list[list[str]] = [[] for _ in prompts]
    k = settings.num_candidates
    prefixes = PrefixStore(model) if settings.prefix_cache else None
    plan = plan_batches(tokenizer, prompts, settings.batch_size, settings.prefix_cache)
    continuous = settings.continuous_batching and settings.temperature <= 0 and k == 1 and grammars is None
    if continuous and plain_kv_layers(model) is None:
        warnings.warn(
            f"{type(model).__name__} has no plain key/value cache: no continuous batching, plain batches", stacklevel=2
        )
        continuous = False
    try:
        if continuous:
            from t2s.continuous import continuous_greedy_sql

            sql = continuous_greedy_sql(
                model, tokenizer, prompts, settings, prefixes or PrefixStore(model), plan, progress
            )
            return [[s] for s in sql]
        for idx, prefix in plan:
            if prefix is None:
                batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
                cache = preallocated_cache(model, batch["input_ids"].shape[1] + settings.max_new_tokens)
                extra = {} if cache is None else {"cache": cache}
            else:
                try:
                    batch, extra = prefixes.batch_inputs(
                        tokenizer, [prompts[i] for i in idx], prefix, k, device, settings.max_new_tokens
                    )
                except PrefixCacheUnsupported as e:  # raised at the first batch: cached batches come first
                    warnings.warn(f"{e} has no plain key/value cache to share: plain batches instead", stacklevel=2)
                    return generate_sql(
                        model, tokenizer, prompts, replace(settings, prefix_cache=False), progress, grammars
                    )
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
            for j, i in enumerate(idx):
                results[i] = [first_line(t) for t in texts[j * k : (j + 1) * k]]
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    return results


def shared_prefix_key(prompt: str) -> str | None:
    """The part of a canonical prompt that depends on the database only (None: the prompt has no question slot)."""
    from t2s.prompt import QUESTION_MARKER

    cut = prompt.rfind(QUESTION_MARKER)
    return prompt[: cut + len(QUESTION_MARKER)] if cut >= 0 else None


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for seq in sequences[1:]:
        i = 0
        while i < n and seq[i] == first[i]:
            i += 1
        n = i
    return n


def plan_batches(
    tokenizer, prompts: Sequence[str], batch_size: int, prefix_cache: bool
) -> list[tuple[list[int], tuple[int, ...] | None]]:
    """Batches of prompt indices, each with the token prefix all its prompts share (None: a plain batch).

    Plain batches are sorted by length (little padding). With `prefix_cache`, questions on the same database form
    their own batches, whose shared prefix is the longest run of tokens their tokenized prompts have in common (so a
    tokenizer that merges across the question boundary is handled exactly); at least one token of each prompt is
    left to compute. Small groups go to plain batches: a batch of 2 rows saves one prefill but decodes at a fraction
    of the rows a full batch decodes in the same time (WikiSQL's held-out questions come 1 to 5 per table; a
    Spider dev database has 10 or more).
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    if not prefix_cache:
        return [(order[s : s + batch_size], None) for s in range(0, len(order), batch_size)]
    groups: dict[str, list[int]] = {}
    for i in order:
        key = shared_prefix_key(prompts[i])
        if key is not None:
            groups.setdefault(key, []).append(i)
    min_group = max(2, batch_size // 4)
    plain = [i for i in order if len(groups.get(shared_prefix_key(prompts[i]), ())) < min_group]
    batches: list[tuple[list[int], tuple[int, ...] | None]] = []
    for members in groups.values():
        if len(members) < min_group:
            continue
        ids = [tokenizer(text=prompts[i])["input_ids"] for i in members]
        length = min(_common_prefix_length(ids), min(len(x) for x in ids) - 1)
        prefix = tuple(ids[0][:length]) if length > 0 else None
        batches += [(members[s : s + batch_size], prefix) for s in range(0, len(members), batch_size)]
    batches += [(plain[s : s + batch_size], None) for s in range(0, len(plain), batch_size)]
    return batches


class PrefixCacheUnsupported(RuntimeError):
    """The model's cache is not plain per-layer keys and values: generation goes on with plain batches."""


class PrefixStore:
    """The key/value cache of the shared prefix being served (batches of one group come one after another)."""

    def __init__(self, model) -> None:
        self.model = model
        self._prefix: tuple[int, ...] | None = None
        self._layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def prefill(self, prefix: tuple[int, ...], device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if prefix != self._prefix:
            num_layers = plain_kv_layers(self.model)
            if num_layers is None:
                raise PrefixCacheUnsupported(type(self.model).__name__)
            ids = torch.tensor([prefix], device=device)
            cache = PreallocatedCache(num_layers, len(prefix))
            self.model(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True)
            self._layers = [(layer.keys, layer.values) for layer in cache.layers]
            self._prefix = prefix
        return self._layers

    def cache_for(self, prefix: tuple[int, ...], rows: int, capacity: int, device) -> PreallocatedCache:
        """A cache of `capacity` positions whose `rows` rows each start with a copy of the prefix's keys/values."""
        layers = self.prefill(prefix, device)
        cache = PreallocatedCache(len(layers), capacity)
        for layer, (k, v) in zip(cache.layers, layers):  # each row's copy of the prefix, written once
            layer.update(k.expand(rows, *k.shape[1:]), v.expand(rows, *v.shape[1:]))
        return cache

    def batch_inputs(
        self, tokenizer, prompts: Sequence[str], prefix: tuple[int, ...], expand: int, device, max_new_tokens: int
    ):
        """(input_ids and attention_mask of the whole prompts, generate() kwargs with the prefix's cache).

        Rows are [prefix][left padding][question tokens]: padding sits after the cached prefix and is masked, and
        positions come from the attention mask, so each row's tokens get the positions they have unpadded.
        """
        suffixes = [tokenizer(text=p)["input_ids"][len(prefix) :] for p in prompts]
        width = max(len(s) for s in suffixes)
        pad = tokenizer.pad_token_id
        rows = [list(prefix) + [pad] * (width - len(s)) + list(s) for s in suffixes]
        mask = [[1] * len(prefix) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        # generate() repeats each row per beam/sample but not a given cache
        cache = self.cache_for(prefix, len(prompts) * expand, len(rows[0]) + max_new_tokens, device)
        batch = {
            "input_ids": torch.tensor(rows, device=device),
            "attention_mask": torch.tensor(mask, device=device),
        }
        return batch, {"cache": cache}  # transformers 5.24 renamed past_key_values to cache
