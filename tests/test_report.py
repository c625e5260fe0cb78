"""The report: run table (md), self-reward accuracy, report.html (self-contained, escaped, filters), errors."""

from __future__ import annotations

import json
import re

from pathlib import Path

import pytest

from lightning_latentseek import report
from lightning_latentseek.report_html import problem_html
from lightning_latentseek.report_runs import split_run_argument
from lightning_latentseek.report_stats import change, reward_calls, self_reward_accuracy, wilson_interval

CHECKS = ("calculation", "logic", "completeness", "answer")


def verdicts(*values):
    return {"verdicts": dict(zip(CHECKS, values)), "verdict_failures": sum(v is None for v in values)}


def entry(iteration, text, reward, correct, details, **extra):
    return {"iteration": iteration, "text": text, "pred": "7" if correct else "3", "correct": correct,
            "reward": reward, "reward_details": details, "tokens": 12, "hit_cap": False, "reused": False, **extra}


ALL_TRUE = verdicts(True, True, True, True)

# p1: CoT wrong -> final right (fixed); new record format (latent_text, loss, step_norm)
P1 = {"id": "p1", "method": "latentseek", "question": "What is 3 + 4? Use <b>bold</b> & $\\frac{1}{2}$",
      "ground_truth": "7", "cot_text": "CoT of p1: 3 + 4 = 3<|im_end|>", "cot_pred": "3", "cot_correct": False,
      "text": "Iteration one of p1 <script>alert(1)</script> so 7", "pred": "7", "correct": True,
      "rewards": [-0.5, 0.0], "iterations": 1, "stop_reason": "reward_above_tau", "seconds": 2.0,
      "solver_tokens": 100, "verifier_tokens": 40,
      "trajectory": [
          entry(0, "CoT of p1: 3 + 4 = 3<|im_end|>", -0.5, False, verdicts(False, True, None, False)),
          entry(1, "Iteration one of p1 <script>alert(1)</script> so 7", 0.0, True, ALL_TRUE,
                latent_text="LATENT <tok> of p1", loss=1.25, step_norm=0.5),
      ], "samples": []}
# p2: CoT right -> final wrong (broken); an iteration with samples; an explicit reward_calls
P2 = {"id": "p<2>", "method": "latentseek", "question": "Q2", "ground_truth": "7",
      "cot_text": "CoT of p2 gives 7", "cot_pred": "7", "cot_correct": True,
      "text": "Iteration one of p2 gives 3", "pred": "3", "correct": False,
      "rewards": [-1 / 3, 0.0], "iterations": 1, "stop_reason": "reward_above_tau", "seconds": 4.0,
      "solver_tokens": 300, "verifier_tokens": 80, "reward_calls": 7,
      "trajectory": [
          entry(0, "CoT of p2 gives 7", -1 / 3, True, verdicts(True, False, True, False)),
          entry(1, "Iteration one of p2 gives 3", 0.0, False, ALL_TRUE, samples=[
              entry(1, "Sample zero of p2 gives 3", -0.5, False, verdicts(False, True, False, True)),
              entry(1, "Sample one of p2 gives 3", 0.0, False, ALL_TRUE),
          ]),
      ], "samples": []}
# p4: wrong before and after (unchanged); today's record format
P4 = {"id": "p4", "method": "latentseek", "question": "Q4", "ground_truth": "7",
      "cot_text": "CoT of p4 gives 3", "cot_pred": "3", "cot_correct": False,
      "text": "Iteration two of p4 gives 3", "pred": "3", "correct": False,
      "rewards": [-1.0, -1.0, -1 / 6], "iterations": 2, "stop_reason": "reward_above_tau", "seconds": 3.0,
      "solver_tokens": 200, "verifier_tokens": 60,
      "trajectory": [
          entry(0, "CoT of p4 gives 3", -1.0, False, verdicts(False, False, False, False)),
          entry(1, "CoT of p4 gives 3", -1.0, False, verdicts(False, False, False, None), reused=True),
          entry(2, "Iteration two of p4 gives 3", -1 / 6, False, verdicts(True, True, True, False)),
      ], "samples": []}
