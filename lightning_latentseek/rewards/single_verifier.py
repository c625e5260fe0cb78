"""GradCuit's single verifier (`--model.reward single_verifier`): one prompt per answer, built from the question and
the EXTRACTED final answer only (never the reasoning), one user message; the verdict is the first word of the
verifier's LAST brace-matched ``\\boxed{}``/``\\fbox{}``; R = 0 if it is "true", else -1 (False, no box, another
word). An answer from which nothing can be extracted gets R = -1 without asking.

Source: github:Yuzhaoxin946/GradCuit 8e143b5 (MIT): prompt `src/prompts/single_verifier_prompts.py:1-58`, parsing
`src/rewards/single_verifier_reward.py:62-119`, reward `:140-191`, request `:121-138` (temperature 0). Checked
against tests/data/golden_single_verifier.jsonl (GradCuit's own functions, benchmarks/golden_single_verifier.py).

The verifier is the solver's own engine (greedy, to its EOS or `--model.verifier_max_new_tokens`: no early stop,
since the last box wins), or an OpenAI-compatible server (`--model.reward_server`), as GradCuit runs it.
Answer extraction: GradCuit's GSM8K rules (`paper_grading.extract_number_gradcuit`) for numeric data with the boxed
prompt; otherwise the run's own extraction (README, Fidelity).
"""

from __future__ import annotations

import re
from typing import Sequence

from lightning_latentseek.config import PositiveInt
from lightning_latentseek.engine import GenerationEngine
from lightning_latentseek.grading import Grader, numeric_dataset
from lightning_latentseek.paper_grading import extract_number_gradcuit
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards.base import RewardResult
from lightning_latentseek.rewards.verifier import EngineVerifier, Verifier

_VERDICT_LINE = ("First verify carefully step by step. On the final line, put the final verification verdict inside "
                 "\\boxed{} using exactly \\boxed{True} or \\boxed{False}.\n")

MATH_TEMPLATE = (
    "You are a critical verifier for mathematical questions. "
    "You will be given the original question and one final answer. "
    "Decide whether that answer is correct for the question.\n\n"
    "QUESTION:\n{question}\n\n"
    "FINAL ANSWER:\n{answer}\n\n"
    "INSTRUCTIONS:\n"
    "1. Verify only the final answer. Do not evaluate any missing reasoning steps.\n"
    "2. Do not solve the problem independently from scratch unless a tiny auxiliary calculation is strictly "
    "necessary for verification.\n"
    "3. Prefer reverse verification methods such as substitution, plugging the answer back into the original "
    "conditions, checking algebraic consistency, checking boundary cases, or other direct validation targeted "
    "at the proposed answer.\n"
    "4. Accept mathematically equivalent forms when they represent the same final answer.\n"
    "5. If the final answer is correct, the verdict is True.\n"
    "6. If the final answer is incorrect, the verdict is False.\n"
    "7. " + _VERDICT_LINE
)

CHOICE_TEMPLATE = (  # GPQA-style multiple choice (GradCuit: dataset names containing gpqa_diamond, /gpqa, ...gpqa)
    "You are a critical verifier for graduate-level scientific multiple-choice questions. "
    "You will be given the original question, which already contains answer choices labeled A, B, C, and D, "
    "plus one extracted final answer letter.\n\n"
    "QUESTION:\n{question}\n\n"
    "FINAL ANSWER:\n{answer}\n\n"
    "INSTRUCTIONS:\n"
    "1. Treat this as a single-choice question. Exactly one option should be correct.\n"
    "2. Read the FINAL ANSWER as a letter and map it to the corresponding answer choice in the QUESTION.\n"
    "3. Verify only whether that selected choice is correct. Do not score missing reasoning steps.\n"
    "4. If the letter does not map cleanly to one of the provided answer choices, the verdict is False.\n"
    "5. If the selected option is the correct answer, the verdict is True.\n"
    "6. If the selected option is incorrect, ambiguous, or not uniquely justified by the question, the verdict is "
    "False.\n"
    "7. " + _VERDICT_LINE
)


def is_multiple_choice(dataset: str | None) -> bool:
    """GradCuit's `is_gpqa_dataset` rule (single_verifier_prompts.py:7-16), on the dataset's name."""
    name = (dataset or "").lower()
    return "gpqa_diamond" in name or "/gpqa" in name or name.endswith("gpqa")


def single_verifier_prompt(question: str, answer: str, dataset: str | None = None) -> str:
    """The verbatim prompt: the question and the extracted answer are pasted in as they are."""
    template = CHOICE_TEMPLATE if is_multiple_choice(dataset) else MATH_TEMPLATE
    head, rest = template.split("{question}")
    middle, tail = rest.split("{answer}")
    return head + question + middle + answer + tail  # a question holding "{answer}" stays as it is


