"""The reward interface: R(x, c) in [-1, 0] for an answer x to a problem c."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, runtime_checkable

from lightning_latentseek.problems import Problem


@dataclass
class RewardResult:
    """A reward value in [-1, 0] and whatever the reward wants recorded (verdicts, prediction...)."""

    value: float
    details: dict = field(default_factory=dict)
    verifier_tokens: int = 0  # tokens the reward generated (self-reward); 0 for rule-based rewards
    floor: float = -1.0  # the lowest value the reward can give: -1, or -8/6 with the original's format rule

    def __post_init__(self) -> None:
        if not self.floor - 1e-9 <= self.value <= 1e-9:
            raise ValueError(f"reward {self.value} is outside [{self.floor:.4g}, 0]")


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

    Optional context, passed only to a ``__call__``/``judge_many`` that names it as a keyword: ``eos``, the
    text of the token that ended the answer (``<|im_end|>``; "" when the cap cut it), which the original's
    graders read (PSRM takes it); ``call`` (``calls`` for `judge_many`), the judgement's index within the
    problem (0: the CoT's), which seeds a sampling verifier. A reward whose verdicts are not a function of
    the answer alone sets ``deterministic = False``: the search then judges an answer again each time
    instead of reusing its reward.
    """

    def __call__(self, problem: Problem, answer: str) -> RewardResult: ...


def _takes(function: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature (a builtin)
        return False


def judge_many(reward: Reward, problem: Problem, answers: Sequence[str], eos: Sequence[str] | None = None,
               calls: Sequence[int] | None = None) -> list[RewardResult]:
    """R for each answer: the reward's own batched `judge_many` when it has one, else one call each.
    `eos` and `calls` (one per answer) go to the reward where it takes them (see `Reward`)."""
    answers = list(answers)
    eos = [""] * len(answers) if eos is None else list(eos)
    calls = list(range(len(answers))) if calls is None else list(calls)
    batched = getattr(reward, "judge_many", None)
    if batched is not None:
        extra = {k: v for k, v in (("eos", eos), ("calls", calls)) if _takes(batched, k)}
        results = list(batched(problem, answers, **extra))
        if len(results) != len(answers):
            raise ValueError(f"{type(reward).__name__}.judge_many returned {len(results)} results for "
                             f"{len(answers)} answers")
        return results
    takes = {k: _takes(reward, k) for k in ("eos", "call")}
    return [reward(problem, answer, **{k: v for k, v in (("eos", end), ("call", call)) if takes[k]})
            for answer, end, call in zip(answers, eos, calls)]


class ConstantReward:
    """R = -1 for every answer: the paper's ablation with a reward that carries no information (Table 7).
    It never clears tau, so every problem runs its K iterations."""

    deterministic = True

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        return RewardResult(-1.0)
