"""The growing KV cache: the same values as transformers' DynamicCache, prefixes copied, not shared."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from lightning_latentseek.kv_cache import SPARE, GrowingLayer, copy_prefix, new_cache, truncate


def run(llm, cache, prompt: list[int], steps: int, rows: int = 1) -> torch.Tensor:
    """Prefill one row, crop 3 positions, repeat it as `rows` rows, greedy-decode `steps` tokens, drop row 0
    halfway: the hidden states of every step, (steps, rows, H) with dropped rows zero."""
    states = torch.zeros(steps, rows, llm.model.config.hidden_size)
    with torch.inference_mode():
        llm._forward(torch.tensor([prompt]), cache)
        truncate(cache, len(prompt) - 3)
        hidden = llm._forward(torch.tensor([prompt[-3:]]), cache)[:, -1]
        cache.batch_repeat_interleave(rows)
        hidden = hidden.expand(rows, -1)
        alive = list(range(rows))
        for step in range(steps):
            if step == steps // 2 and rows > 1:
                alive = alive[1:]
                cache.batch_select_indices(torch.tensor(list(range(1, len(alive) + 1))))
                hidden = hidden[1:]
            token = llm.lm_head(hidden).argmax(-1)
            length = cache.get_seq_length()
            position = torch.full((len(alive), 1), length)
            hidden = llm._forward(token[:, None], cache, position_ids=position)[:, -1]
            states[step, alive] = hidden
    return states


def test_growing_cache_gives_bitwise_the_same_states_as_dynamic_cache(llm):
    prompt = list(range(40, 40 + 30))
    for rows in (1, 3):
        ours = run(llm, new_cache(), prompt, steps=SPARE + 20, rows=rows)  # grows past its first buffer
        theirs = run(llm, DynamicCache(), prompt, steps=SPARE + 20, rows=rows)
        assert torch.equal(ours, theirs)


def test_cache_layers_grow_in_place_and_report_their_length(llm):
    cache = new_cache()
    with torch.inference_mode():
        llm._forward(torch.tensor([list(range(10))]), cache)
        layer = cache.layers[0]
        assert isinstance(layer, GrowingLayer) and cache.get_seq_length() == 10
        buffer = layer._k.data_ptr()
        llm._forward(torch.tensor([[11]]), cache)
        assert cache.get_seq_length() == 11 and layer._k.data_ptr() == buffer  # written in place
        truncate(cache, 4)
        assert cache.get_seq_length() == 4 and layer.keys.shape[-2] == 4


def test_copy_prefix_copies_and_leaves_the_source_alone(llm):
    source = new_cache()
    with torch.inference_mode():
        llm._forward(torch.tensor([list(range(20))]), source)
        before = [layer.keys.clone() for layer in source.layers]
        copied = copy_prefix(source, 12, rows=3)
        assert copied.get_seq_length() == 12 and copied.layers[0].keys.shape[0] == 3
        for layer, original in zip(copied.layers, before):
            assert torch.equal(layer.keys, original[:, :, :12].expand(3, -1, -1, -1))
        llm._forward(torch.tensor([[5], [6], [7]]), copied, position_ids=torch.full((3, 1), 12))
        assert source.get_seq_length() == 20
        assert all(torch.equal(layer.keys, original) for layer, original in zip(source.layers, before))
    assert copy_prefix(source, 0).get_seq_length() == 0
