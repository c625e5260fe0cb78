"""Symbolic checks are bounded in time, also on the problem threads where math-verify's own timeouts are off."""

from __future__ import annotations

import threading
import time

import pytest

from lightning_latentseek import symbolic
from lightning_latentseek.grading import Grader, grade

# math-verify on this answer computes (10^7)!: minutes, in a Python loop (before the bound it ran unbounded on a
# problem thread).
PATHOLOGICAL = r"(10^{7})!"
BOUND = 2.0  # seconds (the default `symbolic.TIMEOUT` is 10)
SLACK = 8.0  # a loaded 2-core machine: killing the worker, thread switches


@pytest.fixture
def short_bound(monkeypatch):
    monkeypatch.setattr(symbolic, "TIMEOUT", BOUND)
    assert grade(r"\frac{1}{3}", "0.5", numeric=False) is False  # a worker is up: its start is not in the bound


@pytest.mark.parametrize("judge", [
    lambda: grade(PATHOLOGICAL, "1", numeric=False),  # --model.grading numeric: math-verify
    lambda: Grader("boxed", grading="paper").judge(rf"\boxed{{{PATHOLOGICAL}}}", "math500", "1")[1],  # the original's
])
def test_a_pathological_answer_on_a_problem_thread_ends_within_the_bound_and_is_wrong(short_bound, judge):
    results = []
    worker = threading.Thread(target=lambda: results.append(judge()), daemon=True)
    started = time.perf_counter()
    worker.start()
    worker.join(timeout=BOUND + SLACK)
    assert not worker.is_alive(), "grading a pathological answer did not end within the bound"
    assert results == [False]
    assert time.perf_counter() - started < BOUND + SLACK
    # the worker that ran it was killed; the next check gets a fresh one
    assert grade(r"\dfrac{2}{4}", "0.5", numeric=False) is True


def test_checks_run_in_parallel_threads_each_on_its_own_worker():
    results: dict[int, bool] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, grade(rf"\frac{{{i}}}{{{2 * i}}}", "0.5",
                                                                                numeric=False)))
               for i in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {1: True, 2: True, 3: True}
