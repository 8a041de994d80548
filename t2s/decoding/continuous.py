"""SQL decoding with continuous batching: a row that stops is replaced by the next question at once.

Batched `generate()` decodes a batch until its last row stops. On Spider a few questions loop to the token budget, so
most batches run all 128 steps for one or two live rows, and a CPU decoding step costs nearly the same with 2 live
rows as with 16: the weights are read once per step either way (docs/benchmarks.md, "Generation"). Here the
batch is a set of slots: when rows stop, new questions are prefilled (several at once, reusing their database's
prefix cache from `t2s.decoding.prefix_cache.PrefixStore`) and join the running batch, so nearly every step decodes a full batch
and the number of steps falls from "longest row per batch" to "all generated tokens / batch size".

How rows of different lengths share one decoding step: every slot has its own row in per-layer key/value buffers whose
columns are shared. A step writes every row's new key at the same column; a joining question's prompt is written right
before the current column, and each row's attention mask covers exactly its own columns (the rest are holes). Position
ids are each row's own token count, so every token gets the position, keys and mask of plain batched generation: the
SQL is the same up to float rounding of differently shaped matrix products (tests/test_continuous.py checks identical
SQL on a tiny model; docs/benchmarks.md counts identical answers on whole dev sets). When columns run out, the rows are
compacted: each row's columns are moved, in order, to the right end of fresh buffers.

Greedy answers and samples (self-consistency), unconstrained: a sampled question takes one slot per sample, and
its samples share the database's prefix cache like any other question; each row draws its next token through
transformers' own temperature, top-k and top-p warpers, in `generate()`'s order, so a sample follows the distribution
`generate()` samples from (not its random stream: a seed gives other samples than `generate()` with that seed). Beam
search (execution-guided decoding) and grammar-constrained decoding go through `generate()` (t2s.decoding.generation).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from t2s.decoding.answer import answer_complete, answer_sql, newline_token_ids
from t2s.decoding.kv_cache import PreallocatedCache, plain_kv_layers


class SlotLayer(DynamicLayer):
    """One layer's keys and values for every slot; a decoding step writes all rows at the cache's current column."""

    def __init__(self, owner: SlotCache):
        super().__init__()
        self.owner = owner
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        column = self.owner.column
        self.key_buffer[:, :, column : column + 1] = key_states
        self.value_buffer[:, :, column : column + 1] = value_states
        return self.key_buffer[:, :, : column + 1], self.value_buffer[:, :, : column + 1]

    def get_seq_length(self) -> int:
        return self.owner.column


class SlotCache(DynamicCache):
    """Key/value buffers of shape [slots, kv heads, columns, head dim] per layer and the column being written."""

    def __init__(self, num_layers: int):
        Cache.__init__(self, layers=[SlotLayer(self) for _ in range(num_layers)])
        self.column = 0


def continuous_sql(model, tokenizer, prompts: Sequence[str], settings, prefixes, plan, progress) -> list[list[str]]:
    """`settings.num_candidates` answers per prompt (greedy: one), decoded in `settings.batch_size` × candidates slots
    (the rows of a `generate()` batch) in the order of `plan` (batches of prompt indices with their shared prefix, from
    `t2s.decoding.generation.plan_batches`)."""
    k = settings.num_candidates
    if k > 1 and settings.temperature <= 0:
        raise ValueError("several greedy answers per prompt are beam search, which continuous batching does not do")
    queue = []
    for idx, prefix in plan:
        for i in idx:
            ids = tokenizer(text=prompts[i])["input_ids"]
            queue.extend((i * k + j, ids, prefix) for j in range(k))
    decoder = ContinuousDecoder(
        model, tokenizer, settings.batch_size * k, settings.max_new_tokens, prefixes, {tokenizer.eos_token_id},
        token_chooser(model, settings), newline_token_ids(tokenizer),
    )  # fmt: skip
    generated = decoder.run(queue, _per_prompt(progress, k))
    texts = [answer_sql(tokenizer.decode(generated[r], skip_special_tokens=True)) for r in range(len(prompts) * k)]
    return [texts[i * k : (i + 1) * k] for i in range(len(prompts))]


def _per_prompt(progress: Callable[[int], None] | None, k: int) -> Callable[[int], None] | None:
    """Progress in prompts from progress in rows (k rows per prompt; whole prompts' worth of finished rows)."""
    if progress is None or k == 1:
        return progress
    rows = [0, 0]  # finished rows, prompts reported

    def report(n: int) -> None:
        rows[0] += n
        if rows[0] // k > rows[1]:
            progress(rows[0] // k - rows[1])
            rows[1] = rows[0] // k

    return report


def greedy_token(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def token_chooser(model, settings) -> Callable[[torch.Tensor], torch.Tensor]:
    """How each row's next token is picked from its last logits: the argmax when greedy; when sampling, transformers'
    temperature, top-k (the model's generation config's when `settings.top_k` is None, as in `generate()`) and top-p
    warpers, in `generate()`'s order, then one draw from torch's global generator (seeded by the commands)."""
    if settings.temperature <= 0:
        return greedy_token
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    top_k = settings.top_k if settings.top_k is not None else model.generation_config.top_k
    warpers = LogitsProcessorList()
    if settings.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=settings.top_p))

    def sample(logits: torch.Tensor) -> torch.Tensor:
        scores = warpers(None, logits.float())
        return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)

    return sample


