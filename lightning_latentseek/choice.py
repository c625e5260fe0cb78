"""How a method picks one answer among several: Best-of-N by reward, self-consistency by vote. Plain functions
without torch: the methods call them, and the report calls them again on prefixes of a run's samples (Best-of-N
and self-consistency at every N up to the run's)."""

from __future__ import annotations

from collections import Counter

from lightning_latentseek.grading import normalize_number


def best_of_n_choice(rewards: list[float]) -> int:
    """Index of the highest reward (the earliest sample among ties)."""
    return max(range(len(rewards)), key=lambda i: (rewards[i], -i))


def majority_vote(preds: list[str | None]) -> int:
    """Index of the first sample whose answer is the most frequent one (no-answer samples never win
    unless every sample has no answer). Answers are compared after numeric normalisation."""
    keys = [vote_key(p) for p in preds]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return 0
    top = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == top)


def vote_key(pred: str | None) -> str | None:
    """What a vote compares: the number an answer denotes, else its text without whitespace; None for no answer."""
    if pred is None or not pred.strip():
        return None
    number = normalize_number(pred)
    return repr(float(number)) if number is not None else "".join(pred.split())
