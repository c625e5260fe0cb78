"""Numbers the report shows about a run, computed from its result records (results.jsonl lines).

Pure functions over plain dicts: no torch, so the report stays quick to start.
"""

from __future__ import annotations

import math
from typing import Iterable

from lightning_latentseek.config import clears_tau

# Methods whose records count judged answers as reward calls (see `reward_calls`).
SEARCH_METHODS = ("latentseek", "random", "gradcuit", "gradcuit_random")


def solved(records: Iterable[dict]) -> list[dict]:
    """The records of problems that were solved (rows skipped as malformed, and problems that ended without a
    reward, `records.UNFINISHED`, are left out)."""
    from lightning_latentseek.records import is_finished

    return [r for r in records if is_finished(r)]


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


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


# The run table's numbers (`report.COLUMNS`), which `run_stats` completes from the records.
TABLE_KEYS = ("n", "accuracy", "accuracy_ci95", "cot_accuracy", "mean_iterations", "mean_reward_calls",
              "mean_solver_tokens", "mean_verifier_tokens", "seconds_per_problem")


def run_stats(summary: dict, records: list[dict] | None) -> dict:
    """The summary's values, with the table's numbers it lacks (None or missing: a summary.json of an older
    version) computed from the records by the same function that writes summary.json (`summary.summarize`)."""
    stats = dict(summary)
    if records and any(stats.get(key) is None for key in TABLE_KEYS):
        from lightning_latentseek.summary import summarize  # torch: only when a summary is incomplete

        config = summary.get("config") or {}
        computed = summarize(records, config, int(config.get("max_steps") or 0))
        for key in TABLE_KEYS:
            if stats.get(key) is None:
                stats[key] = computed[key]
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
