"""``--model.reward confidence``: LTPO's confidence measure over the tokens of a decoded answer, mapped into [-1, 0].

The engine records each generated token's confidence from the logits it decoded with (no extra forward); the
expected values here come from an independent plain transformers forward over prompt + tokens.
"""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from lightning_latentseek.config import SeekConfig
from lightning_latentseek.engine import GenerationEngine, Row, TemperatureSampler
from lightning_latentseek.methods import SolveContext, best_of_n, latentseek
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import ConfidenceReward, build_reward
from lightning_latentseek.rewards.confidence import confidence_bounds, confidence_reward
from lightning_latentseek.solve import FIT_FLAGS
from tiny import cli_args, save_tiny_model, tiny_llm, write_problems

LN10 = math.log(10)
C_MAX = 20.723265836936413  # -(9 ln 1e-10 + ln(1 + 1e-10)) / 10


def confidences_by_hand(llm, prompt: list[int], tokens: list[int], k: int = 10) -> list[float]:
    """LTPO's per-position measure on a plain forward of prompt + tokens: the logits at position t - 1 chose token t."""
    with torch.no_grad():
        logits = llm.model(input_ids=torch.tensor([prompt + tokens])).logits[0].float()
    chosen = logits[len(prompt) - 1:len(prompt) + len(tokens) - 1]
    top = torch.topk(torch.softmax(chosen, dim=-1), k, dim=-1).values
    return (-(torch.log(top + 1e-10)).sum(-1) / k).tolist()


@pytest.mark.parametrize("drafts", [0, 4])
def test_engine_records_each_tokens_confidence(drafts, monkeypatch):
    """Greedy and sampling rows; with drafts, the drafted tokens a forward confirms get the confidence of their
    position too (random tiny models rarely repeat themselves: the drafts come from an oracle that knows the
    greedy tokens and spoils the last one of every other draft, as test_engine's)."""
    from lightning_latentseek.engine.batching import _Live

    llm = tiny_llm()
    prompt = llm.encode_chat([{"role": "user", "content": "What is 2 + 3?"}])
    engine = GenerationEngine(llm, draft_tokens=0)
    try:
        plain = engine.generate([Row(prompt, 24, frozenset({llm.eos_id}))])[0]
    finally:
        engine.close()

    def oracle(self, k):
        future = list(plain.tokens[len(self.tokens):len(self.tokens) + k])
        if future and len(self.tokens) % 2:
            future[-1] = (future[-1] + 1) % 256
        return future

    if drafts:
        monkeypatch.setattr(_Live, "draft", oracle)
    engine = GenerationEngine(llm, draft_tokens=drafts)
    try:
        greedy, sampled = engine.generate([
            Row(prompt, 24, frozenset({llm.eos_id}), confidence_k=10),
            Row(prompt, 12, frozenset({llm.eos_id}), sampler=TemperatureSampler(0.9, 3), confidence_k=5)])
    finally:
        engine.close()
    assert greedy.tokens == plain.tokens and plain.confidence is None
    assert len(greedy.confidence) == len(greedy.tokens) == 24
    assert greedy.confidence == pytest.approx(confidences_by_hand(llm, prompt, greedy.tokens), rel=1e-4)
    assert sampled.confidence == pytest.approx(confidences_by_hand(llm, prompt, sampled.tokens, k=5), rel=1e-4)
    assert (engine.stats["accepted_tokens"] >= 10) is bool(drafts)


def test_mapping_hand_values():
    assert confidence_bounds(10) == pytest.approx((LN10, C_MAX), rel=1e-12)
    assert confidence_reward(C_MAX, 10) == 0.0  # one token holds all the mass at every position
    assert confidence_reward(LN10, 10) == -1.0  # the top 10 equally likely
    # k 2, probabilities 0.75 and 0.25: C = -(ln 0.75 + ln 0.25) / 2 = 0.836988; (C - ln 2) / (C_max(2) - ln 2) - 1
    assert confidence_reward(0.8369882165191691, 2) == pytest.approx(-0.9867057316537491, rel=1e-12)
    assert confidence_reward(17.03912968815594, 10) == pytest.approx(-0.2, abs=1e-12)  # where tau -0.2 lies
    assert confidence_reward(25.0, 10) == 0.0 and confidence_reward(1.0, 10) == -1.0  # clipped


def test_the_reward_judges_confidences_not_texts():
    reward = build_reward("confidence", args={"k": 5})
    assert isinstance(reward, ConfidenceReward) and reward.confidence_k == 5
    result = reward.from_confidences(None, [math.log(5), math.log(5) + 2.0])
    assert result.value == pytest.approx((1.0 / (confidence_bounds(5)[1] - math.log(5))) - 1, rel=1e-12)
    assert result.details == {"confidence": pytest.approx(math.log(5) + 1.0), "tokens_scored": 2}
    assert reward.from_confidences(None, []).value == -1.0
    with pytest.raises(TypeError, match="cannot judge a text alone"):
        reward(None, "42")


