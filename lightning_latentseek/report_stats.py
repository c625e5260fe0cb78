"""Numbers the report shows about a run, computed from its result records (results.jsonl lines).

Pure functions over plain dicts: no torch, so the report stays quick to start.
"""

from __future__ import annotations

import math
from typing import Iterable

from lightning_latentseek.config import clears_tau

# Methods whose records count judged answers as reward calls (see `reward_calls`).
SEARCH_METHODS = ("latentseek", "random")


def solved(records: Iterable[dict]) -> list[dict]:
    """The records of problems that were solved (rows skipped as malformed are left out)."""
    return [r for r in records if not r.get("skipped")]


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _mean(values: Iterable) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def reward_calls(record: dict) -> int:
    """Answers judged by the reward for one problem.

    The record's ``reward_calls`` when it has one; otherwise LatentSeek (and random search) count every
    trajectory entry (the CoT and one per iteration, or one per sample for an iteration with ``samples``;
    ``len(rewards)`` when the record has no trajectory), Best-of-N counts its samples, CoT and
    self-consistency judge nothing (0).
    """
    if record.get("reward_calls") is not None:
        return int(record["reward_calls"])
    method = record.get("method")
    if method in ("cot", "sc"):
        return 0
    if method == "bon":
        return len(record.get("samples") or [])
    trajectory = record.get("trajectory") or []
    if trajectory:
        return sum(len(entry["samples"]) if entry.get("samples") else 1 for entry in trajectory)
    return len(record.get("rewards") or [])


def records_stats(records: list[dict]) -> dict:
    """The table's columns computed from the records alone (skipped rows left out)."""
    rows = solved(records)
    n = len(rows)
    correct = sum(bool(r.get("correct")) for r in rows)
    low, high = wilson_interval(correct, n)
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": [low, high] if n else None,
        "cot_accuracy": _mean(float(bool(r["cot_correct"])) for r in rows if r.get("cot_correct") is not None),
        "mean_iterations": _mean(r.get("iterations") for r in rows),
        "mean_reward_calls": _mean(reward_calls(r) for r in rows),
        "mean_solver_tokens": _mean(r.get("solver_tokens") for r in rows),
        "mean_verifier_tokens": _mean(r.get("verifier_tokens") for r in rows),
        "seconds_per_problem": _mean(r.get("seconds") for r in rows),
    }


def accuracy_by_iteration(records: list[dict], max_iterations: int) -> list[float]:
    """Accuracy of the answer held after i iterations, i = 0..max_iterations (a problem that stopped early
    keeps its last answer); [] when no record has a trajectory."""
    tracked = [r for r in solved(records) if r.get("trajectory")]
    if not tracked:
        return []
    return [sum(bool(r["trajectory"][min(i, len(r["trajectory"]) - 1)].get("correct")) for r in tracked) / len(tracked)
            for i in range(max_iterations + 1)]


def run_stats(summary: dict, records: list[dict] | None) -> dict:
    """The summary's values, with what it lacks (None or missing) computed from the records."""
    stats = dict(summary)
    if records:
        for key, value in records_stats(records).items():
            if stats.get(key) is None:
                stats[key] = value
    return stats


# ------------------------------------------------------------------------------------- CoT -> final
def cot_vs_final_line(records: list[dict]) -> str | None:
    """One line: CoT accuracy -> final accuracy, and how many problems the search fixed and broke
    (None when no record has a graded CoT, e.g. Best-of-N)."""
    rows = [r for r in solved(records) if r.get("cot_correct") is not None]
    if not rows:
        return None
    counts = {kind: sum(change(r) == kind for r in rows) for kind in ("fixed", "broken")}
    cot = sum(bool(r["cot_correct"]) for r in rows)
    final = sum(bool(r.get("correct")) for r in rows)
    return (f"CoT {cot}/{len(rows)} ({cot / len(rows):.0%}) -> {rows[0].get('method', 'final')} {final}/{len(rows)} "
            f"({final / len(rows):.0%}): fixed {counts['fixed']}, broke {counts['broken']}")


def change(record: dict) -> str:
    """How the final answer compares with the CoT: ``fixed`` (CoT wrong, final right), ``broken`` (CoT right,
    final wrong), ``unchanged`` (both right or both wrong), ``nocot`` (no graded CoT, e.g. Best-of-N)."""
    cot, final = record.get("cot_correct"), bool(record.get("correct"))
    if cot is None:
        return "nocot"
    if not cot and final:
        return "fixed"
    if cot and not final:
        return "broken"
    return "unchanged"


# ------------------------------------------------------------------------------------- self-reward
def judged_answers(record: dict) -> list[dict]:
    """Every answer of a record that a reward judged: each trajectory entry and each of its ``samples``,
    and the record's own ``samples`` (Best-of-N)."""
    found = []
    for entry in record.get("trajectory") or []:
        found.append(entry)
        found.extend(entry.get("samples") or [])
    found.extend(record.get("samples") or [])
    return found


def _verdicts(answer: dict) -> dict | None:
    verdicts = (answer.get("reward_details") or {}).get("verdicts")
    if isinstance(verdicts, list):
        return {f"check {i + 1}": v for i, v in enumerate(verdicts)}
    return verdicts if isinstance(verdicts, dict) and verdicts else None


def self_reward_accuracy(records: list[dict], tau: float) -> dict:
    """How often the self-reward agrees with the ground truth (the paper's Table 6), over every judged
    answer (`judged_answers`) that has ``reward_details.verdicts``, a reward and a known ``correct``:

    - ``agreement``: fraction where (reward > tau) == correct;
    - ``checks``: per check, the fraction where (verdict is True) == correct (a None verdict counts as False);
    - ``precision`` / ``recall`` of "reward > tau" as a detector of correct answers
      (None when nothing was above tau / nothing was correct);
    - ``n`` judged answers, ``n_correct`` of them correct, ``n_above_tau`` with reward > tau,
      ``n_true_positive`` both.

    Skipped rows are left out. Fractions are None when ``n`` is 0.
    """
    n = agree = n_correct = n_above = n_both = 0
    check_agree: dict[str, int] = {}
    check_n: dict[str, int] = {}
    for record in solved(records):
        for answer in judged_answers(record):
            verdicts = _verdicts(answer)
            if verdicts is None or answer.get("correct") is None or answer.get("reward") is None:
                continue
            correct = bool(answer["correct"])
            above = clears_tau(answer["reward"], tau)
            n += 1
            agree += above == correct
            n_correct += correct
            n_above += above
            n_both += above and correct
            for name, verdict in verdicts.items():
                check_n[name] = check_n.get(name, 0) + 1
                check_agree[name] = check_agree.get(name, 0) + ((verdict is True) == correct)

    def fraction(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "n": n, "n_correct": n_correct, "n_above_tau": n_above, "n_true_positive": n_both,
        "agreement": fraction(agree, n),
        "precision": fraction(n_both, n_above),
        "recall": fraction(n_both, n_correct),
        "checks": {name: fraction(check_agree[name], check_n[name]) for name in check_n},
    }
