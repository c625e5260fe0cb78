"""The original's MATH-500 helpers, reproduced: Qwen's answer extraction and `strip_string`, Qwen's
`math_equal` grader, Hendrycks' `is_equiv` and word2number's `word_to_num`.

bigai-nlco/LatentSeek (MIT) vendors these in ``src/extract_judge_answer/``: ``parse_utils_qwen.py``
(borrowed from OpenR), ``grader.py`` (Qwen2.5-Math / ToRA / DeepSeek-Math), ``math_equivalent_MATH.py``
(Hendrycks' MATH release) and, through ``parse_utils_qwen.py``, the ``word2number`` package (MIT). The
code below follows them statement by statement (file:line in each docstring), faults included: a
percentage rule that accepts x100 and /100, units stripped by unescaped regexes, number words turned
into digits. Two differences, both documented in the README's Fidelity table:

* the vendored ANTLR ``latex2sympy2`` is replaced by ``latex2sympy2_extended`` (math-verify's fork of
  it), the last of the three parsers `symbolic_equal` tries;
* `symbolic_equal` never hands a string holding Python's attribute or import machinery (``__``,
  ``lambda``, ``import`` ...) to sympy's ``parse_expr``, which evaluates it with ``eval``.

Nothing here bounds its running time: `symbolic.py` runs `math_equal` in a worker process that is
killed when it takes too long.
"""

from __future__ import annotations

import re
from math import isclose

# ---------------------------------------------------------------------------------------- word2number
# word2number 1.1 (w2n.py), used by parse_utils_qwen.py:68-73 `convert_word_number`.
_AMERICAN_NUMBER_SYSTEM = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1000000, "billion": 1000000000, "point": ".",
}
_DECIMAL_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _number_formation(number_words: list[str]):
    numbers = [_AMERICAN_NUMBER_SYSTEM[w] for w in number_words]
    if len(numbers) == 4:
        return (numbers[0] * numbers[1]) + numbers[2] + numbers[3]
    if len(numbers) == 3:
        return numbers[0] * numbers[1] + numbers[2]
    if len(numbers) == 2:
        return numbers[0] * numbers[1] if 100 in numbers else numbers[0] + numbers[1]
    return numbers[0]


def _decimal_sum(decimal_digit_words: list[str]) -> float:
    digits = []
    for word in decimal_digit_words:
        if word not in _DECIMAL_WORDS:
            return 0
        digits.append(_AMERICAN_NUMBER_SYSTEM[word])
    return float("0." + "".join(map(str, digits)))


def word_to_num(number_sentence: str):
    """word2number's `w2n.word_to_num`: the number words of a sentence as a number; ValueError without any."""
    if type(number_sentence) is not str:
        raise ValueError("Type of input is not string!")
    number_sentence = number_sentence.replace("-", " ").lower()
    if number_sentence.isdigit():
        return int(number_sentence)
    clean_numbers = [w for w in number_sentence.strip().split() if w in _AMERICAN_NUMBER_SYSTEM]
    clean_decimal_numbers: list[str] = []
    if len(clean_numbers) == 0:
        raise ValueError("No valid number words found!")
    if any(clean_numbers.count(w) > 1 for w in ("thousand", "million", "billion", "point")):
        raise ValueError("Redundant number word!")
    if clean_numbers.count("point") == 1:
        clean_decimal_numbers = clean_numbers[clean_numbers.index("point") + 1:]
        clean_numbers = clean_numbers[:clean_numbers.index("point")]
    billion = clean_numbers.index("billion") if "billion" in clean_numbers else -1
    million = clean_numbers.index("million") if "million" in clean_numbers else -1
    thousand = clean_numbers.index("thousand") if "thousand" in clean_numbers else -1
    if (thousand > -1 and (thousand < million or thousand < billion)) or (million > -1 and million < billion):
        raise ValueError("Malformed number!")
    total = 0
    if len(clean_numbers) > 0:
        if len(clean_numbers) == 1:
            total += _AMERICAN_NUMBER_SYSTEM[clean_numbers[0]]
        else:
            if billion > -1:
                total += _number_formation(clean_numbers[0:billion]) * 1000000000
            if million > -1:
                start = billion + 1 if billion > -1 else 0
                total += _number_formation(clean_numbers[start:million]) * 1000000
            if thousand > -1:
                if million > -1:
                    multiplier = _number_formation(clean_numbers[million + 1:thousand])
                elif billion > -1 and million == -1:
                    multiplier = _number_formation(clean_numbers[billion + 1:thousand])
                else:
                    multiplier = _number_formation(clean_numbers[0:thousand])
                total += multiplier * 1000
            if thousand > -1 and thousand != len(clean_numbers) - 1:
                hundreds = _number_formation(clean_numbers[thousand + 1:])
            elif million > -1 and million != len(clean_numbers) - 1:
                hundreds = _number_formation(clean_numbers[million + 1:])
            elif billion > -1 and billion != len(clean_numbers) - 1:
                hundreds = _number_formation(clean_numbers[billion + 1:])
            elif thousand == -1 and million == -1 and billion == -1:
                hundreds = _number_formation(clean_numbers)
            else:
                hundreds = 0
            total += hundreds
    if len(clean_decimal_numbers) > 0:
        total += _decimal_sum(clean_decimal_numbers)
    return total


