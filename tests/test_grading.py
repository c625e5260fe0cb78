"""Tests for answer extraction and grading."""

import threading

import pytest

from lightning_latentseek.grading import (
    Grader,
    extract_answer,
    extract_boxed,
    extract_json_answer,
    grade,
    normalize_number,
    numeric_dataset,
    paper_dataset,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is \boxed{72}.", "72"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"first \boxed{1}, then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"$\boxed 5$", "5"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{3", None),
        (r"\boxed{}", None),
        ("no answer here", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"reasoning": "3 * 24", "final answer": 72}', "72"),
        ('Here you go: {"final answer": "72"} Hope this helps! {not json', "72"),
        ('```json\n{"reasoning": "...", "final answer": "-3"}\n```', "-3"),
        ("{'final answer': '18',}", "18"),
        ('{"Final_Answer": 2.5}', "2.5"),
        (r'{"final answer": "\frac{1}{2}"}', r"\frac{1}{2}"),  # \f is not a form feed here
        (r'{"final answer": "\\frac{1}{2}"}', r"\frac{1}{2}"),
        ('{"final answer": null}', None),
        ('Truncated {"reasoning": "x", "final answer": 42, "extra": {', "42"),
        ('"final answer": 12.5 and then nothing closes', "12.5"),
        ("no json at all", None),
    ],
)
def test_extract_json_answer(text: str, expected: str | None) -> None:
    assert extract_json_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "prompt", "expected"),
    [
        (r"\boxed{5}", "boxed", "5"),
        (r'{"final answer": 6} and \boxed{5}', "json", "6"),
        (r"I could not write JSON. \boxed{5}", "json", "5"),
        ("Step 1...\nThe answer is 42.\n", "boxed", "42"),
        ("Answer: $7$\nDone", "json", "$7$"),
        ("the answer is 1, no wait, the answer is 2.", "boxed", "2"),
        ("I have no idea.", "boxed", None),
        ("", "json", None),
    ],
)
def test_extract_answer(text: str, prompt: str, expected: str | None) -> None:
    assert extract_answer(text, prompt) == expected


def test_extract_answer_rejects_unknown_prompt() -> None:
    with pytest.raises(ValueError, match="prompt"):
        extract_answer("42", "xml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("72", 72.0),
        ("72.0", 72.0),
        ("$72", 72.0),
        (r"\$72", 72.0),
        (r"$\$72$", 72.0),
        ("72,", 72.0),
        ("72.", 72.0),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("72 dollars", 72.0),
        (r"72\text{ dollars}", 72.0),
        ("-3", -3.0),
        ("3.50", 3.5),
        ("50%", 50.0),
        (r"50\%", 50.0),
        (r"\frac{1}{2}", None),
        ("x+1", None),
        ("3x", None),
        ("1,23", None),
        ("", None),
    ],
)
def test_normalize_number(text: str, expected: float | None) -> None:
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        ("72", "72", True),
        ("72.0", "72", True),
        ("$72", "72", True),
        ("72,", "72", True),
        ("72 dollars", "72", True),
        ("1,234", "1234", True),
        ("-3", "-3", True),
        ("3", "-3", False),
        ("73", "72", False),
        (r"\dfrac{1}{2}", r"\frac{1}{2}", True),
        ("0.5", r"\frac{1}{2}", True),
        (r"\frac{1}{3}", r"\frac{1}{2}", False),
        (r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"(3, \pi)", r"\left( 3, \frac{\pi}{2} \right)", False),
        ("[1, 3)", "[1,3)", True),
        ("(1, 3]", "[1,3)", False),
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", True),
        ("x+1", "1+x", True),
        ("2x+1", "1+x", False),
        (r"\text{(C)}", r"\text{(C)}", True),
        (None, "72", False),
        ("", "72", False),
        ("   ", "72", False),
    ],
)
def test_grade(pred: str | None, truth: str, expected: bool) -> None:
    assert grade(pred, truth) is expected


def test_no_answer_extracted_grades_false() -> None:
    assert grade(extract_answer("I am not sure.", "json"), "72") is False


def test_grade_works_off_the_main_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(grade(r"\dfrac{2}{4}", "0.5", numeric=False)))
    worker.start()
    worker.join()
    assert results == [True]


