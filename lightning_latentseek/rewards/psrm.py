"""PSRM, the perfect sparse reward of the paper's ideal experiment: 0 if correct, else -1."""

from __future__ import annotations

from lightning_latentseek.grading import Grader
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards.base import RewardResult


class PerfectSparseReward:
    """R = 0 when the answer is right, else -1: graded as the run's records are (`Grader`: the prompt, the model
    name, ``--model.extraction`` and ``--model.grading``), on the text with the EOS the original reads."""

    deterministic = True

    def __init__(self, grader: Grader | None = None, prompt: str = "boxed"):
        self.grader = grader if grader is not None else Grader(prompt=prompt)

    def __call__(self, problem: Problem, answer: str, eos: str = "") -> RewardResult:
        pred, correct = self.grader.judge(answer, problem.dataset, problem.answer, eos)
        return RewardResult(0.0 if correct else -1.0, {"pred": pred, "correct": correct})
