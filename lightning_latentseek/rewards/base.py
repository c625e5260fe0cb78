"""The reward interface: R(x, c) in [-1, 0] for an answer x to a problem c."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from lightning_latentseek.problems import Problem


@dataclass
class RewardResult:
    """A reward value in [-1, 0] and whatever the reward wants recorded (verdicts, prediction...)."""

    value: float
    details: dict = field(default_factory=dict)
    verifier_tokens: int = 0  # tokens the reward generated (self-reward); 0 for rule-based rewards

    def __post_init__(self) -> None:
        if not -1.0 - 1e-9 <= self.value <= 1e-9:
            raise ValueError(f"reward {self.value} is outside [-1, 0]")


@runtime_checkable
class Reward(Protocol):
    """Anything callable as ``reward(problem, answer_text) -> RewardResult``.

    Plug in your own by import path: ``--model.reward my_pkg.MyReward`` (constructor keyword
    arguments from ``--model.reward_args``; ``llm`` and ``prompt`` are passed when accepted).
    """

    def __call__(self, problem: Problem, answer: str) -> RewardResult: ...
