"""A run's summary from its result records: the one function behind summary.json, summary.md and the
report's table (`report_stats.run_stats` and the report of an unfinished run call it too), so they agree.

Values are not rounded here: summary.json keeps them whole, and tables round them only to display them.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torchmetrics.aggregation import MeanMetric

from lightning_latentseek.report_stats import reward_calls, solved, wilson_interval


def _mean(values: Iterable) -> float | None:
    """Mean of the values that are not None (None if there are none), in float64 through torchmetrics
    (rank-local: summaries are computed from the merged records, never synced)."""
    metric = MeanMetric(sync_on_compute=False).set_dtype(torch.float64)
    count = 0
    for value in values:
        if value is not None:
            metric.update(float(value))
            count += 1
    return float(metric.compute()) if count else None


def accuracy_by_iteration(records: list[dict], max_iterations: int) -> list[float]:
    """Accuracy of the answer held after i iterations, i = 0..max_iterations (a problem that stopped early
    keeps its last answer); [] when no record has a trajectory. Skipped rows are left out."""
    tracked = [r for r in solved(records) if r.get("trajectory")]
    if not tracked:
        return []
    return [_mean(float(bool(r["trajectory"][min(i, len(r["trajectory"]) - 1)].get("correct"))) for r in tracked)
            for i in range(max_iterations + 1)]


def summarize(records: list[dict], config: dict, max_iterations: int) -> dict:
    """summary.json: counts, accuracy with its Wilson 95% interval, means per problem, stop reasons and the
    accuracy after each iteration, over the solved records (rows skipped as malformed, and problems that ended
    without a reward (`unfinished`: a resume solves them again), are only counted)."""
    rows = solved(records)
    n = len(rows)
    correct = sum(bool(r.get("correct")) for r in rows)
    stop_reasons: dict[str, int] = {}
    for r in rows:
        stop_reasons[r.get("stop_reason")] = stop_reasons.get(r.get("stop_reason"), 0) + 1
    return {
        "n": n,
        "skipped": sum(bool(r.get("skipped")) for r in records),
        "unfinished": len(records) - n - sum(bool(r.get("skipped")) for r in records),
        "method": config.get("method"),
        "cot_accuracy": _mean(float(bool(r["cot_correct"])) for r in rows if r.get("cot_correct") is not None),
        "accuracy": correct / n if n else None,
        "accuracy_ci95": list(wilson_interval(correct, n)) if n else None,
        "mean_iterations": _mean(r.get("iterations") for r in rows),
        "mean_reward_calls": _mean(reward_calls(r) for r in rows),
        "mean_solver_tokens": _mean(r.get("solver_tokens") for r in rows),
        "mean_verifier_tokens": _mean(r.get("verifier_tokens") for r in rows),
        "seconds_per_problem": _mean(r.get("seconds") for r in rows),
        "stop_reasons": stop_reasons,
        "accuracy_by_iteration": accuracy_by_iteration(rows, max_iterations),
        "config": config,
    }


def summary_markdown(summary: dict, title: str = "") -> str:
    """One table row per run, the same columns the report uses."""
    from lightning_latentseek.report import markdown_table

    return markdown_table([(title or summary.get("method") or "run", summary)])