_BOX_OPEN = re.compile(r"\\*(?:boxed|fbox)\s*\{", re.IGNORECASE)  # backslashes optional, as GradCuit's regex
_WRAPPER = re.compile(r"\\(?:text|textrm|textbf|mathrm|mathbf|operatorname)\s*\{(.*)\}", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[a-zA-Z]+")


def last_box(text: str) -> str | None:
    """The stripped content of the last ``boxed{``/``fbox{`` (any case, with or without backslashes, spaces before
    the brace) whose braces close; an unclosed last box yields to the one before it. None without one."""
    for opening in reversed(list(_BOX_OPEN.finditer(text))):
        depth = 0
        for i in range(opening.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[opening.end():i].strip()
    return None


def parse_boxed_verdict(text: str | None) -> bool | None:
    """True/False from the verifier's response, None when unreadable.

    The last box's content loses every ``*``, then surrounding whitespace and ``$``; up to three whole-content
    wrappers ``\\text{}``/``\\textrm{}``/``\\textbf{}``/``\\mathrm{}``/``\\mathbf{}``/``\\operatorname{}`` are peeled;
    the first run of ASCII letters (case-folded) must be exactly ``true`` or ``false``."""
    if text is None:
        return None
    content = last_box(str(text))
    if content is None:
        return None
    content = content.replace("*", "").strip().strip("$").strip()
    for _ in range(3):
        wrapped = _WRAPPER.fullmatch(content)
        if wrapped is None:
            break
        content = wrapped.group(1).strip()
    words = _WORD.findall(content.casefold())
    if not words or words[0] not in ("true", "false"):
        return None
    return words[0] == "true"


def extract_for_verifier(text: str, problem: Problem, grader: Grader | None = None) -> str | None:
    """The final answer the verifier is shown: GradCuit's `extract_answer` for GSM8K-style (numeric) data with the
    boxed prompt (utils.py:429-434: `_extract_answer`, without the "= number" rule); the run's own extraction
    otherwise (MATH-500: the last ``\\boxed{}``; the JSON prompts: their answer key)."""
    grader = grader or Grader()
    if numeric_dataset(problem.dataset, problem.answer) and grader.prompt == "boxed":
        return extract_number_gradcuit(text)
    return grader.extract(text, problem.dataset, problem.answer)


class SingleVerifier:
    """GradCuit's reward: R = 0 if the verifier boxes True for (question, extracted answer), else -1.

    Args:
        engine: the generation engine of the frozen LLM (the verifier is the solver's own model by default).
        grader: the run's `grading.Grader` (its prompt and extraction), where GradCuit's GSM8K rules do not apply.
        max_new_tokens: cap on each verifier response (`--model.verifier_max_new_tokens`; GradCuit's vLLM request
            sets none: the server's context limit).
        server: a `ChatServer` that answers instead of `engine`.

    The object keeps no state between calls: it is shared by every problem in flight.
    """

    def __init__(self, engine: GenerationEngine | None = None, grader: Grader | None = None,
                 max_new_tokens: PositiveInt = 4096, server: Verifier | None = None):
        if engine is None and server is None:
            raise ValueError("the single verifier needs the generation engine (engine=...) or a server")
        self.verifier: Verifier = server if server is not None else EngineVerifier(engine)
        self.grader, self.max_new_tokens = grader or Grader(), int(max_new_tokens)

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        return self.judge_many(problem, [answer])[0]

    def judge_many(self, problem: Problem, answers: Sequence[str]) -> list[RewardResult]:
        """Every answer with an extracted final answer is asked in one batch (or concurrently of the server)."""
        extracted = [extract_for_verifier(a, problem, self.grader) for a in answers]
        asked = [i for i, e in enumerate(extracted) if e is not None and str(e).strip()]
        conversations = [[{"role": "user", "content": single_verifier_prompt(problem.question, str(extracted[i]),
                                                                             problem.dataset)}] for i in asked]
        replies = dict(zip(asked, self.verifier.answer(conversations, self.max_new_tokens) if asked else []))
        results = []
        for i, found in enumerate(extracted):
            reply = replies.get(i)
            if reply is None:  # nothing to verify: R = -1, no request (single_verifier_reward.py:147-162)
                results.append(RewardResult(-1.0, {"extracted": found, "asked": False, "verdict": None}))
                continue
            verdict = parse_boxed_verdict(reply.text)
            details = {"extracted": found, "asked": True, "verdict": verdict, "verdict_failures": int(verdict is None),
                       "verifier_texts": {"single_verifier": reply.text}}
            results.append(RewardResult(0.0 if verdict is True else -1.0, details, verifier_tokens=reply.tokens))
        return results
