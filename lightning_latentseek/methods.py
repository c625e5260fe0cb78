"""The methods, one function each: Problem -> Outcome.

``latentseek`` (the paper), ``random`` (the same loop with random latent steps: a control), ``ltpo`` (LTPO:
the placeholder tokens' embeddings optimised for the model's own confidence, no verifier), and the baselines
``cot`` (greedy), ``bon`` (Best-of-N by reward; with PSRM it is the oracle pass@N) and ``sc`` (self-consistency,
majority vote).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import lightning as L
import torch

from lightning_latentseek.choice import best_of_n_choice, majority_vote
from lightning_latentseek.config import DEFAULT_MAX_STEPS, SeekConfig, clears_tau
from lightning_latentseek.engine import Generation, GenerationEngine, Row, TemperatureSampler
from lightning_latentseek.grading import extract_answer, numeric_dataset
from lightning_latentseek.latents import latent_window
from lightning_latentseek.ltpo import LTPOScorer, ltpo_prompt
from lightning_latentseek.ltpo_module import LTPOModule
from lightning_latentseek.module import LatentFault, LatentSeekModule
from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import solver_messages
from lightning_latentseek.rewards import Reward, RewardResult, judge_many, token_reward_k
from lightning_latentseek.search import Iterate, ProblemSearch, Sample
from lightning_latentseek.seeds import stable_seed


@dataclass
class SolveContext:
    """What every method needs: the generation engine (and its frozen LLM), the reward, the settings,
    a Trainer factory (K = its max_steps) and this problem's seed."""

    engine: GenerationEngine
    reward: Reward | None
    cfg: SeekConfig
    make_trainer: Callable[[], L.Trainer] | None = None
    seed: int = 0
    max_steps: int = DEFAULT_MAX_STEPS

    @property
    def llm(self):
        return self.engine.lm


@dataclass
class Outcome:
    """What a method produced for one problem, before grading."""

    method: str
    text: str
    tokens: int
    cot_text: str | None = None
    cot_tokens: int | None = None
    iterations: int = 0
    n_latents: int = 0
    rewards: list[float] = field(default_factory=list)  # the best reward of each iteration (CoT first)
    trajectory: list[dict] = field(default_factory=list)  # one entry per iteration (LatentSeek)
    samples: list[dict] = field(default_factory=list)  # one entry per sample (BoN, SC)
    stop_reason: str = "done"
    hit_cap: bool = False
    solver_tokens: int = 0
    verifier_tokens: int = 0
    reward_calls: int = 0  # answers judged, repeats included (the budget the methods are compared on)
    best_text: str | None = None
    best_reward: float | None = None
    steps: list[dict] = field(default_factory=list)  # one entry per step of a loop that decodes no answer (LTPO)
    scoring_positions: int = 0  # forward positions spent scoring latents without generating (LTPO's reward)


def solver_prompt_ids(ctx: SolveContext, problem: Problem) -> list[int]:
    """problem -> prompt c: token ids of the chat-formatted solver prompt (``tokenizer(text)``, as the original)."""
    messages = solver_messages(problem.question, ctx.cfg.prompt, problem.dataset, ctx.cfg.prompt_set)
    return ctx.llm.encode_chat(messages, add_special_tokens=True)


# --------------------------------------------------------------------------------------- LatentSeek
def latentseek(problem: Problem, ctx: SolveContext, step: str = "reinforce") -> Outcome:
    """problem -> prompt -> CoT + latents -> per-problem fit (loss, step, decode, continue, reward) until
    R > tau or K iterations -> the last decoded answer (or the best one, `--model.answer_selection best`)."""
    cfg, llm = ctx.cfg, ctx.llm
    prompt = solver_prompt_ids(ctx, problem)
    cot = ctx.engine.generate([Row(prompt, cfg.max_new_tokens, llm.cot_stop_ids, keep_hidden=True,
                                   keep_cache=True, confidence_k=token_reward_k(ctx.reward))])[0]
    start, n = latent_window(len(cot.tokens), cfg.rho, cfg.max_latents, cfg.start_fraction)
    search = ProblemSearch(ctx.engine, problem, prompt, cot, ctx.reward, start, n, cfg.max_new_tokens, reuse=cfg.reuse)
    if clears_tau(search.reward, cfg.tau):
        stop_reason = "cot_above_tau"
    elif ctx.max_steps == 0:
        stop_reason = "max_steps"
    elif n == 0:
        stop_reason = "no_latents"
    else:
        stop_reason = _fit(search, cot.hidden[start:start + n], ctx, step)
    return _latentseek_outcome("random" if step == "random" else "latentseek", search, n, stop_reason, cfg)


