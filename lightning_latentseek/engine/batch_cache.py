"""The engine's KV caches: the decoding batch's (`BatchCache`: buffers that outlive the batch's
rearrangements) and one row's prefill (`PrefillCache`: on top of a prefix shared with the prefix store).

A transformers `Cache` made of our own `CacheLayerMixin` layers (the public extension point for caches).
Each layer owns two buffers of shape (slots, KV heads, capacity, head dim). The batch is rows 0..B-1 and
columns `begin`..`end`-1 of them: every row left-padded and ending at column `end`, where decoding writes
the next position in place. Attention sees exactly those columns (no unused room).

When rows join or leave, `arrange` moves the rows that stay into the lowest slots, writes the joining
rows' KV after them, and keeps the columns where they are whenever they fit: dropping finished rows at the
end of the batch, or adding rows no longer than it, copies nothing of the rows that stay. Rows are moved
to the left edge of the buffer only when decoding reaches its capacity, and new (bigger) buffers are
allocated only when the batch outgrows them. Fresh memory is the expensive part of a rebuild on a CPU
(page faults), so this replaces allocating a whole new cache for every rebuild.

Padding columns hold stale (finite) KV of earlier rows; the attention mask hides them.

`PrefillCache` starts from a stored prefix's KV and joins what the prefill adds to it by concatenation into
new tensors: its own layers never write a tensor they were given, so the prefix store can share its entries
with prefills without copying them (and without relying on how transformers' own cache layers update).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from transformers import Cache, CacheLayerMixin


class _BatchLayer(CacheLayerMixin):
    """One layer of `BatchCache`: its buffers and the batch's view of them (`keys`, `values`)."""

    is_compileable = False
    is_sliding = False

    def __init__(self):
        super().__init__()
        self.key_buffer: Tensor | None = None
        self.value_buffer: Tensor | None = None
        self.rows = self.begin = self.end = 0
        self.is_initialized = True

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:  # buffers come from `arrange`
        raise RuntimeError("BatchCache layers are filled by BatchCache.arrange, not by a first update")

    def view(self) -> None:
        self.keys = self.key_buffer[:self.rows, :, self.begin:self.end]
        self.values = self.value_buffer[:self.rows, :, self.begin:self.end]

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """Write the new positions at columns end.. in place; return the batch's keys and values."""
        n = key_states.shape[-2]
        self.key_buffer[:self.rows, :, self.end:self.end + n].copy_(key_states)
        self.value_buffer[:self.rows, :, self.end:self.end + n].copy_(value_states)
        self.end += n
        self.view()
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.end - self.begin + query_length, 0

    def get_seq_length(self) -> int:
        return self.end - self.begin

    def get_max_length(self) -> int:
        return -1