SKIPPED = {"id": "line 3", "skipped": True, "error": "jsonl line 3: no field 'question'"}
SEEK_RECORDS = [P1, P2, P4, SKIPPED]
SEEK_SUMMARY = {"n": 3, "skipped": 1, "method": "latentseek", "accuracy_by_iteration": [0.333, 0.667, 0.333],
                "config": {"method": "latentseek", "model": {"reward": "self", "tau": -0.2}, "data": {}}}


def bon_record(pid, correct):
    samples = [{"text": f"sample {k} of {pid}", "pred": "7", "correct": correct, "reward": 0.0 if correct else -1.0,
                "reward_details": {"pred": "7", "correct": correct}, "tokens": 50} for k in range(4)]
    return {"id": pid, "method": "bon", "question": "Q", "ground_truth": "7", "cot_text": None, "cot_pred": None,
            "cot_correct": None, "text": samples[0]["text"], "pred": "7", "correct": correct,
            "rewards": [s["reward"] for s in samples], "iterations": 0, "stop_reason": "done", "seconds": 1.0,
            "solver_tokens": 200, "verifier_tokens": 0, "trajectory": [], "samples": samples}


BON_SUMMARY = {"n": 2, "skipped": 0, "method": "bon", "accuracy": 0.5, "accuracy_ci95": [0.1, 0.9],
               "cot_accuracy": None, "mean_iterations": 0.0, "mean_solver_tokens": 400.0,
               "mean_verifier_tokens": 0.0, "seconds_per_problem": 9.5, "accuracy_by_iteration": [],
               "config": {"method": "bon", "model": {"reward": "psrm", "tau": -0.2, "n_samples": 4}}}
COT_RECORD = {"id": "c1", "method": "cot", "question": "Q", "ground_truth": "7", "cot_text": "seven: 7",
              "cot_pred": "7", "cot_correct": True, "text": "seven: 7", "pred": "7", "correct": True, "rewards": [],
              "iterations": 0, "stop_reason": "done", "seconds": 0.5, "solver_tokens": 9, "verifier_tokens": 0,
              "trajectory": [], "samples": []}
COT_SUMMARY = {"method": "cot", "config": {"method": "cot", "model": {"reward": "self", "tau": -0.2}}}


def write_run(directory, summary, records):
    directory.mkdir()
    (directory / "summary.json").write_text(json.dumps(summary))
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("runs")
    seek = write_run(tmp_path / "seek", SEEK_SUMMARY, SEEK_RECORDS)
    bon = write_run(tmp_path / "bon", BON_SUMMARY, [bon_record("b1", True), bon_record("b2", False)])
    cot = write_run(tmp_path / "cot", COT_SUMMARY, [COT_RECORD])
    out = tmp_path / "out"
    report.main([str(seek), str(bon), f"greedy={cot}", "--output", str(out)])
    return out


# ------------------------------------------------------------------------------------ numbers
def test_self_reward_accuracy_counts_every_judged_answer():
    acc = self_reward_accuracy(SEEK_RECORDS, tau=-0.2)
    # 9 judged answers: p1 CoT + 1 iteration, p2 CoT + 1 iteration + its 2 samples, p4 CoT + 2 iterations
    assert acc["n"] == 9 and acc["n_correct"] == 2 and acc["n_above_tau"] == 4 and acc["n_true_positive"] == 1
    assert acc["agreement"] == pytest.approx(0.5556, abs=1e-4)  # 5 of 9
    assert acc["precision"] == 0.25 and acc["recall"] == 0.5
    assert acc["checks"] == pytest.approx({"calculation": 0.6667, "logic": 0.3333, "completeness": 0.6667,
                                           "answer": 0.5556}, abs=1e-4)


def test_self_reward_accuracy_leaves_out_answers_without_verdicts_or_grade():
    records = [
        {"id": "a", "trajectory": [
            entry(0, "x", 0.0, True, {"pred": "7", "correct": True}),  # PSRM details: no verdicts
            entry(1, "y", 0.0, None, ALL_TRUE),  # not graded
            entry(2, "z", -0.5, True, verdicts(None, True, False, True)),
        ]},
        {"id": "line 9", "skipped": True, "trajectory": [entry(0, "w", 0.0, True, ALL_TRUE)]},
        bon_record("b", True) | {"samples": [{"text": "s", "reward": 0.0, "correct": False,
                                              "reward_details": verdicts(True, True, True, True)}]},
    ]
    acc = self_reward_accuracy(records, tau=-0.2)
    assert acc["n"] == 2 and acc["agreement"] == 0.0
    assert acc["precision"] == 0.0 and acc["recall"] == 0.0
    assert acc["checks"] == {"calculation": 0.0, "logic": 0.5, "completeness": 0.0, "answer": 0.5}
    empty = self_reward_accuracy([], tau=-0.2)
    assert empty["n"] == 0 and empty["agreement"] is None and empty["precision"] is None and empty["checks"] == {}


