"""The method itself on tiny random models: latents, loss, KV cache, the per-problem fit, stopping."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from callbacks import RewardThreshold
from lightning_latentseek.config import SeekConfig
from lightning_latentseek.latents import (LatentParameter, decode_latents, latent_window, n_latents,
                                          reinforce_loss)
from lightning_latentseek.methods import SolveContext, latentseek, solver_prompt_ids
from lightning_latentseek.module import LatentSeekModule
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import RewardResult
from lightning_latentseek.search import ProblemSearch
from lightning_latentseek.solve import FIT_FLAGS, quiet_lightning

quiet_lightning()
PROBLEM = Problem(id="p1", question="What is 2 + 3?", answer="5", dataset="jsonl")


class ScriptedReward:
    """Returns the scripted values in order (the last one repeats); counts calls."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, problem, answer):
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return RewardResult(value)


def make_trainer(max_steps: int, tau: float):
    return lambda: L.Trainer(**FIT_FLAGS, accelerator="cpu", devices=1, logger=False, max_steps=max_steps,
                             callbacks=[RewardThreshold(tau)])


def solve(llm, reward, max_steps=5, tau=-0.2, **cfg):
    config = SeekConfig(reward="psrm", max_new_tokens=cfg.pop("max_new_tokens", 24), rho=cfg.pop("rho", 0.5), **cfg)
    return latentseek(PROBLEM, SolveContext(llm, reward, config, make_trainer(max_steps, tau)))


# ------------------------------------------------------------------------------------ latents and loss
def test_n_latents_follows_rho_and_cap():
    assert n_latents(100, 0.2) == 20
    assert n_latents(7, 0.2) == 1
    assert n_latents(4, 0.2) == 0
    assert n_latents(5000, 0.2) == 300
    assert n_latents(5000, 0.2, max_latents=50) == 50
    assert latent_window(100, 0.2, start_fraction=0.5) == (50, 20)
    assert latent_window(100, 0.3, start_fraction=0.9) == (90, 10)  # cannot run past T
    with pytest.raises(ValueError):
        n_latents(10, 0.0)


def test_latent_parameter_is_fp32_copy():
    z = torch.randn(3, 4, dtype=torch.bfloat16)
    param = LatentParameter(z)
    assert param.z.dtype == torch.float32 and param.z.requires_grad
    assert [name for name, _ in param.named_parameters()] == ["z"]
    param.z.data.add_(1.0)
    assert not torch.equal(param.z.to(torch.bfloat16), z + 0)  # a copy, not a view


def test_reinforce_loss_value_and_sign_hand_checked():
    head = torch.nn.Linear(2, 3, bias=False)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    head.requires_grad_(False)
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    # logits row 0: [2, 0, 2] -> argmax 0 (first max); row 1: [0, 1, 1] -> argmax 1
    logp0 = 2 - math.log(math.exp(2) + 1 + math.exp(2))
    logp1 = 1 - math.log(1 + math.e + math.e)
    loss = reinforce_loss(head, z, reward=-0.5)
    assert loss.item() == pytest.approx(0.5 * (logp0 + logp1), abs=1e-6)
    assert decode_latents(head, z) == [0, 1]
    loss.backward()
    # gradient descent on -R * log pi with R < 0 lowers the log-probability of the decoded tokens
    with torch.no_grad():
        stepped = z - 0.1 * z.grad
    def logp_of_decoded(latents):
        return torch.log_softmax(head(latents), -1)[[0, 1], [0, 1]].sum().item()

    assert logp_of_decoded(stepped) < logp_of_decoded(z.detach())
    assert reinforce_loss(head, z.detach(), reward=0.0).item() == 0.0


