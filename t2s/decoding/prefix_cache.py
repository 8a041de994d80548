"""Schema-prefix caching: questions on the same database share their prompt up to the question.

Each such group's shared tokens (the schema: hundreds of tokens on Spider) are run through the model once, and the
key/value cache of that prefix is reused by every batch of the group's questions; only the question and the SQL are
computed per row. The tokens, positions and attention masks the model sees are those of plain batched generation, so
the SQL is the same (tests/test_prefix_cache.py; measured on whole dev sets in docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from t2s.data.prompt import QUESTION_MARKER
from t2s.decoding.kv_cache import PreallocatedCache, plain_kv_layers


def shared_prefix_key(prompt: str) -> str | None:
    """The part of a canonical prompt that depends on the database only (None: the prompt has no question slot)."""
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
