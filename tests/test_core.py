"""The method itself on tiny random models: latents, the loss, the per-problem fit, stopping, sampling,
the controls, and the paper's loop reproduced token for token and loss for loss."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from lightning_latentseek.callbacks import RewardThreshold
from lightning_latentseek.config import SeekConfig
from lightning_latentseek.engine import GenerationEngine
from lightning_latentseek.latents import (LatentParameter, adam_step_norm, decode_windows, latent_window,
                                          leave_one_out_baselines, n_latents, RandomStep, reinforce_loss)
from lightning_latentseek.methods import SolveContext, latentseek, random_control, solver_prompt_ids
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import ConstantReward, RewardResult
from lightning_latentseek.solve import FIT_FLAGS, quiet_lightning
from test_engine import full_forward_greedy

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


class ParityReward:
    """A reward that is a function of the text only (so reuse cannot change it): -1 or -0.75 by length parity."""

    def __init__(self):
        self.calls = 0

    def __call__(self, problem, answer):
        self.calls += 1
        return RewardResult(-1.0 if len(answer) % 2 else -0.75)


def make_trainer(max_steps: int, tau: float):
    return lambda: L.Trainer(**FIT_FLAGS, accelerator="cpu", devices=1, logger=False, max_steps=max_steps,
                             callbacks=[RewardThreshold(tau)])


def solve(llm, reward, max_steps=5, tau=-0.2, seed=0, method=latentseek, **cfg):
    config = SeekConfig(reward="psrm", max_new_tokens=cfg.pop("max_new_tokens", 24), rho=cfg.pop("rho", 0.5), **cfg)
    engine = GenerationEngine(llm)
    try:
        ctx = SolveContext(engine, reward, config, make_trainer(max_steps, tau), seed=seed, max_steps=max_steps)
        return method(PROBLEM, ctx), engine
    finally:
        engine.close()


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


def _head():
    head = torch.nn.Linear(2, 3, bias=False)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    head.requires_grad_(False)
    return head


def test_reinforce_loss_value_and_sign_hand_checked():
    head = _head()
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    # logits row 0: [2, 0, 2] -> argmax 0 (first max); row 1: [0, 1, 1] -> argmax 1
    assert decode_windows(head, z) == [[0, 1]]
    logp0 = 2 - math.log(math.exp(2) + 1 + math.exp(2))
    logp1 = 1 - math.log(1 + math.e + math.e)
    loss = reinforce_loss(head, z, [[0, 1]], [-0.5])
    assert loss.item() == pytest.approx(0.5 * (logp0 + logp1), abs=1e-6)
    loss.backward()
    # gradient descent on -R * log pi with R < 0 lowers the log-probability of the decoded tokens
    with torch.no_grad():
        stepped = z - 0.1 * z.grad

    def logp_of_decoded(latents):
        return torch.log_softmax(head(latents), -1)[[0, 1], [0, 1]].sum().item()

    assert logp_of_decoded(stepped) < logp_of_decoded(z.detach())
    assert reinforce_loss(head, z.detach(), [[0, 1]], [0.0]).item() == 0.0


def test_leave_one_out_loss_hand_checked():
    head = _head()
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    log_z0 = math.log(math.exp(2) + 1 + math.exp(2))
    log_z1 = math.log(1 + math.e + math.e)
    logp = [[2 - log_z0, 0 - log_z0, 2 - log_z0], [0 - log_z1, 1 - log_z1, 1 - log_z1]]
    windows = [[0, 1], [1, 1], [2, 0]]
    rewards = [-1.0, 0.0, -0.5]
    assert leave_one_out_baselines(rewards) == [-0.25, -0.75, -0.5]
    advantages = [-0.75, 0.75, 0.0]
    expected = -sum(a * (logp[0][w[0]] + logp[1][w[1]]) for a, w in zip(advantages, windows))
    assert reinforce_loss(head, z, windows, rewards).item() == pytest.approx(expected, abs=1e-6)
    # at temperature T the policy is softmax(lm_head(z) / T)
    t = 0.5
    log_t0 = math.log(math.exp(4) + 1 + math.exp(4))
    log_t1 = math.log(1 + math.exp(2) + math.exp(2))
    logp_t = [[4 - log_t0, 0 - log_t0, 4 - log_t0], [0 - log_t1, 2 - log_t1, 2 - log_t1]]
    expected_t = -sum(a * (logp_t[0][w[0]] + logp_t[1][w[1]]) for a, w in zip(advantages, windows))
    assert reinforce_loss(head, z, windows, rewards, temperature=t).item() == pytest.approx(expected_t, abs=1e-6)


def test_sampled_windows_are_seeded():
    head = _head()
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    draw = lambda seed: decode_windows(head, z, 6, 1.0, torch.Generator().manual_seed(seed))  # noqa: E731
    assert draw(3) == draw(3)
    assert len(draw(3)) == 6 and all(len(w) == 3 for w in draw(3))
    assert len({tuple(w) for w in draw(3)}) > 1
    assert draw(3) != draw(4)
    assert decode_windows(head, z, 2, 0.0) == [[0, 1, 2], [0, 1, 2]]  # temperature 0: the argmax, M times


def test_random_step_has_the_norm_of_adams_first_step():
    z = torch.nn.Parameter(torch.zeros(4, 9))
    assert adam_step_norm(z, 0.03) == pytest.approx(0.03 * 6)
    control = RandomStep([z], lr=0.03, generator=torch.Generator().manual_seed(0))
    control.step()  # no gradient needed
    assert z.grad is None and z.detach().norm().item() == pytest.approx(0.18, rel=1e-5)
    moved = z.detach().clone()
    control.step()
    assert (z.detach() - moved).norm().item() == pytest.approx(0.18, rel=1e-5)
    # Adam's first step moves every coordinate by lr (sign of the gradient): the same norm
    p = torch.nn.Parameter(torch.zeros(4, 9))
    opt = torch.optim.Adam([p], lr=0.03)
    p.grad = torch.randn(4, 9)
    opt.step()
    assert p.detach().norm().item() == pytest.approx(0.18, rel=1e-4)


# ------------------------------------------------------------------------------------ the paper's loop
def original_loop(llm, prompt, reward, max_steps, lr, rho, cap, tau):
    """The original's order of operations (opt_generation.py) with plain full re-forward decoding:
    returns the answer tokens of every iteration (CoT first) and every loss."""
    cot, states = full_forward_greedy(llm, prompt, cap, llm.cot_stop_ids)
    n = min(int(rho * len(cot)), 300)
    z = torch.nn.Parameter(states[:n].clone().float())
    optimizer = torch.optim.Adam([z], lr=lr)
    answers, losses = [cot], []
    current = reward(PROBLEM, llm.decode(cot)).value
    for _ in range(max_steps):
        if current > tau:
            break
        optimizer.zero_grad()
        log_probs = torch.log_softmax(llm.lm_head(z), dim=-1)
        tokens = log_probs.argmax(-1)
        loss = -current * log_probs[torch.arange(n), tokens].sum()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        window = llm.lm_head(z).argmax(-1).tolist()
        rest, _ = full_forward_greedy(llm, prompt + window, cap, llm.continuation_stop_ids)
        answers.append(window + rest)
        current = reward(PROBLEM, llm.decode(answers[-1])).value
    return answers, losses


@pytest.mark.parametrize("lr", [0.05, 0.5])
def test_paper_setting_reproduces_the_original_loop(llm, lr):
    """M = 1, T = 0: the same answers (token ids) and the same losses as the original's loop."""
    outcome, engine = solve(llm, ParityReward(), max_steps=4, lr=lr, rho=0.5, max_new_tokens=20)
    prompt = llm.encode_chat([{"role": "system", "content": "Please reason step by step, and put your final answer "
                                                            "within \\boxed{}."},
                              {"role": "user", "content": "What is 2 + 3?"}], add_special_tokens=True)
    answers, losses = original_loop(llm, prompt, ParityReward(), 4, lr, 0.5, 20, -0.2)
    assert [llm.decode(a) for a in answers] == [step["text"] for step in outcome.trajectory]
    assert [step["tokens"] for step in outcome.trajectory] == [len(a) for a in answers]
    step_losses = [step["loss"] for step in outcome.trajectory]
    assert step_losses[0] is None  # the CoT: no step before it
    assert step_losses[1:] == pytest.approx(losses, rel=1e-5)
    assert outcome.iterations == 4 and outcome.stop_reason == "max_steps"
    if lr == 0.5:
        assert len({step["text"] for step in outcome.trajectory}) > 1  # the latents did change the answer


