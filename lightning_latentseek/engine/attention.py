"""SDPA attention for the engine's multi-token decoding forwards (drafts checked in one forward).

transformers' ``sdpa`` attention repeats the key/value heads of a grouped-query model (GQA: fewer KV heads
than query heads) whenever a mask is given and more than one query position is fed: it then copies the
whole KV cache, three times over for SmolLM2, in every layer of every such forward. On the CPU that copy
cost 7 ms per layer at 8 rows x 1100 columns, ten times the attention itself. torch's SDPA takes the
query heads of each KV head packed into one longer query instead (what transformers' own ``pack_gqa`` does
for a single position), with the same result. ``gqa_sdpa`` does that for masked multi-token queries on the
CPU and hands every other call to transformers' own ``sdpa_attention_forward`` unchanged.

It is registered through transformers' public `AttentionInterface` / `AttentionMaskInterface` under
``GQA_SDPA`` (with the ``sdpa`` mask) and chosen with ``model.set_attn_implementation``: `use_gqa_sdpa`.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

GQA_SDPA = "latentseek_gqa_sdpa"


def gqa_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
             is_causal: bool | None = None, **kwargs):
    """transformers' SDPA attention, except that a masked multi-token query on the CPU packs the query heads of
    each key/value head together instead of copying the key/value heads (`repeat_kv`)."""
    groups = getattr(module, "num_key_value_groups", 1)
    if (groups > 1 and attention_mask is not None and query.shape[2] > 1 and query.device.type == "cpu"
            and kwargs.get("position_bias") is None and kwargs.get("softcap") is None
            and not kwargs.get("output_attentions", False)):
        # the query heads of each KV head side by side as one longer query (as transformers' `pack_gqa` does for
        # one position), the mask repeated to match: attention then reads each KV head once, copying nothing
        batch, heads, length, dim = query.shape
        kv_heads = heads // groups
        packed = query.reshape(batch, kv_heads, groups * length, dim)
        mask = attention_mask.expand(batch, 1, length, -1).repeat(1, 1, groups, 1)
        out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=mask, dropout_p=dropout,
                                                               scale=scaling)
        return out.reshape(batch, heads, length, dim).transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)


AttentionInterface.register(GQA_SDPA, gqa_sdpa)
AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)


def use_gqa_sdpa(model) -> bool:
    """Switch a model that uses ``sdpa`` attention to `gqa_sdpa` (True when switched)."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    model.set_attn_implementation(GQA_SDPA)
    return model.config._attn_implementation == GQA_SDPA