def random_control(problem: Problem, ctx: SolveContext) -> Outcome:
    """The control: LatentSeek's loop with each step a random move of the latents (no gradient)."""
    return latentseek(problem, ctx, step="random")


def _fit(search: ProblemSearch, latents: torch.Tensor, ctx: SolveContext, step: str) -> str:
    """Run the per-problem Lightning fit; returns why it stopped. A fault inside the fit ends only this
    problem, which keeps the answers found so far (the run frees memory after an OOM).

    A run fits each problem in a thread of its own (`solve.solve_concurrently`), which Ctrl-C never reaches:
    the main thread gets it and cancels the engine, so this fit ends with `EngineClosed`, raised through."""
    cfg = ctx.cfg
    module = LatentSeekModule(search, latents, lr=cfg.lr, optimizer=cfg.optimizer,
                              samples_per_step=cfg.samples_per_step, temperature=cfg.temperature, step=step,
                              generator=torch.Generator().manual_seed(ctx.seed))
    trainer = ctx.make_trainer()
    try:
        trainer.fit(module)
    except LatentFault:
        return "non_finite"
    except torch.OutOfMemoryError:
        return "out_of_memory"
    return "reward_above_tau" if clears_tau(search.reward, cfg.tau) else "max_steps"


def _latentseek_outcome(method: str, search: ProblemSearch, n: int, stop_reason: str, cfg: SeekConfig) -> Outcome:
    chosen = search.best() if cfg.answer_selection == "best" else search.current.best
    best = search.best()
    samples = [s for it in search.history for s in it.samples]
    return Outcome(
        method=method, text=chosen.text, tokens=len(chosen.tokens),
        cot_text=search.history[0].samples[0].text, cot_tokens=len(search.history[0].samples[0].tokens),
        iterations=len(search.history) - 1, n_latents=n,
        rewards=[it.best.reward.value for it in search.history],
        trajectory=[_iterate_entry(search, it, cfg.samples_per_step > 1) for it in search.history],
        stop_reason=stop_reason, hit_cap=chosen.hit_cap,
        solver_tokens=search.solver_tokens,
        verifier_tokens=sum(it.verifier_tokens for it in search.history),
        reward_calls=len(samples),
        best_text=best.text, best_reward=best.reward.value,
    )


def _sample_entry(search: ProblemSearch, sample: Sample) -> dict:
    return {"text": sample.text, "reward": sample.reward.value, "reused": sample.reused, "tokens": len(sample.tokens),
            "hit_cap": sample.hit_cap, "latent_text": search.llm.decode(sample.window),
            "reward_details": sample.reward.details}


def _iterate_entry(search: ProblemSearch, it: Iterate, with_samples: bool) -> dict:
    """One trajectory entry: the iteration's best sample, the step that led to it, what it cost (answers judged,
    tokens the solver and the reward generated) and all samples when M > 1."""
    entry = {"iteration": it.iteration, **_sample_entry(search, it.best), "loss": it.loss, "step_norm": it.step_norm,
             "reward_calls": len(it.samples), "solver_tokens": it.solver_tokens, "verifier_tokens": it.verifier_tokens}
    if with_samples:
        entry["samples"] = [_sample_entry(search, s) for s in it.samples]
    return entry


# --------------------------------------------------------------------------------------- LTPO
def ltpo(problem: Problem, ctx: SolveContext) -> Outcome:
    """LTPO (ltpo2025/LTPO): its prompt with N placeholder tokens -> a fit of K steps on the placeholders' input
    embeddings, each scoring noisy candidates by the model's confidence at the slots (no verifier, no text)
    -> the best (or last) state at the slots -> one greedy generation -> the answer."""
    cfg, llm = ctx.cfg, ctx.llm
    scorer = LTPOScorer(ctx.engine, ltpo_prompt(llm, problem.question, cfg.ltpo_slots), cfg.ltpo_top_k)
    module = LTPOModule(scorer, scorer.initial_slots(), lr=cfg.lr, sigma=cfg.ltpo_sigma,
                        sigma_decay=cfg.ltpo_sigma_decay, update=cfg.ltpo_update, selection=cfg.ltpo_selection,
                        best_state=cfg.ltpo_best_state, baseline=cfg.ltpo_baseline, samples=cfg.samples_per_step,
                        generator=torch.Generator().manual_seed(ctx.seed))
    stop_reason, slots = "max_steps", None
    if ctx.max_steps > 0:
        try:
            ctx.make_trainer().fit(module)
        except LatentFault:
            stop_reason, slots = "non_finite", module.best
        except torch.OutOfMemoryError:
            stop_reason, slots = "out_of_memory", module.best
    slots = module.final_slots() if slots is None else slots
    answer = ctx.engine.generate([scorer.answer_row(slots, cfg.max_new_tokens)])[0]
    return Outcome(method="ltpo", text=llm.decode(answer.tokens), tokens=len(answer.tokens),
                   iterations=len(module.steps), n_latents=scorer.prompt.n, steps=module.steps,
                   stop_reason=stop_reason, hit_cap=answer.hit_cap, solver_tokens=len(answer.tokens),
                   scoring_positions=scorer.positions)


