"""A key/value cache that writes into buffers sized for the whole generation instead of growing by concatenation.

transformers' `DynamicCache` appends each step's keys and values with `torch.cat`, which copies the whole cache of
every layer at every decoding step. On a CPU that copy is memory traffic on the scale of the matrix products
themselves (a profile of greedy decoding: docs/decoding.md). Here each layer's buffer is allocated once, for the
prompt plus the token budget, new keys and values are written in place, and attention reads a view of the filled
part: the same numbers at the same positions with the same mask, so generation is unchanged (tests/test_kv_cache.py),
without the copies.
"""

from __future__ import annotations

import torch
from transformers import cache_utils
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in a buffer of `capacity` positions; `keys`/`values` view its filled part."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def _allocate(self, like: torch.Tensor, rows: int, capacity: int) -> torch.Tensor:
        return like.new_empty(rows, like.shape[1], capacity, like.shape[3])

    def _view(self, length: int) -> None:
        self.keys = self._key_buffer[:, :, :length]
        self.values = self._value_buffer[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        start = self.get_seq_length()
        end = start + key_states.shape[-2]
        if self._key_buffer is None:
            self.device = key_states.device
            self.is_initialized = True
            rows = key_states.shape[0]
            self._key_buffer = self._allocate(key_states, rows, max(self.capacity, end))
            self._value_buffer = self._allocate(value_states, rows, max(self.capacity, end))
        elif end > self._key_buffer.shape[-2]:  # past the planned budget (a caller's longer generation): grow
            self._replace_buffers(None, start, max(end, 2 * self._key_buffer.shape[-2]))
        self._key_buffer[:, :, start:end] = key_states
        self._value_buffer[:, :, start:end] = value_states
        self._view(end)
        return self.keys, self.values

    def _replace_buffers(self, rows: torch.Tensor | None, length: int, capacity: int) -> None:
        """New buffers holding the first `length` positions of the selected `rows` (None: all rows)."""
        keys, values = self.keys, self.values
        if rows is not None:
            keys, values = keys.index_select(0, rows.to(keys.device)), values.index_select(0, rows.to(keys.device))
        self._key_buffer = self._allocate(keys, keys.shape[0], capacity)
        self._value_buffer = self._allocate(values, values.shape[0], capacity)
        self._key_buffer[:, :, :length] = keys
        self._value_buffer[:, :, :length] = values
        self._view(length)

    def get_seq_length(self) -> int:
        return 0 if self._key_buffer is None else self.keys.shape[-2]

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)  # checks the argument; leaves views of the same buffers
        if self._key_buffer is not None:
            self._view(self.keys.shape[-2])

    # Beam search and batch surgery select rows: copy only the filled positions into fresh buffers.
    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() > 0:
            self._replace_buffers(beam_idx, self.get_seq_length(), self._key_buffer.shape[-2])

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self.keys.shape[0], device=self.keys.device)[indices]
            self._replace_buffers(rows, self.get_seq_length(), self._key_buffer.shape[-2])

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            rows = torch.arange(self.keys.shape[0], device=self.keys.device).repeat_interleave(repeats)
            self._replace_buffers(rows, self.get_seq_length(), self._key_buffer.shape[-2])


class PreallocatedCache(DynamicCache):
    """A `DynamicCache` whose layers are `PreallocatedLayer`s of `capacity` positions (prompt + new tokens)."""

    def __init__(self, num_layers: int, capacity: int):
        Cache.__init__(self, layers=[PreallocatedLayer(capacity) for _ in range(num_layers)])


def plain_kv_layers(model) -> int | None:
    """How many layers `model` caches as plain per-position keys and values; None if any layer caches otherwise.

    Sliding-window layers drop old positions and recurrent or linear-attention layers keep states, not positions:
    those models keep transformers' own cache (no preallocation, no shared prefix, no continuous batching).
    """
    layers = DynamicCache(config=model.config).layers
    if not layers or any(type(layer) is not cache_utils.DynamicLayer for layer in layers):
        return None
    return len(layers)


def preallocated_cache(model, capacity: int) -> PreallocatedCache | None:
    """A preallocated cache of `capacity` positions for `model`, or None where its cache is not plain (above)."""
    num_layers = plain_kv_layers(model)
    return None if num_layers is None else PreallocatedCache(num_layers, capacity)
