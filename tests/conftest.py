import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny import save_tiny_model, tiny_llm  # noqa: E402

# Tiny models run fastest on one thread (and do not fight other processes for the cores);
# the real-model test asks for more threads itself.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    """User errors are one line unless LATENTSEEK_DEBUG is set: tests start without it."""
    monkeypatch.delenv("LATENTSEEK_DEBUG", raising=False)


@pytest.fixture(params=["llama", "qwen2"])
def llm(request):
    """A tiny random LLM of each architecture."""
    return tiny_llm(request.param)


@pytest.fixture
def llama():
    return tiny_llm("llama")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random model directory, usable as --model.llm DIR (written once per test session)."""
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture
def all_threads():
    """Use every core for a test on the real model, then go back to one thread."""
    import os

    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory):
    """The embedded SmolLM2 as a plain transformers directory (tests/server_fixture.py), built once per session: what
    `transformers serve` serves, and a fast-loading --model.llm with the same weights."""
    from server_fixture import build_served_dir

    return build_served_dir(tmp_path_factory.mktemp("served") / "smollm2")
