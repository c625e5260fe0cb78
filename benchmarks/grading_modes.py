#!/usr/bin/env python
"""How often ``--model.grading paper`` (the original's judgement) and ``numeric`` (our fix) disagree.

    python benchmarks/grading_modes.py DATA_DIR [--golden tests/data/golden_grading.jsonl]

DATA_DIR holds gsm8k_test.jsonl, math500_test.jsonl and aime2024.jsonl. For every problem of the three
test sets, answers that state the label exactly as the dataset writes it, as a model under each prompt
would, ending with the EOS text as the original's decode writes it:

* ``boxed``: "... The final answer is \\boxed{LABEL}.<|im_end|>" (boxed prompt);
* ``json``: '{"thought process": "...", "final answer": "LABEL"}<|im_end|>' (JSON prompt);
* ``solution``: the dataset's own solution text (GSM8K: its steps, then "The answer is LABEL."; MATH-500
  and AIME: the reference solution; boxed prompt).

Each is graded with the ``paper`` extraction under both gradings (labels as the original reads them:
GSM8K with its commas, AIME as integers); then every golden case (the original's own texts and labels),
under both gradings. Prints one Markdown table row per group: answers, right under paper, right under
numeric, and how many disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lightning_latentseek.grading import Grader  # noqa: E402

EOS = "<|im_end|>"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def label_texts(data_dir: Path) -> list[tuple[str, str, str, str, str]]:
    """(group, dataset, prompt, text, label) for every problem and text kind."""
    out = []
    for row in read_jsonl(data_dir / "gsm8k_test.jsonl"):
        label = row["answer"].split("#### ")[1]  # the original's extract_true_answer (commas kept)
        steps = "\n".join(re.sub(r"<<[^>]*>>", "", line) for line in row["answer"].split("\n")[:-1])
        out += [("gsm8k", "gsm8k", "boxed", f"Adding up.\nThe final answer is \\boxed{{{label}}}.{EOS}", label),
                ("gsm8k", "gsm8k", "json", json.dumps({"thought process": "Adding up.", "final answer": label}) + EOS,
                 label),
                ("gsm8k", "gsm8k", "solution", f"{steps}\nThe answer is {label}.{EOS}", label)]
    for row in read_jsonl(data_dir / "math500_test.jsonl"):
        label = row["answer"]
        out += [("math500", "math500", "boxed", f"Simplifying.\nThe final answer is $\\boxed{{{label}}}$.{EOS}", label),
                ("math500", "math500", "json",
                 json.dumps({"thought process": "Simplifying.", "final answer": label}) + EOS, label),
                ("math500", "math500", "solution", row["solution"] + EOS, label)]
    for row in read_jsonl(data_dir / "aime2024.jsonl"):
        label = str(int(row["answer"]))  # the hub's Answer column is int64
        out += [("aime2024", "aime2024", "boxed", f"Counting.\nThe final answer is $\\boxed{{{label}}}$.{EOS}", label),
                ("aime2024", "aime2024", "json",
                 json.dumps({"thought process": "Counting.", "final answer": label}) + EOS, label),
                ("aime2024", "aime2024", "solution", row["solution"] + EOS, label)]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--golden", default=str(ROOT / "tests" / "data" / "golden_grading.jsonl"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: dict[str, list[int]] = {}
    examples: dict[str, list] = {}

    def count(group: str, prompt: str, model: str, dataset: str, text: str, label: str) -> None:
        paper = Grader(prompt if prompt != "solution" else "boxed", grading="paper", model=model)
        numeric = Grader(paper.prompt, grading="numeric", model=model)
        a, b = paper.judge(text, dataset, label)[1], numeric.judge(text, dataset, label)[1]
        stats = rows.setdefault(group, [0, 0, 0, 0])
        stats[0] += 1
        stats[1] += a
        stats[2] += b
        stats[3] += a != b
        if a != b and len(examples.setdefault(group, [])) < 3:
            examples[group].append((label, paper.extract(text, dataset, label), a, b))

    for group, dataset, prompt, text, label in label_texts(Path(args.data_dir)):
        count(f"{group} labels, {prompt}", prompt, "Qwen2.5-7B-Instruct", dataset, text, label)
    for case in read_jsonl(Path(args.golden)):
        count(f"golden {case['dataset']}, {case['prompt']}", case["prompt"], case["model"], case["dataset"],
              case["text"], case["ground_truth"])
    print("| answers | n | right (paper) | right (numeric) | disagree |\n|---|---:|---:|---:|---:|")
    total = [0, 0, 0, 0]
    for group, (n, a, b, d) in rows.items():
        print(f"| {group} | {n} | {a} | {b} | {d} ({100 * d / n:.1f}%) |")
        total = [x + y for x, y in zip(total, (n, a, b, d))]
    print(f"| all | {total[0]} | {total[1]} | {total[2]} | {total[3]} ({100 * total[3] / total[0]:.1f}%) |")
    print("\nexamples (label, pred, paper, numeric):")
    for group, items in examples.items():
        print(f"  {group}: {items}")
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
