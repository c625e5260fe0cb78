"""Answer extraction and grading: what an answer text says, and whether it is right.

A `Grader` holds the four choices that decide it: the solver prompt (``boxed``/``json``), the model name
(the original branches on it), ``--model.extraction`` and ``--model.grading``. Records and PSRM grade
through it (`Grader.judge`), and so does the regrade command (``python -m lightning_latentseek.grading``,
`regrade.py`).

Extraction (``--model.extraction``):

* ``paper`` (default): the original code's `extract_answer` for the dataset, prompt and model name
  (`paper_grading.extract`), reading the text as the original's decode writes it: with the EOS text
  (``<|im_end|>``) when the generation ended there.
* ``strict``: ``\\boxed{...}``, the JSON ``"final answer"`` key, or a plain "The answer is X", and
  nothing else (`extract_answer`), on the text without the EOS.

Grading (``--model.grading``):

* ``paper`` (default): the original's `judge_answer`, faults included: GSM8K and AIME compare strings
  exactly, MATH-500 accepts what any of math-verify, Qwen's `math_equal`, string equality and Hendrycks'
  `is_equiv` accepts; an answer from which nothing was extracted is wrong (`paper_grading`).
* ``numeric``: our fix (`grade`). Numeric data (GSM8K, AIME, arith, and JSONL rows whose ground truth
  is a plain number; `numeric_dataset`) asks for a number, as the paper's prompt does ("pure numbers,
  not the calculation formulas"): the answer must itself be a plain number (`normalize_number`:
  currency, percent, separators, unit words and a trailing period are fine) equal to the truth; an
  expression is wrong even when it evaluates to the truth ("10-3", "5*4", "\\frac{14}{2}" for 7).
  Symbolic data (MATH-500) compares plain numbers numerically and everything else with math-verify,
  with a normalised string comparison as a cheap sufficient check.

The original has three datasets; ours map onto them (`paper_dataset`): ``arith`` and JSONL data with a
plain-number ground truth are graded as GSM8K, other JSONL data as MATH-500. Symbolic checks run in
worker processes bounded in time (`symbolic.py`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass

from lightning_latentseek import paper_grading, symbolic

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_JSON_KEY_RE = re.compile(r"""["']?final[ _]answer["']?\s*:\s*""", re.IGNORECASE)
_JSON_VALUE_RE = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'|([^,}\s]+)""")
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
# A backslash that is not part of an escaped pair and is followed by a letter is LaTeX
# (``\frac``), not a JSON escape (``\f`` would silently become a form feed).
_LATEX_BACKSLASH_RE = re.compile(r"(\\\\)|\\(?=[A-Za-z])(?!u[0-9a-fA-F]{4})")
# A lookahead, so that findall also sees occurrences inside an earlier match's line.
_ANSWER_IS_RE = re.compile(r"(?=answer\s*(?:is\s*:?|:)\s*([^\n]+))", re.IGNORECASE)
_LATEX_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_NUMBER_RE = re.compile(
    r"([-+]?)(\d{1,3}(?:,\d{3})+|\d*)(\.\d+)?"  # sign, integer part (maybe 1,234), fraction
    r"(?:\s+(?!pi\b)[A-Za-z]{2,}\.?)*"  # optional unit words: "dollars", "sq ft"
)


def extract_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    Nested braces are balanced (``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``) and the
    space form ``\\boxed 5`` is accepted. Returns None when there is no box, the last
    one is unbalanced (e.g. truncated output), or it is empty.
    """
    boxes = list(_BOX_RE.finditer(text))
    if not boxes:
        return None
    after = text[boxes[-1].end() :]
    rest = after.lstrip(" ")
    if not rest.startswith("{"):
        if rest == after:  # neither "{" nor a space follows "\boxed"
            return None
        token = re.match(r"[^\s$]+", rest)  # space form: "\boxed 5"
        return token.group(0) if token else None
    depth = 0
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == "\\":
            i += 2  # skip escaped characters such as "\{" and "\}"
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[1:i].strip() or None
        i += 1
    return None


def _brace_spans(text: str) -> list[str]:
    """Return the outermost balanced ``{...}`` substrings of ``text``, in order."""
    spans: list[str] = []
    depth = 0
    begin = 0
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                begin = i
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[begin : i + 1])
    return spans


def _escape_latex(text: str) -> str:
    """Double lone backslashes before letters so LaTeX survives ``json.loads``."""
    return _LATEX_BACKSLASH_RE.sub(lambda m: m.group(1) or "\\\\", text)


def _loads_lenient(candidate: str) -> object:
    """``json.loads`` with repairs for LaTeX backslashes, trailing commas, single quotes."""
    repaired = _TRAILING_COMMA_RE.sub(r"\1", _escape_latex(candidate))
    for attempt in (repaired, repaired.replace("'", '"')):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            continue
    return None


def _answer_to_str(value: object) -> str | None:
    """Render a JSON answer value as a string (numbers via ``str``), None for null."""
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def extract_json_answer(text: str) -> str | None:
    """Return the ``"final answer"`` value of a JSON object written in ``text``.

    Tolerates surrounding prose, Markdown fences, single quotes and trailing commas.
    The key matches case-insensitively, as ``final answer`` or ``final_answer``. The
    last object holding the key wins; when no object parses, a regex on
    ``"final answer": value`` is used. Numbers are returned via ``str`` (72 -> "72").
    """
    for candidate in reversed(_brace_spans(text)):
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key.strip().lower().replace("_", " ") == "final answer":
                    return _answer_to_str(value)
    keys = list(_JSON_KEY_RE.finditer(text))
    if not keys:
        return None
    value = _JSON_VALUE_RE.match(text, keys[-1].end())
    if value is None:
        return None
    double_quoted, single_quoted, bare = value.groups()
    if double_quoted is not None:
        try:
            return _answer_to_str(json.loads(f'"{_escape_latex(double_quoted)}"'))
        except json.JSONDecodeError:
            return double_quoted.strip()
    return (single_quoted if single_quoted is not None else bare).strip()


EXTRACTIONS = ("paper", "strict")
GRADINGS = ("paper", "numeric")


def extract_answer(text: str, prompt: str) -> str | None:
    """The ``strict`` extraction: the final answer of model output written for a ``prompt`` style.

    ``prompt`` ``"boxed"`` tries ``\\boxed``, ``"json"`` the JSON answer, then ``\\boxed``; if neither is
    found, the text after the last "answer is" / "Answer:" up to the end of its line is used (without a
    trailing period). None otherwise.
    """
    if prompt == "boxed":
        answer = extract_boxed(text)
    elif prompt == "json":
        answer = extract_json_answer(text)
        if answer is None:
            answer = extract_boxed(text)
    else:
        raise ValueError(f"unknown prompt style {prompt!r}; expected 'boxed' or 'json'")
    if answer is not None:
        return answer
    matches = _ANSWER_IS_RE.findall(text)
    if not matches:
        return None
    return matches[-1].strip().rstrip(".").strip() or None


def normalize_number(s: str) -> float | None:
    """Parse ``s`` as a plain number, ignoring currency, percent, units and separators.

    Accepts e.g. "72", "72.0", "$72", "\\$72", "72,", "1,234", "72 dollars", "-3", "50%"
    and ``\\text{...}`` wrappers. Returns None for anything else ("x+1", "\\frac{1}{2}").
    """
    s = _LATEX_WRAPPER_RE.sub(r"\1", s)
    s = re.sub(r"\\?[$%]|\\[,!]|\{,\}", "", s).replace("\u2212", "-")
    s = s.strip().rstrip(".,;:!").strip()
    match = _NUMBER_RE.fullmatch(s)
    if match is None:
        return None
    sign, integer, fraction = match.groups()
    if not integer and not fraction:
        return None
    return float(f"{sign}{integer.replace(',', '')}{fraction or ''}")


def _normalize_text(s: str) -> str:
    """Canonical string form of a LaTeX answer for exact comparison."""
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("dfrac", "frac"), ("tfrac", "frac"), ("$", "")):
        s = s.replace(old, new)
    return re.sub(r"\s+", "", s).rstrip(".")


def math_verify_equal(pred: str, truth: str) -> bool:
    """Symbolic equivalence via math-verify (``$``-wrapped when the text has none). Run by the symbolic
    checks' worker (`symbolic.py`), on its main thread, where math-verify's 5-second timeouts work."""
    from math_verify import parse, verify

    def parsed(s: str):
        return parse(s if "$" in s else f"${s}$", parsing_timeout=5)

    return verify(parsed(truth), parsed(pred), timeout_seconds=5)


NUMERIC_DATASETS = ("gsm8k", "aime2024", "arith")
SYMBOLIC_DATASETS = ("math500",)


def numeric_dataset(name: str, truth: str | None = None) -> bool:
    """Whether answers of dataset `name` are graded numerically (see `grade`).

    gsm8k, aime2024, arith: True; math500: False; jsonl: True when its ground truth `truth` is a
    plain number (`normalize_number`), False otherwise (``truth`` is required for jsonl).
    """
    if name in NUMERIC_DATASETS:
        return True
    if name in SYMBOLIC_DATASETS:
        return False
    if name == "jsonl":
        if truth is None:
            raise ValueError("dataset 'jsonl': numeric grading depends on the ground truth; pass truth")
        return normalize_number(truth) is not None
    raise ValueError(f"dataset {name!r}: choose one of {', '.join(NUMERIC_DATASETS + SYMBOLIC_DATASETS)}, jsonl")


def grade(pred: str | None, truth: str, numeric: bool | None = None) -> bool:
    """Return whether the predicted answer matches the ground truth.

    ``numeric=True`` (numeric data, `numeric_dataset`): both must be plain numbers
    (`normalize_number`) and equal within a relative tolerance of 1e-6 ("72.0", "$72",
    "72 dollars" == "72"); an expression is wrong even if it evaluates to the truth ("10-3",
    "2+2=4", "\\frac{14}{2}" against "7"). ``numeric=False`` (MATH-500): plain numbers are
    compared numerically, other answers match if their normalised strings are equal or
    math_verify finds them equivalent (``\\dfrac{1}{2}`` == ``0.5``, intervals, tuples, ...).
    ``numeric=None`` decides from the truth: numeric exactly when the truth is a plain number
    (the rule for JSONL data); pass the dataset's flag where the dataset is known.
    """
    if pred is None or not pred.strip():
        return False
    pred_number, truth_number = normalize_number(pred), normalize_number(truth)
    if numeric is None:
        numeric = truth_number is not None
    if pred_number is not None and truth_number is not None:
        return math.isclose(pred_number, truth_number, rel_tol=1e-6)
    if numeric:
        return False  # an expression (or a non-number truth) never matches numerically
    return _normalize_text(pred) == _normalize_text(truth) or symbolic.check("math_verify", pred, truth)


# ------------------------------------------------------------------------------------------ the grader
def paper_dataset(name: str, truth: str | None = None) -> str:
    """The original's dataset whose extraction and judgement grade dataset `name`: gsm8k, math500 and
    aime2024 their own; arith as gsm8k; jsonl as gsm8k when its ground truth is a plain number, else math500."""
    if name in paper_grading.ORIGINAL_DATASETS:
        return name
    return "gsm8k" if numeric_dataset(name, truth) else "math500"


def _choose(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} {value!r}: choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class Grader:
    """How answers are read and judged: the solver prompt, the model name, the extraction and the grading.

    `model` is the model name or path (``--model.llm``): the original's extraction has a branch for
    Qwen2.5-1.5B-Instruct on GSM8K (any name holding ``qwen2.5-1.5b-instruct``, case-insensitive).
    """

    prompt: str = "boxed"
    extraction: str = "paper"
    grading: str = "paper"
    model: str = paper_grading.DEFAULT_MODEL

    def __post_init__(self) -> None:
        _choose("--model.prompt", self.prompt, ("boxed", "json"))
        _choose("--model.extraction", self.extraction, EXTRACTIONS)
        _choose("--model.grading", self.grading, GRADINGS)

    def extract(self, text: str, dataset: str, truth: str | None = None, eos: str = "") -> str | None:
        """The answer read from `text`; `eos` is the text of the token that ended the generation ("" when
        the cap cut it), which the original's decode keeps and its extraction reads (``paper`` only)."""
        if self.extraction == "strict":
            return extract_answer(text, self.prompt)
        return paper_grading.extract(text + eos, paper_dataset(dataset, truth), self.prompt, self.model)

    def judge(self, text: str | None, dataset: str, truth: str, eos: str = "") -> tuple[str | None, bool | None]:
        """(the extracted answer, whether it is right) for an answer `text` to a problem of `dataset` with
        ground truth `truth`; (None, None) for no text."""
        if text is None:
            return None, None
        pred = self.extract(text, dataset, truth, eos)
        if self.grading == "numeric":
            return pred, grade(pred, truth, numeric_dataset(dataset, truth))
        if pred is None:  # main.py:201-211: an answer without an extraction is not judged
            return pred, False
        original = paper_dataset(dataset, truth)
        if self.extraction == "paper":  # utils.py:47,51,77: judge_answer extracts again, without the model name
            pred_judged = paper_grading.extract(text + eos, original, self.prompt)
        else:
            pred_judged = pred
        if original != "math500":
            return pred, paper_grading.exact_equal(pred_judged, truth)
        if pred_judged is None:
            return pred, False
        correct = (paper_grading.math_string_checks(pred_judged, truth)
                   or symbolic.check("paper", pred_judged, truth))
        return pred, correct


if __name__ == "__main__":
    from lightning_latentseek.regrade import main

    sys.exit(main())