# ------------------------------------------------------------------------------ numeric grading
@pytest.mark.parametrize(
    ("name", "truth", "expected"),
    [
        ("gsm8k", "72", True),
        ("aime2024", "25", True),
        ("arith", "-3", True),
        ("math500", "10", False),
        ("math500", r"\frac{1}{2}", False),
        ("jsonl", "1,234", True),
        ("jsonl", "$72", True),
        ("jsonl", r"\frac{1}{2}", False),
        ("jsonl", "x+1", False),
    ],
)
def test_numeric_dataset(name: str, truth: str, expected: bool) -> None:
    assert numeric_dataset(name, truth) is expected


def test_numeric_dataset_rejects_unknown_names_and_jsonl_without_truth() -> None:
    with pytest.raises(ValueError, match="'gsm8k_v2'"):
        numeric_dataset("gsm8k_v2")
    with pytest.raises(ValueError, match="jsonl"):
        numeric_dataset("jsonl")


@pytest.mark.parametrize(
    ("pred", "truth", "numeric", "expected"),
    [
        # numeric data: the answer must be a number, not a calculation that evaluates to it
        ("10-3", "7", True, False),
        ("5*4", "20", True, False),
        (r"5 \times 4", "20", True, False),
        ("2+2=4", "4", True, False),
        ("x = 7", "7", True, False),
        ("14/2", "7", True, False),
        (r"\frac{14}{2}", "7", True, False),  # a LaTeX fraction is an expression too
        (r"\dfrac{1}{2}", "0.5", True, False),
        ("7", "7", True, True),
        ("7.0", "7", True, True),
        ("$1,234", "1234", True, True),
        ("72 dollars", "72", True, True),
        (r"\$72.00", "72", True, True),
        ("50%", "50", True, True),
        ("-3", "-3", True, True),
        ("8", "7", True, False),
        ("7", r"\frac{14}{2}", True, False),  # a truth that is not a number cannot be met numerically
        # None decides from the truth: a plain-number truth asks for a plain number
        ("10-3", "7", None, False),
        ("7", "7", None, True),
        (r"\dfrac{1}{2}", "0.5", None, False),
        (r"\dfrac{1}{2}", r"\frac{1}{2}", None, True),
        ("x+1", "1+x", None, True),
        # symbolic data (MATH-500): math-verify equivalence, also against a plain-number truth
        ("10-3", "7", False, True),
        (r"\frac{14}{2}", "7", False, True),
        (r"\dfrac{1}{2}", "0.5", False, True),
        ("0.5", r"\frac{1}{2}", False, True),
        (r"\dfrac{1}{2}", r"\frac{1}{2}", False, True),
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", False, True),
        (r"\frac{1}{3}", "0.5", False, False),
        ("72.0", "72", False, True),
    ],
)
def test_grade_numeric(pred: str, truth: str, numeric: bool | None, expected: bool) -> None:
    assert grade(pred, truth, numeric) is expected


@pytest.mark.parametrize(
    ("text", "prompt", "dataset", "truth", "expected"),
    [
        ("3 + 4 = 7. The final answer is 10-3.", "boxed", "gsm8k", "7", False),
        ("3 + 4 = 7. The final answer is 7.", "boxed", "gsm8k", "7", True),
        (r"So \boxed{\frac{14}{2}}", "boxed", "gsm8k", "7", False),
        (r"So \boxed{\frac{14}{2}}", "boxed", "math500", "7", True),
        ('{"thought process": "3+4", "final answer": "3+4"}', "json", "aime2024", "7", False),
        ('{"thought process": "3+4", "final answer": 7}', "json", "aime2024", "7", True),
        ('{"thought process": "..", "final answer": "$1,234"}', "json", "jsonl", "1234", True),
        ('{"thought process": "..", "final answer": "1000+234"}', "json", "jsonl", "1234", False),
        (r"\boxed{\dfrac{1}{2}}", "boxed", "math500", "0.5", True),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", "boxed", "math500", r"(3, \frac{\pi}{2})", True),
    ],
)
def test_extract_then_grade_per_dataset(text: str, prompt: str, dataset: str, truth: str, expected: bool) -> None:
    pred = extract_answer(text, prompt)
    assert grade(pred, truth, numeric_dataset(dataset, truth)) is expected