# ---------------------------------------------------------------------------------------- parse_utils_qwen.py
def _fix_fracs(string: str, empty_piece_raises: bool = False) -> str:
    """parse_utils_qwen.py:14-43; with `empty_piece_raises`, math_equivalent_MATH.py:7-36, the same but for an empty
    piece after ``\\frac``, which raises IndexError there (and so here)."""
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        for substr in substrs[1:]:
            new_str += "\\frac"
            if (substr[0] if empty_piece_raises else substr[:1]) == "{":
                new_str += substr
            else:
                if len(substr) < 2:
                    return string
                a, b = substr[0], substr[1]
                if b != "{":
                    new_str += "{" + a + "}{" + b + "}" + (substr[2:] if len(substr) > 2 else "")
                else:
                    new_str += "{" + a + "}" + b + (substr[2:] if len(substr) > 2 else "")
    return new_str


def _fix_a_slash_b(string: str) -> str:
    """parse_utils_qwen.py:46-60."""
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        if "sqrt" not in a:
            a = int(a)
        if "sqrt" not in b:
            b = int(b)
        assert string == "{}/{}".format(a, b)
        return "\\frac{" + str(a) + "}{" + str(b) + "}"
    except Exception:
        return string


def _fix_sqrt(string: str) -> str:
    """parse_utils_qwen.py:63-65."""
    return re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", string)


def convert_word_number(text: str) -> str:
    """parse_utils_qwen.py:68-73."""
    try:
        text = str(word_to_num(text))
    except Exception:
        pass
    return text


# parse_utils_qwen.py:76-212 (units mainly from MathQA), then their plurals.
_UNIT_TEXTS = [
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey", "prime",
    "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab", "way", "west",
    "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men", "soldier", "pie", "bc",
    "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre", "rise", "a . m", "th", "π r 2", "sq",
    "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit", "minw", "yr", "women", "feet", "am", "pm", "hr",
    "cu cm", "square", "v â € ™", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day",
    "hour", "minute", "min", "second", "man", "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare",
    "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter",
    "loss", "yard", "pure", "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre",
    "meter", "inch",
]
_UNIT_TEXTS.extend([t + "s" for t in _UNIT_TEXTS])
# The unit texts are used as regular expressions, unescaped, as the original does ("a ." matches "a x").
_UNIT_PATTERNS = [re.compile(r"(^|\W)" + unit + r"($|\W)") for unit in _UNIT_TEXTS]


