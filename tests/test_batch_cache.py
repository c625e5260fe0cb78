"""BatchCache.arrange on hand-made KV: each row's columns land where the batch expects them, rows that can
stay are not copied, buffers are reused until the batch outgrows them."""

from __future__ import annotations

import torch

from lightning_latentseek.engine.batch_cache import BatchCache

HEADS, DIM = 2, 3


def row_kv(tag: int, n: int, layers: int = 2):
    """Per layer (keys, values) of one row with n positions: key value = tag + position / 100 (+ layer),
    value = the negative."""
    out = []
    for layer in range(layers):
        keys = (tag + torch.arange(n) / 100 + layer).view(1, 1, n, 1).expand(1, HEADS, n, DIM).clone()
        out.append((keys, -keys))
    return out


def row_contents(cache: BatchCache, slot: int, n: int, layer: int = 0) -> list[float]:
    """The last n columns of a row's keys (what the attention mask leaves visible), head 0, dim 0."""
    keys = cache.layers[layer].keys
    assert torch.equal(cache.layers[layer].values[slot, :, -n:], -keys[slot, :, -n:])
    return [round(float(x), 4) for x in keys[slot, 0, keys.shape[2] - n:, 0]]


def expected(tag: int, n: int, layer: int = 0, first: int = 0) -> list[float]:
    return [round(tag + p / 100 + layer, 4) for p in range(first, first + n)]


def decode_step(cache: BatchCache, tags: list[int], position: list[int]) -> None:
    """One decoding step: every row gets key tag + position / 100 at the next column."""
    for layer_index, layer in enumerate(cache.layers):
        keys = torch.tensor([t + p / 100 + layer_index for t, p in zip(tags, position)]).view(-1, 1, 1, 1)
        keys = keys.expand(-1, HEADS, 1, DIM).clone()
        layer.update(keys, -keys)


def test_rows_join_leave_and_stay_in_place():
    cache = BatchCache(2)
    cache.arrange([], 0, [row_kv(10, 5), row_kv(20, 3), row_kv(30, 4)])
    assert (cache.rows, cache.length, cache.allocations, cache.moved_rows) == (3, 5, 1, 0)
    for layer in range(2):
        assert row_contents(cache, 0, 5, layer) == expected(10, 5, layer)
        assert row_contents(cache, 1, 3, layer) == expected(20, 3, layer)
        assert row_contents(cache, 2, 4, layer) == expected(30, 4, layer)
    decode_step(cache, [10, 20, 30], [5, 3, 4])
    assert cache.length == 6 and row_contents(cache, 1, 4) == expected(20, 4)

    # row 0 leaves: row 2 (beyond the new batch of 2) moves into slot 0, row 1 stays, a short row joins
    cache.arrange([2, 1], 0, [row_kv(40, 2)])
    assert (cache.rows, cache.length, cache.allocations, cache.moved_rows) == (3, 6, 1, 1)
    assert row_contents(cache, 0, 5) == expected(30, 5)
    assert row_contents(cache, 1, 4) == expected(20, 4)
    assert row_contents(cache, 2, 2) == expected(40, 2)

    # leading padding trimmed (start 1), a row longer than the batch joins: the rows shift, still no new buffers
    cache.arrange([0, 1], 1, [row_kv(50, 9)])
    assert (cache.rows, cache.length, cache.allocations) == (3, 9, 1)
    assert row_contents(cache, 0, 5, 1) == expected(30, 5, 1)
    assert row_contents(cache, 1, 4, 1) == expected(20, 4, 1)
    assert row_contents(cache, 2, 9, 1) == expected(50, 9, 1)


def test_decoding_to_the_edge_moves_rows_left_and_a_bigger_batch_gets_new_buffers():
    cache = BatchCache(1)
    cache.min_room = 2
    cache.arrange([], 0, [row_kv(10, 200, 1), row_kv(20, 2, 1)])
    assert cache.layers[0].key_buffer.shape[2] == 300  # 200 + 2 x room (50), in whole steps of 2 x min_room
    position = [200, 2]
    while not cache.full():
        decode_step(cache, [10, 20], position)
        position = [p + 1 for p in position]
    assert position == [300, 102] and cache.length == 300
    # row 0 leaves; row 1's 102 columns and room for decoding fit, but not after column 300: moved left
    cache.arrange([1], 300 - 102, [])
    assert (cache.rows, cache.length, cache.layers[0].begin, cache.layers[0].end) == (1, 102, 0, 102)
    assert (cache.allocations, cache.moved_rows) == (1, 1)
    assert row_contents(cache, 0, 102) == expected(20, 102)
    decode_step(cache, [20], [102])
    assert row_contents(cache, 0, 103) == expected(20, 103)

    # more rows and columns than the buffers hold: new ones (twice the slots; 600 + 2 x 150 columns)
    cache.arrange([0], 0, [row_kv(30, 3, 1), row_kv(40, 600, 1)])
    assert cache.allocations == 2 and cache.layers[0].key_buffer.shape[:3] == (4, HEADS, 900)
    assert row_contents(cache, 0, 103) == expected(20, 103)
    assert row_contents(cache, 1, 3) == expected(30, 3)
    assert row_contents(cache, 2, 600) == expected(40, 600)


def test_prefill_cache_reads_its_prefix_and_never_writes_it():
    from lightning_latentseek.engine.batch_cache import PrefillCache

    prefix = [(keys[:, :, :3], values[:, :, :3]) for keys, values in row_kv(1, 5)]  # views of longer tensors
    before = [(k.clone(), v.clone()) for k, v in prefix]
    cache = PrefillCache(2, prefix)
    assert cache.get_seq_length() == 3
    new = row_kv(7, 2)
    for layer, (keys, values) in enumerate(new):
        out_keys, out_values = cache.update(keys, values, layer)
        assert [round(float(x), 4) for x in out_keys[0, 0, :, 0]] == [1 + layer, 1.01 + layer, 1.02 + layer,
                                                                      7 + layer, 7.01 + layer]
        assert torch.equal(out_values, -out_keys)
    for (k, v), (k0, v0) in zip(prefix, before):
        assert torch.equal(k, k0) and torch.equal(v, v0)  # read, not written
    for (k, v), (kp, vp) in zip(cache.kv(), prefix):  # new tensors: no storage shared with the prefix
        assert k.untyped_storage().data_ptr() != kp.untyped_storage().data_ptr()
        assert v.untyped_storage().data_ptr() != vp.untyped_storage().data_ptr()
    empty = PrefillCache(2)
    assert empty.get_seq_length() == 0 and empty.update(*new[0], 0)[0] is new[0][0]
