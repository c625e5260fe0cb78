#!/usr/bin/env python
"""transformers' SDPA attention against `gqa_sdpa` on the engine's masked multi-token decoding forwards, in
one process: the same query, keys, values and mask through both, the largest difference and the ratio.

    python benchmarks/attention.py [--rows 8] [--positions 3] [--columns 1100] [--threads 0]

Shapes are SmolLM2-135M's (9 query heads, 3 KV heads, head dim 64): a decoding step of `--rows` rows, each
feeding its next token and drafts (`--positions`), over `--columns` cached columns, with left padding and a
hole (a rejected draft). transformers repeats the KV heads for such a query (`repeat_kv`); `gqa_sdpa` packs
the query heads of each KV head instead. Then a long prefill's query in chunks (`query_chunks`) against one
call, and two logged decoding steps' left-padded rows in row groups (`row_groups`) against one call. The last
line is `gqa_sdpa: X.Xx`.
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
    grouped_rows(module, args.repeats)
    print(f"gqa_sdpa: {t_theirs / t_ours:.1f}x")


def one_call_against(module, constant: str, one_call, name: str, query, key, value, mask, repeats: int):
    """`gqa_sdpa` with the CPU's tuning field `constant` (`engine.tuning`) set to `one_call` (one SDPA call) and
    as it is (`name`): the outputs and the seconds of each."""
    from contextlib import nullcontext

    from lightning_latentseek.engine import attention, tuning

    outs, times = {}, {}
    for label, setting in (("one call", {constant: one_call}), (name, None)):
        with tuning.overridden("cpu", **setting) if setting else nullcontext():
            outs[label] = attention.gqa_sdpa(module, query, key, value, mask, scaling=0.125)[0]
            times[label] = seconds(lambda: attention.gqa_sdpa(module, query, key, value, mask, scaling=0.125),
                                   repeats)
    return outs, times


def chunked_prefill(module, repeats: int) -> None:
    """A long prefill's query in chunks (`query_chunks`) against one call: the longest paper verifier
    instructions (~690 positions) on top of their cached shared prefix (~330)."""
    from lightning_latentseek.engine import tuning

    cached, new = 330, 690
    mask = torch.ones(1, 1, new, cached + new, dtype=torch.bool).tril(diagonal=cached)
    query = torch.randn(1, 9, new, 64)
    key, value = torch.randn(1, 3, cached + new, 64), torch.randn(1, 3, cached + new, 64)
    chunk = tuning.tuning_for("cpu").query_chunk
    outs, times = one_call_against(module, "query_chunk", 10 ** 9, "chunks", query, key, value, mask, repeats)
    print(f"prefill of {new} positions on {cached} cached: one call {times['one call'] * 1e3:.2f} ms per layer, "
          f"chunks of {chunk} {times['chunks'] * 1e3:.2f} ms (largest difference "
          f"{float((outs['one call'] - outs['chunks']).abs().max()):.1e}): query chunks "
          f"{times['one call'] / times['chunks']:.2f}x")


# the first column each row sees, in slot order, in two decoding steps logged from the paper-mode self-reward
# of `speed.py` (5 problems at once): (columns, positions per row, first columns)
LOGGED_STEPS = (
    (1084, 2, (691, 718, 0, 715, 772, 579, 224, 588, 642, 449, 94)),
    (1041, 1, (412, 430, 57, 0, 494, 548, 75, 551, 605, 600, 654, 461, 106, 569, 623, 716, 770, 577, 222)),
)


def grouped_rows(module, repeats: int) -> None:
    """A left-padded decoding batch in row groups (`row_groups`) against one call, on logged steps."""
    from lightning_latentseek.engine import attention

    for columns, q, firsts in LOGGED_STEPS:
        b = len(firsts)
        mask = torch.ones(b, 1, q, columns, dtype=torch.bool)
        mask[..., columns - q:] = torch.ones(q, q, dtype=torch.bool).tril()
        for row, first in enumerate(firsts):
            mask[row, ..., :first] = False
        query = torch.randn(b, 9, q, 64)
        key, value = torch.randn(b, 3, columns, 64), torch.randn(b, 3, columns, 64)
        outs, times = one_call_against(module, "max_row_groups", 1, "row groups", query, key, value, mask, repeats)
        print(f"logged step of {b} rows x {q} positions over {columns} columns "
              f"({sum(columns - f for f in firsts) / (b * columns):.0%} of the cells not padding): one call "
              f"{times['one call'] * 1e3:.2f} ms per layer, {len(attention.row_groups(mask))} row groups "
              f"{times['row groups'] * 1e3:.2f} ms (largest difference "
              f"{float((outs['one call'] - outs['row groups']).abs().max()):.1e}): row groups "
              f"{times['one call'] / times['row groups']:.2f}x")


if __name__ == "__main__":
    main()