@pytest.mark.parametrize(
    ("dataset", "answer", "text", "value"),
    [
        ("gsm8k", "7", r"\boxed{10-3}", -1.0),
        ("gsm8k", "7", r"\boxed{\frac{14}{2}}", -1.0),
        ("gsm8k", "7", r"\boxed{7}", 0.0),
        ("math500", "7", r"\boxed{\frac{14}{2}}", 0.0),
        ("jsonl", "7", r"\boxed{10-3}", -1.0),
        ("jsonl", r"\frac{1}{2}", r"\boxed{0.5}", 0.0),
    ],
)
def test_psrm_and_records_grade_numerically(dataset: str, answer: str, text: str, value: float) -> None:
    from lightning_latentseek.methods import Outcome
    from lightning_latentseek.problems import Problem
    from lightning_latentseek.records import build_record
    from lightning_latentseek.rewards.psrm import PerfectSparseReward

    grader = Grader("boxed", extraction="strict", grading="numeric")
    problem = Problem(id="0", question="What is 3 + 4?", answer=answer, dataset=dataset)
    assert PerfectSparseReward(grader)(problem, text).value == value
    record = build_record(problem, Outcome(method="cot", text=text, tokens=1), grader, 0.0, "h")
    assert record["correct"] is (value == 0.0)


# ------------------------------------------------------------------------------------ the original's extraction
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So Maya has 23 stickers. \\boxed{23}", "23"),
        ("\\boxed{ $1,234.50 } and later \\boxed{7}", "1234.50"),  # the first boxed number
        ("\\boxed{10-3}", "-3"),  # not a number in the box: the last number anywhere
        ("Answer: 42 apples", "42"),
        ("First 14 + 9 = 23, then 23 - 5 = 18.", "23"),  # the FIRST "= number"
        ("The total is 12 dollars", "12"),
        ("Step one.\nShe keeps 7\n", "7"),  # a number ending the last non-empty line
        ("Eggs sold: 9\nMoney: 18<|im_end|>", "9"),  # ... which the EOS hides on the real last line
        ("The final answer is 10-3.", "-3"),  # the last number: an expression is never read as its value
        ("He has 5 apples and 3 pears.", "3"),
        ("no number at all", None),
    ],
)
def test_paper_extraction_gsm8k_boxed(text, expected):
    assert Grader("boxed").extract(text, "gsm8k") == expected


@pytest.mark.parametrize(
    ("text", "expected_7b", "expected_15b"),
    [
        ("The answer is 12. Then 3 + 4 = 7", "7", "12"),  # 1.5B: "he answer is" before the last number
        ("So the final answer is 8 and we check 9.", "9", "8"),
        ("Total: 1,200 and then 5 = 5", "5", "5"),
        ("-7 degrees", "-7", "7"),  # the 1.5B rule's last number is unsigned
    ],
)
def test_paper_extraction_has_a_qwen25_1_5b_branch(text, expected_7b, expected_15b):
    assert Grader("boxed", model="Qwen/Qwen2.5-7B-Instruct").extract(text, "gsm8k") == expected_7b
    assert Grader("boxed", model="/models/QWEN2.5-1.5B-Instruct").extract(text, "gsm8k") == expected_15b
    assert Grader("boxed", model="/models/QWEN2.5-1.5B-Instruct").extract(text, "aime2024") == expected_7b  # GSM8K only


@pytest.mark.parametrize(
    ("text", "eos", "expected"),
    [
        ('{"thought process": "14 + 9", "final answer": "23"}', "", "23"),
        ('```{"thought process": "t", "final answer": 1234}```', "", "1234"),
        ('{"thought process": "t", "final answer": 1234}', "<|im_end|>", "1234"),  # not JSON: the key up to "}"
        ('{"thought process": "t", "final answer": "$1,234"} done', "<|im_end|>", "1234"),
        ('"final answer": 17', "<|im_end|>", "17"),  # the key up to the EOS's "<"
        ('"final answer": 17', "", "17"),  # no "}" or "<" after the key: the whole text
        ("I think it is 5 and then 6", "<|im_end|>", "6"),  # no key: the whole text
        ("42", "", None),  # JSON that is not an object: the original raises; ours reads nothing
    ],
)
def test_paper_extraction_of_the_json_prompt(text, eos, expected):
    assert Grader("json").extract(text, "gsm8k", eos=eos) == expected


