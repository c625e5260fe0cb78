"""The reward interface: R(x, c) in [-1, 0] for an answer x to a problem c."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

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


class RewardUnavailable(RuntimeError):
    """The reward could not be computed (its server failed, retries spent): the problem ends with stop_reason
    ``reward_unavailable``, the run goes on, and a resume solves that problem again."""


@runtime_checkable
class Reward(Protocol):
    """Anything callable as ``reward(problem, answer_text) -> RewardResult``.

    Plug in your own by import path: ``--model.reward my_pkg.MyReward`` (constructor keyword
    arguments from ``--model.reward_args``; ``llm``, ``engine`` and ``prompt`` are passed when
    accepted). A reward that can judge several answers at once (one batched generation) may also
    define ``judge_many(problem, answers) -> list[RewardResult]``. Rewards are called from several
    threads at once (one per problem in flight): keep no per-problem state on the reward object.
    """

    def __call__(self, problem: Problem, answer: str) -> RewardResult: ...


def judge_many(reward: Reward, problem: Problem, answers: Sequence[str]) -> list[RewardResult]:
    """R for each answer: the reward's own batched `judge_many` when it has one, else one call each."""
    batched = getattr(reward, "judge_many", None)
    if batched is not None:
        results = list(batched(problem, list(answers)))
        if len(results) != len(answers):
            raise ValueError(f"{type(reward).__name__}.judge_many returned {len(results)} results for "
                             f"{len(answers)} answers")
        return results
    return [reward(problem, answer) for answer in answers]


class ConstantReward:
    """R = -1 for every answer: the paper's ablation with a reward that carries no information (Table 7).
    It never clears tau, so every problem runs its K iterations."""

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        return RewardResult(-1.0)
