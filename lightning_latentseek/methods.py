"""The methods, one function each: Problem -> Outcome (LatentSeek, CoT, Best-of-N, self-consistency)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import lightning as L
import torch

from lightning_latentseek.config import SeekConfig
from lightning_latentseek.grading import extract_answer, normalize_number
from lightning_latentseek.latents import latent_window
from lightning_latentseek.llm import FrozenLM
from lightning_latentseek.module import LatentFault, LatentSeekModule
from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import solver_messages
from lightning_latentseek.rewards import Reward, RewardResult
from lightning_latentseek.search import Iterate, ProblemSearch


@dataclass
class SolveContext:
    """What every method needs: the frozen LLM, the reward, the settings and a Trainer factory."""

    llm: FrozenLM
    reward: Reward | None
    cfg: SeekConfig
    make_trainer: Callable[[], L.Trainer] | None = None
    seed: int = 0


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
    rewards: list[float] = field(default_factory=list)
    trajectory: list[dict] = field(default_factory=list)  # one entry per decoded answer (LatentSeek)
    samples: list[dict] = field(default_factory=list)  # one entry per sample (BoN, SC)
    stop_reason: str = "done"
    hit_cap: bool = False
    solver_tokens: int = 0
    verifier_tokens: int = 0
    best_text: str | None = None
    best_reward: float | None = None


def solver_prompt_ids(ctx: SolveContext, problem: Problem) -> list[int]:
    """problem -> prompt c (token ids of the chat-formatted solver prompt)."""
    return ctx.llm.encode_chat(solver_messages(problem.question, ctx.cfg.prompt, problem.dataset))


def _verifier_tokens(results: list[RewardResult]) -> int:
    return sum(r.verifier_tokens for r in results)


# --------------------------------------------------------------------------------------- LatentSeek
def latentseek(problem: Problem, ctx: SolveContext) -> Outcome:
    """CoT + latents -> per-problem fit (decode, reward, loss, step) until R > tau or K steps."""
    cfg = ctx.cfg
    cot = ctx.llm.cot(solver_prompt_ids(ctx, problem), cfg.max_new_tokens)
    start, n = latent_window(len(cot.tokens), cfg.rho, cfg.max_latents, cfg.start_fraction)
    search = ProblemSearch(ctx.llm, problem, cot, ctx.reward, start, n, cfg.max_new_tokens, reuse=cfg.reuse)
    stop_reason = _fit(search, cot.latents[start:start + n], ctx) if n > 0 else "no_latents"
    if search.history[0].reward.value > cfg.tau:
        stop_reason = "cot_above_tau"
    chosen = search.best if cfg.answer_selection == "best" else search.current
    best = search.best
    fresh = [it for it in search.history if not it.reused]
    return Outcome(
        method="latentseek", text=chosen.text, tokens=len(chosen.tokens),
        cot_text=search.history[0].text, cot_tokens=len(cot.tokens),
        iterations=len(search.history) - 1, n_latents=n,
        rewards=[it.reward.value for it in search.history],
        trajectory=[_iterate_entry(it) for it in search.history],
        stop_reason=stop_reason, hit_cap=chosen.hit_cap,
        solver_tokens=sum(len(it.tokens) for it in fresh),
        verifier_tokens=_verifier_tokens(list({id(it.reward): it.reward for it in search.history}.values())),
        best_text=best.text, best_reward=best.reward.value,
    )


def _fit(search: ProblemSearch, latents: torch.Tensor, ctx: SolveContext) -> str:
    """Run the per-problem Lightning fit; returns why it stopped. A fault inside the fit ends only this
    problem, which keeps the answers found so far (the run frees memory after an OOM)."""
    module = LatentSeekModule(search, latents, lr=ctx.cfg.lr, optimizer=ctx.cfg.optimizer)
    trainer = ctx.make_trainer()
    try:
        trainer.fit(module)
    except LatentFault:
        return "non_finite"
    except torch.OutOfMemoryError:
        return "out_of_memory"
    except SystemExit as stop:
        # Lightning's fit answers Ctrl-C with its own shutdown and sys.exit(1): hand the run its
        # KeyboardInterrupt back, so it drops this problem and stops cleanly.
        if isinstance(stop.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from stop
        raise
    if search.reward > ctx.cfg.tau:
        return "reward_above_tau"
    return "max_steps"


def _iterate_entry(it: Iterate) -> dict:
    return {"iteration": it.iteration, "text": it.text, "reward": it.reward.value, "reused": it.reused,
            "tokens": len(it.tokens), "hit_cap": it.hit_cap, "reward_details": it.reward.details}


# --------------------------------------------------------------------------------------- baselines
def cot(problem: Problem, ctx: SolveContext) -> Outcome:
    """Greedy chain of thought (no reward, no optimisation)."""
    tokens, hit_cap = ctx.llm.continue_greedy(ctx.llm.prefill(solver_prompt_ids(ctx, problem)), [],
                                              ctx.cfg.max_new_tokens)
    text = ctx.llm.decode(tokens)
    return Outcome(method="cot", text=text, tokens=len(tokens), cot_text=text, cot_tokens=len(tokens),
                   hit_cap=hit_cap, solver_tokens=len(tokens), stop_reason="done")


def _samples(problem: Problem, ctx: SolveContext) -> list[list[int]]:
    """N samples at the configured temperature in one batched generate (seeded per problem)."""
    generator = torch.Generator().manual_seed(ctx.seed)
    prompt = solver_prompt_ids(ctx, problem)
    return ctx.llm.generate([prompt] * ctx.cfg.n_samples, ctx.cfg.max_new_tokens,
                            temperature=ctx.cfg.temperature, generator=generator)


def best_of_n_choice(rewards: list[float]) -> int:
    """Index of the highest reward (the earliest sample among ties)."""
    return max(range(len(rewards)), key=lambda i: (rewards[i], -i))


def majority_vote(preds: list[str | None]) -> int:
    """Index of the first sample whose answer is the most frequent one (no-answer samples never win
    unless every sample has no answer). Answers are compared after numeric normalisation."""
    keys = [_vote_key(p) for p in preds]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return 0
    top = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == top)


def _vote_key(pred: str | None) -> str | None:
    if pred is None or not pred.strip():
        return None
    number = normalize_number(pred)
    return repr(float(number)) if number is not None else "".join(pred.split())


def best_of_n(problem: Problem, ctx: SolveContext) -> Outcome:
    """Best-of-N: N sampled answers, the one with the highest reward is returned."""
    samples = _samples(problem, ctx)
    texts = [ctx.llm.decode(s) for s in samples]
    judged: dict[str, RewardResult] = {}  # identical sample texts are judged once
    for t in texts:
        if t not in judged:
            judged[t] = ctx.reward(problem, t)
    results = [judged[t] for t in texts]
    pick = best_of_n_choice([r.value for r in results])
    return Outcome(
        method="bon", text=texts[pick], tokens=len(samples[pick]), rewards=[r.value for r in results],
        samples=[{"text": t, "reward": r.value, "tokens": len(s), "reward_details": r.details}
                 for t, r, s in zip(texts, results, samples)],
        solver_tokens=sum(len(s) for s in samples), verifier_tokens=_verifier_tokens(list(judged.values())),
        best_text=texts[pick], best_reward=results[pick].value, stop_reason="done",
    )


def self_consistency(problem: Problem, ctx: SolveContext) -> Outcome:
    """Self-consistency: N sampled answers, majority vote of the extracted answers."""
    samples = _samples(problem, ctx)
    texts = [ctx.llm.decode(s) for s in samples]
    preds = [extract_answer(t, ctx.cfg.prompt) for t in texts]
    pick = majority_vote(preds)
    return Outcome(
        method="sc", text=texts[pick], tokens=len(samples[pick]),
        samples=[{"text": t, "pred": p, "tokens": len(s)} for t, p, s in zip(texts, preds, samples)],
        solver_tokens=sum(len(s) for s in samples), stop_reason="done",
    )


METHOD_FUNCTIONS: dict[str, Callable[[Problem, SolveContext], Outcome]] = {
    "latentseek": latentseek, "cot": cot, "bon": best_of_n, "sc": self_consistency,
}
