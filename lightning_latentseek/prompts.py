"""Solver prompts (the paper's prompt 0 = boxed, prompt 1 = JSON) and the self-reward verifier prompts.

Prompts are chat messages; question and answer text only ever fill the ``content`` of a
message (never ``str.format`` on dataset text, never the template's control tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

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

VERIFIER_SYSTEM = (
    "You are a critical verifier of math solutions. You check a proposed solution carefully and "
    "never assume that it is correct."
)


@dataclass(frozen=True)
class VerifierCheck:
    """One self-reward check: its name, weight in R and the instruction the verifier follows."""

    name: str
    weight: float
    instruction: str


VERIFIER_CHECKS = (
    VerifierCheck("calculation_check", 2.0,
                  "Check every calculation in the proposed solution, one step at a time. "
                  "Are all of its calculations correct?"),
    VerifierCheck("answer_correct", 1.0,
                  "Solve the question yourself and compare your result with the proposed solution. "
                  "Is the final answer of the proposed solution correct?"),
    VerifierCheck("answer_completeness", 2.0,
                  "Does the proposed solution end with one complete, clearly stated final answer to exactly "
                  "what the question asks (the requested quantity, fully simplified, not a partial result)?"),
    VerifierCheck("understanding_check", 1.0,
                  "Does the proposed solution understand the question correctly: does it use the facts given, "
                  "relate the quantities correctly and answer what was asked?"),
)


def verifier_messages(question: str, solution: str, check: VerifierCheck, marker: str = VERDICT_MARKER) -> list[dict]:
    """One verifier prompt. Everything but the check's own task comes first (question, solution, how to
    answer), so the four checks share one prefix cache and only the short task lines differ."""
    content = (
        "QUESTION:\n" + question + "\n\nPROPOSED SOLUTION:\n" + solution + "\n\n"
        + "Answer the task below about the proposed solution. Reason briefly, then end with exactly one line '"
        + marker + " True' if the answer to the task is yes, or '" + marker + " False' if it is no.\n"
        + "TASK: " + check.instruction
    )
    return [{"role": "system", "content": VERIFIER_SYSTEM}, {"role": "user", "content": content}]
