"""Prompt sets: the solver prompts (prompt 0 = boxed, prompt 1 = JSON) and the self-reward verifier prompts.

Two named prompt sets (`PROMPT_SETS`):

* ``paper`` (default): the original LatentSeek prompts, character for character. Solver prompts are
  those of bigai-nlco/LatentSeek ``src/prompts/solver_prompts.py`` (``gsm8k_prompt``,
  ``MATH_500_prompt``, ``AIME_2024_prompt``); each verifier prompt is ONE fresh user message, the
  text of ``src/prompts/vera_prompts.py`` ``get_vera_prompt`` (`get_vera_prompt` here).
* ``compact``: the same solver prompts; each verifier prompt continues the solver's conversation
  (prompt c, the solution as the assistant's turn) with a short per-check task as a new user turn,
  so the four checks share the KV cache of prompt + answer and prefill only their task lines.

Prompts are chat messages; question and solution text only ever fill the ``content`` of a message
(inserted as given: never ``str.format`` on dataset text, never the template's control tokens).

``python -m lightning_latentseek.prompts --question Q --solution S [--render]`` prints the messages
(and, with ``--render``, the chat-template text and tokens of an LLM) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Sequence, get_args

from lightning_latentseek.config import DatasetName, Prompt, PromptSet

PROMPTS = get_args(Prompt)  # ("boxed", "json")
PROMPT_SETS = get_args(PromptSet)  # ("paper", "compact")
DEFAULT_PROMPT_SET = "paper"
# Datasets a solver prompt exists for; "jsonl" and "arith" (numeric answers) use the GSM8K prompt.
DATASETS = get_args(DatasetName)

VERDICT_MARKER = "FINAL VERIFICATION ANSWER IS:"


def _choice(option: str, value: str, choices: Sequence[str]) -> None:
    """Raise a one-line ValueError when `value` is not one of `choices`."""
    if value not in choices:
        raise ValueError(f"{option} {value!r}: choose one of {', '.join(choices)}")


# ------------------------------------------------------------------------------------ solver prompts
# From bigai-nlco/LatentSeek src/prompts/solver_prompts.py (MIT licence), copied literally,
# trailing spaces included.
BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
JSON_SYSTEM = "You are a precise math question solver. Solve this math problem. "
JSON_REQUEST = (
    "Let's think step by step. "
    "Please provide your thought process and your final answer separately and response in json format "
    "containing the keys \"thought process\" and \"final answer\". "
    "For example your response should be "
    "{\"thought process\": \"your thought process\", \"final answer\": \"your final answer\"}. "
)
# Present in gsm8k_prompt and AIME_2024_prompt, absent in MATH_500_prompt.
JSON_NUMERIC_NOTE = (
    "Note that the final answer should be pure numbers, not the calculation formulas, "
    "and without any units or explanation!!! "
)
_NUMERIC_PROMPT_DATASETS = ("gsm8k", "aime2024", "jsonl", "arith")


def solver_messages(question: str, prompt: str = "boxed", dataset: str = "jsonl",
                    prompt_set: str = DEFAULT_PROMPT_SET) -> list[dict]:
    """The solver prompt c for a question: ``boxed`` (prompt 0) or ``json`` (prompt 1).

    ``boxed``: the system line asking for ``\\boxed{}``, then the question as the user turn.
    ``json``: the original's JSON system line, then ``"QUESTION: {question} \\n"`` followed by the
    JSON request; GSM8K, AIME (and the numeric ``jsonl``/``arith`` data) add the "pure numbers" note.
    Both prompt sets use these same solver prompts.
    """
    _choice("--model.prompt", prompt, PROMPTS)
    _choice("dataset", dataset, DATASETS)
    _choice("prompt_set", prompt_set, PROMPT_SETS)
    if prompt == "boxed":
        return [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": question}]
    note = JSON_NUMERIC_NOTE if dataset in _NUMERIC_PROMPT_DATASETS else ""
    return [{"role": "system", "content": JSON_SYSTEM},
            {"role": "user", "content": f"QUESTION: {question} \n" + JSON_REQUEST + note}]


# ---------------------------------------------------------------------------------- verifier checks
@dataclass(frozen=True)
class VerifierCheck:
    """One self-reward check: its name, its weight in R, and the short instruction the ``compact``
    verifier prompt gives (the ``paper`` prompt of a check is looked up by its name)."""

    name: str
    weight: float
    instruction: str


# The compact layout's short task lines: everything the checks share sits before them in the prompt
# (one prefix cache); the task lines are what each of the four verifier rows prefills on its own.
VERIFIER_CHECKS = (
    VerifierCheck("calculation_check", 2.0, "Check each calculation in the solution, step by step. Are all of them correct?"),
    VerifierCheck("answer_correct", 1.0, "Solve the question yourself. Is the final answer of the solution correct?"),
    VerifierCheck("answer_completeness", 2.0,
                  "Does the solution end with one clear, complete final answer to exactly what was asked?"),
    VerifierCheck("understanding_check", 1.0,
                  "Does the solution understand the question: does it use the given facts and answer what was asked?"),
)
_CHECKS_BY_NAME = {check.name: check for check in VERIFIER_CHECKS}

COMPACT_VERIFIER_ROLE = "Now verify the solution you just wrote, critically: never assume that it is correct."


# ------------------------------------------------------------------------- paper verifier prompts
# The verifier prompts below are copied literally from bigai-nlco/LatentSeek
# src/prompts/vera_prompts.py (MIT licence); the prompts come from Multi-Agent Verification
# (Lifshitz et al. 2025, "Multi-Agent Verification: Scaling Test-Time Compute with Multiple
# Verifiers"). Only the verdict marker is a parameter (default: the original's VERA_ANSWER_SYMBOL).
def get_vera_prompt(vera_name: str, question: str, solution: str, marker: str = VERDICT_MARKER) -> str:
    """The original verifier prompt `vera_name` for (question, solution): the text of
    ``get_vera_prompt`` in the original's ``src/prompts/vera_prompts.py``, character for character
    (with ``marker`` in place of its ``VERA_ANSWER_SYMBOL``)."""
    _choice("verifier check", vera_name, tuple(_CHECKS_BY_NAME))
    VERA_ANSWER_SYMBOL = marker  # noqa: N806 - the original's name, so the strings below stay literal copies
    system_str_math = (
        "You are a critical verifier tasked with evaluating mathematical problem-solving. "
        "You will be presented with a question and a proposed solution. "
        "Your job is to carefully go over and analyze the solution. Follow the instructions."
    )

    math_prefix = f"""{system_str_math}\n\n
    QUESTION:
    {question}\n\n
    PROPOSED SOLUTION:
    {solution}\n\n"""

    vera_names_to_prompts = {
        "calculation_check": (
            f"{math_prefix}"
            "INSTRUCTIONS:\n"
            "1. EXTRACT CALCULATION EXPRESSIONS: Extract all the mathematical calculations from the PROPOSED SOLUTION.\n"
            "2. INDEPENDENT RECOMPUTATION: Break down the calculations step-by-step and recompute them.\n"
            f"3. VERIFY: Compare your recomputation with the PROPOSED SOLUTION. If any discrepancy is found, output '{VERA_ANSWER_SYMBOL}False'. If all steps are correct, output '{VERA_ANSWER_SYMBOL}True'.\n\n"
            "NOTE: You ONLY need to check calculations(like 1 + 1 = 2, 2 * 3 = 6, etc). Ignore standalone numbers(like 1, 2, 3, etc) that are not part of a computation.\n\n"
        ),

        "answer_correct": (
            f"{math_prefix}"
            "INSTRUCTIONS:\n"
            "Your task is to determine whether the provided answer is correct.\n"
            "Think through the verification process carefully and logically.\n"
            "IMPORTANT RULES:\n"
            "1. Do NOT analyze the steps or methods used to arrive at the answer.\n"
            "2. Only evaluate the final answer's correctness.\n"
            "3. Your response must strictly follow the required format:\n"
            f"- If the answer is correct, respond with: '{VERA_ANSWER_SYMBOL}True'.\n"
            f"- If the answer is incorrect, respond with: '{VERA_ANSWER_SYMBOL}False'.\n"
        ),
        "answer_completeness": (
            f"{math_prefix}"
            "INSTRUCTIONS:\n"
            "Your task is to verify whether the solution provides a complete and final answer.\n"
            "Follow these rules carefully:\n"
            "1. Check if the solution reaches a clear and definitive final answer.\n"
            "2. The answer must not be left incomplete, such as:\n"
            "   - Ending with an unresolved expression or formula instead of a computed result.\n"
            "   - Missing a conclusion or final statement explicitly stating the final answer.\n"
            "3. If the solution is incomplete or lacks a final answer, immediately stop checking further and respond in the exact format:\n"
            f"   - '{VERA_ANSWER_SYMBOL}False'\n"
            "4. If the solution is complete and provides a final, explicit answer, respond in the exact format:\n"
            f"   - '{VERA_ANSWER_SYMBOL}True'\n"

            "Examples:\n"
            "Example 1:\n"
            "final answer: 8.\n"
            f"Your response: '{VERA_ANSWER_SYMBOL}True' (The solution provides a final, definitive answer of 8.)\n"

            "Example 2:\n"
            "final answer: The area of the circle is πr², where r = 4.\n"
            f"Your response: '{VERA_ANSWER_SYMBOL}False' (The answer ends with an unresolved formula, not a computed result.)\n"

            "Example 3:\n"
            "final answer: This question does not have an answer./I cannot solve this problem.\n"
            f"Your response: '{VERA_ANSWER_SYMBOL}False' (The solution lacks a clear, final answer.)\n"
        ),
        "understanding_check": (
            f"{math_prefix}"
            "INSTRUCTIONS:\n"
            "1. PROBLEM INTERPRETATION:\n"
            "   - Assess if the proposed solution clearly understands the problem statement.\n"
            "   - Ensure that the proposed solution addresses all relevant aspects of the problem, without ignoring any key detail.\n"
            "   - Flag if the solution misinterprets or overlooks the problem's core requirements or scope.\n\n"

            "2. ALIGNMENT WITH THE TASK:\n"
            "   - Verify that the solution responds to the specific question or task outlined in the problem statement.\n"
            "   - Ensure that the solution does not deviate from the problem’s context or provides an unrelated answer.\n"
            "   - Check if any critical parts of the problem have been misinterpreted or neglected.\n\n"

            "3. TERMINATION PROTOCOL:\n"
            "   - If the solution clearly misinterprets or fails to address the problem correctly, stop and respond in the exact format:\n"
            f"     - '{VERA_ANSWER_SYMBOL}False'\n"
            "   - If the solution accurately captures the problem statement and aligns with the required solution, respond in the exact format:\n"
            f"     - '{VERA_ANSWER_SYMBOL}True'\n"

            "EXAMPLES:\n"
            "[Case 1] Problem: A shop is selling a drink at 1.5 times the original price. If the original price is $10, what is the new price?\n"
            "  Solution: The new price is 1.15 * $10 = $11.50.\n"
            "  Assessment: The solution misinterprets the problem by calculating 1.15 times the original price instead of 1.5 times.\n"
            f"  Result: '{VERA_ANSWER_SYMBOL}False'\n\n"

            "[Case 2] Problem: The second cup of coffee is half price. If the first cup costs $5, how much is the second cup?\n"
            "  Solution: The second cup costs $5 * 0.5 = $2.50.\n"
            "  Assessment: The solution correctly interprets the price as half the original price for the second cup.\n"
            f"  Result: '{VERA_ANSWER_SYMBOL}True'\n\n"

            "[Case 3] Problem: A pizza has a radius of 8 inches. What is the area of the pizza?\n"
            "  Solution: The area is π * r², where r = 4 inches. The area is 16π square inches.\n"
            "  Assessment: The solution misinterprets the formula for the area of a circle by using the radius incorrectly.\n"
            f"  Result: '{VERA_ANSWER_SYMBOL}False'\n\n"

            "[Case 4] Problem: A train is moving at 60 km/h towards the east. What is its velocity after 2 hours?\n"
            "  Solution: The velocity is 120 km/h west.\n"
            "  Assessment: The solution correctly calculates the speed, but misinterprets the direction as west instead of east.\n"
            f"  Result: '{VERA_ANSWER_SYMBOL}False'\n\n"

            "CRITICAL REQUIREMENTS:\n"
            "- Assess whether the solution addresses all parts of the problem.\n"
            "- Ensure the solution does not deviate from the problem’s intent.\n"
            "- Use exact output formats specified, showing no tolerance for misinterpretations."
        ),

    }
    return vera_names_to_prompts[vera_name]


def verifier_messages(question: str, solution: str, check: str | VerifierCheck,
                      prompt_set: str = DEFAULT_PROMPT_SET, solver: Sequence[dict] | None = None, *,
                      prompt: str = "boxed", dataset: str = "jsonl", marker: str = VERDICT_MARKER) -> list[dict]:
    """One verifier prompt for (question, solution) and a check (its name or a `VerifierCheck`).

    ``paper``: exactly one fresh user message holding `get_vera_prompt` (one of the four
    `VERIFIER_CHECKS` names; the solver conversation is not part of it).
    ``compact``: the solver's conversation (``solver``, or `solver_messages` for question, prompt and
    dataset when None), the solution as the assistant's turn, then the check's short instruction as a
    new user turn. That prompt starts with exactly the tokens the solver has just decoded (prompt +
    answer), whose KV cache is still at hand, and everything but the check's own task line comes
    before it: the checks share one prefix cache and only their short task lines are prefilled apart.
    A custom `VerifierCheck` (any name, own instruction) works with ``compact`` only.
    """
    _choice("prompt_set", prompt_set, PROMPT_SETS)
    if prompt_set == "paper":
        name = check.name if isinstance(check, VerifierCheck) else check
        return [{"role": "user", "content": get_vera_prompt(name, question, solution, marker)}]
    if not isinstance(check, VerifierCheck):
        _choice("verifier check", check, tuple(_CHECKS_BY_NAME))
        check = _CHECKS_BY_NAME[check]
    if solver is None:
        solver = solver_messages(question, prompt, dataset, prompt_set)
    request = (
        COMPACT_VERIFIER_ROLE + " Reason briefly about the task below, then end with exactly one line '"
        + marker + " True' if the answer to the task is yes, or '" + marker + " False' if it is no.\n"
        + "TASK: " + check.instruction
    )
    return [*solver, {"role": "assistant", "content": solution}, {"role": "user", "content": request}]


# ------------------------------------------------------------------------------------------- CLI
class _ArgumentError(Exception):
    """A bad command-line argument (reported as one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing the usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise _ArgumentError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="python -m lightning_latentseek.prompts",
                     description="Print the solver and verifier prompts of a prompt set as JSON.")
    parser.add_argument("--prompt_set", default=DEFAULT_PROMPT_SET, choices=PROMPT_SETS)
    parser.add_argument("--dataset", default="gsm8k", choices=DATASETS)
    parser.add_argument("--prompt", default="boxed", choices=PROMPTS, help="solver prompt")
    parser.add_argument("--question", required=True, help="the question text, inserted as given")
    parser.add_argument("--solution", required=True, help="the solution the verifiers judge, inserted as given")
    parser.add_argument("--render", action="store_true",
                        help="also show each prompt after the LLM's chat template, and its tokens")
    parser.add_argument("--llm", default="smollm2", help="the LLM whose tokenizer renders (with --render)")
    return parser


