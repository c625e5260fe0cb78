"""Who answers a reward's verifier conversations: the solver's own engine (`EngineVerifier`, the default) or an
OpenAI-compatible server (`server.ChatServer`, `--model.reward_server URL`). Both take chat conversations and a
token cap and return `Reply`s (text, tokens generated); only the engine takes per-row samplers and stop rules
(a server decodes greedily to its EOS or the cap)."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from lightning_latentseek.engine import GenerationEngine, Row
from lightning_latentseek.rewards.server import ChatServer, Reply

__all__ = ["ChatServer", "EngineVerifier", "Reply", "Verifier"]


class Verifier(Protocol):
    def answer(self, conversations: Sequence[list[dict]], max_new_tokens: int, samplers: Sequence | None = None,
               stop: Callable[[list[int]], bool] | None = None) -> list[Reply]: ...


class EngineVerifier:
    """The frozen LLM itself, through the generation engine: every conversation one row of one batch (rendered by
    the chat template with the generation prompt; stops at the checkpoint's EOS ids, `stop`, or the cap)."""

    def __init__(self, engine: GenerationEngine):
        self.engine, self.llm = engine, engine.lm

    def answer(self, conversations: Sequence[list[dict]], max_new_tokens: int, samplers: Sequence | None = None,
               stop: Callable[[list[int]], bool] | None = None) -> list[Reply]:
        samplers = list(samplers) if samplers is not None else [None] * len(conversations)
        rows = [Row(self.llm.encode_chat(messages), max_new_tokens, self.llm.generation_stop_ids, sampler=sampler,
                    stop=stop) for messages, sampler in zip(conversations, samplers)]
        return [Reply(self.llm.decode(g.tokens), len(g.tokens), tuple(g.tokens)) for g in self.engine.generate(rows)]
