"""`--model.reward single_verifier` against GradCuit's own functions (tests/data/golden_single_verifier.jsonl, made by
benchmarks/golden_single_verifier.py from GradCuit's code): its verdict parser, its verbatim prompt, its GSM8K answer
extraction and its reward with a scripted verifier response; then the reward on the solver's own engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_latentseek.engine import GenerationEngine, Row
from lightning_latentseek.paper_grading import extract_number as extract_number_paper, extract_number_gradcuit
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import build_reward
from lightning_latentseek.rewards.server import Reply
from lightning_latentseek.rewards.single_verifier import (MATH_TEMPLATE, SingleVerifier, last_box, parse_boxed_verdict,
                                                          single_verifier_prompt)

GOLDEN = Path(__file__).parent / "data" / "golden_single_verifier.jsonl"
ROWS = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] == "verdict"], ids=lambda r: repr(r["response"])[:40])
def test_verdicts_are_gradcuits(row):
    assert last_box(row["response"]) == row["fragment"]
    assert parse_boxed_verdict(row["response"]) is row["verdict"]


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] == "prompt"], ids=lambda r: r["data_name"])
def test_prompts_are_gradcuits(row):
    assert single_verifier_prompt(row["question"], row["answer"], row["data_name"]) == row["prompt"]


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] == "extract" and r["data_name"] == "openai/gsm8k"
                                 and r["prompt_idx"] == 0], ids=lambda r: repr(r["text"])[:40])
def test_gsm8k_extraction_is_gradcuits(row):
    assert extract_number_gradcuit(row["text"]) == row["extracted"]


def test_gradcuits_extraction_has_no_equals_rule():
    text = "So 3 + 4 = 7 apples.\nThen she has 9 left, in 2 bags"
    assert extract_number_paper(text) == "7"  # LatentSeek's: the first "= number"
    assert extract_number_gradcuit(text) == "2"  # GradCuit's (utils.py:574-578 commented out): the last line's number


class Scripted:
    """A verifier backend answering every conversation with `response`; records the prompts it was asked."""

    def __init__(self, response: str, tokens: int = 5):
        self.response, self.tokens, self.asked = response, tokens, []

    def answer(self, conversations, max_new_tokens, samplers=None, stop=None):
        self.asked += [c[0]["content"] for c in conversations]
        assert all(len(c) == 1 and c[0]["role"] == "user" for c in conversations)
        return [Reply(self.response, self.tokens) for _ in conversations]


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] == "reward"], ids=lambda r: repr(r["response"])[:30])
def test_rewards_are_gradcuits(row):
    """GradCuit's get_reward with a scripted response: the same R, the same prompt, asked or not."""
    problem = Problem(id="g", question=row["question"], answer="72", dataset="gsm8k")
    verifier = Scripted(row["response"])
    result = SingleVerifier(server=verifier)(problem, row["solution"])
    assert result.value == row["reward"]
    assert len(verifier.asked) == row["asked"]
    assert result.details["extracted"] == row["details"]["extracted_answer"]
    if row["asked"]:
        assert verifier.asked[0] == row["details"]["verifier"]["prompt"]
        assert (result.details["verdict"] is not None) == row["details"]["verifier"]["format_valid"]
        assert result.verifier_tokens == 5


def test_no_extracted_answer_is_minus_one_without_asking():
    verifier = Scripted("\\boxed{True}")
    problem = Problem(id="g", question="How many?", answer="3", dataset="gsm8k")
    results = SingleVerifier(server=verifier).judge_many(problem, ["no number here", "so 3", "one , two"])
    assert [r.value for r in results] == [-1.0, 0.0, -1.0]  # a lone "," extracts "" (GradCuit): not asked
    assert [r.details["asked"] for r in results] == [False, True, False]
    assert verifier.asked == [single_verifier_prompt("How many?", "3")]
    assert MATH_TEMPLATE.split("{question}")[0] in verifier.asked[0]


def test_single_verifier_on_the_solvers_engine(llama):
    """In process: one row per asked answer, the verbatim prompt as one user message through the chat template,
    greedy to EOS or the cap (no early stop: the last box wins), built by `build_reward` from the run's options."""
    problem = Problem(id="g", question="How many?", answer="3", dataset="arith")
    engine = GenerationEngine(llama)
    try:
        reward = build_reward("single_verifier", engine=engine, prompt="boxed", max_new_tokens=9, prompt_set="paper")
        results = reward.judge_many(problem, ["it is 3", "none"])
        prompt = llama.encode_chat([{"role": "user", "content": single_verifier_prompt("How many?", "3")}])
        expected = engine.generate([Row(prompt, 9, llama.generation_stop_ids)])[0]
    finally:
        engine.close()
    assert results[0].details["verifier_texts"]["single_verifier"] == llama.decode(expected.tokens)
    assert results[0].verifier_tokens == len(expected.tokens)
    assert results[0].value == (0.0 if parse_boxed_verdict(llama.decode(expected.tokens)) else -1.0)
    assert results[1].details == {"extracted": None, "asked": False, "verdict": None} and results[1].value == -1.0


def test_reward_args_the_reward_does_not_take_are_a_one_line_error(tiny_dir, tmp_path, capsys):
    from tiny import user_error, write_problems

    data = write_problems(tmp_path / "problems.jsonl", 1)
    line = user_error(capsys, ["--method", "gradcuit", "--model.llm", tiny_dir, "--data.path", str(data),
                               "--model.reward_args", '{"checks": ["answer_correct"]}', "--output_dir",
                               str(tmp_path / "out")])
    assert line == ("error: --model.reward_args.checks: --model.reward single_verifier takes no such argument (it "
                    "takes: max_new_tokens)")
    assert not (tmp_path / "out").exists()