def context(llm, reward, steps: int, **cfg) -> SolveContext:
    trainer = dict(FIT_FLAGS, max_steps=steps, accelerator="cpu", devices=1, logger=False, precision="32-true")
    return SolveContext(GenerationEngine(llm), reward, SeekConfig(max_new_tokens=16, **cfg),
                        make_trainer=lambda: L.Trainer(**trainer), seed=3, max_steps=steps)


def test_latentseek_scores_the_tokens_after_the_window_and_reuses_a_windows_reward():
    """Iteration 0 scores the CoT's tokens from the window's end on; a window decoded again (lr ~ 0: the latents
    do not move) is neither continued nor scored again, and costs no tokens."""
    llm = tiny_llm()
    ctx = context(llm, ConfidenceReward(), 3, rho=0.25, lr=1e-9)
    problem = Problem("p", "What is 2 + 3?", "5", "jsonl")
    try:
        outcome = latentseek(problem, ctx)
    finally:
        ctx.engine.close()
    prompt = llm.encode_chat([{"role": "system", "content": "Please reason step by step, and put your final answer "
                                                             "within \\boxed{}."},
                              {"role": "user", "content": problem.question}], add_special_tokens=True)
    engine = GenerationEngine(llm)
    try:  # the CoT again (greedy: the same tokens)
        cot = engine.generate([Row(prompt, 16, llm.cot_stop_ids)])[0].tokens
    finally:
        engine.close()
    n = outcome.n_latents
    assert len(cot) == outcome.cot_tokens and n == int(0.25 * len(cot)) > 0
    by_hand = confidences_by_hand(llm, prompt, cot)[n:]
    first = outcome.trajectory[0]
    assert first["reward_details"]["tokens_scored"] == len(cot) - n
    assert first["reward_details"]["confidence"] == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    c = first["reward_details"]["confidence"]
    assert first["reward"] == pytest.approx((c - LN10) / (C_MAX - LN10) - 1, rel=1e-9)
    assert outcome.iterations == 3 and outcome.reward_calls == 4 and outcome.verifier_tokens == 0
    later = outcome.trajectory[1:]
    assert [e["latent_text"] for e in later] == [first["latent_text"]] * 3  # the same window every time
    capped = first["hit_cap"]  # a CoT cut by the cap is continued once after its window, else it is its own answer
    assert [e["reused"] for e in later] == [not capped, True, True]
    assert (later[0]["solver_tokens"] > 0) is capped and [e["solver_tokens"] for e in later[1:]] == [0, 0]
    assert [e["reward"] for e in later[1:]] == [later[0]["reward"]] * 2
    if not capped:
        assert later[0]["reward"] == first["reward"]
    assert [e["reward_calls"] for e in outcome.trajectory] == [1, 1, 1, 1]
    assert outcome.solver_tokens == len(cot) + later[0]["solver_tokens"]


def test_best_of_n_with_the_confidence_reward_picks_the_most_confident_sample():
    llm = tiny_llm()
    ctx = context(llm, ConfidenceReward(), 0, n_samples=4)
    try:
        outcome = best_of_n(Problem("p", "What is 2 + 3?", "5", "jsonl"), ctx)
    finally:
        ctx.engine.close()
    rewards = [s["reward"] for s in outcome.samples]
    assert len(set(rewards)) == 4 and outcome.rewards == rewards
    assert outcome.best_reward == max(rewards) and outcome.text == outcome.samples[rewards.index(max(rewards))]["text"]
    for sample in outcome.samples:
        c = sample["reward_details"]["confidence"]
        assert sample["reward_details"]["tokens_scored"] == sample["tokens"]
        assert sample["reward"] == pytest.approx((c - LN10) / (C_MAX - LN10) - 1, rel=1e-9)
        assert sample["verifier_tokens"] == 0


def test_cli_confidence_reward_writes_a_record_per_problem(tmp_path):
    from lightning_latentseek.cli import main

    model = save_tiny_model(tmp_path / "model")
    args = cli_args(str(model), write_problems(tmp_path / "p.jsonl", 2), tmp_path / "out", "--model.reward",
                    "confidence")
    summary = main(args)
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert summary["n"] == 2 and len(records) == 2
    for record in records:
        assert record["reward"] == "confidence" and record["iterations"] == 2 and record["verifier_tokens"] == 0
        assert all(-1.0 <= r <= -0.2 for r in record["rewards"])  # a random tiny model is far from confident
        assert all(entry["reward_details"]["tokens_scored"] > 0 for entry in record["trajectory"])