def test_first_iteration_decodes_the_updated_latents(llama):
    """Iteration 1's answer is argmax lm_head(z) of the stepped latents + its greedy continuation
    (up to max_new_tokens NEW tokens after the window, the original's cap)."""
    outcome, _ = solve(llama, ScriptedReward([-1.0]), max_steps=1, lr=0.5, max_new_tokens=20)
    n = outcome.n_latents
    answer = outcome.trajectory[1]
    assert answer["tokens"] <= n + 20
    assert answer["latent_text"] != outcome.trajectory[0]["latent_text"]


# ------------------------------------------------------------------------------------ the fit
def test_gradients_reach_only_the_latents_and_llm_is_unchanged(llama):
    before = {k: v.clone() for k, v in llama.model.state_dict().items()}
    outcome, _ = solve(llama, ScriptedReward([-1.0]), max_steps=3, lr=0.5)
    assert outcome.iterations == 3
    assert all(p.grad is None and not p.requires_grad for p in llama.model.parameters())
    after = llama.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(step["step_norm"] > 0 for step in outcome.trajectory[1:])


def test_module_holds_only_the_latents(llama):
    from lightning_latentseek.module import LatentSeekModule

    module = LatentSeekModule(search=None, latents=torch.zeros(3, llama.hidden_size))
    assert [name for name, _ in module.named_parameters()] == ["latents.z"]
    assert list(module.state_dict()) == ["latents.z"]  # the LLM is not a submodule