class ContinuousDecoder:
    """Decodes prompts (token ids, each with the shared prefix it starts with, or None) in `slots` slots; `choose`
    picks each row's next token from its logits (default: the argmax, greedy decoding). A row ends at one of
    `stop_ids`, or at one of `newline_ids` once its answer is complete (`t2s.decoding.answer.answer_complete`, the
    stop rule of `generate()` batches)."""

    def __init__(
        self, model, tokenizer, slots: int, max_new_tokens: int, prefixes, stop_ids: set[int], choose=None,
        newline_ids: set[int] = frozenset(),
    ):  # fmt: skip
        self.model, self.tokenizer = model, tokenizer
        self.slots, self.max_new_tokens = slots, max_new_tokens
        self.prefixes = prefixes  # t2s.decoding.prefix_cache.PrefixStore
        self.stop_ids = frozenset(stop_ids)
        self.newline_ids = frozenset(newline_ids)
        self.choose = choose or greedy_token
        self.device = next(model.parameters()).device
        self.num_layers = plain_kv_layers(model)

    def run(
        self,
        queue: Sequence[tuple[int, list[int], tuple[int, ...] | None]],
        progress: Callable[[int], None] | None = None,
        capacity: int | None = None,
    ):
        """{row index (the first item of its queue entry): generated token ids (ending with the stop token, if one
        came)}.

        `capacity`: columns of the buffers; by default the longest prompt plus twice the budget, so that a
        compaction (a copy of every row) comes at most once per budget of steps; the buffers are the memory cost
        (docs/decoding.md, "Measurements behind the decoders"). At least the longest prompt plus the budget.
        """
        pending = deque(queue)
        needed = max(len(ids) for _, ids, _ in queue) + self.max_new_tokens
        self.capacity = max(capacity or needed + self.max_new_tokens, needed + 1)
        self.compactions = 0
        self.cache = SlotCache(self.num_layers)
        self.mask = torch.zeros(self.slots, self.capacity, dtype=torch.bool, device=self.device)
        self.positions = torch.zeros(self.slots, dtype=torch.long, device=self.device)
        self.last = torch.full((self.slots,), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        self.owner: list[int | None] = [None] * self.slots
        generated: dict[int, list[int]] = {}
        while True:
            free = [s for s, owner in enumerate(self.owner) if owner is None]
            # Admit in groups (half the slots): each admission is one more pass over the weights, so admitting one
            # question at a time costs more than it saves (the group size was chosen by measurement: docs/decoding.md)
            if pending and (len(free) >= max(1, self.slots // 2) or len(free) == len(self.owner)):
                self._admit(pending, free, generated, progress)
                continue  # questions that stopped at their first token free their slots again
            if not pending:
                self._shrink()  # the last questions: decode only the slots still running
            if not self.owner:
                return generated
            self._step(generated, progress)

    def _admit(self, pending: deque, free: list[int], generated: dict, progress) -> None:
        """Prefill the next questions (the ones sharing the queue head's prefix) into free slots."""
        head_prefix = pending[0][2]
        batch = []
        while pending and len(batch) < len(free) and pending[0][2] == head_prefix:
            batch.append(pending.popleft())
        keys, values, mask, first = self._prefill([ids for _, ids, _ in batch], head_prefix)
        span = mask.shape[1]  # the prompts end right before the current column (the next token's)
        if span > self.cache.column:  # the running rows get a hole up to the new prompt's end
            self.cache.column = span
        start = self.cache.column - span
        slots = torch.tensor(free[: len(batch)], device=self.device)
        for layer, k, v in zip(self.cache.layers, keys, values):
            if layer.key_buffer is None:
                layer.key_buffer = k.new_zeros(self.slots, k.shape[1], self.capacity, k.shape[3])
                layer.value_buffer = v.new_zeros(self.slots, v.shape[1], self.capacity, v.shape[3])
            layer.key_buffer[slots, :, start : self.cache.column] = k
            layer.value_buffer[slots, :, start : self.cache.column] = v
        self.mask[slots] = False
        self.mask[slots, start : self.cache.column] = mask
        self.positions[slots] = mask.sum(dim=1)
        self.last[slots] = first
        for slot, (index, _, _), token in zip(slots.tolist(), batch, first.tolist()):
            self.owner[slot] = index
            generated[index] = [token]
            self._finish_if_done(slot, generated, progress)

    @torch.no_grad()
    def _prefill(self, prompts: list[list[int]], prefix: tuple[int, ...] | None):
        """Keys, values (per layer), attention mask of the prompts (left-padded after any prefix), first tokens."""
        start = 0 if prefix is None else len(prefix)
        suffixes = [ids[start:] for ids in prompts]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], device=self.device)
        suffix_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], device=self.device)
        if prefix is None:
            cache = PreallocatedCache(self.num_layers, width)
        else:
            cache = self.prefixes.cache_for(prefix, len(prompts), start + width, self.device)
        mask = torch.cat([torch.ones(len(prompts), start, dtype=torch.long, device=self.device), suffix_mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, start:]
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        )
        first = self.choose(out.logits[:, -1])
        return [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers], mask.bool(), first

    @torch.no_grad()
    def _step(self, generated: dict, progress) -> None:
        """One token for every slot; empty slots decode a pad token attending to itself, and their output is unused."""
        column = self.cache.column
        if column + 1 > self.capacity:
            self._compact()
            column = self.cache.column
        self.mask[:, column] = True
        out = self.model(
            input_ids=self.last[:, None],
            attention_mask=self.mask[:, : column + 1].long(),
            position_ids=self.positions[:, None],
            cache=self.cache,
            use_cache=True,
        )
        self.cache.column = column + 1
        self.positions += 1
        self.last = self.choose(out.logits[:, -1])
        for slot, token in enumerate(self.last.tolist()):
            if self.owner[slot] is None:
                self.mask[slot, : column + 1] = False
                continue
            generated[self.owner[slot]].append(token)
            self._finish_if_done(slot, generated, progress)

    def _finish_if_done(self, slot: int, generated: dict, progress) -> None:
        tokens = generated[self.owner[slot]]
        if (
            tokens[-1] in self.stop_ids
            or len(tokens) >= self.max_new_tokens
            or (
                tokens[-1] in self.newline_ids
                and answer_complete(self.tokenizer.decode(tokens, skip_special_tokens=True))
            )
        ):
            self.owner[slot] = None
            self.mask[slot] = False
            if progress is not None:
                progress(1)

    def _compact(self) -> None:
        """Move each row's columns, in order, to the right end of the buffers (holes removed)."""
        self.compactions += 1
        rows = len(self.owner)
        counts = self.mask.sum(dim=1)
        width = int(counts.max())
        # For each row: its valid column indices, right-aligned in `width` target columns (the rest point at column 0)
        order = torch.argsort((~self.mask).to(torch.int8), dim=1, stable=True)  # valid columns first, in order
        index = torch.zeros(rows, width, dtype=torch.long, device=self.device)
        new_mask = torch.zeros(rows, self.capacity, dtype=torch.bool, device=self.device)
        for r in range(rows):
            n = int(counts[r])
            index[r, width - n :] = order[r, :n]
            new_mask[r, width - n : width] = True
        for layer in self.cache.layers:
            if layer.key_buffer is None:
                continue
            gather = index[:, None, :, None].expand(rows, layer.key_buffer.shape[1], width, layer.key_buffer.shape[3])
            for name in ("key_buffer", "value_buffer"):
                old = getattr(layer, name)
                new = torch.zeros_like(old)
                new[:, :, :width] = torch.gather(old, 2, gather)
                setattr(layer, name, new)
        self.mask = new_mask
        self.cache.column = width

    def _shrink(self) -> None:
        """Keep only the slots still decoding (once no question is waiting)."""
        keep = [s for s, o in enumerate(self.owner) if o is not None]
        if len(keep) == len(self.owner):
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        for layer in self.cache.layers:
            if layer.key_buffer is not None:
                layer.key_buffer = layer.key_buffer.index_select(0, index)
                layer.value_buffer = layer.value_buffer.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.last = self.last.index_select(0, index)
        self.owner = [self.owner[s] for s in keep]