def strip_string(string: str, skip_unit: bool = False) -> str:
    """Qwen's answer normalisation (parse_utils_qwen.py:215-341)."""
    string = str(string).strip()
    string = string.replace("\n", "")
    string = string.rstrip(".")
    string = string.replace("\\!", "")
    string = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", string)
    string = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", string)
    string = string.replace("bmatrix", "pmatrix")
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")
    string = string.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")
    string = string.replace("\\{", "{")
    string = string.replace("\\}", "}")
    _string = re.sub(r"\\text{.*?}$", "", string).strip()
    if _string != "" and _string != string:
        string = _string
    if not skip_unit:
        for _ in range(2):
            for pattern in _UNIT_PATTERNS:
                _string = pattern.sub(r"\1\2", string)
                if _string != "":
                    string = _string
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = string.replace("$", "")
    string = string.replace("\\(", "").replace("\\)", "")
    string = convert_word_number(string)
    string = re.sub(r"\\text\{(.*?)\}", r"\1", string)
    for key in ["x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"]:
        string = string.replace(key, "")
    string = string.replace("\\emptyset", r"{}")
    string = string.replace("(-\\infty,\\infty)", "\\mathbb{R}")
    string = string.replace("\\%", "")
    string = string.replace("\\%", "")  # the original's second line is "\%", the same two characters
    string = string.replace("%", "")
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    if (string.startswith("{") and string.endswith("}") and string.isalnum()
            or string.startswith("(") and string.endswith(")") and string.isalnum()
            or string.startswith("[") and string.endswith("]") and string.isalnum()):
        string = string[1:-1]
    string = string.replace("infinity", "\\infty")
    if "\\infty" not in string:
        string = string.replace("inf", "\\infty")
    string = string.replace("+\\inity", "\\infty")
    string = string.replace("and", "")
    string = string.replace("\\mathbf", "")
    string = re.sub(r"\\mbox{.*?}", "", string)
    # (the original's quote removal discards its results: parse_utils_qwen.py:310-311)
    if "j" in string and "i" not in string:
        string = string.replace("j", "i")
    string = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", string)
    string = re.sub(r"(\d+)\.0*$", r"\1", string)
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    string = _fix_a_slash_b(string)
    return string


def extract_math_answer(pred_str: str, data_name: str = "math", use_last_number: bool = True) -> str:
    """Qwen's `extract_answer` (parse_utils_qwen.py:474-530): the minerva "final answer is $...$. I hope"
    form, else the last ``boxed`` (its braces balanced), else what follows the last "he answer is", else
    the last "final answer is", else "答案是", else the last number; then `strip_string`."""
    pred_str = pred_str.replace("\u043a\u0438", "")
    if "final answer is $" in pred_str and "$. I hope" in pred_str:
        tmp = pred_str.split("final answer is $", 1)[1]
        pred = tmp.split("$. I hope", 1)[0].strip()
    elif "boxed" in pred_str:
        ans = pred_str.split("boxed")[-1]
        if len(ans) == 0:
            return ""
        if ans[0] == "{":
            stack = 1
            a = ""
            for c in ans[1:]:
                if c == "{":
                    stack += 1
                    a += c
                elif c == "}":
                    stack -= 1
                    if stack == 0:
                        break
                    a += c
                else:
                    a += c
        else:
            a = ans.split("$")[0].strip()
        pred = a
    elif "he answer is" in pred_str:
        pred = pred_str.split("he answer is")[-1].strip()
    elif "final answer is" in pred_str:
        pred = pred_str.split("final answer is")[-1].strip()
    elif "答案是" in pred_str:
        pred = pred_str.split("答案是")[1].strip().split("\n\n")[0].strip()
    elif use_last_number:
        numbers = re.findall(r"-?\d*\.?\d+", pred_str.replace(",", ""))
        pred = numbers[-1] if len(numbers) >= 1 else ""
    else:
        pred = ""
    pred = re.sub(r"\n\s*", "", pred)
    if pred != "" and pred[0] == ":":
        pred = pred[1:]
    if pred != "" and pred[-1] == ".":
        pred = pred[:-1]
    if pred != "" and pred[-1] == "/":
        pred = pred[:-1]
    return strip_string(pred, skip_unit=data_name in ["carp_en", "minerva_math"])


# ---------------------------------------------------------------------------------------- math_equivalent_MATH.py
def _hendrycks_fix_a_slash_b(string: str) -> str:
    """math_equivalent_MATH.py:38-50."""
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        a, b = int(a), int(b)
        assert string == "{}/{}".format(a, b)
        return "\\frac{" + str(a) + "}{" + str(b) + "}"
    except Exception:
        return string


def _hendrycks_remove_right_units(string: str) -> str:
    """math_equivalent_MATH.py:52-59 (more than one ``\\text{ `` raises, as there)."""
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        assert len(splits) == 2
        return splits[0]
    return string


