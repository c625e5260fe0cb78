"""The engine's speed constants whose best value depends on the device, in one place.

None of them changes a token (up to the float noise of batched arithmetic): they only decide how much work
one forward does. Their best values differ between a CPU, where a decoding forward of a few dozen tokens is
already compute-bound and every extra SDPA call costs ~100 us, and a GPU, where a decoding forward of a small
batch is bound by reading the weights (and by kernel launches), so more tokens per forward are almost free.

`defaults_for(device)` returns the values for a device: `CPU` on ``cpu``, `GPU` on any other device (CUDA;
other accelerators get the GPU values untested). `tuning_for(device)` is what the engine and `gqa_sdpa` use:
the defaults with this process's overrides (`override`, `overridden`) applied. A `GenerationEngine` can also
be given its own `EngineTuning` (its draft budget and drop rule; attention always reads `tuning_for`).

Where each value comes from:

==================  ===========  ============================================================================
field               CPU          GPU
==================  ===========  ============================================================================
draft_budget        32           256. CPU: commit f8e4b88 (2-core Sapphire Rapids; drafts cut so that a
                                 forward carries at most 32 tokens), kept on a 2-core AMD EPYC where 64 was
                                 4% slower on the paper self-reward (benchmarks/README.md, engine-diet rows).
                                 GPU: not measured yet; a decoding forward stays bound by reading the weights
                                 up to about the GPU's ridge point (H100 bf16: ~990 TFLOP/s over ~3.35 TB/s,
                                 ~300 FLOP per weight byte, i.e. ~300 tokens a forward), so drafts are cut
                                 only beyond 256 tokens. ``None`` means no budget.
drop_finished       1/3          1/2. A decoding step that finds at least this share of its rows finished
                                 rebuilds the batch without them (finished rows ride along, masked, until
                                 then). CPU: since commit 4636273 (the StaticCache batch, Sapphire Rapids).
                                 GPU: not measured yet; a row riding along costs a memory-bound forward
                                 almost nothing, while a rebuild is copy kernels and Python work per layer,
                                 so the GPU rebuilds later.
attention_plans     True         False. Whether `gqa_sdpa` rearranges a masked query (GQA heads packed
                                 instead of `repeat_kv`, long queries in chunks, padded rows in groups) or
                                 hands it to transformers' SDPA unchanged. CPU: commits f8e4b88, 2b1d917,
                                 b41759b (benchmarks/attention.py). GPU: transformers' SDPA, as before this
                                 module existed; benchmarks/gpu_check.py measures both.
query_chunk         256          256. A masked query of twice this or more is attended in chunks of this
                                 many positions. CPU: commit 2b1d917 (1.12x on the longest paper verifier
                                 prefill's attention, Sapphire Rapids). GPU: the same (only with plans on).
group_call_cells    512          131072. Row groups: one more SDPA call is worth it when it skips more than
                                 this many (row x column) cells of left padding. CPU: commit b41759b (AMD
                                 EPYC: 100-150 us a call against 0.2-0.3 us a cell). GPU: not measured yet;
                                 ~30 us of launches a call against ~0.25 ns to read a cell's keys and values
                                 (SmolLM2: 3 KV heads x 64 x 2 x 2 bytes at ~3 TB/s), so groups almost
                                 never pay (only with plans on).
max_row_groups      4            4. At most this many row groups (1: one call). CPU: commit b41759b.
==================  ===========  ============================================================================
"""

from __future__ import annotations

import dataclasses
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import torch


