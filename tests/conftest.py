import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny import tiny_llm  # noqa: E402


@pytest.fixture(params=["llama", "qwen2"])
def llm(request):
    """A tiny random LLM of each architecture."""
    return tiny_llm(request.param)


@pytest.fixture
def llama():
    return tiny_llm("llama")
