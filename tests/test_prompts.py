"""Prompt sets: the paper's solver and verifier prompts character for character, the compact layout, the CLI.

The expected texts below are spelled out literally (those of the ``paper`` set are the strings of the
original bigai-nlco/LatentSeek ``src/prompts/solver_prompts.py`` and ``vera_prompts.py`` for Q and S).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightning_latentseek import prompts
from lightning_latentseek.prompts import (PROMPT_SETS, VERDICT_MARKER, VERIFIER_CHECKS, VerifierCheck, get_vera_prompt,
                                          main, solver_messages, verifier_messages)

# Braces, quotes, a special-token string and a backslash: all must pass through as given.
Q = 'Tom has {3} apples and buys "4" more. <|im_end|> How many now?'
S = 'He has 3 + 4 = 7 apples.\nSo \\boxed{7} {}'

BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
JSON_SYSTEM = "You are a precise math question solver. Solve this math problem. "

JSON_USER_NUMERIC = (
    'QUESTION: Tom has {3} apples and buys "4" more. <|im_end|> How many now? \n'
    'Let\'s think step by step. Please provide your thought process and your final answer separately and response in json format containing the keys "thought process" and "final answer". For example your response should be {"thought process": "your thought process", "final answer": "your final answer"}. Note that the final answer should be pure numbers, not the calculation formulas, and without any units or explanation!!! '
)

JSON_USER_MATH500 = (
    'QUESTION: Tom has {3} apples and buys "4" more. <|im_end|> How many now? \n'
    'Let\'s think step by step. Please provide your thought process and your final answer separately and response in json format containing the keys "thought process" and "final answer". For example your response should be {"thought process": "your thought process", "final answer": "your final answer"}. '
)

PAPER_CALCULATION_CHECK = (
    'You are a critical verifier tasked with evaluating mathematical problem-solving. You will be presented with a question and a proposed solution. Your job is to carefully go over and analyze the solution. Follow the instructions.\n'
    '\n'
    '\n'
    '    QUESTION:\n'
    '    Tom has {3} apples and buys "4" more. <|im_end|> How many now?\n'
    '\n'
    '\n'
    '    PROPOSED SOLUTION:\n'
    '    He has 3 + 4 = 7 apples.\n'
    'So \\boxed{7} {}\n'
    '\n'
    'INSTRUCTIONS:\n'
    '1. EXTRACT CALCULATION EXPRESSIONS: Extract all the mathematical calculations from the PROPOSED SOLUTION.\n'
    '2. INDEPENDENT RECOMPUTATION: Break down the calculations step-by-step and recompute them.\n'
    "3. VERIFY: Compare your recomputation with the PROPOSED SOLUTION. If any discrepancy is found, output 'FINAL VERIFICATION ANSWER IS:False'. If all steps are correct, output 'FINAL VERIFICATION ANSWER IS:True'.\n"
    '\n'
    'NOTE: You ONLY need to check calculations(like 1 + 1 = 2, 2 * 3 = 6, etc). Ignore standalone numbers(like 1, 2, 3, etc) that are not part of a computation.\n'
    '\n'
)

PAPER_ANSWER_CORRECT = (
    'You are a critical verifier tasked with evaluating mathematical problem-solving. You will be presented with a question and a proposed solution. Your job is to carefully go over and analyze the solution. Follow the instructions.\n'
    '\n'
    '\n'
    '    QUESTION:\n'
    '    Tom has {3} apples and buys "4" more. <|im_end|> How many now?\n'
    '\n'
    '\n'
    '    PROPOSED SOLUTION:\n'
    '    He has 3 + 4 = 7 apples.\n'
    'So \\boxed{7} {}\n'
    '\n'
    'INSTRUCTIONS:\n'
    'Your task is to determine whether the provided answer is correct.\n'
    'Think through the verification process carefully and logically.\n'
    'IMPORTANT RULES:\n'
    '1. Do NOT analyze the steps or methods used to arrive at the answer.\n'
    "2. Only evaluate the final answer's correctness.\n"
    '3. Your response must strictly follow the required format:\n'
    "- If the answer is correct, respond with: 'FINAL VERIFICATION ANSWER IS:True'.\n"
    "- If the answer is incorrect, respond with: 'FINAL VERIFICATION ANSWER IS:False'.\n"
)

PAPER_ANSWER_COMPLETENESS = (
    'You are a critical verifier tasked with evaluating mathematical problem-solving. You will be presented with a question and a proposed solution. Your job is to carefully go over and analyze the solution. Follow the instructions.\n'
    '\n'
    '\n'
    '    QUESTION:\n'
    '    Tom has {3} apples and buys "4" more. <|im_end|> How many now?\n'
    '\n'
    '\n'
    '    PROPOSED SOLUTION:\n'
    '    He has 3 + 4 = 7 apples.\n'
    'So \\boxed{7} {}\n'
    '\n'
    'INSTRUCTIONS:\n'
    'Your task is to verify whether the solution provides a complete and final answer.\n'
    'Follow these rules carefully:\n'
    '1. Check if the solution reaches a clear and definitive final answer.\n'
    '2. The answer must not be left incomplete, such as:\n'
    '   - Ending with an unresolved expression or formula instead of a computed result.\n'
    '   - Missing a conclusion or final statement explicitly stating the final answer.\n'
    '3. If the solution is incomplete or lacks a final answer, immediately stop checking further and respond in the exact format:\n'
    "   - 'FINAL VERIFICATION ANSWER IS:False'\n"
    '4. If the solution is complete and provides a final, explicit answer, respond in the exact format:\n'
    "   - 'FINAL VERIFICATION ANSWER IS:True'\n"
    'Examples:\n'
    'Example 1:\n'
    'final answer: 8.\n'
    "Your response: 'FINAL VERIFICATION ANSWER IS:True' (The solution provides a final, definitive answer of 8.)\n"
    'Example 2:\n'
    'final answer: The area of the circle is πr², where r = 4.\n'
    "Your response: 'FINAL VERIFICATION ANSWER IS:False' (The answer ends with an unresolved formula, not a computed result.)\n"
    'Example 3:\n'
    'final answer: This question does not have an answer./I cannot solve this problem.\n'
    "Your response: 'FINAL VERIFICATION ANSWER IS:False' (The solution lacks a clear, final answer.)\n"
)

PAPER_UNDERSTANDING_CHECK = (
    'You are a critical verifier tasked with evaluating mathematical problem-solving. You will be presented with a question and a proposed solution. Your job is to carefully go over and analyze the solution. Follow the instructions.\n'
    '\n'
    '\n'
    '    QUESTION:\n'
    '    Tom has {3} apples and buys "4" more. <|im_end|> How many now?\n'
    '\n'
    '\n'
    '    PROPOSED SOLUTION:\n'
    '    He has 3 + 4 = 7 apples.\n'
    'So \\boxed{7} {}\n'
    '\n'
    'INSTRUCTIONS:\n'
    '1. PROBLEM INTERPRETATION:\n'
    '   - Assess if the proposed solution clearly understands the problem statement.\n'
    '   - Ensure that the proposed solution addresses all relevant aspects of the problem, without ignoring any key detail.\n'
    "   - Flag if the solution misinterprets or overlooks the problem's core requirements or scope.\n"
    '\n'
    '2. ALIGNMENT WITH THE TASK:\n'
    '   - Verify that the solution responds to the specific question or task outlined in the problem statement.\n'
    '   - Ensure that the solution does not deviate from the problem’s context or provides an unrelated answer.\n'
    '   - Check if any critical parts of the problem have been misinterpreted or neglected.\n'
    '\n'
    '3. TERMINATION PROTOCOL:\n'
    '   - If the solution clearly misinterprets or fails to address the problem correctly, stop and respond in the exact format:\n'
    "     - 'FINAL VERIFICATION ANSWER IS:False'\n"
    '   - If the solution accurately captures the problem statement and aligns with the required solution, respond in the exact format:\n'
    "     - 'FINAL VERIFICATION ANSWER IS:True'\n"
    'EXAMPLES:\n'
    '[Case 1] Problem: A shop is selling a drink at 1.5 times the original price. If the original price is $10, what is the new price?\n'
    '  Solution: The new price is 1.15 * $10 = $11.50.\n'
    '  Assessment: The solution misinterprets the problem by calculating 1.15 times the original price instead of 1.5 times.\n'
    "  Result: 'FINAL VERIFICATION ANSWER IS:False'\n"
    '\n'
    '[Case 2] Problem: The second cup of coffee is half price. If the first cup costs $5, how much is the second cup?\n'
    '  Solution: The second cup costs $5 * 0.5 = $2.50.\n'
    '  Assessment: The solution correctly interprets the price as half the original price for the second cup.\n'
    "  Result: 'FINAL VERIFICATION ANSWER IS:True'\n"
    '\n'
    '[Case 3] Problem: A pizza has a radius of 8 inches. What is the area of the pizza?\n'
    '  Solution: The area is π * r², where r = 4 inches. The area is 16π square inches.\n'
    '  Assessment: The solution misinterprets the formula for the area of a circle by using the radius incorrectly.\n'
    "  Result: 'FINAL VERIFICATION ANSWER IS:False'\n"
    '\n'
    '[Case 4] Problem: A train is moving at 60 km/h towards the east. What is its velocity after 2 hours?\n'
    '  Solution: The velocity is 120 km/h west.\n'
    '  Assessment: The solution correctly calculates the speed, but misinterprets the direction as west instead of east.\n'
    "  Result: 'FINAL VERIFICATION ANSWER IS:False'\n"
    '\n'
    'CRITICAL REQUIREMENTS:\n'
    '- Assess whether the solution addresses all parts of the problem.\n'
    '- Ensure the solution does not deviate from the problem’s intent.\n'
    '- Use exact output formats specified, showing no tolerance for misinterpretations.'
)

COMPACT_REQUEST = (
    "Now verify the solution you just wrote, critically: never assume that it is correct. Reason briefly about the "
    "task below, then end with exactly one line 'FINAL VERIFICATION ANSWER IS: True' if the answer to the task is "
    "yes, or 'FINAL VERIFICATION ANSWER IS: False' if it is no.\n"
    "TASK: "
)
COMPACT_TASKS = {
    "calculation_check": "Check each calculation in the solution, step by step. Are all of them correct?",
    "answer_correct": "Solve the question yourself. Is the final answer of the solution correct?",
    "answer_completeness": "Does the solution end with one clear, complete final answer to exactly what was asked?",
    "understanding_check":
        "Does the solution understand the question: does it use the given facts and answer what was asked?",
}
PAPER = {
    "calculation_check": PAPER_CALCULATION_CHECK,
    "answer_correct": PAPER_ANSWER_CORRECT,
    "answer_completeness": PAPER_ANSWER_COMPLETENESS,
    "understanding_check": PAPER_UNDERSTANDING_CHECK,
}
SOLVER = {
    ("gsm8k", "boxed"): [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": Q}],
    ("math500", "boxed"): [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": Q}],
    ("aime2024", "boxed"): [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": Q}],
    ("gsm8k", "json"): [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": JSON_USER_NUMERIC}],
    ("math500", "json"): [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": JSON_USER_MATH500}],
    ("aime2024", "json"): [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": JSON_USER_NUMERIC}],
    ("jsonl", "json"): [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": JSON_USER_NUMERIC}],
    ("arith", "json"): [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": JSON_USER_NUMERIC}],
}
CHECK_NAMES = ("calculation_check", "answer_correct", "answer_completeness", "understanding_check")


# ------------------------------------------------------------------------------------ solver prompts
@pytest.mark.parametrize("prompt_set", ["paper", "compact"])
@pytest.mark.parametrize(("dataset", "prompt"), list(SOLVER))
def test_solver_messages_are_the_papers(dataset: str, prompt: str, prompt_set: str) -> None:
    assert solver_messages(Q, prompt, dataset, prompt_set) == SOLVER[dataset, prompt]


def test_solver_messages_defaults() -> None:
    assert PROMPT_SETS == ("paper", "compact")
    assert solver_messages(Q) == SOLVER["gsm8k", "boxed"]
    assert solver_messages(Q, "json") == SOLVER["gsm8k", "json"]  # jsonl (the default) asks for numbers


def test_json_note_only_for_numeric_datasets() -> None:
    note = ("Note that the final answer should be pure numbers, not the calculation formulas, "
            "and without any units or explanation!!! ")
    assert solver_messages("x", "json", "gsm8k")[1]["content"].endswith(note)
    assert note not in solver_messages("x", "json", "math500")[1]["content"]


@pytest.mark.parametrize(("args", "message"), [
    (("q", "xml"), "--model.prompt 'xml': choose one of boxed, json"),
    (("q", "boxed", "svamp"), "dataset 'svamp': choose one of gsm8k, math500, aime2024, jsonl, arith"),
    (("q", "boxed", "gsm8k", "long"), "prompt_set 'long': choose one of paper, compact"),
])
def test_solver_messages_rejects_unknown_options(args: tuple, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        solver_messages(*args)
    assert str(raised.value) == message


# ---------------------------------------------------------------------------------- verifier prompts
def test_checks_and_weights() -> None:
    assert [(c.name, c.weight) for c in VERIFIER_CHECKS] == [
        ("calculation_check", 2.0), ("answer_correct", 1.0), ("answer_completeness", 2.0), ("understanding_check", 1.0)]
    assert VERDICT_MARKER == "FINAL VERIFICATION ANSWER IS:"


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_paper_verifier_is_one_fresh_user_message(check: str) -> None:
    expected = [{"role": "user", "content": PAPER[check]}]
    assert verifier_messages(Q, S, check) == expected
    assert verifier_messages(Q, S, check, "paper") == expected
    # the solver conversation plays no part in the paper layout, and a VerifierCheck is looked up by name
    assert verifier_messages(Q, S, VerifierCheck(check, 1.0, "ignored"), "paper", SOLVER["gsm8k", "json"]) == expected
    assert get_vera_prompt(check, Q, S) == PAPER[check]


def test_paper_verifier_keeps_the_originals_odd_characters() -> None:
    text = verifier_messages("q", "s", "answer_completeness")[0]["content"]
    assert "The area of the circle is \u03c0r\u00b2, where r = 4." in text
    understanding = verifier_messages("q", "s", "understanding_check")[0]["content"]
    assert "the problem\u2019s context" in understanding and "the problem\u2019s intent." in understanding
    assert understanding.endswith("showing no tolerance for misinterpretations.")  # no newline at its end


def test_paper_verifier_with_another_marker() -> None:
    text = verifier_messages("q", "s", "answer_correct", marker="VERDICT:")[0]["content"]
    assert text.endswith("- If the answer is correct, respond with: 'VERDICT:True'.\n"
                         "- If the answer is incorrect, respond with: 'VERDICT:False'.\n")


def test_paper_verifier_rejects_unknown_checks() -> None:
    with pytest.raises(ValueError, match="verifier check 'units': choose one of calculation_check, answer_correct"):
        verifier_messages(Q, S, "units")
    with pytest.raises(ValueError, match="prompt_set 'long'"):
        verifier_messages(Q, S, "answer_correct", "long")


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize(("dataset", "prompt"), list(SOLVER))
def test_compact_verifier_continues_the_solver_conversation(dataset: str, prompt: str, check: str) -> None:
    expected = [*SOLVER[dataset, prompt], {"role": "assistant", "content": S},
                {"role": "user", "content": COMPACT_REQUEST + COMPACT_TASKS[check]}]
    assert verifier_messages(Q, S, check, "compact", prompt=prompt, dataset=dataset) == expected
    assert verifier_messages(Q, S, check, "compact", SOLVER[dataset, prompt]) == expected


def test_compact_verifier_with_a_custom_check_and_marker() -> None:
    solver = [{"role": "user", "content": "q"}]
    assert verifier_messages("ignored", "s", VerifierCheck("units", 3.0, "Are the units right?"), "compact", solver,
                             marker="VERDICT:") == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "s"},
        {"role": "user", "content": (
            "Now verify the solution you just wrote, critically: never assume that it is correct. Reason briefly "
            "about the task below, then end with exactly one line 'VERDICT: True' if the answer to the task is yes, "
            "or 'VERDICT: False' if it is no.\nTASK: Are the units right?")},
    ]


# ------------------------------------------------------------------------------------------- CLI
def _expected_cli(prompt_set: str, dataset: str, prompt: str) -> dict:
    solver = SOLVER[dataset, prompt]
    if prompt_set == "paper":
        verifiers = {c: [{"role": "user", "content": PAPER[c]}] for c in CHECK_NAMES}
    else:
        verifiers = {c: [*solver, {"role": "assistant", "content": S},
                         {"role": "user", "content": COMPACT_REQUEST + COMPACT_TASKS[c]}] for c in CHECK_NAMES}
    return {"solver": solver, "verifiers": verifiers}


@pytest.mark.parametrize("prompt_set", ["paper", "compact"])
@pytest.mark.parametrize(("dataset", "prompt"), [("gsm8k", "json"), ("math500", "json"), ("aime2024", "boxed")])
def test_cli_prints_the_prompts_as_json(capsys, prompt_set: str, dataset: str, prompt: str) -> None:
    code = main(["--prompt_set", prompt_set, "--dataset", dataset, "--prompt", prompt, "--question", Q, "--solution", S])
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    printed = json.loads(out.out)
    assert list(printed) == ["solver", "verifiers"]
    assert list(printed["verifiers"]) == list(CHECK_NAMES)
    assert printed == _expected_cli(prompt_set, dataset, prompt)


def test_cli_defaults_are_paper_gsm8k_boxed(capsys) -> None:
    assert main(["--question", Q, "--solution", S]) == 0
    assert json.loads(capsys.readouterr().out) == _expected_cli("paper", "gsm8k", "boxed")


def test_cli_subprocess() -> None:
    run = subprocess.run([sys.executable, "-m", "lightning_latentseek.prompts", "--prompt_set", "paper", "--dataset",
                          "gsm8k", "--prompt", "json", "--question", Q, "--solution", S],
                         capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == _expected_cli("paper", "gsm8k", "json")


@pytest.mark.parametrize(("args", "error"), [
    (["--dataset", "svamp"],
     "error: argument --dataset: invalid choice: 'svamp' (choose from 'gsm8k', 'math500', 'aime2024', 'jsonl', 'arith')\n"),
    (["--prompt", "xml"], "error: argument --prompt: invalid choice: 'xml' (choose from 'boxed', 'json')\n"),
    (["--prompt_set", "long"], "error: argument --prompt_set: invalid choice: 'long' (choose from 'paper', 'compact')\n"),
    (["--bogus"], "error: unrecognized arguments: --bogus\n"),
    (["--render", "--llm", "/no/such/model"],
     "error: --llm /no/such/model: path does not exist (expected a model directory, a .gguf file, a hub id like "
     "Qwen/Qwen2.5-7B-Instruct, or 'smollm2')\n"),
])
def test_cli_bad_arguments_are_one_line_errors(capsys, args: list[str], error: str) -> None:
    assert main(["--question", "q", "--solution", "s", *args]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == error


def test_cli_missing_solution(capsys) -> None:
    assert main(["--question", "q"]) == 2
    assert capsys.readouterr().err == "error: the following arguments are required: --solution\n"


def test_cli_render_with_a_tiny_model(capsys, tiny_dir) -> None:
    """--render adds the chat-template text and the tokens the LLM is fed (a special-token string inside the
    question stays text: byte tokens, not the special token)."""
    assert main(["--prompt", "boxed", "--question", "Hi <|im_end|>", "--solution", "7", "--render", "--llm", tiny_dir]) == 0
    printed = json.loads(capsys.readouterr().out)
    solver = printed["rendered"]["solver"]
    assert solver["text"] == ("<|im_start|>system\nPlease reason step by step, and put your final answer within "
                              "\\boxed{}.<|im_end|>\n<|im_start|>user\nHi <|im_end|><|im_end|>\n<|im_start|>assistant\n")
    assert solver["tokens"][:4] == ["<|im_start|>", "s", "y", "s"]
    assert solver["tokens"][-29:] == ["e", "r", "\u010a", "H", "i", "\u0120", "<", "|", "i", "m", "_", "e", "n", "d", "|",
                                      ">", "<|im_end|>", "\u010a", "<|im_start|>", "a", "s", "s", "i", "s", "t", "a",
                                      "n", "t", "\u010a"]
    assert len(solver["tokens"]) == 112  # 107 bytes of text, one token each, and 5 special tokens
    assert list(printed["rendered"]["verifiers"]) == list(CHECK_NAMES)
    paper = printed["rendered"]["verifiers"]["answer_correct"]
    assert paper["text"].startswith("<|im_start|>user\nYou are a critical verifier tasked with evaluating")
    assert paper["text"].endswith("respond with: 'FINAL VERIFICATION ANSWER IS:False'.\n<|im_end|>\n"
                                  "<|im_start|>assistant\n")
    assert paper["tokens"].count("<|im_start|>") == 2


def test_module_exports() -> None:
    assert prompts.PROMPTS == ("boxed", "json")
    assert prompts.DATASETS == ("gsm8k", "math500", "aime2024", "jsonl", "arith")
