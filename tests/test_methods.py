"""Best-of-N and self-consistency (selection rules and end to end on a tiny model) and the report."""

from __future__ import annotations

import json

import pytest

from lightning_latentseek import report
from lightning_latentseek.config import SeekConfig
from lightning_latentseek.methods import SolveContext, best_of_n, best_of_n_choice, majority_vote, self_consistency
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import RewardResult

PROBLEM = Problem(id="q7", question="What is 3 + 4?", answer="7", dataset="jsonl")


class LengthReward:
    """Shorter answers are better: R = -min(len(text), 40) / 40. Counts its calls per text."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, problem, answer):
        self.calls.append(answer)
        return RewardResult(-min(len(answer), 40) / 40, {"length": len(answer)}, verifier_tokens=3)


class ScriptedEngine:
    """A stand-in for the generation engine: one token per character; `generate` returns the scripted
    texts, one per row, and remembers the rows it got."""

    def __init__(self, texts):
        self.texts = texts
        self.rows = None
        self.lm = self
        self.cot_stop_ids = frozenset()

    def encode_chat(self, messages, add_special_tokens=False):
        return [ord(c) for c in "".join(m["content"] for m in messages)]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def eos_text(self, ids):
        return ""

    def generate(self, rows):
        from lightning_latentseek.engine import Generation

        self.rows = rows
        return [Generation([ord(c) for c in self.texts[i]], False) for i in range(len(rows))]


# ------------------------------------------------------------------------------------ selection rules
@pytest.mark.parametrize("rewards, expected", [
    ([-0.5, -0.1, -0.1, -0.9], 1),  # highest, earliest among ties
    ([-1.0, -1.0, -1.0], 0),
    ([0.0], 0),
    ([-1.0, -0.5, 0.0, 0.0], 2),
    ([-2 / 6, -1 / 6, -4 / 6], 1),
])
def test_best_of_n_choice(rewards, expected):
    assert best_of_n_choice(rewards) == expected


@pytest.mark.parametrize("preds, expected", [
    (["72", "72.0", "$72", "5"], 0),  # numeric normalisation: all three are 72
    (["5", "72", "72.0", "$72"], 1),
    (["5", "\\$72", "72 dollars", "3"], 1),
    ([None, None, None, "5"], 3),  # no-answer samples never win ...
    ([None, "", "  ", "5"], 3),
    ([None, None], 0),  # ... unless every sample has no answer
    (["3", "5", "5", "3"], 0),  # ties -> first occurrence
    (["5", "3", "3", "5"], 0),
    ([None, "3", "5"], 1),
    (["x + 1", "x+1", "2"], 0),  # whitespace-insensitive for non-numbers
    (["\\frac{1}{2}", "0.5", "0.50"], 1),
])
def test_majority_vote(preds, expected):
    assert majority_vote(preds) == expected


# ------------------------------------------------------------------------------------ end to end
def _ctx(engine, reward=None, seed=0, n=4, temperature=1.0):
    cfg = SeekConfig(reward="psrm", n_samples=n, sample_temperature=temperature, max_new_tokens=12)
    return SolveContext(engine, reward, cfg, seed=seed)


@pytest.fixture
def engine(llama):
    from lightning_latentseek.engine import GenerationEngine

    eng = GenerationEngine(llama)
    yield eng
    eng.close()


def test_best_of_n_end_to_end(engine):
    reward = LengthReward()
    outcome = best_of_n(PROBLEM, _ctx(engine, reward))
    assert outcome.method == "bon"
    assert len(outcome.samples) == 4 and len(outcome.rewards) == 4 and outcome.reward_calls == 4
    texts = [s["text"] for s in outcome.samples]
    assert len(set(texts)) == 4  # temperature 1: four different samples of one batched call
    assert engine.stats["rows"] == 4
    assert outcome.rewards == [s["reward"] for s in outcome.samples]
    assert outcome.best_reward == max(outcome.rewards) and outcome.text == outcome.best_text
    assert outcome.solver_tokens == sum(s["tokens"] for s in outcome.samples)
    assert all(0 < s["tokens"] <= 12 for s in outcome.samples)
    assert sorted(reward.calls) == sorted(set(texts))  # every distinct text judged once
    assert outcome.verifier_tokens == 3 * len(set(texts))
    again = best_of_n(PROBLEM, _ctx(engine, LengthReward()))  # same seed -> same samples
    assert [s["text"] for s in again.samples] == texts and again.text == outcome.text
    other = best_of_n(PROBLEM, _ctx(engine, LengthReward(), seed=1))
    assert [s["text"] for s in other.samples] != texts


def test_best_of_n_judges_identical_samples_once(engine):
    reward = LengthReward()
    outcome = best_of_n(PROBLEM, _ctx(engine, reward, temperature=1e-6))  # ~greedy: 4 identical samples
    texts = [s["text"] for s in outcome.samples]
    assert len(texts) == 4 and len(set(texts)) == 1
    assert len(reward.calls) == 1 and outcome.verifier_tokens == 3
    assert outcome.text == texts[0] and outcome.reward_calls == 4


def test_self_consistency_end_to_end(engine):
    outcome = self_consistency(PROBLEM, _ctx(engine, seed=3))
    assert outcome.method == "sc" and len(outcome.samples) == 4
    texts = [s["text"] for s in outcome.samples]
    assert outcome.text in texts
    again = self_consistency(PROBLEM, _ctx(engine, seed=3))
    assert [s["text"] for s in again.samples] == texts


def test_self_consistency_picks_the_majority_answer():
    texts = ["so \\boxed{5}", "it is \\boxed{7}", "no idea", "\\boxed{7.0}", "\\boxed{\\$7}", "\\boxed{5}"]
    engine = ScriptedEngine(texts)
    outcome = self_consistency(PROBLEM, _ctx(engine, n=len(texts)))
    assert len(engine.rows) == len(texts)  # n_samples rows drawn, one call
    assert outcome.text == "it is \\boxed{7}"
    assert [s["pred"] for s in outcome.samples] == ["5", "7", None, "7.0", "7", "5"]  # "\\$7": the dollar sign dropped


def test_best_of_n_picks_the_highest_reward():
    texts = ["a long answer \\boxed{5}", "\\boxed{7}", "\\boxed{8}", "short \\boxed{7}"]
    outcome = best_of_n(PROBLEM, _ctx(ScriptedEngine(texts), LengthReward()))
    assert outcome.text == "\\boxed{7}"  # shortest; "\\boxed{8}" ties and comes later
    assert outcome.rewards == [-23 / 40, -9 / 40, -9 / 40, -15 / 40]


# ------------------------------------------------------------------------------------ report
def _summary(method, accuracy, curve):
    return {"n": 10, "skipped": 0, "method": method, "accuracy": accuracy, "accuracy_ci95": [0.2, 0.8],
            "cot_accuracy": 0.4, "mean_iterations": 2.5, "mean_solver_tokens": 321.0,
            "mean_verifier_tokens": 1234.5, "seconds_per_problem": 3.25, "stop_reasons": {"done": 10},
            "accuracy_by_iteration": curve, "config": {}}


def test_report(tmp_path):
    d1, d2 = tmp_path / "seek_run", tmp_path / "bon_run"
    for d, summary in ((d1, _summary("latentseek", 0.6, [0.4, 0.5, 0.6])), (d2, _summary("bon", 0.5, []))):
        d.mkdir()
        (d / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "report"
    report.main([str(d1), str(d2), "--output", str(out)])
    lines = (out / "report.md").read_text().splitlines()
    assert len(lines) == 4  # header, separator, two runs
    assert lines[2].startswith("| latentseek (seek_run) | 10 | 0.600 | [0.200, 0.800] | 0.400 | 2.500 |")
    assert lines[3].startswith("| bon (bon_run) | 10 | 0.500 |")
    png = out / "accuracy_vs_iteration.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_summary_fails(tmp_path):
    with pytest.raises(SystemExit):
        report.main([str(tmp_path), "--output", str(tmp_path / "out")])
