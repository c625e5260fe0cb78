"""PSRM, the perfect sparse reward of the paper's ideal experiment: 0 if correct, else -1."""

from __future__ import annotations

from lightning_latentseek.grading import extract_answer, grade, numeric_dataset
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards.base import RewardResult


class PerfectSparseReward:
    """R = 0 when the answer extracted from the text equals the ground truth, else -1."""

    def __init__(self, prompt: str = "boxed", extraction: str = "paper"):
        self.prompt, self.extraction = prompt, extraction

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        numeric = numeric_dataset(problem.dataset, problem.answer)
        pred = extract_answer(answer, self.prompt, numeric, self.extraction)
        correct = grade(pred, problem.answer, numeric)
        return RewardResult(0.0 if correct else -1.0, {"pred": pred, "correct": correct})