def test_k_bounds_the_iterations(llama):
    reward = ScriptedReward([-1.0])
    outcome, _ = solve(llama, reward, max_steps=4, reuse=False, lr=0.5)
    assert outcome.iterations == 4
    assert outcome.stop_reason == "max_steps"
    assert outcome.rewards == [-1.0] * 5
    assert reward.calls == 5  # CoT + one per iteration
    assert outcome.reward_calls == 5
    assert outcome.n_latents == n_latents(outcome.cot_tokens, 0.5)


def test_max_steps_zero_returns_the_cot(llama):
    reward = ScriptedReward([-1.0])
    outcome, _ = solve(llama, reward, max_steps=0)
    assert outcome.iterations == 0 and outcome.stop_reason == "max_steps"
    assert outcome.text == outcome.cot_text and reward.calls == 1


def test_tau_stops_after_the_step_whose_reward_exceeds_it(llama):
    outcome, _ = solve(llama, ScriptedReward([-1.0, -1.0, -0.5, 0.0, -1.0]), max_steps=10, tau=-0.2, reuse=False)
    assert outcome.iterations == 3
    assert outcome.rewards == [-1.0, -1.0, -0.5, 0.0]
    assert outcome.stop_reason == "reward_above_tau"
    assert outcome.text == outcome.trajectory[-1]["text"]  # the last decoded answer is returned


def test_cot_that_clears_tau_is_returned_with_zero_iterations(llama):
    reward = ScriptedReward([0.0, -1.0])
    outcome, _ = solve(llama, reward, max_steps=10, tau=-0.2)
    assert outcome.iterations == 0
    assert outcome.stop_reason == "cot_above_tau"
    assert outcome.text == outcome.cot_text
    assert reward.calls == 1


def test_constant_reward_never_stops_early(llama):
    outcome, _ = solve(llama, ConstantReward(), max_steps=5, tau=-0.2, lr=0.5)
    assert outcome.iterations == 5 and outcome.stop_reason == "max_steps"
    assert outcome.rewards == [-1.0] * 6


def test_answer_selection_best_returns_the_highest_reward(llama):
    outcome, _ = solve(llama, ScriptedReward([-1.0, -0.5, -1.0, -1.0]), max_steps=3, reuse=False,
                       answer_selection="best")
    assert outcome.best_reward == -0.5
    assert outcome.text == outcome.trajectory[1]["text"] == outcome.best_text


