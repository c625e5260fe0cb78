"""The confidence reward (``--model.reward confidence``): LatentSeek without a verifier.

LTPO's confidence measure (ltpo2025/LTPO ltpo.py:113-115) taken over the tokens of a decoded answer instead of
LTPO's placeholder slots: for each token x_t the solver generated, from the logits it was chosen from (float32,
softmax at temperature 1),

    C_t = -(1/k) sum_{j=1..k} log(p_(j) + 1e-10),    p_(1) >= ... >= p_(k) the k largest probabilities,

and C, the mean of C_t over the answer's tokens generated after the latent window (a LatentSeek continuation;
for the CoT, its tokens from the window's end on; for a Best-of-N sample, all of its tokens). C is read off the
logits the decoding computed anyway (`engine.Row.confidence_k`): no extra forward.

C lies between C_min = ln k (the k largest probabilities equal and holding all the mass) and C_max =
-((k - 1) ln 1e-10 + ln(1 + 1e-10)) / k (one token holds all of it; 20.72 for k = 10). The reward maps it
affinely into [-1, 0]:

    R = clip((C - C_min) / (C_max - C_min) - 1, -1, 0)

so R = -1 for a flat top-k and 0 for a one-hot distribution at every token, with no constant fitted to a model or
data set. tau keeps its meaning: R > tau (-0.2 by default) means C > 0.8 (C_max - C_min) + C_min (17.04 for k 10),
an answer whose every token leaves less than about 1e-7 to the other top-k tokens: one the model is nearly certain
of, token by token. How confident a model's answers are depends on the model: calibrate tau with
``benchmarks/confidence_tau.py`` (it prints the share of greedy answers above each tau).
"""

from __future__ import annotations

import math
from typing import Sequence

from lightning_latentseek.config import PositiveInt
from lightning_latentseek.engine.sampling import CONFIDENCE_EPS
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards.base import RewardResult


def confidence_bounds(k: int) -> tuple[float, float]:
    """(C_min, C_max) of the top-k confidence: ln k, and -((k - 1) ln 1e-10 + ln(1 + 1e-10)) / k."""
    return math.log(k), -((k - 1) * math.log(CONFIDENCE_EPS) + math.log1p(CONFIDENCE_EPS)) / k


def confidence_reward(confidence: float, k: int) -> float:
    """R = clip((C - C_min) / (C_max - C_min) - 1, -1, 0) (see the module docstring)."""
    low, high = confidence_bounds(k)
    return min(0.0, max(-1.0, (confidence - low) / (high - low) - 1.0))


class ConfidenceReward:
    """R from the solver's own token probabilities (see the module docstring); ``--model.reward_args {k: 5}`` sets k
    (at most the vocabulary's size). It judges decodings, not texts: the methods hand it the confidences of the
    tokens they decoded (`from_confidences`)."""

    def __init__(self, k: PositiveInt = 10):
        self.k = int(k)

    @property
    def confidence_k(self) -> int:
        """What every decoding this reward judges must record (`engine.Row.confidence_k`)."""
        return self.k

    def from_confidences(self, problem: Problem, confidences: Sequence[float] | None) -> RewardResult:
        """R of an answer from the confidences C_t of its scored tokens (-1 when there is none)."""
        if not confidences:
            return RewardResult(-1.0, {"confidence": None, "tokens_scored": 0})
        mean = math.fsum(confidences) / len(confidences)
        return RewardResult(confidence_reward(mean, self.k), {"confidence": mean, "tokens_scored": len(confidences)})

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        raise TypeError("the confidence reward reads the probabilities an answer was decoded with; it cannot judge "
                        "a text alone (methods call from_confidences)")


def token_reward_k(reward) -> int:
    """k of a reward that reads the solver's token confidences (`ConfidenceReward` or any reward with a
    ``confidence_k`` and ``from_confidences``); 0 for a reward of texts."""
    k = getattr(reward, "confidence_k", 0) if reward is not None else 0
    return int(k or 0) if hasattr(reward, "from_confidences") else 0
