"""Golden cases: the original LatentSeek code's own `extract_answer` and `judge_answer` (run by
benchmarks/golden_grading.py over 579 texts x 2 prompts x 2 model names; tests/data/golden_grading.jsonl)
against our ``paper`` extraction and grading, through the regrade command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from lightning_latentseek.regrade import main

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_grading.jsonl"
CASES = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
ROOT = Path(__file__).resolve().parents[1]

# Cases where our grade differs from the original's, each with its reason. Same extraction in all of them.
LATEX2SYMPY = ("the original's last symbolic parser is its vendored ANTLR latex2sympy2, which parses a leading part "
               "and ignores the rest ('\\sqrt{51}.<|im_end|>' -> sqrt(51), '-1)}```' -> -1) and keeps unknown "
               "commands as strings; ours is math-verify's latex2sympy2_extended, which rejects trailing text and "
               "reads \\text{even} as the symbol 'even' and \\{\\} as the empty set (README, Fidelity)")
TOLERATED = {  # golden id: (the original's pred, the original's correct, reason); ours: the same pred, `not correct`
    1164: ("\\sqrt{51}.<|im_end|>", True, LATEX2SYMPY), 1165: ("\\sqrt{51}.<|im_end|>", True, LATEX2SYMPY),
    1350: ("(6,31,-1)}```", True, LATEX2SYMPY), 1351: ("(6,31,-1)}```", True, LATEX2SYMPY),
    1588: ("even", False, LATEX2SYMPY), 1589: ("even", False, LATEX2SYMPY),
    1614: ("1+274i}```", True, LATEX2SYMPY), 1615: ("1+274i}```", True, LATEX2SYMPY),
    1994: ("\\\\{\\\\}", False, LATEX2SYMPY), 1995: ("\\\\{\\\\}", False, LATEX2SYMPY),
}


def test_the_golden_set_covers_what_it_must():
    texts = {(c["dataset"], c["text"], c["ground_truth"]) for c in CASES}
    assert len(texts) >= 500 and len(CASES) == 2316  # 579 texts (577 distinct) x 2 prompts x 2 model names
    groups = Counter((c["dataset"], c["prompt"], c["model"]) for c in CASES)
    assert len(groups) == 12  # 3 datasets x 2 prompts x 2 model names
    classes = {c["class"] for c in CASES}
    for kind in ("gsm8k/boxed", "gsm8k/json_fenced", "gsm8k/json_escaped", "gsm8k/boxed_comma", "gsm8k/decimal",
                 "gsm8k/fullwidth", "gsm8k/line_end_money", "gsm8k/he_answer_is", "gsm8k/degenerate",
                 "math500/solution", "math500/minerva", "math500/json_raw_latex", "math500/equivalent_boxed",
                 "math500/degenerate", "aime2024/boxed_padded", "aime2024/json_number", "aime2024/solution"):
        assert kind in classes, kind
    with_eos = sum(c["text"].endswith("<|im_end|>") for c in CASES)
    assert 0.7 * len(CASES) < with_eos < len(CASES)  # most texts end at EOS, some were cut
    assert sum(c["correct"] for c in CASES) > 0.3 * len(CASES) and sum("error" in c for c in CASES) == 20


def _regrade(group: list[dict], dataset: str, prompt: str, model: str) -> list[dict]:
    stdin = io.StringIO("".join(json.dumps({"text": c["text"], "ground_truth": c["ground_truth"]}) + "\n"
                                for c in group))
    stdout = io.StringIO()
    assert main(["--dataset", dataset, "--prompt", prompt, "--model", model, "--extraction", "paper",
                 "--grading", "paper"], stdin, stdout) == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_regrade_paper_paper_reproduces_the_originals_pred_and_correct():
    """Every golden case, through ``python -m lightning_latentseek.grading --extraction paper --grading paper``
    (in-process), one call per dataset x prompt x model; where the original raised, ours reads nothing."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for case in CASES:
        groups[(case["dataset"], case["prompt"], case["model"])].append(case)
    wrong = []
    for (dataset, prompt, model), group in sorted(groups.items()):
        for case, out in zip(group, _regrade(group, dataset, prompt, model), strict=True):
            expected_correct = case["correct"]
            if case["id"] in TOLERATED:
                pred, correct, _ = TOLERATED[case["id"]]
                assert (case["pred"], case["correct"]) == (pred, correct), "the golden file changed: revise TOLERATED"
                expected_correct = not correct
            if (out["pred"], out["correct"]) != (case["pred"], expected_correct):
                wrong.append((case["id"], case["class"], case["text"][-60:], case["pred"], case["correct"], out))
    assert not wrong, f"{len(wrong)} golden cases differ: {wrong[:10]}"


def test_the_module_runs_as_a_command():
    lines = [{"text": "So she pays \\boxed{18}.<|im_end|>", "ground_truth": "18"},
             {"text": "Eggs sold: 9\nMoney: 18", "ground_truth": "18", "eos": "<|im_end|>"},
             {"text": "Eggs sold: 9\nMoney: 18", "ground_truth": "18"}]
    done = subprocess.run([sys.executable, "-m", "lightning_latentseek.grading", "--dataset", "gsm8k"], cwd=ROOT,
                          input="".join(json.dumps(x) + "\n" for x in lines), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x) for x in done.stdout.splitlines()] == [
        {"pred": "18", "correct": True}, {"pred": "9", "correct": False}, {"pred": "18", "correct": True}]


@pytest.mark.parametrize("stdin, message", [
    ('{"text": "x", "ground_truth": "1"}\nnot json\n', "error: stdin, line 2: not JSON (Expecting value)"),
    ('{"text": "x"}\n', "error: stdin, line 1: missing field 'ground_truth'"),
    ('\n{"ground_truth": "1"}\n', "error: stdin, line 2: missing field 'text'"),
    ('[1, 2]\n', "error: stdin, line 1: expected a JSON object, got list"),
    ('{"text": 5, "ground_truth": "1"}\n', "error: stdin, line 1: field 'text' must be str, got 5"),
    ('{"text": "x", "ground_truth": null}\n', "error: stdin, line 1: field 'ground_truth' must be str or int or "
                                               "float, got None"),
])
def test_a_bad_line_is_one_error_naming_it(capsys, stdin, message):
    assert main(["--dataset", "gsm8k"], io.StringIO(stdin), io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [message]


def test_bad_options_are_one_error(capsys):
    assert main(["--dataset", "mmlu"], io.StringIO(""), io.StringIO()) == 2
    assert capsys.readouterr().err.startswith("error: argument --dataset: invalid choice: 'mmlu'")
    assert main([], io.StringIO(""), io.StringIO()) == 2
    assert capsys.readouterr().err == "error: --dataset is required (or --records DIR)\n"
    assert main(["--records", "/nonexistent/run"], io.StringIO(""), io.StringIO()) == 2
    assert "error: /nonexistent/run/results.jsonl: not found" in capsys.readouterr().err