class BatchCache(Cache):
    """The batch's KV cache (see the module docstring). `room` is how many decoding steps the buffers must
    leave after an arrangement: at least `min_room` columns, or a quarter of the batch's length."""

    min_room = 128

    def __init__(self, num_layers: int):
        super().__init__(layers=[_BatchLayer() for _ in range(num_layers)])
        self.allocations = 0  # times new buffers were allocated
        self.moved_rows = 0  # row copies made by `arrange` (rows joining not counted)

    @property
    def rows(self) -> int:
        return self.layers[0].rows

    @property
    def length(self) -> int:
        """Columns of the batch (its padded length)."""
        return self.layers[0].end - self.layers[0].begin

    def full(self) -> bool:
        """No column left to write the next position into: `arrange` the batch first."""
        layer = self.layers[0]
        return layer.key_buffer is None or layer.end >= layer.key_buffer.shape[2]

    def free(self) -> int:
        """Columns left to write new positions into."""
        layer = self.layers[0]
        return 0 if layer.key_buffer is None else layer.key_buffer.shape[2] - layer.end

    def room(self, length: int) -> int:
        return max(self.min_room, length // 4)

    def arrange(self, keep: Sequence[int], start: int, joining: Sequence[Sequence[tuple[Tensor, Tensor]]]) -> None:
        """The new batch: the old rows `keep` in slots 0.., without their first `start` columns (padding in all
        of them), then one row per entry of `joining` (per layer (keys, values) of shape (1, heads, n, dim));
        all left-padded to the longest and ending at the same column. Each old row `keep[slot]` must be `slot`
        itself, or a row beyond the new batch's rows (moved into the slot of a row that left)."""
        layer0 = self.layers[0]
        kept = layer0.end - layer0.begin - start if keep else 0
        total = max([kept, *(entry[0][0].shape[-2] for entry in joining)])
        rows = len(keep) + len(joining)
        slots, capacity = layer0.key_buffer.shape[::2] if layer0.key_buffer is not None else (0, 0)
        new_buffers = rows > slots or total + self.room(total) > capacity
        if new_buffers:  # bigger buffers (with headroom: fresh memory is what is slow), every row copied in
            slots = max(rows, 2 * slots)
            step = 2 * self.min_room  # capacity in whole steps (256 columns)
            capacity = max(capacity, -(-(total + 2 * self.room(total)) // step) * step)
            end = total
        elif keep and total <= layer0.end and layer0.end + self.room(total) <= capacity:
            end = layer0.end  # the rows that stay keep their columns
        else:
            end = total  # to the left edge (always for a batch of joining rows only)
        for index, layer in enumerate(self.layers):
            old_keys, old_values = layer.key_buffer, layer.value_buffer
            if new_buffers:
                keys, values = (old_keys, old_values) if old_keys is not None else joining[0][index]
                layer.key_buffer = keys.new_zeros((slots, keys.shape[1], capacity, keys.shape[3]))
                layer.value_buffer = values.new_zeros((slots, values.shape[1], capacity, values.shape[3]))
            if keep:
                source, target = slice(layer.begin + start, layer.end), slice(end - kept, end)
                for slot, row in enumerate(keep):
                    if not new_buffers and slot == row and source == target:
                        continue  # already in place
                    for old, new in ((old_keys, layer.key_buffer), (old_values, layer.value_buffer)):
                        part = old[row, :, source]
                        # the same row of the same buffer, shifted: copy through a temporary
                        new[slot, :, target].copy_(part.clone() if old is new and slot == row else part)
                    self.moved_rows += index == 0
            for slot, entry in enumerate(joining, start=len(keep)):
                keys, values = entry[index]
                n = keys.shape[-2]
                layer.key_buffer[slot, :, end - n:end].copy_(keys[0])
                layer.value_buffer[slot, :, end - n:end].copy_(values[0])
            layer.rows, layer.begin, layer.end = rows, end - total, end
            layer.view()
        self.allocations += new_buffers


class _PrefillLayer(CacheLayerMixin):
    """One layer of `PrefillCache`: the prefix it was given (read, never written) and what the prefill adds."""

    is_compileable = False
    is_sliding = False

    def __init__(self, keys: Tensor | None = None, values: Tensor | None = None):
        super().__init__()
        self.keys, self.values = keys, values
        self.is_initialized = True

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:  # set up in __init__
        raise RuntimeError("PrefillCache layers start from their prefix, not from a first update")

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """Append the new positions: new tensors (the prefix and the given states are left as they are)."""
        if self.keys is None:
            self.keys, self.values = key_states, value_states
        else:
            self.keys = torch.cat([self.keys, key_states], dim=-2)
            self.values = torch.cat([self.values, value_states], dim=-2)
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1


class PrefillCache(Cache):
    """One row's prefill cache: `prefix` (per layer (keys, values) of shape (1, heads, p, dim), or None) followed by
    the positions the prefill feeds. The prefix's tensors are never written (see the module docstring)."""

    def __init__(self, num_layers: int, prefix: Sequence[tuple[Tensor, Tensor]] | None = None):
        parts = prefix if prefix is not None else [(None, None)] * num_layers
        if len(parts) != num_layers:
            raise ValueError(f"a prefix of {len(parts)} layers for a model of {num_layers}")
        super().__init__(layers=[_PrefillLayer(keys, values) for keys, values in parts])

    def kv(self) -> list[tuple[Tensor, Tensor]]:
        """Per layer (keys, values): the prefix and every position fed since."""
        return [(layer.keys, layer.values) for layer in self.layers]
