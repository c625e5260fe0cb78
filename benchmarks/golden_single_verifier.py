"""Golden cases for GradCuit's single verifier, made by running GradCuit's OWN functions.

    python benchmarks/golden_single_verifier.py GRADCUIT_SRC [--output tests/data/golden_single_verifier.jsonl]

GRADCUIT_SRC is the ``src`` folder of a copy of github:Yuzhaoxin946/GradCuit (commit 8e143b5; its code is not part of
this repository). The script imports, from there:

- ``rewards/single_verifier_reward.py``: ``SingleVerifierRewardModel._extract_verifier_answer_fragment``,
  ``_boxed_verdict`` (the verdict parser) and ``get_reward`` (extraction -> prompt -> verdict -> R, with the
  server call replaced by a scripted response; the client is never built);
- ``prompts/single_verifier_prompts.py``: ``get_single_verifier_prompt`` (the verbatim prompt);
- ``extract_judge_answer/utils.py``: ``extract_answer`` (GradCuit's answer extraction per dataset).

GradCuit imports modules its copy does not carry or this machine need not have (``openai``; ``math_equivalent_MATH``
and ``grader`` for MATH-500 *judging*, which is not used here): those are stubbed, and a stub that is called fails
the script. MATH-500 extraction needs ``word2number`` (GradCuit raises without it); install it to get those cases.

Each output line is one case: ``{"kind": "verdict" | "prompt" | "extract" | "reward", ...inputs, ...outputs}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

# Verifier responses: the forms a model writes, edge cases of the brace matching and of the word rule.
RESPONSES = [
    "The answer checks out.\n\\boxed{True}",
    "Substituting back gives 7, not 5.\n\\boxed{False}",
    "\\boxed{true}",
    "\\boxed{ FALSE }",
    "\\boxed{\\text{True}}",
    "\\boxed{\\textbf{False}}",
    "\\boxed{\\mathrm{True}}",
    "\\boxed{\\operatorname{False}}",
    "\\boxed{\\text{\\textbf{True}}}",
    "\\boxed{\\textit{True}}",
    "$\\boxed{True}$",
    "**\\boxed{True}**",
    "\\boxed{**False**}",
    "\\boxed{$True$}",
    "\\boxed{'True'}",
    "\\boxed{True.}",
    "\\boxed{True, the answer is correct}",
    "\\boxed{True or False}",
    "\\boxed{not true}",
    "\\boxed{Truely}",
    "\\boxed{T}",
    "\\boxed{Yes}",
    "\\boxed{5}",
    "\\boxed{}",
    "\\boxed{\nTrue\n}",
    "\\fbox{True}",
    "\\FBOX{False}",
    "boxed{True}",
    "\\\\boxed{False}",
    "\\boxed {True}",
    "\\BOXED{True}",
    "\\boxed{True} at first, but on reflection \\boxed{False}",
    "\\boxed{False} then \\boxed{True",
    "\\boxed{\\frac{1}{2}} is the answer, so the verdict is \\boxed{True}",
    "Verdict: \\boxed{\\text{True}}. (I use exactly \\boxed{True} or \\boxed{False}.)",
    "The final answer is correct.",
    "FINAL VERIFICATION ANSWER IS: True",
    "",
    "\\boxed{True}}",
    "\\boxed{{True}}",
    "\\boxed{\\text{True} and more}",
    "\\boxed{ \\text{ False } }",
]

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to her friends in "
            "May. How many clips did Natalia sell altogether in April and May?")
GPQA_QUESTION = "Which gas is a noble gas?\nAnswer Choices: (A) Oxygen (B) Neon (C) Nitrogen (D) Chlorine"
PROMPTS = [
    (QUESTION, "72", "openai/gsm8k"),
    ("What is $\\frac{1}{2} + \\frac{1}{3}$?", "\\frac{5}{6}", "HuggingFaceH4/MATH-500"),
    ("A question with {braces} and a 100% sign?", "{x}", "my_data.jsonl"),
    (GPQA_QUESTION, "B", "gpqa_diamond"),
    (GPQA_QUESTION, "B", "Idavidrein/gpqa"),
]

SOLUTIONS = [
    "She sold 48 / 2 = 24 in May, so 48 + 24 = 72 in total. The answer is \\boxed{72}.",
    "48 + 24 = 72",
    "In May: 24 clips.\nAnswer: 72 clips.",
    "48/2 = 24 and 48 + 24 = 72 clips altogether, the answer is 72 dollars",
    "The total is $1,234.50",
    "She sold \\boxed{72} clips. Then \\boxed{73}.",
    "\\boxed{ $ 72 }",
    "\\boxed{-3}",
    "\\boxed{72.0}",
    "\\boxed{x + 1} is not a number; 5 apples and 7 pears",
    "I do not know.",
    "",
    "{\"answer\": \"72\"}",
    "```json\n{\"answer\": 72}\n```",
    "The result: {\"answer\": \"$1,000\"} done",
    "{\"final answer\": \"72\"}",
    "{\"answer\": \"72\", \"note\": \"x\"}",
    "The answer is \\boxed{\\frac{5}{6}}.",
    "So $x = \\boxed{\\dfrac{1}{2}}$",
    "\\boxed{10\\%}",
    "the final answer is five",
    "The answer is (B).",
    "\\boxed{B}",
    "Final answer: C",
    "I think A or B.",
]
EXTRACT_DATASETS = [("openai/gsm8k", 0), ("openai/gsm8k", 1), ("HuggingFaceH4/MATH-500", 0),
                    ("HuggingFaceH4/MATH-500", 1), ("gpqa_diamond", 0), ("gpqa_diamond", 1)]

REWARD_CASES = [  # (solution, scripted verifier response or None when it must not be asked)
    ("48 + 24 = 72. \\boxed{72}", "Checking: 48 + 24 = 72.\n\\boxed{True}"),
    ("48 + 24 = 72. \\boxed{72}", "\\boxed{False}"),
    ("48 + 24 = 72. \\boxed{72}", "It looks right."),
    ("48 + 24 = 72. \\boxed{72}", "\\boxed{Maybe}"),
    ("I do not know.", None),
    ("", None),
]


def _stub(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _unavailable(what: str):
    def call(*_args, **_kwargs):
        raise RuntimeError(f"{what} was called: it is stubbed by this script")
    return call


def load_gradcuit(src: Path):
    """Import GradCuit's modules from `src` with stubs for what its copy lacks; returns (reward_cls, prompt_fn,
    extract_fn)."""
    if not (src / "rewards" / "single_verifier_reward.py").is_file():
        raise SystemExit(f"error: {src} is not GradCuit's src folder (no rewards/single_verifier_reward.py)")
    sys.path.insert(0, str(src))
    if importlib.util.find_spec("openai") is None:
        sys.modules["openai"] = _stub("openai", OpenAI=_unavailable("openai.OpenAI"))
    # extract_judge_answer/__init__.py, math_equivalent_MATH.py and grader.py are not in the copy: a package
    # shell, and stubs for the MATH-500 judging helpers (extraction does not call them)
    package = _stub("extract_judge_answer")
    package.__path__ = [str(src / "extract_judge_answer")]
    sys.modules["extract_judge_answer"] = package
    sys.modules["extract_judge_answer.math_equivalent_MATH"] = _stub(
        "extract_judge_answer.math_equivalent_MATH", is_equiv=_unavailable("is_equiv"))
    sys.modules["extract_judge_answer.grader"] = _stub(
        "extract_judge_answer.grader", math_equal_process=_unavailable("math_equal_process"))
    utils = importlib.import_module("extract_judge_answer.utils")
    package.extract_answer = utils.extract_answer
    package.extract_true_answer = utils.extract_true_answer
    package.judge_answer = utils.judge_answer
    reward_module = importlib.import_module("rewards.single_verifier_reward")
    prompts = importlib.import_module("prompts.single_verifier_prompts")
    return reward_module.SingleVerifierRewardModel, prompts.get_single_verifier_prompt, utils.extract_answer


def cases(src: Path) -> list[dict]:
    reward_cls, prompt_fn, extract_fn = load_gradcuit(src)
    out: list[dict] = []
    for response in RESPONSES:
        out.append({"kind": "verdict", "response": response,
                    "fragment": reward_cls._extract_verifier_answer_fragment(response),
                    "verdict": reward_cls._boxed_verdict(response)})
    for question, answer, data_name in PROMPTS:
        out.append({"kind": "prompt", "question": question, "answer": answer, "data_name": data_name,
                    "prompt": prompt_fn(question, answer, data_name)})
    math_ok = importlib.util.find_spec("word2number") is not None
    for data_name, prompt_idx in EXTRACT_DATASETS:
        if "MATH" in data_name and not math_ok:
            print(f"skipped {data_name}: word2number is not installed", file=sys.stderr)
            continue
        for text in SOLUTIONS:
            out.append({"kind": "extract", "data_name": data_name, "prompt_idx": prompt_idx, "text": text,
                        "extracted": extract_fn(text, data_name=data_name, prompt_idx=prompt_idx)})
    for solution, response in REWARD_CASES:
        model = reward_cls(data_name="openai/gsm8k", prompt_idx=0, model_name="meta-llama/Llama-3.2-3B-Instruct",
                           request_model_name="verifier", vllm_base_url="http://127.0.0.1:9/v1", vllm_timeout=1.0)
        asked: list[str] = []

        def scripted(prompt, response=response, asked=asked):
            asked.append(prompt)
            if response is None:
                raise AssertionError("the verifier was asked although no answer was extracted")
            return response, reward_cls._boxed_verdict(response)

        model._verify = scripted
        value, details = model.get_reward(QUESTION, solution)
        out.append({"kind": "reward", "data_name": "openai/gsm8k", "question": QUESTION, "solution": solution,
                    "response": response, "reward": value, "asked": len(asked), "details": details})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gradcuit_src", type=Path, help="the src folder of a GradCuit copy (commit 8e143b5)")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data"
                        / "golden_single_verifier.jsonl")
    args = parser.parse_args(argv)
    rows = cases(args.gradcuit_src.resolve())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("verdict", "prompt", "extract", "reward")}
    print(f"{len(rows)} cases -> {args.output} ({counts})")


if __name__ == "__main__":
    main()
