"""Answer extraction from model output and grading against ground truth.

Extraction has two modes (``--model.extraction``). ``paper`` (the default) reads numeric answers as the
original code does (`extract_number_paper`: the first ``\\boxed{number}``, else "Answer: number", else the
first "= number", else "is number dollars", else a number ending the last line, else the last number;
the JSON prompt's "final answer" value first): what the paper's accuracies and its PSRM were measured
with. ``strict`` (and symbolic data in both modes) reads ``\\boxed{...}``, the JSON ``"final answer"``
key, or a plain ``"The answer is X"``, and nothing else.

Grading has two modes. Numeric data (GSM8K, AIME, arith, and JSONL rows whose ground truth is a
plain number; `numeric_dataset`) asks for a number, as the paper's prompt does ("pure numbers,
not the calculation formulas"): the answer must itself be a plain number (`normalize_number`:
currency, percent, separators, unit words and a trailing period are fine) equal to the truth;
an expression is wrong even when it evaluates to the truth ("10-3", "5*4", "2+2=4", "x = 7",
"\\frac{14}{2}" for 7). Symbolic data (MATH-500) compares plain numbers numerically and
everything else with ``math_verify`` (``\\dfrac{1}{2}`` == ``0.5``), with a normalised string
comparison as a cheap sufficient check.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading

from math_verify import parse, verify

# math_verify warns on every call made without a timeout (worker threads): keep the output clean.
logging.getLogger("math_verify").setLevel(logging.ERROR)

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
# The original's number extraction for GSM8K and AIME: bigai-nlco/LatentSeek
# src/extract_judge_answer/utils.py, `_extract_answer` and `extract_answer` (MIT licence).
_PAPER_NUMBER = r"([$€£¥]?\s*-?\s*[\d,]+(?:\.\d+)?)"
_PAPER_RULES = (
    re.compile(r"\\boxed\{\s*" + _PAPER_NUMBER + r"\s*\}", re.IGNORECASE),
    re.compile(r"Answer:\s*" + _PAPER_NUMBER, re.IGNORECASE),
    re.compile(r"=\s*" + _PAPER_NUMBER),
    re.compile(r"is\s*" + _PAPER_NUMBER + r"\s*(?:dollars|euros|pounds|yen)", re.IGNORECASE),
)
_PAPER_LINE_END = re.compile(_PAPER_NUMBER + r"\s*$")
_PAPER_ANY = re.compile(_PAPER_NUMBER)
_PAPER_JSON_KEY = re.compile(r'(?:final answer|my answer)"?:?\s*(.*?)(?:[}<]|\Z)', re.IGNORECASE | re.MULTILINE | re.DOTALL)


def _clean_number(text: str) -> str:
    return re.sub(r"\s", "", re.sub(r",", "", re.sub(r"[$€£¥]", "", text)))


def extract_number_paper(text: str | None, rules: tuple[re.Pattern, ...] = _PAPER_RULES) -> str | None:
    """The original's `_extract_answer`: the first ``\\boxed{number}``, else "Answer: number", else the first
    "= number", else "is <number> dollars", else a number ending the last non-empty line, else the last
    number anywhere; currency signs, commas and spaces removed. None without any number."""
    if text is None:
        return None
    text = text.strip()
    for rule in rules:
        found = rule.search(text)
        if found:
            return _clean_number(found.group(1))
    for line in reversed(text.split("\n")):
        if line.strip():
            found = _PAPER_LINE_END.search(line.strip())
            if found:
                return _clean_number(found.group(1))
    numbers = _PAPER_ANY.findall(text)
    return _clean_number(numbers[-1]) if numbers else None


# GradCuit's `_extract_answer` (github:Yuzhaoxin946/GradCuit src/extract_judge_answer/utils.py:538-602, MIT) is the
# original's without the "= number" rule (commented out there, :574-578).
_GRADCUIT_RULES = tuple(rule for rule in _PAPER_RULES if not rule.pattern.startswith("="))


def extract_number_gradcuit(text: str | None) -> str | None:
    """GradCuit's `_extract_answer` (its GSM8K and AIME extraction, and its single verifier's): `extract_number_paper`
    without the "= number" rule. A lone "," counts as a number and can give ""."""
    return extract_number_paper(text, _GRADCUIT_RULES)


def _extract_paper_numeric(text: str, prompt: str) -> str | None:
    """The original's `extract_answer` for GSM8K/AIME: prompt 0 (boxed) reads the text, prompt 1 (json)
    the "final answer" value of the parsed JSON, else what follows "final answer"/"my answer" up to ``}``,
    ``<`` (the original's texts end with its EOS token ``<|im_end|>``; ours, without it, at the end)."""
    if prompt == "json":
        try:
            parsed = json.loads(text.strip("` \n"))
        except json.JSONDecodeError:
            found = _PAPER_JSON_KEY.search(text)
            return extract_number_paper(found.group(1) if found else text)
        if isinstance(parsed, dict):
            return extract_number_paper(str(parsed.get("final answer", "")))
    return extract_number_paper(text)


def extract_answer(text: str, prompt: str, numeric: bool = False, extraction: str = "strict") -> str | None:
    """Extract the final answer from model output written for a ``prompt`` style.

    ``numeric`` data with ``extraction="paper"``: the original's rules (`_extract_paper_numeric`). Otherwise:
    ``prompt`` ``"boxed"`` tries ``\\boxed``, ``"json"`` the JSON answer, then ``\\boxed``; if neither is
    found, the text after the last "answer is" / "Answer:" up to the end of its line is used (without a
    trailing period). None otherwise.
    """
    if extraction not in EXTRACTIONS:
        raise ValueError(f"unknown extraction {extraction!r}; expected one of {', '.join(EXTRACTIONS)}")
    if numeric and extraction == "paper":
        if prompt not in ("boxed", "json"):
            raise ValueError(f"unknown prompt style {prompt!r}; expected 'boxed' or 'json'")
        return _extract_paper_numeric(text, prompt)
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


def _math_verify(pred: str, truth: str) -> bool:
    """Symbolic equivalence via math_verify, time-bounded where that is possible.

    math_verify's timeouts use ``signal.alarm``, which only works on the main thread: there a
    pathological answer is cut off after a few seconds; in worker threads they are disabled.
    """
    timeout = 5 if threading.current_thread() is threading.main_thread() else None

    def parsed(s: str):
        return parse(s if "$" in s else f"${s}$", parsing_timeout=timeout)

    try:
        return verify(parsed(truth), parsed(pred), timeout_seconds=timeout)
    except Exception:  # math_verify/sympy can raise on odd input (or time out): treat as not equal
        return False


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
    return _normalize_text(pred) == _normalize_text(truth) or _math_verify(pred, truth)
