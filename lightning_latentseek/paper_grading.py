"""The original's answer extraction and judgement, reproduced: bigai-nlco/LatentSeek (MIT)
``src/extract_judge_answer/utils.py`` `extract_answer` and `judge_answer`, as ``src/main.py:187-211`` calls them.

The original reads every answer as its decode writes it: with the special token that ended it
(``<|im_end|>`` for Qwen2.5), so the text given here must be that text (`grading.Grader` appends the EOS).
The branches, by dataset (the original's names: ``gsm8k``, ``MATH-500``, ``AIME_2024``), prompt index
(0: boxed, 1: json) and model name:

* GSM8K/AIME, prompt 0: `extract_number` (the first ``\\boxed{number}``, "Answer:", the first "= number",
  "is N dollars", a number ending a line, the last number); GSM8K with a model name holding
  ``qwen2.5-1.5b-instruct``: `extract_number_qwen15b` ("he answer is", "final answer is", the last number).
* GSM8K/AIME, prompt 1: ``json.loads`` of the text (it fails on the EOS), else what follows the first
  "final answer"/"my answer" up to ``}`` or ``<``, else the whole text; then `extract_number`.
* MATH-500, prompt 0: Qwen's extraction (`qwen_math.extract_math_answer`); prompt 1: ``json.loads``,
  else what follows "final answer" up to ``}<`` or ``<|`` with quotes removed, else None.

`judge`: GSM8K and AIME compare strings exactly (``"14.0" != "14"``, a label ``"2,125"`` never
matches); MATH-500 is right when any of math-verify, Qwen's `math_equal`, string equality and
Hendrycks' `is_equiv` says so. The judgement extracts again *without* the model name (utils.py:47),
so a Qwen2.5-1.5B answer is graded with the 7B rules. Where the original raises (a JSON text that is
a number or a list: ``.get`` on it), ours reads no answer.
"""

from __future__ import annotations

import json
import re

from lightning_latentseek.qwen_math import extract_math_answer, is_equiv

# our dataset names -> the original's (utils.py tests `"gsm8k" in data_name`, ...)
ORIGINAL_DATASETS = {"gsm8k": "gsm8k", "math500": "MATH-500", "aime2024": "AIME_2024"}
PROMPT_INDEX = {"boxed": 0, "json": 1}
DEFAULT_MODEL = "Qwen2.5-7B-Instruct"  # utils.py:86, the model name `judge_answer` extracts with

_NUMBER = r"([$€£¥]?\s*-?\s*[\d,]+(?:\.\d+)?)"
_RULES = (  # utils.py:262-285
    re.compile(r"\\boxed\{\s*" + _NUMBER + r"\s*\}", re.IGNORECASE),
    re.compile(r"Answer:\s*" + _NUMBER, re.IGNORECASE),
    re.compile(r"=\s*" + _NUMBER),
    re.compile(r"is\s*" + _NUMBER + r"\s*(?:dollars|euros|pounds|yen)", re.IGNORECASE),
)
_LINE_END = re.compile(_NUMBER + r"\s*$")
_ANY_NUMBER = re.compile(_NUMBER)
_RULES_QWEN15B = (  # utils.py:330-346
    re.compile(r"\\boxed\{\s*" + _NUMBER + r"\s*\}", re.IGNORECASE),
    re.compile(r"he answer is\s*" + _NUMBER, re.IGNORECASE),
    re.compile(r"final answer is\s*" + _NUMBER, re.IGNORECASE),
)
_PLAIN_NUMBER = re.compile(r"\d+(?:,\d+)*(?:\.\d+)?")
_JSON_KEY_NUMERIC = re.compile(r'(?:final answer|my answer)"?:?\s*(.*?)[}<]', re.I | re.M | re.DOTALL)
_JSON_KEY_MATH = re.compile(r'(?:final answer|my answer)"?:?\s*(.*?)(}<|<\|)', re.I | re.M | re.DOTALL)


def _clean_number(num: str) -> str:
    """utils.py:255-260: currency signs, commas and whitespace removed."""
    return re.sub(r"\s", "", re.sub(r",", "", re.sub(r"[$€£¥]", "", num)))


def extract_number(text: str | None, rules: tuple[re.Pattern, ...] = _RULES) -> str | None:
    """The original's `_extract_answer` (utils.py:239-303)."""
    if text is None:
        return None
    text = text.strip()
    for rule in rules:
        found = rule.search(text)
        if found:
            return _clean_number(found.group(1))
    for line in reversed(text.split("\n")):
        line = line.strip()
        if line:
            found = _LINE_END.search(line)
            if found:
                return _clean_number(found.group(1))
    numbers = _ANY_NUMBER.findall(text)
    return _clean_number(numbers[-1]) if numbers else None