def prompt_set_messages(question: str, solution: str, prompt: str = "boxed", dataset: str = "gsm8k",
                        prompt_set: str = DEFAULT_PROMPT_SET) -> dict:
    """``{"solver": messages, "verifiers": {check name: messages}}`` for the four `VERIFIER_CHECKS`."""
    solver = solver_messages(question, prompt, dataset, prompt_set)
    verifiers = {check.name: verifier_messages(question, solution, check.name, prompt_set, solver,
                                               prompt=prompt, dataset=dataset)
                 for check in VERIFIER_CHECKS}
    return {"solver": solver, "verifiers": verifiers}


def _rendered(llm, messages: Sequence[dict], add_special_tokens: bool = False) -> dict:
    """The chat-template text of `messages` (with the generation prompt) and the token strings of the
    ids the LLM is fed (`FrozenLM.encode_chat`: the solver prompt as ``tokenizer(text)``, the verifier
    prompts as ``apply_chat_template``; special-token strings inside a message stay text)."""
    text = llm.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    ids = llm.encode_chat(messages, add_special_tokens=add_special_tokens)
    return {"text": text, "tokens": llm.tokenizer.convert_ids_to_tokens(ids)}


def main(argv: list[str] | None = None) -> int:
    """Print the prompts as JSON; with ``--render`` add ``"rendered": {"solver": {text, tokens},
    "verifiers": {name: {text, tokens}}}``. Bad arguments: ``error: ...`` on stderr, exit status 2."""
    try:
        args = _parser().parse_args(argv)
        result = prompt_set_messages(args.question, args.solution, args.prompt, args.dataset, args.prompt_set)
        if args.render:
            from lightning_latentseek.engine import LLMLoadError, load_llm

            try:
                llm = load_llm(args.llm)
            except (LLMLoadError, OSError) as error:
                raise ValueError(str(error).replace("--model.llm", "--llm").splitlines()[0]) from None
            result["rendered"] = {
                "solver": _rendered(llm, result["solver"], add_special_tokens=True),
                "verifiers": {name: _rendered(llm, messages) for name, messages in result["verifiers"].items()},
            }
    except (_ArgumentError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