# ------------------------------------------------------------------------------------ sampled decodings
def test_samples_per_step_are_recorded_and_reproducible(llama):
    first, engine = solve(llama, ParityReward(), max_steps=3, samples_per_step=4, temperature=0.7, seed=11, lr=0.3)
    again, _ = solve(llama, ParityReward(), max_steps=3, samples_per_step=4, temperature=0.7, seed=11, lr=0.3)
    other, _ = solve(llama, ParityReward(), max_steps=3, samples_per_step=4, temperature=0.7, seed=12, lr=0.3)
    assert [len(step["samples"]) for step in first.trajectory] == [1, 4, 4, 4]  # the CoT, then M per iteration
    assert first.reward_calls == 1 + 3 * 4
    texts = lambda o: [[s["text"] for s in step["samples"]] for step in o.trajectory]  # noqa: E731
    assert texts(first) == texts(again)
    assert texts(first) != texts(other)
    assert len({s["latent_text"] for s in first.trajectory[1]["samples"]}) > 1
    for step in first.trajectory[1:]:  # each iteration's entry is its best sample
        assert step["reward"] == max(s["reward"] for s in step["samples"])


def test_repeated_decoded_tokens_make_no_generation_and_no_reward_call(llama):
    """With a tiny lr the decoded tokens never change: every iteration reuses the CoT's answer."""
    reward = ScriptedReward([-1.0])
    reused, engine = solve(llama, reward, max_steps=4, lr=1e-6, reuse=True)
    assert reused.cot_tokens == 24 and reused.trajectory[0]["hit_cap"]
    # a CoT cut by the cap is continued once after its window (24 new tokens more), then reused
    assert engine.stats["rows"] == 2 and reward.calls == 2
    assert [step["reused"] for step in reused.trajectory] == [False, False, True, True, True]
    reward_off = ScriptedReward([-1.0])
    fresh, engine_off = solve(llama, reward_off, max_steps=4, lr=1e-6, reuse=False)
    assert engine_off.stats["rows"] == 5 and reward_off.calls == 5
    assert [s["text"] for s in fresh.trajectory] == [s["text"] for s in reused.trajectory]
    assert fresh.text == reused.text and fresh.rewards == reused.rewards


class SamplingReward:
    """A reward whose verdicts are drawn afresh (deterministic = False), like ``--model.verifier_sampling model``:
    it records the judgement index and the EOS text it is given."""

    deterministic = False

    def __init__(self):
        self.seen: list[tuple[int, str]] = []

    def __call__(self, problem, answer, eos="", call=0):
        self.seen.append((call, eos))
        return RewardResult(-1.0)


def test_a_sampling_reward_judges_a_repeated_answer_again_with_the_next_index(llama):
    reward = SamplingReward()
    outcome, engine = solve(llama, reward, max_steps=4, lr=1e-6, reuse=True)
    assert engine.stats["rows"] == 2  # the continuation is still reused (greedy: deterministic) ...
    assert [call for call, _ in reward.seen] == [0, 1, 2, 3, 4]  # ... its judgement is not, as in the original
    assert [eos for _, eos in reward.seen] == [step["eos"] for step in outcome.trajectory] == [""] * 5  # cut by the cap
    assert outcome.reward_calls == 5


def test_eos_text_is_the_stop_token_the_decode_drops(llama):
    hi = llama.tokenizer("Hi", add_special_tokens=False)["input_ids"]
    assert llama.decode(hi + [llama.eos_id]) == "Hi" and llama.eos_text(hi + [llama.eos_id]) == "<|im_end|>"
    assert llama.eos_text(hi) == "" and llama.eos_text([]) == ""
    assert llama.eos_text(hi + [llama.tokenizer.convert_tokens_to_ids("<|endoftext|>")]) == "<|endoftext|>"  # a CoT stop


# ------------------------------------------------------------------------------------ the random control
def test_random_control_moves_by_the_stated_norm_without_backward(llama, monkeypatch):
    from lightning_latentseek.module import LatentSeekModule

    backward_calls = []
    monkeypatch.setattr(LatentSeekModule, "manual_backward",
                        lambda self, *a, **k: backward_calls.append(1))
    outcome, _ = solve(llama, ScriptedReward([-1.0]), max_steps=3, method=random_control, lr=0.05)
    assert outcome.method == "random" and outcome.iterations == 3 and not backward_calls
    expected = 0.05 * math.sqrt(outcome.n_latents * llama.hidden_size)
    assert [step["step_norm"] for step in outcome.trajectory[1:]] == pytest.approx([expected] * 3)
    assert all(step["loss"] is None for step in outcome.trajectory)


def test_prompt_is_the_paper_solver_prompt(llama):
    ctx = SolveContext(GenerationEngine(llama), None, SeekConfig())
    ids = solver_prompt_ids(ctx, PROBLEM)
    assert llama.tokenizer.decode(ids) == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