# ------------------------------------------------------------------------------------ KV cache
def full_forward_greedy(llm, ids, n):
    """Reference decoding without cache: the whole sequence re-run for every token."""
    ids, out = list(ids), []
    for _ in range(n):
        with torch.no_grad():
            hidden = llm.body(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state[0, -1]
        token = int(llm.lm_head(hidden).argmax())
        out.append(token)
        ids.append(token)
        if token in llm.eos_ids:
            break
    return out


def test_cached_cot_matches_full_reforward(llm):
    prompt = solver_prompt_ids(SolveContext(llm, None, SeekConfig()), PROBLEM)
    cot = llm.cot(prompt, 20)
    assert cot.tokens == full_forward_greedy(llm, prompt, 20)
    assert cot.latents.shape == (len(cot.tokens), llm.model.config.hidden_size)
    with torch.no_grad():
        hidden = llm.body(input_ids=torch.tensor([prompt + cot.tokens]), use_cache=False).last_hidden_state[0]
    expected = hidden[len(prompt) - 1: len(prompt) - 1 + len(cot.tokens)]  # z_t is the state that produced x_t
    torch.testing.assert_close(cot.latents, expected, atol=1e-4, rtol=1e-4)
    assert [int(t) for t in llm.lm_head(cot.latents).argmax(-1)] == cot.tokens
    assert cot.prompt.cache.get_seq_length() == len(prompt)  # cropped back for reuse


def test_cached_continuation_matches_uncached(llm):
    prompt_ids = solver_prompt_ids(SolveContext(llm, None, SeekConfig()), PROBLEM)
    prompt = llm.prefill(prompt_ids)
    for prefix in ([], [40, 41, 42], [7]):
        tokens, _ = llm.continue_greedy(prompt, prefix, 15)
        assert tokens == full_forward_greedy(llm, prompt_ids + prefix, 15)
        assert prompt.cache.get_seq_length() == len(prompt_ids)


def test_batched_generate_matches_single_rows(llm):
    ctx = SolveContext(llm, None, SeekConfig())
    rows = [solver_prompt_ids(ctx, Problem(str(i), q, "1", "jsonl")) for i, q in enumerate(["a", "bb cc", "What?"])]
    batched = llm.generate(rows, 12)
    assert batched == [llm.generate([row], 12)[0] for row in rows]
    assert batched[2] == full_forward_greedy(llm, rows[2], 12)


def test_generate_reuses_the_kept_prefix_and_gives_the_same_tokens(llm):
    """A second call whose rows start like the first one's prefills only where they part."""
    ctx = SolveContext(llm, None, SeekConfig())
    first = [solver_prompt_ids(ctx, Problem("a", "What is 2 + 3? Check " + c, "5", "jsonl")) for c in "xyz"]
    second = [solver_prompt_ids(ctx, Problem("b", "What is 2 + 3? Verify " + c, "5", "jsonl")) for c in "xyz"]
    other = [solver_prompt_ids(ctx, Problem("c", q, "1", "jsonl")) for q in ("Name a prime.", "Name a square.")]
    prefilled = []
    forward = llm._forward

    def counting(ids, cache, **kwargs):
        prefilled.append(ids.shape[-1] * ids.shape[0])
        return forward(ids, cache, **kwargs)

    llm.prefix_reuse = False
    expected = [llm.generate(rows, 10) for rows in (first, second, other, second)]
    llm.prefix_reuse = True
    llm._forward = counting
    try:
        got = []
        for rows in (first, second, other, second):
            prefilled.clear()
            got.append(llm.generate(rows, 10))
            if len(got) == 2:  # byte-level tokens: only "Verify " is new in the shared prefix
                assert prefilled[0] == len("Verify ")
    finally:
        del llm._forward
        llm.prefix_reuse = True
    assert got == expected


def test_one_row_layout_gives_the_same_tokens_and_leaves_the_model_alone(llm):
    """CPU decoding against transposed weight copies: same CoT, the model's parameters untouched after."""
    params = dict(llm.model.named_parameters())
    values = {name: p.detach().clone() for name, p in params.items()}
    prompt = solver_prompt_ids(SolveContext(llm, None, SeekConfig()), PROBLEM)
    llm.row_layout = False
    plain = llm.cot(prompt, 25)
    llm.row_layout = True
    swapped = llm.cot(prompt, 25)
    assert llm._row_weights  # the tiny model on a CPU uses the copies
    assert swapped.tokens == plain.tokens
    torch.testing.assert_close(swapped.latents, plain.latents, atol=1e-5, rtol=1e-5)
    assert all(a is b for a, b in zip(dict(llm.model.named_parameters()).values(), params.values()))
    assert all(torch.equal(p, values[name]) for name, p in llm.model.named_parameters())
    assert all(m.weight.is_contiguous() for m in llm.model.modules() if isinstance(m, torch.nn.Linear))


def test_cot_with_prompt_drafts_is_the_greedy_one(llm):
    """The prompt as a draft source (prompt lookup) leaves the CoT tokens and latents as they are."""
    for question in ("What is 2 + 3?", "ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab"):
        prompt = solver_prompt_ids(SolveContext(llm, None, SeekConfig()), Problem("q", question, "1", "jsonl"))
        llm.prompt_drafts = False
        plain = llm.cot(prompt, 30)
        llm.prompt_drafts = True
        drafted = llm.cot(prompt, 30)
        assert drafted.tokens == plain.tokens == full_forward_greedy(llm, prompt, 30)
        torch.testing.assert_close(drafted.latents, plain.latents, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------ the fit
def test_gradients_reach_only_the_latents_and_llm_is_unchanged(llama):
    before = {k: v.clone() for k, v in llama.model.state_dict().items()}
    config = SeekConfig(reward="psrm", max_new_tokens=24, rho=0.5)
    cot = llama.cot(solver_prompt_ids(SolveContext(llama, None, config), PROBLEM), 24)
    start, n = latent_window(len(cot.tokens), config.rho)
    search = ProblemSearch(llama, PROBLEM, cot, ScriptedReward([-1.0]), start, n, 24)
    module = LatentSeekModule(search, cot.latents[start:start + n])
    assert [name for name, _ in module.named_parameters()] == ["latents.z"]
    assert list(module.state_dict()) == ["latents.z"]  # the LLM is not a submodule
    z0 = module.latents.z.detach().clone()
    make_trainer(3, -0.2)().fit(module)
    assert not torch.equal(module.latents.z.detach(), z0)  # the latents moved
    assert all(p.grad is None and not p.requires_grad for p in llama.model.parameters())
    after = llama.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(search.history) == 4  # CoT + 3 iterations


def test_k_bounds_the_iterations(llama):
    reward = ScriptedReward([-1.0])
    outcome = solve(llama, reward, max_steps=4, reuse=False)
    assert outcome.iterations == 4
    assert outcome.stop_reason == "max_steps"
    assert outcome.rewards == [-1.0] * 5
    assert reward.calls == 5  # CoT + one per iteration
    assert outcome.n_latents == n_latents(outcome.cot_tokens, 0.5)


def test_tau_stops_after_the_step_whose_reward_exceeds_it(llama):
    outcome = solve(llama, ScriptedReward([-1.0, -1.0, -0.5, 0.0, -1.0]), max_steps=10, tau=-0.2, reuse=False)
    assert outcome.iterations == 3
    assert outcome.rewards == [-1.0, -1.0, -0.5, 0.0]
    assert outcome.stop_reason == "reward_above_tau"
    assert outcome.text == outcome.trajectory[-1]["text"]  # the last decoded answer is returned


def test_cot_that_clears_tau_is_returned_with_zero_iterations(llama):
    reward = ScriptedReward([0.0, -1.0])
    outcome = solve(llama, reward, max_steps=10, tau=-0.2)
    assert outcome.iterations == 0
    assert outcome.stop_reason == "cot_above_tau"
    assert outcome.text == outcome.cot_text
    assert reward.calls == 1


def test_answer_selection_best_returns_the_highest_reward(llama):
    outcome = solve(llama, ScriptedReward([-1.0, -0.5, -1.0, -1.0]), max_steps=3, reuse=False,
                    answer_selection="best")
    assert outcome.best_reward == -0.5
    assert outcome.text == outcome.trajectory[1]["text"] == outcome.best_text


def test_first_iteration_decodes_the_updated_latents(llama):
    """Iteration 1's answer starts with argmax lm_head(z) of the stepped latents, then continues greedily."""
    config = SeekConfig(reward="psrm", max_new_tokens=24, rho=0.5, lr=0.05)
    cot = llama.cot(solver_prompt_ids(SolveContext(llama, None, config), PROBLEM), 24)
    start, n = latent_window(len(cot.tokens), config.rho)
    search = ProblemSearch(llama, PROBLEM, cot, ScriptedReward([-1.0]), start, n, 24)
    module = LatentSeekModule(search, cot.latents[start:start + n], lr=0.05)
    make_trainer(1, -0.2)().fit(module)
    decoded = decode_latents(llama.lm_head, module.latents.z)
    answer = search.history[1].tokens
    assert answer[:n] == decoded
    rest, _ = llama.continue_greedy(cot.prompt, decoded, 24 - n)
    assert answer[n:] == rest


# ------------------------------------------------------------------------------------ reuse (fast path)
class CountingLLM:
    """Counts continuations of a real FrozenLM."""

    def __init__(self, llm):
        self.llm, self.continuations = llm, 0
        self._continue = llm.continue_greedy

    def __enter__(self):
        def counted(*args, **kwargs):
            self.continuations += 1
            return self._continue(*args, **kwargs)

        self.llm.continue_greedy = counted
        return self

    def __exit__(self, *exc):
        del self.llm.continue_greedy


def test_repeated_decoded_tokens_make_no_generation_and_no_reward_call(llama):
    """With a tiny lr the decoded tokens never change: every iteration reuses the CoT's answer."""
    with CountingLLM(llama) as counter:
        reward = ScriptedReward([-1.0])
        reused = solve(llama, reward, max_steps=4, lr=1e-6, reuse=True)
    assert counter.continuations == 0 and reward.calls == 1
    assert all(step["reused"] for step in reused.trajectory[1:])
    with CountingLLM(llama) as counter:
        reward_off = ScriptedReward([-1.0])
        fresh = solve(llama, reward_off, max_steps=4, lr=1e-6, reuse=False)
    assert counter.continuations == 4 and reward_off.calls == 5
    assert [s["text"] for s in fresh.trajectory] == [s["text"] for s in reused.trajectory]
    assert fresh.text == reused.text and fresh.rewards == reused.rewards


def test_repeated_decoded_tokens_make_no_verifier_call_with_the_self_reward(llama):
    """The same reuse rule with the self reward: after the CoT's verification, no generation of any kind."""
    from lightning_latentseek.rewards.self_reward import SelfReward

    def self_reward():
        reward = SelfReward(llama, max_new_tokens=6)
        reward.stop_hopeless_rows = False
        return reward

    before = dict(llama.calls)
    reused = solve(llama, self_reward(), max_steps=3, lr=1e-6, reuse=True)
    assert llama.calls["continue"] == before["continue"]
    assert llama.calls["generate"] == before["generate"] + 1  # the four checks of the CoT, one batch
    assert reused.iterations == 3 and all(step["reused"] for step in reused.trajectory[1:])
    fresh = solve(llama, self_reward(), max_steps=3, lr=1e-6, reuse=False)
    assert [s["text"] for s in fresh.trajectory] == [s["text"] for s in reused.trajectory]
    assert fresh.rewards == reused.rewards and fresh.text == reused.text


def test_reuse_gives_the_same_answers_when_tokens_change(llama):
    on = solve(llama, ScriptedReward([-1.0]), max_steps=5, lr=0.5, reuse=True)
    off = solve(llama, ScriptedReward([-1.0]), max_steps=5, lr=0.5, reuse=False)
    assert [s["text"] for s in on.trajectory] == [s["text"] for s in off.trajectory]
    assert len({s["text"] for s in on.trajectory}) > 1  # the latents did change the answer


def test_drafted_continuation_is_the_greedy_one(llm):
    """Prompt-lookup drafts (earlier answers, junk, self-repeats) never change the greedy continuation."""
    prompt_ids = solver_prompt_ids(SolveContext(llm, None, SeekConfig()), PROBLEM)
    prompt = llm.prefill(prompt_ids)
    earlier = full_forward_greedy(llm, prompt_ids, 24)
    expected = full_forward_greedy(llm, prompt_ids + earlier[:3], 21)
    for drafts in ([earlier], [[5, 6, 7, 8] * 6], [earlier[4:] + earlier, earlier[::-1]]):
        tokens, _ = llm.continue_greedy(prompt, earlier[:3], 21, drafts=drafts)
        assert tokens == expected
        assert prompt.cache.get_seq_length() == len(prompt_ids)