# --------------------------------------------------------------------------------------- baselines
def cot(problem: Problem, ctx: SolveContext) -> Outcome:
    """Greedy chain of thought (no reward, no optimisation): the same tokens as LatentSeek's CoT."""
    generation = ctx.engine.generate([Row(solver_prompt_ids(ctx, problem), ctx.cfg.max_new_tokens,
                                          ctx.llm.cot_stop_ids)])[0]
    text = ctx.llm.decode(generation.tokens)
    return Outcome(method="cot", text=text, tokens=len(generation.tokens), cot_text=text,
                   cot_tokens=len(generation.tokens), hit_cap=generation.hit_cap,
                   solver_tokens=len(generation.tokens), stop_reason="done")


def _samples(problem: Problem, ctx: SolveContext, confidence_k: int = 0) -> list[Generation]:
    """N samples at `sample_temperature`, one batched engine call; sample i is seeded by (problem seed, i)."""
    prompt = solver_prompt_ids(ctx, problem)
    rows = [Row(prompt, ctx.cfg.max_new_tokens, ctx.llm.cot_stop_ids,
                sampler=TemperatureSampler(ctx.cfg.sample_temperature, stable_seed(ctx.seed, i)),
                confidence_k=confidence_k)
            for i in range(ctx.cfg.n_samples)]
    return ctx.engine.generate(rows)


def _judge_samples(problem: Problem, ctx: SolveContext, texts: list[str],
                   generations: list[Generation]) -> tuple[list[RewardResult], list[int]]:
    """The reward of each sample and the tokens the reward generated for it: from its tokens' confidences (a
    confidence reward), else from its text, identical texts judged once (a repeat costs nothing)."""
    if token_reward_k(ctx.reward):
        return [ctx.reward.from_confidences(problem, g.confidence) for g in generations], [0] * len(texts)
    distinct = list(dict.fromkeys(texts))
    judged: dict[str, RewardResult] = dict(zip(distinct, judge_many(ctx.reward, problem, distinct)))
    first = {text: i for i, text in reversed(list(enumerate(texts)))}
    return [judged[t] for t in texts], [judged[t].verifier_tokens if first[t] == i else 0 for i, t in enumerate(texts)]


def best_of_n(problem: Problem, ctx: SolveContext) -> Outcome:
    """Best-of-N: N sampled answers, the one with the highest reward is returned (with PSRM: pass@N)."""
    generations = _samples(problem, ctx, token_reward_k(ctx.reward))
    samples = [g.tokens for g in generations]
    texts = [ctx.llm.decode(s) for s in samples]
    results, verifier_tokens = _judge_samples(problem, ctx, texts, generations)
    pick = best_of_n_choice([r.value for r in results])
    return Outcome(
        method="bon", text=texts[pick], tokens=len(samples[pick]), rewards=[r.value for r in results],
        samples=[{"text": t, "reward": r.value, "tokens": len(s), "verifier_tokens": v, "reward_details": r.details}
                 for t, r, s, v in zip(texts, results, samples, verifier_tokens)],
        solver_tokens=sum(len(s) for s in samples), verifier_tokens=sum(verifier_tokens),
        reward_calls=len(samples), best_text=texts[pick], best_reward=results[pick].value, stop_reason="done",
    )


def self_consistency(problem: Problem, ctx: SolveContext) -> Outcome:
    """Self-consistency: N sampled answers, majority vote of the extracted answers."""
    samples = [g.tokens for g in _samples(problem, ctx)]
    texts = [ctx.llm.decode(s) for s in samples]
    numeric = numeric_dataset(problem.dataset, problem.answer)
    preds = [extract_answer(t, ctx.cfg.prompt, numeric, ctx.cfg.extraction) for t in texts]
    pick = majority_vote(preds)
    return Outcome(
        method="sc", text=texts[pick], tokens=len(samples[pick]),
        samples=[{"text": t, "pred": p, "tokens": len(s)} for t, p, s in zip(texts, preds, samples)],
        solver_tokens=sum(len(s) for s in samples), stop_reason="done",
    )


METHOD_FUNCTIONS: dict[str, Callable[[Problem, SolveContext], Outcome]] = {
    "latentseek": latentseek, "random": random_control, "cot": cot, "bon": best_of_n, "sc": self_consistency,
    "ltpo": ltpo,
}