@pytest.mark.parametrize(
    ("text", "prompt", "expected"),
    [
        ("So \\boxed{\\dfrac{1}{2}}.", "boxed", "\\frac{1}{2}"),  # Qwen's strip_string
        ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "boxed", "\\frac{1}{2}"),
        ("Therefore, the answer is \\sqrt{51}.<|im_end|>", "boxed", "\\sqrt{51}.<|im_end|>"),  # the EOS stays
        ("It equals 0.5, not 3", "boxed", "3"),  # the last number
        ("The answer is five", "boxed", "5"),  # number words become digits
        ('{"thought process": "t", "final answer": "\\\\frac{1}{2}"}<|im_end|>', "json", "\\\\frac{1}{2}"),
        ('{"thought process": "t", "final answer": "\\\\frac{1}{2}"}', "json", "\\frac{1}{2}"),
        ("\\boxed{\\frac{1}{2}}<|im_end|>", "json", None),  # no key: nothing (no \\boxed fallback)
    ],
)
def test_paper_extraction_math500(text, prompt, expected):
    assert Grader(prompt).extract(text, "math500") == expected


@pytest.mark.parametrize(
    ("dataset", "truth", "expected"),
    [("gsm8k", "7", "gsm8k"), ("arith", "7", "gsm8k"), ("aime2024", "25", "aime2024"), ("math500", "7", "math500"),
     ("jsonl", "1,234", "gsm8k"), ("jsonl", "\\frac{1}{2}", "math500")],
)
def test_paper_dataset(dataset, truth, expected):
    assert paper_dataset(dataset, truth) == expected


# ------------------------------------------------------------------------------------ the two gradings
@pytest.mark.parametrize(
    ("text", "dataset", "truth", "paper", "numeric"),
    [
        ("\\boxed{14.0}", "gsm8k", "14", False, True),  # the original compares strings
        ("\\boxed{2,125}", "gsm8k", "2,125", False, True),  # a label with a comma never matches the original
        ("\\boxed{2125}", "gsm8k", "2,125", False, True),
        ("\\boxed{１４}", "gsm8k", "14", False, True),  # full-width digits: another string
        ("\\boxed{025}", "aime2024", "25", False, True),
        ("\\boxed{25}", "aime2024", "25", True, True),
        ("\\boxed{10-3}", "gsm8k", "7", False, False),
        ("\\boxed{\\frac{1}{2}}", "math500", "0.5", True, True),
        ("\\boxed{50}", "math500", "0.5", True, False),  # Qwen's grader accepts x100 and /100
        ("\\boxed{x = 3}", "math500", "3", True, True),  # Qwen's strip_string drops "x=" at extraction
        ("\\boxed{\\frac{1}{3}}", "math500", "0.5", False, False),
        ("no answer", "math500", "\\frac{1}{2}", False, False),
    ],
)
def test_paper_and_numeric_grading(text, dataset, truth, paper, numeric):
    assert Grader("boxed", grading="paper").judge(text, dataset, truth)[1] is paper
    assert Grader("boxed", grading="numeric").judge(text, dataset, truth)[1] is numeric


def test_paper_grading_extracts_again_without_the_model_name():
    """judge_answer (utils.py:47) extracts with the default model: a Qwen2.5-1.5B answer's pred comes from the
    1.5B rules, its grade from the 7B rules."""
    grader = Grader("boxed", model="Qwen/Qwen2.5-1.5B-Instruct")
    assert grader.judge("The answer is 12. Then 3 + 4 = 7", "gsm8k", "12") == ("12", False)
    assert grader.judge("The answer is 12. Then 3 + 4 = 7", "gsm8k", "7") == ("12", True)


def test_strict_extraction_with_paper_grading():
    grader = Grader("boxed", extraction="strict", grading="paper")
    assert grader.judge("\\boxed{7}<|im_end|>", "gsm8k", "7") == ("7", True)  # strict reads the text without EOS
    assert grader.judge("\\boxed{7.0}", "gsm8k", "7") == ("7.0", False)
    assert grader.judge("nothing", "gsm8k", "7") == (None, False)


def test_grader_rejects_unknown_choices():
    with pytest.raises(ValueError, match="--model.grading 'exact'"):
        Grader(grading="exact")
    with pytest.raises(ValueError, match="--model.extraction"):
        Grader(extraction="loose")