def test_reward_calls():
    assert reward_calls(P1) == 2  # CoT + one iteration
    assert reward_calls(P2) == 7  # the record's own count
    assert reward_calls({**P2, "reward_calls": None}) == 3  # CoT + the iteration's two samples
    assert reward_calls(P4) == 3
    assert reward_calls({"method": "latentseek", "rewards": [-1.0, -0.5, 0.0, 0.0]}) == 4  # no trajectory
    assert reward_calls(bon_record("b", True)) == 4
    assert reward_calls({"method": "sc", "samples": [{}, {}, {}]}) == 0
    assert reward_calls(COT_RECORD) == 0


def test_change_and_wilson():
    assert [change(r) for r in (P1, P2, P4, bon_record("b", True))] == ["fixed", "broken", "unchanged", "nocot"]
    low, high = wilson_interval(1, 3)
    assert round(low, 4) == 0.0615 and round(high, 4) == 0.7923


def test_split_run_argument(tmp_path):
    assert split_run_argument("greedy=runs/cot") == ("greedy", Path("runs/cot"))
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert split_run_argument(str(odd)) == (None, odd)  # an existing directory is never split


# ------------------------------------------------------------------------------------ report.md
def test_markdown_table_columns_and_values(written):
    lines = (written / "report.md").read_text().splitlines()
    assert lines[0] == ("| run | n | accuracy | 95% CI | CoT acc. | mean iters | reward calls | solver tok. "
                        "| verifier tok. | s / problem |")
    # everything but the method/config computed from the records (the skipped row left out)
    assert lines[2] == "| latentseek + self (seek) | 3 | 0.333 | [0.061, 0.792] | 0.333 | 1.333 | 4.00 | 200.0 | 60.0 | 3.00 |"
    # summary.json values win; reward calls (absent from it) from the records
    assert lines[3] == "| BoN (oracle PSRM = pass@4) (bon) | 2 | 0.500 | [0.100, 0.900] | - | 0.000 | 4.00 | 400.0 | 0.0 | 9.50 |"
    assert lines[4] == "| greedy | 1 | 1.000 | [0.207, 1.000] | 1.000 | 0.000 | 0.00 | 9.0 | 0.0 | 0.50 |"
    # the equal-budget table (test_budget.py): seek stopped at 1, 2, 3 answers judged (p2's iteration 1 judged two
    # samples), BoN at N = 1..4, the CoT's one answer at every budget
    assert lines[6].startswith("Accuracy when every problem spends at most b answers judged")
    assert lines[8] == "| run | b=1 | b=2 | b=3 | b=4 |"
    assert lines[10:13] == ["| latentseek + self (seek) | 0.333 | 0.667 | 0.333 | 0.333 |",
                            "| BoN (oracle PSRM = pass@4) (bon) | 0.500 | 0.500 | 0.500 | 0.500 |",
                            "| greedy | 1.000 | 1.000 | 1.000 | 1.000 |"]
    assert lines[14].startswith("Self-reward accuracy")
    assert lines[16] == "| run | judged | agreement | precision | recall | calculation | logic | completeness | answer |"
    assert lines[18] == "| latentseek + self (seek) | 9 | 0.556 | 0.250 | 0.500 | 0.667 | 0.333 | 0.667 | 0.556 |"
    assert len(lines) == 19  # the cot run (reward "self" in its config, but no reward used) has no row


