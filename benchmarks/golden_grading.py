#!/usr/bin/env python
"""Golden grading cases: the ORIGINAL LatentSeek code's own `extract_answer` and `judge_answer`, run over
answer texts of our own. Writes tests/data/golden_grading.jsonl (and a .meta.json beside it).

    python benchmarks/golden_grading.py ORIGINAL DATA_DIR [--out tests/data/golden_grading.jsonl]

ORIGINAL is a checkout of bigai-nlco/LatentSeek: a source tree holding ``src/``, or a bare git directory
(exported with ``git archive`` to a temporary directory). DATA_DIR holds ``gsm8k_test.jsonl``,
``math500_test.jsonl`` and ``aime2024.jsonl`` (labels and real solutions to build texts from). The
original's source is imported as ``main.py`` uses it; it needs ``word2number`` (``pip install
word2number``) and imports its vendored ``latex2sympy2``. Never run by the tests, which read its output.

Each text is graded under both prompts (boxed = prompt_idx 0, json = 1) and both model names
(Qwen/Qwen2.5-7B-Instruct, Qwen/Qwen2.5-1.5B-Instruct), as ``src/main.py:187-211`` does it:

    pred = extract_answer(text, data_name=DATASET, prompt_idx=IDX, model_name=MODEL)
    correct = judge_answer(text, label, data_name=DATASET, prompt_idx=IDX) if pred is not None else False

with the dataset names of ``scripts/example.sh`` (``openai/gsm8k``, ``HuggingFaceH4/MATH-500``,
``Maxwell-Jia/AIME_2024``) and the labels the original's ``extract_true_answer`` returns for the hub's
rows: GSM8K the text after ``#### `` (commas kept), MATH-500 the answer string, AIME 2024 the hub's int64
(the local copy's "025" is int 25). Most texts end with ``<|im_end|>``, as the original's decode writes
every answer that ended at EOS; some are cut (no EOS), as by the token cap. A case where the original
raises records ``"error"`` (and pred None, correct False).

The texts (``class`` names their kind; ``--list-classes`` prints them) cover GSM8K, MATH-500 and AIME
2024 styles: real solutions, \\boxed{} variants, "The answer is", numbers ending lines, JSON with fences,
escapes and LaTeX, commas, decimals, full-width digits, units, word numbers, equivalent LaTeX forms and
degenerate texts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

EOS = "<|im_end|>"
MODELS = ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct")
PROMPTS = (("boxed", 0), ("json", 1))
DATA_NAMES = {"gsm8k": "openai/gsm8k", "math500": "HuggingFaceH4/MATH-500", "aime2024": "Maxwell-Jia/AIME_2024"}
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


# ------------------------------------------------------------------------------------------ the original
def original_source(path: str) -> tuple[Path, str]:
    """The original's ``src`` directory and its commit (a bare git dir is exported to a temp dir)."""
    root = Path(path)
    if (root / "src" / "main.py").is_file():
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        return root / "src", sha or "unknown (not a git checkout)"
    sha = subprocess.check_output(["git", "--git-dir", str(root), "rev-parse", "HEAD"], text=True).strip()
    tar = subprocess.check_output(["git", "--git-dir", str(root), "archive", "--format=tar", sha, "src"])
    tmp = Path(tempfile.mkdtemp(prefix="latentseek_original_"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(tmp, filter="data")
    return tmp / "src", sha


def import_original(src: Path):
    sys.path.insert(0, str(src))
    sys.path.insert(1, str(src / "extract_judge_answer" / "latex2sympy"))  # grader.py imports `latex2sympy2`
    with contextlib.redirect_stdout(io.StringIO()):  # the vendored ANTLR parser prints version notes
        from extract_judge_answer import extract_answer, extract_true_answer, judge_answer
    return extract_answer, extract_true_answer, judge_answer


# ------------------------------------------------------------------------------------------ texts
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gsm8k_steps(answer: str) -> list[str]:
    """The solution's lines without the calculator annotations and the #### line."""
    lines = [re.sub(r"<<[^>]*>>", "", line) for line in answer.split("\n") if not line.startswith("####")]
    return [line for line in lines if line.strip()]


def json_answer(thought: str, final, rng: random.Random, style: str = "plain") -> str:
    obj = {"thought process": thought, "final answer": final}
    text = json.dumps(obj, ensure_ascii=rng.random() < 0.5)
    if style == "fenced":
        return f"```json\n{text}\n```"
    if style == "indented":
        return json.dumps(obj, indent=2, ensure_ascii=False)
    if style == "prose":
        return f"Here is my solution.\n{text}\nI hope this helps!"
    if style == "raw_latex":  # LaTeX backslashes written unescaped: not valid JSON
        return '{"thought process": "' + thought.replace('"', "'") + '", "final answer": "' + str(final) + '"}'
    if style == "single_quotes":
        return "{'thought process': '" + thought.replace("'", "") + "', 'final answer': '" + str(final) + "'}"
    if style == "underscore_key":
        return json.dumps({"thought_process": thought, "final_answer": final})
    if style == "my_answer":
        return json.dumps({"thought process": thought, "my answer": final})
    if style == "no_key":
        return json.dumps({"thought process": thought, "answer": final})
    return text


def gsm8k_texts(rows: list[dict], extract_true_answer, rng: random.Random) -> list[dict]:
    texts = []

    def add(cls, text, label, eos=True):
        texts.append({"class": f"gsm8k/{cls}", "dataset": "gsm8k", "text": text + (EOS if eos else ""),
                      "ground_truth": label})

    comma = [r for r in rows if "," in r["answer"].split("#### ")[1] or "-" in r["answer"].split("#### ")[1]]
    plain = [r for r in rows[:90] if r not in comma]
    for i, row in enumerate(plain + comma):
        label = extract_true_answer(row["answer"], name="gsm8k")
        value = label.replace(",", "")
        steps = gsm8k_steps(row["answer"])
        body = "\n".join(steps)
        kind = i % 15
        eos = rng.random() < 0.85
        if kind == 0:
            add("boxed", f"{body}\n\nThe final answer is \\boxed{{{value}}}.", label, eos)
        elif kind == 1:
            add("answer_is", f"{body}\nThe answer is {value}.", label, eos)
        elif kind == 2:
            add("line_end", body, label, eos)  # the solution's own last line ends with the answer (or not)
        elif kind == 3:
            add("json", json_answer(body, value, rng), label, eos)
        elif kind == 4:
            add("json_number", json_answer(body, int(float(value)) if "." not in value else float(value), rng), label, eos)
        elif kind == 5:
            add("json_fenced", json_answer(body, f"${label}", rng, "fenced"), label, eos)
        elif kind == 6:
            add("boxed_comma", f"{body}\nSo the total is \\boxed{{{label}}}", label, eos)
        elif kind == 7:
            add("decimal", f"{body}\nTherefore, the answer is \\boxed{{{value}.00}}.", label, eos)
        elif kind == 8:
            add("final_answer_is", f"{body}\nSo, the final answer is {value} dollars.", label, eos)
        elif kind == 9:
            add("wrong", f"{body}\n\n\\boxed{{{int(float(value)) + 1}}}", label, eos)
        elif kind == 10:
            add("fullwidth", f"{body}\nThe answer is \\boxed{{{value.translate(FULLWIDTH)}}}.", label, eos)
        elif kind == 11:
            add("json_prose", json_answer(body, f"{value}", rng, "prose"), label, eos)
        elif kind == 12:
            add("equals_first", f"First, 3 + 4 = 7 items.\n{body}\nAnswer: {value}", label, eos)
        elif kind == 13:
            add("boxed_latex", f"{body}\n$$\\boxed{{\\$ {label}}}$$", label, eos)
        else:
            add("he_answer_is", f"{body}\nThus the answer is: {value}\n\nFinal check: {value} is right.", label, eos)
    # hand-written kinds, each with a few real labels
    for row in rows[100:112]:
        label = extract_true_answer(row["answer"], name="gsm8k")
        value = label.replace(",", "")
        add("line_end_money", f"Eggs sold: 9\nMoney: {value}", label)
        add("line_end_money", f"Eggs sold: 9\nMoney: {value}", label, eos=False)
        add("boxed_space", f"The answer is $\\boxed {value}$.", label)
        add("boxed_fraction", f"Half of {2 * int(float(value))} is \\boxed{{\\frac{{{2 * int(float(value))}}}{{2}}}}.", label)
        add("expression", f"The answer is \\boxed{{{int(float(value)) + 3}-3}}", label)
        add("json_escaped", json.dumps({"thought process": 'He said "half"\nthen \\frac{1}{2}', "final answer": value}), label)
        add("json_single_quotes", json_answer("3 * 4 = 12", value, rng, "single_quotes"), label)
        add("json_underscore", json_answer("3 * 4 = 12", value, rng, "underscore_key"), label)
        add("json_my_answer", json_answer("3 * 4 = 12", value, rng, "my_answer"), label)
        add("json_no_key", json_answer("3 * 4 = 12", value, rng, "no_key"), label)
        add("currency", f"In total she pays is ${value} dollars.", label)
        add("percent", f"The increase is {value}%.", label)
    for row in rows[120:124]:
        label = extract_true_answer(row["answer"], name="gsm8k")
        value = label.replace(",", "")
        add("json_bare_number", value, label, eos=False)  # json.loads gives a number: the original raises
        add("json_bare_list", f"[{value}]", label, eos=False)
        add("looping", ("Let me compute again. " * 30) + value, label, eos=False)
        add("negative", f"The change is \\boxed{{-{value}}}", label)
    label = extract_true_answer(rows[130]["answer"], name="gsm8k")
    for text in ["", "I don't know.", "\\boxed{}", "\\boxed{12", "   \n  ", "{", '{"final answer": }', "No numbers here!",
                 "The answer is twelve.", "## Step 1\n\n## Step 2\n"]:
        add("degenerate", text, label)
    add("degenerate", "", label, eos=False)
    return texts


MATH_VARIANTS = [  # (label, equivalent or not, prediction written by a model)
    ("\\frac{1}{2}", "0.5"), ("\\frac{1}{2}", "\\dfrac{1}{2}"), ("\\frac{1}{2}", "1/2"), ("\\frac{1}{2}", "\\frac12"),
    ("\\frac{1}{2}", "50\\%"), ("\\frac{1}{2}", "0.50"), ("\\frac{1}{2}", "\\frac{2}{4}"), ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("3", "x = 3"), ("3", "3.0"), ("3", "three"), ("3", "\\text{three}"), ("3", "３"), ("3", "3\\text{ cm}"),
    ("90^\\circ", "90"), ("90^\\circ", "90^{\\circ}"), ("90^\\circ", "\\frac{\\pi}{2}"), ("[1,3)", "[1, 3)"),
    ("[1,3)", "(1,3]"), ("(1,2)", "(1, 2)"), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"),
    ("2\\sqrt{3}", "\\sqrt{12}"), ("2\\sqrt{3}", "2\\sqrt3"), ("x^2+2x+1", "(x+1)^2"), ("\\pi", "3.14159"),
    ("10", "10\\%"), ("10", "1000"), ("10", "0.1"), ("12", "12.00"), ("1,-2", "-2, 1"), ("1,-2", "1, -2"),
    ("\\text{Evelyn}", "Evelyn"), ("\\text{(C)}", "C"), ("6 - 5i", "6-5i"), ("6 - 5i", "6 - 5j"), ("52_8", "52_8"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("y = 2x + 3", "2x+3"),
    ("-\\frac{2}{3}", "-2/3"), ("\\$32", "32"), ("5", "5 \\text{ apples}"), ("1000", "1,000"), ("100", "one hundred"),
    ("\\infty", "inf"), ("\\emptyset", "\\{\\}"), ("4", "\\boxed{4}"), ("x \\in [2,5]", "[2,5]"), ("\\sqrt{2}", "1.414"),
]


def math_texts(rows: list[dict], rng: random.Random) -> list[dict]:
    texts = []

    def add(cls, text, label, eos=True):
        texts.append({"class": f"math500/{cls}", "dataset": "math500", "text": text + (EOS if eos else ""),
                      "ground_truth": label})

    for i, row in enumerate(rows[:132]):
        label, solution = row["answer"], row["solution"]
        kind = i % 11
        eos = rng.random() < 0.85
        if kind == 0:
            add("solution", solution, label, eos)
        elif kind == 1:
            add("minerva", f"{solution.split('$')[0]}\nFinal Answer: The final answer is ${label}$. I hope it is correct.",
                label, eos)
        elif kind == 2:
            add("final_answer_the", f"Some work.\n\nFinal Answer: The final answer is ${label}$", label, eos)
        elif kind == 3:
            add("answer_is", f"We simplify.\nTherefore, the answer is {label}.", label, eos)
        elif kind == 4:
            add("json", json_answer("We simplify step by step.", label, rng), label, eos)
        elif kind == 5:
            add("json_fenced", json_answer("Step 1. Step 2.", label, rng, "fenced"), label, eos)
        elif kind == 6:
            add("json_raw_latex", json_answer("Using \\frac rules.", label, rng, "raw_latex"), label, eos)
        elif kind == 7:
            add("boxed_dollars", f"So the answer is $\\boxed{{{label}}}$.", label, eos)
        elif kind == 8:
            add("last_number", f"The value comes out as {rng.randint(2, 99)} after all.", label, eos)
        elif kind == 9:
            add("json_indented", json_answer("Reasoning.", label, rng, "indented"), label, eos)
        else:
            add("boxed_twice", f"A first guess \\boxed{{0}}; corrected: \\boxed{{{label}}}", label, eos)
    for j, (label, pred) in enumerate(MATH_VARIANTS):
        add("equivalent_boxed", f"Thus the result is $\\boxed{{{pred}}}$.", label)
        add("equivalent_json", json_answer("Reasoning.", pred, rng), label, eos=j % 3 != 0)
    for text in ["", "\\boxed{}", "\\boxed{\\frac{1}{2}", "I cannot solve this problem.", "boxed", "The answer is",
                 "Answer: $\\frac{1}{2}$ and more text {", "\\boxed{x}\\boxed{y}", '{"final answer": "\\frac12"}']:
        add("degenerate", text, "\\frac{1}{2}")
    add("json_bare_number", "0.5", "\\frac{1}{2}", eos=False)
    add("json_bare_string", '"1/2"', "\\frac{1}{2}", eos=False)
    return texts


def aime_texts(rows: list[dict], rng: random.Random) -> list[dict]:
    texts = []

    def add(cls, text, label, eos=True):
        texts.append({"class": f"aime2024/{cls}", "dataset": "aime2024", "text": text + (EOS if eos else ""),
                      "ground_truth": label})

    for i, row in enumerate(rows):
        label = int(row["answer"])  # the hub's Answer column is int64
        padded = row["answer"]
        kinds = [i % 6, (i + 3) % 6]
        for kind in kinds:
            eos = rng.random() < 0.85
            if kind == 0:
                add("solution", row["solution"], label, eos)
            elif kind == 1:
                add("boxed_padded", f"Adding up gives $\\boxed{{{padded}}}$.", label, eos)
            elif kind == 2:
                add("boxed", f"{row['solution'][:300]}\n\nThe answer is $\\boxed{{{label}}}$.", label, eos)
            elif kind == 3:
                add("json", json_answer("Work.", str(label), rng), label, eos)
            elif kind == 4:
                add("json_number", json_answer("Work.", label, rng, rng.choice(["plain", "fenced"])), label, eos)
            else:
                add("wrong", f"So $m+n = {label + 7}$.", label, eos)
    add("degenerate", "", 25)
    add("degenerate", "The answer is \\boxed{025.0}", 25)
    add("degenerate", "The answer is \\boxed{25.0}", 25)
    return texts


def build_texts(data_dir: Path, extract_true_answer, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    gsm8k = read_jsonl(data_dir / "gsm8k_test.jsonl")
    math500 = read_jsonl(data_dir / "math500_test.jsonl")
    aime = read_jsonl(data_dir / "aime2024.jsonl")
    return gsm8k_texts(gsm8k, extract_true_answer, rng) + math_texts(math500, rng) + aime_texts(aime, rng)


# ------------------------------------------------------------------------------------------ main
def run_original(extract_answer, judge_answer, text: str, label, dataset: str, idx: int, model: str) -> dict:
    name = DATA_NAMES[dataset]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            pred = extract_answer(text, data_name=name, prompt_idx=idx, model_name=model)
            correct = bool(judge_answer(text, label, data_name=name, prompt_idx=idx)) if pred is not None else False
            return {"pred": pred, "correct": correct}
        except Exception as err:  # noqa: BLE001 -- the original raising is part of what is recorded
            return {"pred": None, "correct": False, "error": f"{type(err).__name__}: {err}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("original", help="bigai-nlco/LatentSeek: a source tree or a bare git directory")
    parser.add_argument("data_dir", help="directory with gsm8k_test.jsonl, math500_test.jsonl, aime2024.jsonl")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_grading.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list-classes", action="store_true")
    args = parser.parse_args(argv)

    src, sha = original_source(args.original)
    extract_answer, extract_true_answer, judge_answer = import_original(src)
    texts = build_texts(Path(args.data_dir), extract_true_answer, args.seed)
    if args.list_classes:
        counts: dict[str, int] = {}
        for t in texts:
            counts[t["class"]] = counts.get(t["class"], 0) + 1
        print(json.dumps(counts, indent=1))
        return
    cases, started = [], time.perf_counter()
    for n, item in enumerate(texts):
        for prompt, idx in PROMPTS:
            for model in MODELS:
                result = run_original(extract_answer, judge_answer, item["text"], item["ground_truth"], item["dataset"],
                                      idx, model)
                cases.append({"id": len(cases), "class": item["class"], "dataset": item["dataset"], "prompt": prompt,
                              "model": model, "text": item["text"], "ground_truth": str(item["ground_truth"]), **result})
        if n % 50 == 0:
            print(f"{n}/{len(texts)} texts, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    out = Path(args.out)
    with out.open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("math-verify", "latex2sympy2_extended", "sympy", "antlr4-python3-runtime",
                                           "word2number")}
    meta = {"original": "bigai-nlco/LatentSeek", "commit": sha, "texts": len(texts), "cases": len(cases),
            "errors": sum("error" in c for c in cases), "python": sys.version.split()[0], "packages": versions,
            "command": "python benchmarks/golden_grading.py ORIGINAL DATA_DIR", "seconds": round(time.perf_counter() - started)}
    out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(cases)} cases from {len(texts)} texts -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
