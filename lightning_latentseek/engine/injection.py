"""Hidden states written into the input of a decoder block: the engine's one extension point for methods that
optimise states inside the model (GradCuit: the inserted prefix's input to block L, arXiv 2608.02585).

An `Injection` names a block, where in a row's sequence the states go, and the states. One permanent forward
pre-hook per block that is ever injected at (`InjectionHooks`, registered the first time, never removed) replaces
those positions of that block's input for the rows that carry an injection, and does nothing otherwise. Which
injection is active is per thread (`InjectionHooks.writing`): the engine thread sets it around the prefill of an
injected row, a fit thread around its own teacher-forced forward, and a forward of another thread at the same time
is left alone. Registering a hook per call, as GradCuit's code does (gradcuit.py:96-147), would act on every
thread's forwards while it is registered.

Only a prefill needs the hook: later decoding steps read the injected positions through the KV cache, exactly as
GradCuit's hook leaves cached steps alone (gradcuit.py:121-122).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

from torch import Tensor, nn


@dataclass(frozen=True)
class Injection:
    """`state` (P, H) replaces the input of decoder block `layer` at positions [start, start + P) of a row's
    sequence (block 0's input is the embeddings). Layers below `layer` still see the row's tokens there."""

    layer: int
    start: int
    state: Tensor

    @property
    def end(self) -> int:
        return self.start + int(self.state.shape[0])


def decoder_layers(body: nn.Module) -> Sequence[nn.Module]:
    """The decoder blocks of a transformer body (``layers``: Llama, Qwen, Mistral, Gemma...; ``h``: GPT-2 style),
    GradCuit's lookup (gradcuit.py:76-89) on the body instead of the whole model."""
    for name in ("layers", "h"):
        layers = getattr(body, name, None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise ValueError(f"{type(body).__name__} has no decoder blocks as .layers or .h")


class InjectionHooks:
    """The pre-hooks of one model's decoder blocks (see the module docstring)."""

    def __init__(self, body: nn.Module):
        self.layers = decoder_layers(body)
        self._local = threading.local()
        self._hooked: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.layers)

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer < len(self.layers):
            raise ValueError(f"layer {layer}: the model has {len(self.layers)} decoder blocks (0..{len(self.layers) - 1})")

    @contextmanager
    def writing(self, layer: int, writes: Sequence[tuple[int, int, Tensor]]) -> Iterator[None]:
        """While inside, this thread's forwards replace block `layer`'s input: for each (row, column, state),
        positions [column, column + len(state)) of batch row `row` (columns of this forward's input, after any
        cached prefix)."""
        self.check_layer(layer)
        self._hook(layer)
        previous = getattr(self._local, "writes", None)
        self._local.writes = {layer: list(writes)}
        try:
            yield
        finally:
            self._local.writes = previous

    def _hook(self, layer: int) -> None:
        with self._lock:
            if layer not in self._hooked:
                self.layers[layer].register_forward_pre_hook(self._pre_hook(layer), with_kwargs=True)
                self._hooked.add(layer)

    def _pre_hook(self, layer: int):
        local = self._local

        def hook(_module, args, kwargs):
            writes = getattr(local, "writes", None)
            todo = writes.get(layer) if writes else None
            if not todo:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            updated = hidden.clone()
            for row, column, state in todo:
                if column < 0 or column + state.shape[0] > hidden.shape[1]:
                    raise ValueError(f"an injection at columns {column}..{column + state.shape[0]} does not fit the "
                                     f"{hidden.shape[1]} positions fed to block {layer}")
                updated[row, column:column + state.shape[0]] = state.to(device=hidden.device, dtype=hidden.dtype)
            if args:
                return (updated, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": updated}

        return hook
