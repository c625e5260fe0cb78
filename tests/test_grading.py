"""Tests for answer extraction and grading."""

import threading

import pytest

from lightning_latentseek.grading import (
    extract_answer,
    extract_boxed,
    extract_json_answer,
    grade,
    normalize_number,
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
    worker = threading.Thread(target=lambda: results.append(grade(r"\dfrac{2}{4}", "0.5")))
    worker.start()
    worker.join()
    assert results == [True]
