"""Solver prompts (the paper's prompt 0 = boxed, prompt 1 = JSON) and the self-reward verifier prompts.

Prompts are chat messages; question and answer text only ever fill the ``content`` of a
message (never ``str.format`` on dataset text, never the template's control tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

PROMPTS = ("boxed", "json")

BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

JSON_INSTRUCTIONS = (
    "You are a precise math question solver. Solve the following math problem.\n"
    "Think step by step. Give your thought process and your final answer separately, responding in JSON "
    'with the keys "thought process" and "final answer", for example: '
    '{"thought process": "your step by step reasoning", "final answer": "your final answer"}.'
)
NUMERIC_FINAL_ANSWER = (
    " The final answer must be a bare number: no calculation, no units, no explanation."
)


def solver_messages(question: str, prompt: str = "boxed", dataset: str = "jsonl") -> list[dict]:
    """The solver prompt c for a question: ``boxed`` (prompt 0) or ``json`` (prompt 1)."""
    if prompt == "boxed":
        return [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": question}]
    if prompt == "json":
        numeric = dataset in ("gsm8k", "aime2024", "jsonl")
        instructions = JSON_INSTRUCTIONS + (NUMERIC_FINAL_ANSWER if numeric else "")
        return [{"role": "system", "content": instructions}, {"role": "user", "content": "QUESTION: " + question}]
    raise ValueError(f"--model.prompt {prompt!r}: choose one of {', '.join(PROMPTS)}")


# ------------------------------------------------------------------------- self-reward verifiers
VERDICT_MARKER = "FINAL VERIFICATION ANSWER IS:"

VERIFIER_ROLE = "Now verify the solution you just wrote, critically: never assume that it is correct."


@dataclass(frozen=True)
class VerifierCheck:
    """One self-reward check: its name, weight in R and the instruction the verifier follows."""

    name: str
    weight: float
    instruction: str


# Short task lines: everything the checks share sits before them in the prompt (one prefix cache),
# the task lines are what each of the four verifier rows prefills on its own.
VERIFIER_CHECKS = (
    VerifierCheck("calculation_check", 2.0, "Check each calculation in the solution, step by step. Are all of them correct?"),
    VerifierCheck("answer_correct", 1.0, "Solve the question yourself. Is the final answer of the solution correct?"),
    VerifierCheck("answer_completeness", 2.0,
                  "Does the solution end with one clear, complete final answer to exactly what was asked?"),
    VerifierCheck("understanding_check", 1.0,
                  "Does the solution understand the question: does it use the given facts and answer what was asked?"),
)


def verifier_messages(solver: Sequence[dict], solution: str, check: VerifierCheck,
                      marker: str = VERDICT_MARKER) -> list[dict]:
    """One verifier prompt: the solver's conversation (prompt c, `solver_messages`), the solution as the
    assistant's turn, then the check as a new user turn.

    The verifier prompt thus starts with exactly the tokens the solver has just decoded (prompt +
    answer), whose KV cache is still at hand (`FrozenLM._keep_sequence`), and everything but the
    check's own task line comes before it: the four checks share one prefix cache and only their
    short task lines are prefilled apart.
    """
    request = (
        VERIFIER_ROLE + " Reason briefly about the task below, then end with exactly one line '"
        + marker + " True' if the answer to the task is yes, or '" + marker + " False' if it is no.\n"
        + "TASK: " + check.instruction
    )
    return [*solver, {"role": "assistant", "content": solution}, {"role": "user", "content": request}]
