"""The equal-budget comparison (`report_budget`): Best-of-N and self-consistency at every N from one run's samples,
searches stopped at every budget, single-answer methods as one point; the table, the plot and the HTML section.
Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import json

import pytest

from lightning_latentseek import report
from lightning_latentseek.report_budget import BudgetPoint, accuracy_at, budget_curve, budget_table


def sample(reward, correct, tokens, verifier=0, pred=None):
    return {"reward": reward, "correct": correct, "tokens": tokens, "verifier_tokens": verifier, "pred": pred}


BON = [  # Best-of-N, 3 samples each
    {"id": "a", "method": "bon", "correct": True,
     "samples": [sample(-1.0, False, 10, 1), sample(0.0, True, 20, 2), sample(0.0, True, 30, 3)]},
    {"id": "b", "method": "bon", "correct": True,
     "samples": [sample(0.0, True, 5), sample(-1.0, False, 5), sample(0.0, False, 5)]},
]
SC = [  # self-consistency, 3 samples each
    {"id": "a", "method": "sc", "samples": [sample(None, False, 4, pred="3"), sample(None, True, 4, pred="4"),
                                            sample(None, True, 4, pred="4.0")]},
    {"id": "b", "method": "sc", "samples": [sample(None, True, 6, pred="7"), sample(None, False, 6, pred="8"),
                                            sample(None, False, 6, pred="9")]},
]


def step(correct, reward, calls=1, solver=0, verifier=0, samples=None):
    entry = {"correct": correct, "reward": reward, "reward_calls": calls, "solver_tokens": solver,
             "verifier_tokens": verifier}
    if samples:
        entry["samples"] = samples
    return entry


SEARCH = [  # p1 fixed at iteration 2 (R clears tau), p2's CoT cleared tau
    {"id": "p1", "method": "latentseek", "correct": True,
     "trajectory": [step(False, -1.0, solver=10), step(False, -1.0, solver=5, verifier=2), step(True, 0.0, solver=6)]},
    {"id": "p2", "method": "latentseek", "correct": True, "trajectory": [step(True, 0.0, solver=8)]},
]


def test_best_of_n_at_every_n_from_prefixes_of_its_samples():
    # N=1: a picks sample 0 (wrong), b sample 0 (right): 0.5; tokens (10+1 + 5) / 2 = 8
    # N=2: a picks sample 1 (0 > -1, right), b sample 0: 1.0; tokens (11+22 + 10) / 2 = 21.5
    # N=3: a's tie at 0 keeps the earlier sample 1 (right), b's tie keeps sample 0: 1.0; tokens (66 + 15) / 2 = 40.5
    assert budget_curve(BON) == [BudgetPoint(1, 8.0, 0.5), BudgetPoint(2, 21.5, 1.0), BudgetPoint(3, 40.5, 1.0)]


def test_self_consistency_at_every_n_votes_among_the_first_n():
    # N=1: a "3" wrong, b "7" right: 0.5. N=2: a "3" and "4" tie, the first wins (wrong): 0.5.
    # N=3: a "4" and "4.0" are one number (right), b all different, the first wins (right): 1.0
    assert budget_curve(SC) == [BudgetPoint(1, 5.0, 0.5), BudgetPoint(2, 10.0, 0.5), BudgetPoint(3, 15.0, 1.0)]


def test_a_search_stopped_at_each_budget_returns_the_answer_it_held_there():
    # b=1: p1 holds its CoT (wrong), p2 its CoT (right): 0.5; tokens (10 + 8) / 2 = 9
    # b=2: p1 after iteration 1 (wrong): 0.5; tokens (15+2 + 8) / 2 = 12.5. b=3: p1 right: 1.0; (23 + 8) / 2 = 15.5
    assert budget_curve(SEARCH) == [BudgetPoint(1, 9.0, 0.5), BudgetPoint(2, 12.5, 0.5), BudgetPoint(3, 15.5, 1.0)]


def test_a_search_with_best_selection_holds_the_best_answer_so_far():
    record = {"id": "p", "method": "latentseek", "correct": False, "trajectory": [
        step(False, -0.5, solver=4), step(True, -0.75, solver=4), step(False, -0.25, solver=4)]}
    # last: wrong, right, wrong; best: the CoT (-0.5) twice, then iteration 2 (-0.25): wrong throughout
    assert [p.accuracy for p in budget_curve([record], "last")] == [0.0, 1.0, 0.0]
    assert [p.accuracy for p in budget_curve([record], "best")] == [0.0, 0.0, 0.0]


def test_samples_per_step_count_every_answer_judged():
    samples = [sample(-1.0, False, 3), sample(0.0, True, 3)]
    record = {"id": "p", "method": "latentseek", "correct": True, "trajectory": [
        step(False, -1.0, solver=5), step(True, 0.0, calls=2, solver=6, samples=samples)]}
    # budgets 1 and 2: only the CoT fits (1, then 1 + 2 = 3 > 2); budget 3: iteration 1 (right); best selection
    # finds its right sample too
    assert budget_curve([record]) == [BudgetPoint(1, 5.0, 0.0), BudgetPoint(2, 5.0, 0.0), BudgetPoint(3, 11.0, 1.0)]
    assert [p.accuracy for p in budget_curve([record], "best")] == [0.0, 0.0, 1.0]


def test_one_answer_methods_are_one_point():
    cot = [{"id": "a", "method": "cot", "correct": True, "solver_tokens": 10, "trajectory": [], "samples": []},
           {"id": "b", "method": "cot", "correct": False, "solver_tokens": 20, "trajectory": [], "samples": []},
           {"id": "c", "skipped": True}]
    ltpo = [{"id": "a", "method": "ltpo", "correct": True, "solver_tokens": 30, "reward_calls": 0, "steps": [{}]}]
    assert budget_curve(cot) == [BudgetPoint(1, 15.0, 0.5)]
    assert budget_curve(ltpo) == [BudgetPoint(1, 30.0, 1.0)]


def test_records_without_token_counts_give_no_token_axis():
    record = {"id": "p", "method": "latentseek", "correct": True,
              "trajectory": [{"correct": False, "reward": -1.0}, {"correct": True, "reward": 0.0}]}
    assert budget_curve([record]) == [BudgetPoint(1, None, 0.0), BudgetPoint(2, None, 1.0)]


def test_budget_table_reads_each_curve_at_each_budget():
    curves = [("BoN", budget_curve(BON)), ("LatentSeek", budget_curve(SEARCH)), ("CoT", [BudgetPoint(1, 9.0, 0.25)]),
              ("late", [BudgetPoint(2, 1.0, 0.75)])]
    header, rows = budget_table(curves)
    assert header == ["run", "b=1", "b=2", "b=3"]
    assert rows == [["BoN", "0.500", "1.000", "1.000"], ["LatentSeek", "0.500", "0.500", "1.000"],
                    ["CoT", "0.250", "0.250", "0.250"], ["late", "-", "0.750", "0.750"]]
    assert accuracy_at(budget_curve(BON), 10) == 1.0  # beyond N_max: all N_max samples


def test_the_report_writes_the_equal_budget_plot_table_and_html(tmp_path):
    runs = []
    for name, records, config in (("bon", BON, {"method": "bon", "model": {"reward": "psrm", "n_samples": 3}}),
                                  ("sc", SC, {"method": "sc", "model": {}}),
                                  ("seek", SEARCH, {"method": "latentseek", "model": {"reward": "psrm"}})):
        directory = tmp_path / name
        directory.mkdir()
        full = [{"question": "Q", "ground_truth": "7", "text": "t", "pred": "7", "seconds": 1.0, **r} for r in records]
        (directory / "summary.json").write_text(json.dumps({"method": config["method"], "config": config}))
        (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in full))
        runs.append(f"{name.upper()}={directory}")
    out = tmp_path / "report"
    report.main(runs + ["--output", str(out)])
    assert (out / "equal_budget.png").stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "| run | b=1 | b=2 | b=3 |" in markdown
    assert "| BON | 0.500 | 1.000 | 1.000 |" in markdown and "| SC | 0.500 | 0.500 | 1.000 |" in markdown
    assert "| SEEK | 0.500 | 0.500 | 1.000 |" in markdown
    html = (out / "report.html").read_text()
    assert "<h2>Equal budget</h2>" in html and html.count("<svg") == 2
    assert "answers judged per problem" in html and "tokens generated per problem" in html
    assert "<td>BON</td><td>0.500</td><td>1.000</td><td>1.000</td>" in html


@pytest.mark.parametrize("records", [[], [{"id": "x", "skipped": True}]])
def test_a_run_without_solved_records_has_no_curve(records):
    assert budget_curve(records) == []


def test_a_run_without_token_counts_is_in_the_legend():
    """Records written before per-iteration costs give a curve on the answers panel only; the legend still names
    the run (it is drawn from the answers panel)."""
    from lightning_latentseek.report import plot_equal_budget
    from lightning_latentseek.report_budget import BudgetPoint

    curves = [("with tokens", [BudgetPoint(1, 100.0, 0.4), BudgetPoint(2, 250.0, 0.5)]),
              ("without tokens", [BudgetPoint(1, None, 0.3), BudgetPoint(2, None, 0.35)])]
    svg = plot_equal_budget(curves, fmt="svg").decode()
    assert svg.count(">with tokens<") == 1 and svg.count(">without tokens<") == 1