# ------------------------------------------------------------------------------------ report.html
def test_html_is_self_contained(written):
    page = (written / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert page.count("<script") == 1 and "<script>" in page  # our inline script only, no src
    links = re.findall(r"<link[^>]*>", page)
    assert links and all('href="data:' in link for link in links)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only the SVG's own #clip paths
    assert "<svg" in page and "<?xml" not in page  # the plot, inline


def test_html_escapes_model_text(written):
    page = (written / "report.html").read_text()
    assert "<|im_end|>" not in page and "CoT of p1: 3 + 4 = 3&lt;|im_end|&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert "Iteration one of p1 &lt;script&gt;alert(1)&lt;/script&gt; so 7" in page
    assert "Use &lt;b&gt;bold&lt;/b&gt; &amp; $\\frac{1}{2}$" in page
    assert "LATENT &lt;tok&gt; of p1" in page  # decoded latent tokens
    assert ">p&lt;2&gt;<" in page


def test_html_has_every_problem_and_iteration(written):
    page = (written / "report.html").read_text()
    for pid in ("p1", "p&lt;2&gt;", "p4", "b1", "b2", "c1"):
        assert f'<span class="pid">{pid}</span>' in page
    assert "line 3" not in page  # the skipped row
    for text in ("Iteration one of p2 gives 3", "Sample zero of p2 gives 3", "Sample one of p2 gives 3",
                 "Iteration two of p4 gives 3", "sample 3 of b2", "seven: 7"):
        assert text in page
    # a text shown once per problem: p1's final answer is its iteration 1, p4's iteration 1 is its CoT
    assert page.count("Iteration one of p1 &lt;script&gt;") == 1
    assert page.count("CoT of p4 gives 3") == 1 and "same text as the CoT" in page
    assert "same text as iteration 1" in page and "same text as iteration 2" in page
    assert "loss 1.2500" in page and "step_norm 0.5000" in page and "reused" in page
    assert "<i class=\"f\">calculation \u2717</i>" in page
    assert "<i class=\"n\">completeness ?</i>" in page
    assert "BoN (oracle PSRM = pass@4) (bon)" in page and "<h2>greedy</h2>" in page


def test_html_filters(written):
    page = (written / "report.html").read_text()
    assert [page.count(f'data-change="{kind}"') for kind in ("fixed", "broken", "unchanged", "nocot")] == [1, 1, 2, 2]
    for kind, count in (("all", 6), ("fixed", 1), ("broken", 1), ("unchanged", 2)):
        assert f'data-filter="{kind}"' in page and f">{kind} ({count})</button>" in page
    assert "location.hash" in page  # report.html#filter=fixed opens filtered


def test_long_shared_prefix_with_the_cot_is_shortened():
    cot = "A" * 1000 + " so 3"
    record = {**P4, "cot_text": cot, "trajectory": [entry(0, cot, -1.0, False, ALL_TRUE),
                                                   entry(1, "A" * 1000 + "B so 7", 0.0, True, ALL_TRUE)]}
    html = problem_html(record, "k", -0.2)
    assert html.count("A" * 1000) == 1  # the CoT in full, the iteration shortened
    assert "[first 840 characters as in the CoT]" in html
    assert '<span class="shared">' + "A" * 160 + "</span>B so 7" in html


# ------------------------------------------------------------------------------------ errors
def test_missing_run_directory_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        report.main([str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope: no such run directory" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_results_line_names_file_and_line(tmp_path, capsys):
    run = write_run(tmp_path / "run", SEEK_SUMMARY, [P1])
    with (run / "results.jsonl").open("a") as f:
        f.write("{not json\n" + json.dumps(P4) + "\n")
    with pytest.raises(SystemExit) as stop:
        report.main([str(run), "--output", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert f"{run / 'results.jsonl'}:2: not a JSON line" in capsys.readouterr().err


def test_torn_last_line_is_ignored(tmp_path):
    run = write_run(tmp_path / "run", SEEK_SUMMARY, [P1])
    with (run / "results.jsonl").open("a") as f:
        f.write(json.dumps(P4)[:50])  # a run killed mid-write
    report.main([str(run), "--output", str(tmp_path / "out")])
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<span class="pid">p1</span>' in page and '<span class="pid">p4</span>' not in page


def test_summary_has_mean_reward_calls():
    from lightning_latentseek.summary import summarize

    summary = summarize(SEEK_RECORDS, {"method": "latentseek"}, max_iterations=2)
    assert summary["mean_reward_calls"] == 4.0  # (2 + 7 + 3) / 3, the skipped row left out
    assert summary["n"] == 3


def test_unfinished_run_is_reported_from_its_records(tmp_path):
    run = tmp_path / "going"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"method": "latentseek", "max_steps": 3,
                                                     "model": {"reward": "self", "tau": -0.2}}))
    (run / "results.jsonl").write_text(json.dumps(P1) + "\n")
    (run / "results.rank1.jsonl").write_text(json.dumps(P2) + "\n" + json.dumps(P4) + "\n")
    report.main([str(run), "--output", str(tmp_path / "out")])
    lines = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert lines[2] == ("| latentseek + self (going, unfinished) | 3 | 0.333 | [0.061, 0.792] | 0.333 | 1.333 | 4.00 "
                        "| 200.0 | 60.0 | 3.00 |")


def test_summary_json_and_the_report_give_the_same_numbers(tmp_path):
    """One summary function: the finished run's summary.json and summary.md, and the report of the same records
    read as an unfinished run (no summary.json), hold the same numbers, whole (rounded only for display)."""
    from lightning_latentseek.report_runs import load_run
    from lightning_latentseek.summary import summarize, summary_markdown

    config = {"method": "latentseek", "max_steps": 2, "model": {"reward": "self", "tau": -0.2}}
    summary = json.loads(json.dumps(summarize(SEEK_RECORDS, config, max_iterations=2)))  # as summary.json holds it
    # Wilson, 1 of 3, z 1.96: centre 0.426917, half-width 0.365427
    expected = {"n": 3, "skipped": 1, "unfinished": 0, "method": "latentseek", "accuracy": 1 / 3,
                "accuracy_ci95": [0.0614903152761605, 0.7923450448735121],
                "cot_accuracy": 1 / 3, "mean_iterations": 4 / 3, "mean_reward_calls": 4.0, "mean_solver_tokens": 200.0,
                "mean_verifier_tokens": 60.0, "seconds_per_problem": 3.0,
                "stop_reasons": {"reward_above_tau": 3},
                # after 0, 1, 2 iterations: p2's CoT right; p1 right from iteration 1, p2 wrong; p4 never
                "accuracy_by_iteration": [1 / 3, 1 / 3, 1 / 3], "config": config}
    assert summary.keys() == expected.keys()
    for key, value in expected.items():
        assert summary[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, (float, list)) else value), key

    finished = write_run(tmp_path / "finished", summary, SEEK_RECORDS)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run_config.json").write_text(json.dumps(config))
    (unfinished / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SEEK_RECORDS))
    from_summary, from_records = load_run(str(finished)).stats, load_run(str(unfinished)).stats
    for key in report.COLUMNS[1:]:
        assert from_summary[key[1]] == from_records[key[1]] == summary[key[1]], key
    row = "| 3 | 0.333 | [0.061, 0.792] | 0.333 | 1.333 | 4.00 | 200.0 | 60.0 | 3.00 |"
    assert summary_markdown(summary, title="run").splitlines()[2] == "| run " + row
    report.main([f"run={finished}", f"run={unfinished}", "--output", str(tmp_path / "out")])
    assert (tmp_path / "out" / "report.md").read_text().splitlines()[2:4] == ["| run " + row] * 2


def test_accuracy_by_iteration_holds_the_last_answer():
    from lightning_latentseek.summary import accuracy_by_iteration

    # p1: wrong, right (held after iteration 1); p4: wrong, wrong, wrong; the skipped row left out
    assert accuracy_by_iteration([P1, P4, SKIPPED], 3) == [0.0, 0.5, 0.5, 0.5]
    assert accuracy_by_iteration([COT_RECORD], 3) == []  # no trajectory


def test_cot_vs_final_line_counts_fixed_and_broken():
    from lightning_latentseek.report_stats import cot_vs_final_line

    records = [{"id": "a", "method": "latentseek", "cot_correct": False, "correct": True},
               {"id": "b", "method": "latentseek", "cot_correct": True, "correct": False},
               {"id": "c", "method": "latentseek", "cot_correct": True, "correct": True},
               {"id": "d", "method": "latentseek", "cot_correct": False, "correct": True},
               {"id": "line 9", "skipped": True}]
    assert cot_vs_final_line(records) == "CoT 2/4 (50%) -> latentseek 3/4 (75%): fixed 2, broke 1"
    assert cot_vs_final_line([{"id": "x", "method": "bon", "correct": True}]) is None
