"""SDPA attention for the engine's forwards: multi-token decoding steps (drafts checked in one forward) and
prefills on top of a cached prefix.

Three things transformers' ``sdpa`` attention does not do, all pure speed (the same attention, the same
result up to float summation order):

* **No copies of grouped KV heads.** For a grouped-query model (GQA: fewer KV heads than query heads) it
  repeats the key/value heads whenever a mask is given and more than one query position is fed: it then
  copies the whole KV cache, three times over for SmolLM2, in every layer of every such forward. On the
  CPU that copy cost 7 ms per layer at 8 rows x 1100 columns, ten times the attention itself. torch's SDPA
  takes the query heads of each KV head packed into one longer query instead (what transformers' own
  ``pack_gqa`` does for a single position), with the same result.
* **Less of the causal triangle.** SDPA given a mask computes every query x key cell, so a prefill on top of
  a cached prefix also computes the half of its own square that the mask hides. A long query (the paper's
  longest verifier instructions: ~700 positions) is attended in chunks (`query_chunks`), each reading the
  keys up to the last one it sees: 1.12x on that attention (`benchmarks/attention.py`).
* **Less of the left padding.** The rows of a decoding batch are left-padded to its longest row, and the
  padding (half of the cells in a paper-mode self-reward run) costs SDPA as much as real columns. Such a
  batch is attended in groups of consecutive rows, each reading the columns from its earliest row's first
  one (`row_groups`), where the padding skipped outweighs the cost of another SDPA call.

``gqa_sdpa`` does all three for masked queries on devices whose tuning says so (`engine.tuning`:
``attention_plans``, on a CPU) and hands every other call to transformers' own ``sdpa_attention_forward``
unchanged; the chunk length and the cost of a call in cells are device-dependent constants there too. It is
registered through transformers' public `AttentionInterface` / `AttentionMaskInterface` under ``GQA_SDPA``
(with the ``sdpa`` mask) and asked for when the model is loaded (`loading.load_llm`:
``attn_implementation=GQA_SDPA``; a model built in Python asks for it in its config).
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from lightning_latentseek.engine.tuning import EngineTuning, tuning_for

GQA_SDPA = "latentseek_gqa_sdpa"
# The plans' constants live in `engine.tuning`, per device: `query_chunk` (queries of twice this or more, a
# prefill on top of a cached prefix, are attended in chunks of this many positions, each reading the keys up
# to the last one it sees; 256 on a CPU), `group_call_cells` (a batch of rows is attended in groups where the
# padding they skip outweighs one more SDPA call, which costs about as much as this many (row x column) cells;
# 512 on a CPU) and `max_row_groups` (4).

_last_plan: tuple = (None, None, None)


def query_chunks(mask: Tensor, chunk: int | None = None) -> list[tuple[int, int, int]]:
    """Chunks (first query, end query, end column) of the query positions of a boolean mask (B, 1, q, S):
    `chunk` positions each (one chunk for a query shorter than two), each reading the columns up to the last
    one any of its queries attends to."""
    chunk = tuning_for(mask.device).query_chunk if chunk is None else chunk
    length, columns = mask.shape[-2], mask.shape[-1]
    if length < 2 * chunk:
        return [(0, length, columns)]
    seen = mask.reshape(-1, length, columns).any(dim=0)  # (q, S)
    ends = (columns - seen.flip(-1).to(torch.uint8).argmax(dim=-1)).tolist()  # one past each query's last column
    return [(q, min(q + chunk, length), max(ends[q:q + chunk])) for q in range(0, length, chunk)]


def row_groups(mask: Tensor, call_cells: int | None = None, max_groups: int | None = None) -> list[tuple[int, int, int]]:
    """Groups (first row, end row, first column) of consecutive rows of a boolean mask (B, 1, q, S), each to be
    attended from the first column any of its rows sees: the grouping of at most `max_groups` groups with the
    fewest (row x column) cells read, counting `call_cells` cells for every group (one SDPA call each)."""
    tuning = tuning_for(mask.device)
    call_cells = tuning.group_call_cells if call_cells is None else call_cells
    max_groups = tuning.max_row_groups if max_groups is None else max_groups
    batch, columns = mask.shape[0], mask.shape[-1]
    seen = mask.reshape(batch, -1, columns).any(dim=1)
    firsts = seen.to(torch.uint8).argmax(dim=-1).tolist()  # a row that sees no column counts from column 0
    if batch < 2 or max_groups < 2:
        return [(0, batch, min(firsts, default=0))]
    # cost[g][j]: the fewest cells for rows 0..j-1 in g groups; back[g][j]: where the last of those groups starts
    none = float("inf")
    cost = [[0.0] + [none] * batch] + [[none] * (batch + 1) for _ in range(max_groups)]
    back = [[0] * (batch + 1) for _ in range(max_groups + 1)]
    for groups in range(1, max_groups + 1):
        for end in range(1, batch + 1):
            first = columns
            for start in range(end - 1, -1, -1):
                first = min(first, firsts[start])
                if cost[groups - 1][start] < none:
                    cells = cost[groups - 1][start] + call_cells + (end - start) * (columns - first)
                    if cells < cost[groups][end]:
                        cost[groups][end], back[groups][end] = cells, start
    groups = min(range(1, max_groups + 1), key=lambda g: cost[g][batch])
    bounds, end = [], batch
    while groups:
        start = back[groups][end]
        bounds.append((start, end, min(firsts[start:end])))
        end, groups = start, groups - 1
    return bounds[::-1]


def _plan(mask: Tensor, tuning: EngineTuning) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """`query_chunks` and `row_groups` of a mask, computed once per forward: every layer gets the same (new)
    mask. Row groups only for a query of one chunk."""
    global _last_plan
    last = _last_plan
    if last[0] is mask and last[1] == tuning:
        return last[2]
    chunks = query_chunks(mask, tuning.query_chunk)
    groups = (row_groups(mask, tuning.group_call_cells, tuning.max_row_groups) if len(chunks) == 1
              else [(0, mask.shape[0], 0)])
    _last_plan = (mask, tuning, (chunks, groups))
    return chunks, groups


def _packed_sdpa(query: Tensor, key: Tensor, value: Tensor, mask: Tensor, dropout: float,
                 scaling: float | None) -> Tensor:
    """SDPA with the query heads of each KV head side by side as one longer query (as transformers' `pack_gqa`
    does for one position), the mask repeated to match: attention then reads each KV head once, copying
    nothing. Returns (B, q, heads, dim)."""
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    packed = query.reshape(batch, kv_heads, groups * length, dim)
    mask = mask.expand(batch, 1, length, -1)
    if groups > 1:
        mask = mask.repeat(1, 1, groups, 1)
    out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=mask, dropout_p=dropout,
                                                           scale=scaling)
    return out.reshape(batch, heads, length, dim).transpose(1, 2)


def gqa_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
             is_causal: bool | None = None, **kwargs):
    """transformers' SDPA attention, except that a masked query on a device whose tuning plans attention (a CPU:
    `EngineTuning.attention_plans`) packs the query heads of each key/value head together instead of copying the
    key/value heads (`repeat_kv`), a long query is attended in chunks (`query_chunks`) and a left-padded batch in
    groups of rows (`row_groups`)."""
    groups = getattr(module, "num_key_value_groups", 1)
    plan = None
    if (attention_mask is not None and attention_mask.dtype == torch.bool
            and kwargs.get("position_bias") is None and kwargs.get("softcap") is None
            and not kwargs.get("output_attentions", False)):
        tuning = tuning_for(query.device)
        if tuning.attention_plans:
            plan = _plan(attention_mask, tuning)
    whole = plan is not None and len(plan[0]) == 1 and plan[1] == [(0, query.shape[0], 0)]
    if plan is None or (whole and (groups == 1 or query.shape[2] == 1)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if whole:
        return _packed_sdpa(query, key, value, attention_mask, dropout, scaling).contiguous(), None
    chunks, row_spans = plan
    batch, heads, length, dim = query.shape
    out = query.new_empty((batch, length, heads, dim))
    if len(chunks) > 1:
        for first, last, stop in chunks:
            positions = slice(first, last)
            out[:, positions] = _packed_sdpa(query[:, :, positions], key[:, :, :stop], value[:, :, :stop],
                                             attention_mask[:, :, positions, :stop], dropout, scaling)
        return out, None
    for first, last, start in row_spans:
        rows = slice(first, last)
        out[rows] = _packed_sdpa(query[rows], key[rows, :, start:], value[rows, :, start:],
                                 attention_mask[rows, :, :, start:], dropout, scaling)
    return out, None


AttentionInterface.register(GQA_SDPA, gqa_sdpa)
AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)