def _hendrycks_fix_sqrt(string: str) -> str:
    """math_equivalent_MATH.py:61-73 (``\\sqrt`` at the very end raises, as there)."""
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def _hendrycks_strip_string(string: str) -> str:
    """math_equivalent_MATH.py:75-142."""
    string = string.replace("\n", "")
    string = string.replace("\\!", "")
    string = string.replace("\\\\", "\\")
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _hendrycks_remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace("\\%", "")  # the original's second line is "\%", the same two characters
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]
    string = _hendrycks_fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string, empty_piece_raises=True)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _hendrycks_fix_a_slash_b(string)


def is_equiv(str1: str | None, str2: str | None) -> bool:
    """Hendrycks' `is_equiv` (math_equivalent_MATH.py:144-158): the normalised strings are equal; when
    normalising raises, the raw strings."""
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False
    try:
        return _hendrycks_strip_string(str1) == _hendrycks_strip_string(str2)
    except Exception:
        return str1 == str2


# ---------------------------------------------------------------------------------------- grader.py
def _choice_answer_clean(pred: str) -> str:
    """grader.py:25-36."""
    pred = pred.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = re.findall(r"\b(A|B|C|D|E)\b", pred.upper())
    pred = found[-1] if found else pred.strip().strip(".")
    return pred.rstrip(".").rstrip("/")


def _parse_digits(num):
    """grader.py:39-52: a float (Python's `float`, so "1e3", "inf" and full-width digits too), "50%" -> 0.5."""
    num = re.sub(",", "", str(num))
    try:
        return float(num)
    except Exception:
        if num.endswith("%"):
            num = num[:-1]
            if num.endswith("\\"):
                num = num[:-1]
            try:
                return float(num) / 100
            except Exception:
                pass
    return None


def _is_digit(num) -> bool:
    return _parse_digits(num) is not None


def _str_to_pmatrix(input_str: str) -> str:
    """grader.py:60-70."""
    input_str = input_str.strip()
    pmatrix_list = []
    for m in re.findall(r"\{.*,.*\}", input_str):
        m = m.strip("{}")
        pmatrix_list.append(r"\begin{pmatrix}" + m.replace(",", "\\") + r"\end{pmatrix}")
    return ", ".join(pmatrix_list)


def numeric_equal(prediction: float, reference: float) -> bool:
    """grader.py:266-273: relative tolerance 1e-4."""
    return isclose(reference, prediction, rel_tol=1e-4)