@dataclass(frozen=True)
class EngineTuning:
    """The engine's device-dependent speed constants (see the module docstring for each value's source).

    Args:
        draft_budget: at most this many tokens in one decoding forward (rows x (1 + drafts)); drafts are cut to
            fit. None: no budget.
        drop_finished: a decoding step after which at least this share of the batch's rows is finished
            rebuilds the batch without them.
        attention_plans: `gqa_sdpa` packs, chunks and groups masked queries on this device (False: transformers'
            SDPA for every call).
        query_chunk: a masked query of at least twice this many positions is attended in chunks of this many.
        group_call_cells: the cost of one more SDPA call, in (row x column) cells, when grouping padded rows.
        max_row_groups: at most this many row groups (1: one SDPA call per layer).
    """

    draft_budget: int | None
    drop_finished: Fraction
    attention_plans: bool
    query_chunk: int
    group_call_cells: int
    max_row_groups: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "drop_finished", Fraction(self.drop_finished))
        if self.draft_budget is not None and self.draft_budget < 1:
            raise ValueError(f"draft_budget {self.draft_budget}: must be >= 1 or None (no budget)")
        if not 0 < self.drop_finished <= 1:
            raise ValueError(f"drop_finished {self.drop_finished}: must be in (0, 1]")
        if self.query_chunk < 1 or self.group_call_cells < 0 or self.max_row_groups < 1:
            raise ValueError(f"query_chunk {self.query_chunk} (>= 1), group_call_cells {self.group_call_cells} "
                             f"(>= 0), max_row_groups {self.max_row_groups} (>= 1)")


CPU = EngineTuning(draft_budget=32, drop_finished=Fraction(1, 3), attention_plans=True, query_chunk=256,
                   group_call_cells=512, max_row_groups=4)
GPU = EngineTuning(draft_budget=256, drop_finished=Fraction(1, 2), attention_plans=False, query_chunk=256,
                   group_call_cells=131072, max_row_groups=4)


def _device_type(device: torch.device | str) -> str:
    return device.type if isinstance(device, torch.device) else torch.device(device).type


def defaults_for(device: torch.device | str) -> EngineTuning:
    """The default tuning of a device: `CPU` for ``cpu``, `GPU` for every other device type."""
    return CPU if _device_type(device) == "cpu" else GPU


_lock = threading.Lock()
_overrides: dict[str, dict] = {}  # device type -> {field: value}
_effective: dict[str, EngineTuning] = {}  # device type -> defaults with overrides (read on every attention call)


def tuning_for(device: torch.device | str) -> EngineTuning:
    """The tuning in force on `device`: its defaults with this process's overrides."""
    kind = _device_type(device)
    found = _effective.get(kind)
    if found is None:
        with _lock:
            found = dataclasses.replace(defaults_for(kind), **_overrides.get(kind, {}))
            _effective[kind] = found
    return found


def override(device: torch.device | str, **changes) -> None:
    """Change fields of the tuning in force on a device type for this process (engines built afterwards and
    every attention call); a value of None for ``draft_budget`` means no budget. ``reset`` undoes it."""
    kind = _device_type(device)
    unknown = set(changes) - {f.name for f in dataclasses.fields(EngineTuning)}
    if unknown:
        raise TypeError(f"unknown tuning field(s): {', '.join(sorted(unknown))}")
    with _lock:
        merged = {**_overrides.get(kind, {}), **changes}
        dataclasses.replace(defaults_for(kind), **merged)  # validate before anything changes
        _overrides[kind] = merged
        _effective.pop(kind, None)


def reset(device: torch.device | str | None = None) -> None:
    """Drop the overrides of a device type (of every device type when None)."""
    with _lock:
        if device is None:
            _overrides.clear()
            _effective.clear()
        else:
            kind = _device_type(device)
            _overrides.pop(kind, None)
            _effective.pop(kind, None)


@contextmanager
def overridden(device: torch.device | str, **changes) -> Iterator[EngineTuning]:
    """`override` for the duration of a block (the previous overrides come back afterwards, also on error)."""
    kind = _device_type(device)
    with _lock:
        previous = dict(_overrides.get(kind, {}))
    override(kind, **changes)
    try:
        yield tuning_for(kind)
    finally:
        with _lock:
            if previous:
                _overrides[kind] = previous
            else:
                _overrides.pop(kind, None)
            _effective.pop(kind, None)