# GradCuit's `_extract_answer` (github:Yuzhaoxin946/GradCuit src/extract_judge_answer/utils.py:538-602, MIT) is the
# original's without the "= number" rule (commented out there, :574-578).
_RULES_GRADCUIT = tuple(rule for rule in _RULES if not rule.pattern.startswith("="))


def extract_number_gradcuit(text: str | None) -> str | None:
    """GradCuit's `_extract_answer` (its GSM8K and AIME extraction, and its single verifier's): `extract_number`
    without the "= number" rule. A lone "," counts as a number and can give ""."""
    return extract_number(text, _RULES_GRADCUIT)


def extract_number_qwen15b(text: str | None) -> str | None:
    """The original's `_extract_qwen25_1_5B_answer` (utils.py:306-354)."""
    if text is None:
        return None
    text = text.strip()
    for rule in _RULES_QWEN15B:
        found = rule.search(text)
        if found:
            return _clean_number(found.group(1))
    numbers = _PLAIN_NUMBER.findall(text)
    return _clean_number(numbers[-1]) if numbers else None


class _NotAnObject(Exception):
    """The JSON text parsed to something without ``.get`` (the original raises AttributeError there)."""


def _json_final_answer(text: str) -> str:
    """``json.loads(text.strip('` \\n')).get('final answer', '')`` as a string (utils.py:111-114);
    JSONDecodeError when the text is not JSON."""
    answer = json.loads(text.strip("` \n"))
    if not isinstance(answer, dict):
        raise _NotAnObject
    final_answer = answer.get("final answer", "")
    return final_answer if isinstance(final_answer, str) else str(final_answer)


def _extract_numeric_json(text: str) -> str | None:
    """utils.py:108-128 (GSM8K) and 174-194 (AIME), which are the same."""
    try:
        return extract_number(_json_final_answer(text))
    except json.JSONDecodeError:
        found = _JSON_KEY_NUMERIC.search(text)
        return extract_number(found.group(1) if found else text)


def _extract_math_json(text: str) -> str | None:
    """utils.py:140-166."""
    try:
        final_answer = _json_final_answer(text)
        return final_answer.replace("\n", "").replace('"', "").replace("'", "")
    except json.JSONDecodeError:
        found = _JSON_KEY_MATH.search(text.replace("\n", ""))
        if not found:
            return None
        return found.group(1).replace("\n", "").replace('"', "").replace("'", "")


def extract(text: str, dataset: str, prompt: str, model: str = DEFAULT_MODEL) -> str | None:
    """The original's `extract_answer(text, data_name, prompt_idx, model_name)` (utils.py:86-200).

    `dataset` is one of ours (``gsm8k``, ``math500``, ``aime2024``), `prompt` ``boxed`` or ``json``, `model`
    the model name or path (``--model.llm``; only ``qwen2.5-1.5b-instruct`` in it changes anything).
    """
    if dataset not in ORIGINAL_DATASETS:
        raise ValueError(f"dataset {dataset!r}: the original has {', '.join(ORIGINAL_DATASETS)}")
    if prompt not in PROMPT_INDEX:
        raise ValueError(f"unknown prompt style {prompt!r}; expected 'boxed' or 'json'")
    try:
        if dataset == "math500":
            return extract_math_answer(text, data_name="math") if prompt == "boxed" else _extract_math_json(text)
        if prompt == "json":
            return _extract_numeric_json(text)
        if dataset == "gsm8k" and "qwen2.5-1.5b-instruct" in model.lower():
            return extract_number_qwen15b(text)
        return extract_number(text)
    except _NotAnObject:
        return None


def exact_equal(pred: str | None, label: str) -> bool:
    """GSM8K (utils.py:48) and AIME (utils.py:78-80): the strings are equal."""
    return str(pred) == str(label)


def math_string_checks(pred: str, label: str) -> bool:
    """MATH-500's string checks (utils.py:64-72): equal strings, or Hendrycks' `is_equiv`."""
    return str(pred) == str(label) or is_equiv(str(label), str(pred))


def math_symbolic_checks(pred: str, label: str) -> bool:
    """MATH-500's symbolic checks (utils.py:53-62): math-verify (``verify(label, parse(pred))``, with its own
    timeouts when called on a main thread), then Qwen's ``math_equal(label, pred)`` (the argument order of
    ``math_equal_process((label, pred))``). Unbounded in time: `symbolic.py` runs it in a worker process."""
    from math_verify import parse, verify

    from lightning_latentseek.qwen_math import math_equal

    if verify(label, parse(pred)):
        return True
    return math_equal(label, pred)
