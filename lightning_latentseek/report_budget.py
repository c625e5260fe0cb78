"""The equal-budget comparison: each run's accuracy at each budget, in answers judged and in tokens generated.

Every run gives a curve of points (answers, tokens, accuracy), computed from its records (plain dicts, no torch):

* Best-of-N and self-consistency: one point per N = 1..N_max, from the run's own samples: the choice among the
  first N samples of each problem (Best-of-N: the highest reward, the earliest among ties; self-consistency: the
  majority vote), so one run of N_max samples gives the whole curve;
* search runs (records with a trajectory: latentseek, random, gradcuit): one point per budget b = 1, 2, ... answers
  judged per problem: each problem stopped at its last iteration whose answers judged so far (the CoT's included)
  are at most b, returning the answer it would have returned there (the iteration's answer, or with
  ``answer_selection best`` the best-rewarded one so far). A problem that stopped before b keeps its final answer;
* a method that produces one answer (CoT, LTPO): one point.

``answers``: answers per problem that a reward judged (LatentSeek, random, Best-of-N) or, for a method without a
reward, that it produced and chose from (self-consistency's N votes; 1 for CoT and LTPO); for a search it is the
budget b (a problem may spend less), for Best-of-N and self-consistency N. ``tokens``: the mean per problem of the
tokens generated within that budget, by the solver and by the reward's verifier (LTPO's scoring forwards, which
generate nothing, are not counted: its records give them as ``scoring_positions``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lightning_latentseek.choice import best_of_n_choice, majority_vote
from lightning_latentseek.report_stats import solved

BUDGETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)  # the answer budgets of the budget table


@dataclass(frozen=True)
class BudgetPoint:
    """A run's accuracy when every problem spends at most `answers` answers; `tokens` is the mean per problem of
    the tokens generated within that budget (None when the records do not say)."""

    answers: int
    tokens: float | None
    accuracy: float


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def sampled_curve(records: list[dict], vote: bool) -> list[BudgetPoint]:
    """Best-of-N (`vote` False) or self-consistency (`vote` True) at N = 1..N_max, from prefixes of the samples."""
    n_max = max(len(r.get("samples") or []) for r in records)
    points = []
    for n in range(1, n_max + 1):
        correct, tokens = [], []
        for record in records:
            samples = (record.get("samples") or [])[:n]
            if not samples:
                correct.append(0.0)
                tokens.append(0.0)
                continue
            pick = (majority_vote([s.get("pred") for s in samples]) if vote
                    else best_of_n_choice([float(s["reward"]) for s in samples]))
            correct.append(float(bool(samples[pick].get("correct"))))
            tokens.append(float(sum((s.get("tokens") or 0) + (s.get("verifier_tokens") or 0) for s in samples)))
        points.append(BudgetPoint(n, _mean(tokens), _mean(correct)))
    return points


def _held(trajectory: list[dict], best: bool) -> list[bool]:
    """Whether the answer a search held after each iteration is correct: the iteration's answer, or with `best`
    the highest-rewarded answer so far (every sample of every iteration; the earliest among ties)."""
    held, top, top_correct = [], None, False
    for entry in trajectory:
        for sample in entry.get("samples") or [entry]:
            reward = sample.get("reward")
            if reward is not None and (top is None or float(reward) > top):
                top, top_correct = float(reward), bool(sample.get("correct"))
        held.append(top_correct if best else bool(entry.get("correct")))
    return held


def search_curve(records: list[dict], answer_selection: str = "last") -> list[BudgetPoint]:
    """LatentSeek-style runs at budgets b = 1..(most answers any problem judged) (see the module docstring)."""
    per_record = []
    known_tokens = True
    for record in records:
        calls, tokens, spent, cost = [], [], 0, 0
        for entry in record["trajectory"]:
            spent += entry.get("reward_calls") or len(entry.get("samples") or []) or 1
            if entry.get("solver_tokens") is None:
                known_tokens = False
            cost += (entry.get("solver_tokens") or 0) + (entry.get("verifier_tokens") or 0)
            calls.append(spent)
            tokens.append(cost)
        per_record.append((calls, tokens, _held(record["trajectory"], answer_selection == "best")))
    points = []
    for budget in range(1, max(calls[-1] for calls, _, _ in per_record) + 1):
        correct, spent_tokens = [], []
        for calls, tokens, held in per_record:
            i = max([j for j, c in enumerate(calls) if c <= budget] or [0])
            correct.append(float(held[i]))
            spent_tokens.append(float(tokens[i]))
        points.append(BudgetPoint(budget, _mean(spent_tokens) if known_tokens else None, _mean(correct)))
    return points


def single_point(records: list[dict]) -> list[BudgetPoint]:
    """A method that returns its one answer: CoT, LTPO (or a run whose records say nothing finer)."""
    tokens = [float((r.get("solver_tokens") or 0) + (r.get("verifier_tokens") or 0)) for r in records]
    answers = max(1, round(_mean([float(r.get("reward_calls") or 0) for r in records])))
    return [BudgetPoint(answers, _mean(tokens), _mean([float(bool(r.get("correct"))) for r in records]))]


def budget_curve(records: list[dict], answer_selection: str = "last") -> list[BudgetPoint]:
    """A run's equal-budget curve from its records (see the module docstring); [] for a run without records."""
    rows = solved(records)
    if not rows:
        return []
    method = rows[0].get("method")
    if method in ("bon", "sc") and all(r.get("samples") for r in rows):
        return sampled_curve(rows, vote=method == "sc")
    if all(r.get("trajectory") for r in rows):
        return search_curve(rows, answer_selection)
    return single_point(rows)


def accuracy_at(points: list[BudgetPoint], budget: int) -> float | None:
    """The accuracy of a curve at an answer budget: its last point within it (None below its first point)."""
    within = [p for p in points if p.answers <= budget]
    return within[-1].accuracy if within else None


def budget_table(curves: list[tuple[str, list[BudgetPoint]]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the budget table: each run's accuracy at the budgets of `BUDGETS` up to the largest any
    run reaches."""
    largest = max([p.answers for _, points in curves for p in points] + [1])
    budgets = [b for b in BUDGETS if b <= largest]
    if largest not in budgets:
        budgets.append(largest)
    header = ["run"] + [f"b={b}" for b in budgets]
    rows = []
    for label, points in curves:
        cells = [accuracy_at(points, b) for b in budgets]
        rows.append([label] + ["-" if c is None else f"{c:.3f}" for c in cells])
    return header, rows
