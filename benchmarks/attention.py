#!/usr/bin/env python
"""transformers' SDPA attention against `gqa_sdpa` on the engine's masked multi-token decoding forwards, in
one process: the same query, keys, values and mask through both, the largest difference and the ratio.

    python benchmarks/attention.py [--rows 8] [--positions 3] [--columns 1100] [--threads 0]

Shapes are SmolLM2-135M's (9 query heads, 3 KV heads, head dim 64): a decoding step of `--rows` rows, each
feeding its next token and drafts (`--positions`), over `--columns` cached columns, with left padding and a
hole (a rejected draft). transformers repeats the KV heads for such a query (`repeat_kv`); `gqa_sdpa` packs
the query heads of each KV head instead. Then a long prefill's query in chunks (`query_chunks`) against one
call. The last line is `gqa_sdpa: X.Xx`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


class _Module:
    num_key_value_groups = 3


def seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--positions", type=int, default=3)
    parser.add_argument("--columns", type=int, default=1100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lightning_latentseek.engine.attention import gqa_sdpa

    torch.manual_seed(0)
    b, q, n = args.rows, args.positions, args.columns
    query = torch.randn(b, 9, q, 64)
    key, value = torch.randn(b, 3, n, 64), torch.randn(b, 3, n, 64)
    mask = torch.ones(b, 1, q, n, dtype=torch.bool)
    mask[..., n - q:] = torch.ones(q, q, dtype=torch.bool).tril()  # causal among the new positions
    mask[0, ..., :100] = False  # a padded row
    mask[1, ..., n - q - 5] = False  # a rejected draft's column
    module = _Module()
    ours = gqa_sdpa(module, query, key, value, mask, scaling=0.125)[0]
    theirs = sdpa_attention_forward(module, query, key, value, mask, scaling=0.125)[0]
    print(f"rows {b}, positions {q}, columns {n}, torch threads {torch.get_num_threads()}; "
          f"largest difference {float((ours - theirs).abs().max()):.2e}")
    t_theirs = seconds(lambda: sdpa_attention_forward(module, query, key, value, mask, scaling=0.125), args.repeats)
    t_ours = seconds(lambda: gqa_sdpa(module, query, key, value, mask, scaling=0.125), args.repeats)
    print(f"transformers sdpa {t_theirs * 1e3:.2f} ms per layer, gqa_sdpa {t_ours * 1e3:.2f} ms per layer")
    chunked_prefill(module, args.repeats)
    print(f"gqa_sdpa: {t_theirs / t_ours:.1f}x")


def chunked_prefill(module, repeats: int) -> None:
    """A long prefill's query in chunks (`query_chunks`) against one call: the longest paper verifier
    instructions (~690 positions) on top of their cached shared prefix (~330)."""
    from lightning_latentseek.engine import attention

    cached, new = 330, 690
    mask = torch.ones(1, 1, new, cached + new, dtype=torch.bool).tril(diagonal=cached)
    query = torch.randn(1, 9, new, 64)
    key, value = torch.randn(1, 3, cached + new, 64), torch.randn(1, 3, cached + new, 64)
    chunk = attention.QUERY_CHUNK
    outs, times = {}, {}
    for name, setting in (("one call", 10 ** 9), ("chunks", chunk)):
        attention.QUERY_CHUNK = setting
        outs[name] = attention.gqa_sdpa(module, query, key, value, mask, scaling=0.125)[0]
        times[name] = seconds(lambda: attention.gqa_sdpa(module, query, key, value, mask, scaling=0.125), repeats)
    attention.QUERY_CHUNK = chunk
    print(f"prefill of {new} positions on {cached} cached: one call {times['one call'] * 1e3:.2f} ms per layer, "
          f"chunks of {chunk} {times['chunks'] * 1e3:.2f} ms (largest difference "
          f"{float((outs['one call'] - outs['chunks']).abs().max()):.1e}): query chunks "
          f"{times['one call'] / times['chunks']:.2f}x")


if __name__ == "__main__":
    main()