def math_equal(prediction, reference, include_percentage: bool = True, is_close: bool = True) -> bool:
    """Qwen's `math_equal` (grader.py:73-259, called with timeout=False as `math_equal_process` does):
    equal strings; a choice letter; numbers within 1e-4 relative of the reference, x100 or /100; brackets
    ignored; element-wise tuples, intervals and matrices; equations; then `symbolic_equal`."""
    if prediction is None or reference is None:
        return False
    if str(prediction.strip().lower()) == str(reference.strip().lower()):
        return True
    if reference in ["A", "B", "C", "D", "E"] and _choice_answer_clean(prediction) == reference:
        return True
    try:
        if _is_digit(prediction) and _is_digit(reference):
            prediction = _parse_digits(prediction)
            reference = _parse_digits(reference)
            gt_result = [reference / 100, reference, reference * 100] if include_percentage else [reference]
            for item in gt_result:
                try:
                    if is_close:
                        if numeric_equal(prediction, item):
                            return True
                    elif item == prediction:
                        return True
                except Exception:
                    continue
            return False
    except Exception:
        pass
    if not prediction and prediction not in [0, False]:
        return False
    reference = str(reference).strip()
    prediction = str(prediction).strip()
    if "pmatrix" in prediction and "pmatrix" not in reference:
        reference = _str_to_pmatrix(reference)
    pred_str, ref_str = prediction, reference
    if ((prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("("))
            or (prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("["))):
        pred_str = pred_str.strip("[]()")
        ref_str = ref_str.strip("[]()")
    for s in ["{", "}", "(", ")"]:
        ref_str = ref_str.replace(s, "")
        pred_str = pred_str.replace(s, "")
    if pred_str.lower() == ref_str.lower():
        return True
    if (re.match(r"(\(|\[).+(\)|\])", prediction) is not None
            and re.match(r"(\(|\[).+(\)|\])", reference) is not None):
        pred_parts = prediction[1:-1].split(",")
        ref_parts = reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts):
            if all(math_equal(pred_parts[i], ref_parts[i], include_percentage, is_close)
                   for i in range(len(pred_parts))):
                return True
    if ((prediction.startswith("\\begin{pmatrix}") or prediction.startswith("\\begin{bmatrix}"))
            and (prediction.endswith("\\end{pmatrix}") or prediction.endswith("\\end{bmatrix}"))
            and (reference.startswith("\\begin{pmatrix}") or reference.startswith("\\begin{bmatrix}"))
            and (reference.endswith("\\end{pmatrix}") or reference.endswith("\\end{bmatrix}"))):
        pred_lines = [line.strip() for line in prediction[len("\\begin{pmatrix}"): -len("\\end{pmatrix}")].split("\\\\")
                      if line.strip()]
        ref_lines = [line.strip() for line in reference[len("\\begin{pmatrix}"): -len("\\end{pmatrix}")].split("\\\\")
                     if line.strip()]
        matched = True
        if len(pred_lines) == len(ref_lines):
            for pred_line, ref_line in zip(pred_lines, ref_lines):
                pred_parts = pred_line.split("&")
                ref_parts = ref_line.split("&")
                if len(pred_parts) == len(ref_parts):
                    if not all(math_equal(pred_parts[i], ref_parts[i], include_percentage, is_close)
                               for i in range(len(pred_parts))):
                        matched = False
                        break
                else:
                    matched = False
                if not matched:
                    break
        else:
            matched = False
        if matched:
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        pred = prediction.split("=")
        pred = f"{pred[0].strip()} - ({pred[1].strip()})"
        ref = reference.split("=")
        ref = f"{ref[0].strip()} - ({ref[1].strip()})"
        if symbolic_equal(pred, ref) or symbolic_equal(f"-({pred})", ref):
            return True
    elif prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        if math_equal(prediction.split("=")[1], reference, include_percentage, is_close):
            return True
    elif reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        if math_equal(prediction, reference.split("=")[1], include_percentage, is_close):
            return True
    return symbolic_equal(prediction, reference)


# Strings that reach Python's object machinery through parse_expr's eval: never evaluated (our fix).
_UNSAFE_FOR_EVAL = re.compile(r"__|\b(?:lambda|import|exec|eval|compile|open|globals|locals|vars|getattr|setattr|"
                              r"delattr|breakpoint|input|help|exit|quit)\b")


def _parse_latex(s: str):
    from sympy.parsing.latex import parse_latex  # needs antlr4 4.11; raises ImportError otherwise (caught)

    return parse_latex(s)


def _parse_expr(s: str):
    if _UNSAFE_FOR_EVAL.search(s):
        raise ValueError("not evaluated: the string reaches Python's object machinery")
    from sympy.parsing.sympy_parser import parse_expr

    return parse_expr(s)


def _latex2sympy(s: str):
    from latex2sympy2_extended import latex2sympy

    return latex2sympy(s)


def symbolic_equal(a, b) -> bool:
    """grader.py:276-329: parse each side with sympy's ``parse_latex``, else ``parse_expr``, else latex2sympy
    (first with ``\\\\`` made ``\\``); equal strings or objects, a zero simplified difference, equal
    equations, numerically equal within 1e-4 relative, or equal matrices rounded to 3 places."""
    from sympy import N, simplify

    def _parse(s):
        for f in (_parse_latex, _parse_expr, _latex2sympy):
            try:
                return f(s.replace("\\\\", "\\"))
            except Exception:  # the original's bare except (parse_expr raises TokenError, SyntaxError, ...)
                try:
                    return f(s)
                except Exception:
                    pass
        return s

    a = _parse(a)
    b = _parse(b)
    try:
        if str(a) == str(b) or a == b:
            return True
    except Exception:
        pass
    try:
        if a.equals(b) or simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        if (abs(a.lhs - a.rhs)).equals(abs(b.lhs - b.rhs)):
            return True
    except Exception:
        pass
    try:
        if numeric_equal(float(N(a)), float(N(b))):
            return True
    except Exception:
        pass
    try:
        if a.shape == b.shape:
            _a = a.applyfunc(lambda x: round(x, 3))
            _b = b.applyfunc(lambda x: round(x, 3))
            if _a.equals(_b):
                return True
    except Exception:
        pass
    return False
