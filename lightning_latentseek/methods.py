"""The methods, one function each: Problem -> Outcome.

``latentseek`` (the paper), ``random`` (the same loop with random latent steps: a control), ``gradcuit``
(GradCuit: a prefix's states at a middle block; ``--model.step random`` is its control), ``ltpo`` (LTPO: the
placeholder tokens' embeddings optimised for the model's own confidence, no verifier), and the baselines ``cot``
(greedy), ``bon`` (Best-of-N by reward; with PSRM it is the oracle pass@N) and ``sc`` (self-consistency, majority
vote).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import lightning as L
import torch

from lightning_latentseek.choice import best_of_n_choice, majority_vote
from lightning_latentseek.config import DEFAULT_MAX_STEPS, SeekConfig, clears_tau
from lightning_latentseek.engine import Generation, GenerationEngine, Row, TemperatureSampler
from lightning_latentseek.errors import UserError
from lightning_latentseek.grading import Grader
from lightning_latentseek.latents import latent_window
from lightning_latentseek.ltpo import LTPOScorer, ltpo_prompt
from lightning_latentseek.ltpo_module import LTPOModule
from lightning_latentseek.module import GradCuitModule, LatentFault, LatentSeekModule
from lightning_latentseek.prefix import OFFSET_DTYPES, middle_layer
from lightning_latentseek.prefix_search import PrefixSearch
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

    @property
    def grader(self) -> Grader:
        """How answers are read (self-consistency's votes): the run's prompt, extraction, grading and model."""
        return Grader(self.cfg.prompt, self.cfg.extraction, self.cfg.grading, self.cfg.llm)


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
    eos: str = ""  # the text of the stop token that ended `text` ("" when the cap cut it), which the original reads
    cot_eos: str = ""
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
        stop_reason = _fit(LatentSeekModule(search, cot.hidden[start:start + n], lr=cfg.lr, optimizer=cfg.optimizer,
                                            samples_per_step=cfg.samples_per_step, temperature=cfg.temperature,
                                            step=step, generator=torch.Generator().manual_seed(ctx.seed)), search, ctx)
    return _search_outcome("random" if step == "random" else "latentseek", search, n, stop_reason, cfg)


def random_control(problem: Problem, ctx: SolveContext) -> Outcome:
    """The control: LatentSeek's loop with each step a random move of the latents (no gradient)."""
    return latentseek(problem, ctx, step="random")


def _fit(module: L.LightningModule, search, ctx: SolveContext) -> str:
    """Run the per-problem Lightning fit of `module` (whose `search` holds the answers); returns why it stopped.
    A fault inside the fit ends only this problem, which keeps the answers found so far (the run frees memory
    after an OOM).

    A run fits each problem in a thread of its own (`solve.solve_concurrently`), which Ctrl-C never reaches:
    the main thread gets it and cancels the engine, so this fit ends with `EngineClosed`, raised through."""
    cfg = ctx.cfg
    trainer = ctx.make_trainer()
    try:
        trainer.fit(module)
    except LatentFault:
        return "non_finite"
    except torch.OutOfMemoryError:
        return "out_of_memory"
    return "reward_above_tau" if clears_tau(search.reward, cfg.tau) else "max_steps"


def _search_outcome(method: str, search: ProblemSearch | PrefixSearch, n: int, stop_reason: str,
                    cfg: SeekConfig) -> Outcome:
    chosen = search.best() if cfg.answer_selection == "best" else search.current.best
    best = search.best()
    samples = [s for it in search.history for s in it.samples]
    cot_sample = search.history[0].samples[0]
    return Outcome(
        method=method, text=chosen.text, tokens=len(chosen.tokens), eos=chosen.eos,
        cot_text=cot_sample.text, cot_tokens=len(cot_sample.tokens), cot_eos=cot_sample.eos,
        iterations=len(search.history) - 1, n_latents=n,
        rewards=[it.best.reward.value for it in search.history],
        trajectory=[_iterate_entry(search, it, cfg.samples_per_step > 1) for it in search.history],
        stop_reason=stop_reason, hit_cap=chosen.hit_cap,
        solver_tokens=search.solver_tokens,
        verifier_tokens=sum(it.verifier_tokens for it in search.history),
        reward_calls=len(samples),
        best_text=best.text, best_reward=best.reward.value,
    )


def _sample_entry(search: ProblemSearch | PrefixSearch, sample: Sample) -> dict:
    return {"text": sample.text, "eos": sample.eos, "reward": sample.reward.value, "reused": sample.reused,
            "tokens": len(sample.tokens), "hit_cap": sample.hit_cap, "latent_text": search.llm.decode(sample.window),
            "reward_details": sample.reward.details}


def _iterate_entry(search: ProblemSearch | PrefixSearch, it: Iterate, with_samples: bool) -> dict:
    """One trajectory entry: the iteration's best sample, the step that led to it, what it cost (answers judged,
    tokens the solver and the reward generated) and all samples when M > 1."""
    entry = {"iteration": it.iteration, **_sample_entry(search, it.best), "loss": it.loss, "step_norm": it.step_norm,
             "reward_calls": len(it.samples), "solver_tokens": it.solver_tokens, "verifier_tokens": it.verifier_tokens}
    if with_samples:
        entry["samples"] = [_sample_entry(search, s) for s in it.samples]
    return entry


# --------------------------------------------------------------------------------------- GradCuit
def gradcuit_layer(cfg: SeekConfig, llm) -> int:
    """GradCuit's block L: `--model.latent_layer`, else the model's middle block; one line naming the option when
    the model has no such block."""
    blocks = llm.num_blocks
    layer = middle_layer(blocks) if cfg.latent_layer is None else cfg.latent_layer
    if layer >= blocks:
        raise UserError(f"--model.latent_layer {layer}: {llm.name} has {blocks} decoder blocks (0..{blocks - 1})")
    return layer


def check_reward_for(method: str, reward, name: str) -> None:
    """A method's loop that judges answer texts only (GradCuit's) refuses a reward of token confidences (a class
    or an instance with ``from_confidences``): one line naming the option."""
    if method == "gradcuit" and hasattr(reward, "from_confidences"):
        raise UserError(f"--method gradcuit --model.reward {name}: GradCuit's answers are judged by their text; "
                        f"use psrm, self, single_verifier or constant")


def gradcuit(problem: Problem, ctx: SolveContext, step: str = "gradient") -> Outcome:
    """GradCuit (arXiv 2608.02585) as its code runs it (`src/gradcuit/gradcuit.py`, G): problem -> GradCuit's
    solver prompt (tokenised from the chat template's text, no special tokens added: G:288-292) + the inserted
    prefix -> the baseline answer (greedy, no offset) and the prefix's input to block L (init) -> per-problem fit
    (loss on the whole answer, step on the offset, regenerate, reward) until R > tau or K iterations -> the last
    answer (`--model.answer_selection best`: the best-rewarded one).

    `step="random"` (`--model.step random`) is its control: the same loop with Gaussian moves of the offset."""
    cfg, llm = ctx.cfg, ctx.llm
    layer = gradcuit_layer(cfg, llm)
    if cfg.prompt != "boxed":
        raise UserError(f"--method gradcuit --model.prompt {cfg.prompt}: GradCuit's JSON solver prompt "
                        f"(src/prompts/solver_prompts.py:2-5) is not implemented; use --model.prompt boxed")
    check_reward_for("gradcuit", ctx.reward, cfg.reward)
    prefix = llm.encode(cfg.insert_prefix)
    if not cfg.insert_prefix.strip() or not prefix:
        raise UserError(f"--model.insert_prefix {cfg.insert_prefix!r}: GradCuit needs a non-empty prefix text")
    messages = solver_messages(problem.question, cfg.prompt, problem.dataset, cfg.prompt_set)
    prompt = llm.encode_chat(messages, add_special_tokens=False)
    search = PrefixSearch(ctx.engine, problem, prompt, prefix, layer, ctx.reward, cfg.max_new_tokens,
                          first_targets=cfg.first_targets, reuse=cfg.reuse)
    if clears_tau(search.reward, cfg.tau):  # G:385 before the first update
        stop_reason = "cot_above_tau"
    elif ctx.max_steps == 0:
        stop_reason = "max_steps"
    elif not search.targets:  # G:396-398: the baseline answer's text is empty
        stop_reason = "empty_answer"
    else:
        context = torch.tensor([search.context], dtype=torch.long, device=llm.device)
        init = llm.block_input(context, layer)[0, search.start:]  # G:180-206
        module = GradCuitModule(search, init, lr=cfg.lr, optimizer=cfg.optimizer, step=step, grad_clip=cfg.grad_clip,
                                dtype=OFFSET_DTYPES[cfg.offset_dtype],
                                generator=torch.Generator().manual_seed(ctx.seed))
        stop_reason = _fit(module, search, ctx)
    return _search_outcome("gradcuit" if step == "gradient" else "gradcuit_random", search, len(prefix), stop_reason,
                           cfg)


def gradcuit_method(problem: Problem, ctx: SolveContext) -> Outcome:
    """`--method gradcuit`: GradCuit, or its random control with `--model.step random`."""
    return gradcuit(problem, ctx, step=ctx.cfg.step)


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
                   eos=llm.eos_text(answer.tokens),
                   iterations=len(module.steps), n_latents=scorer.prompt.n, steps=module.steps,
                   stop_reason=stop_reason, hit_cap=answer.hit_cap, solver_tokens=len(answer.tokens),
                   scoring_positions=scorer.positions)


# --------------------------------------------------------------------------------------- baselines
def cot(problem: Problem, ctx: SolveContext) -> Outcome:
    """Greedy chain of thought (no reward, no optimisation): the same tokens as LatentSeek's CoT."""
    generation = ctx.engine.generate([Row(solver_prompt_ids(ctx, problem), ctx.cfg.max_new_tokens,
                                          ctx.llm.cot_stop_ids)])[0]
    text, eos = ctx.llm.decode(generation.tokens), ctx.llm.eos_text(generation.tokens)
    return Outcome(method="cot", text=text, tokens=len(generation.tokens), cot_text=text, eos=eos, cot_eos=eos,
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


def _judge_samples(problem: Problem, ctx: SolveContext, texts: list[str], eos: list[str],
                   generations: list[Generation]) -> tuple[list[RewardResult], list[int]]:
    """The reward of each sample and the tokens the reward generated for it: from its tokens' confidences (a
    confidence reward), else from its text and EOS; identical samples are judged once (a repeat costs nothing)
    when the reward is deterministic, a sampling verifier judges each one afresh."""
    if token_reward_k(ctx.reward):
        return [ctx.reward.from_confidences(problem, g.confidence) for g in generations], [0] * len(texts)
    answers = list(zip(texts, eos))
    if getattr(ctx.reward, "deterministic", True):
        distinct = list(dict.fromkeys(answers))
        index = [distinct.index(a) for a in answers]
    else:
        distinct, index = answers, list(range(len(answers)))
    judged = judge_many(ctx.reward, problem, [t for t, _ in distinct], eos=[e for _, e in distinct])
    first = {j: i for i, j in reversed(list(enumerate(index)))}
    return [judged[j] for j in index], [judged[j].verifier_tokens if first[j] == i else 0 for i, j in enumerate(index)]


def best_of_n(problem: Problem, ctx: SolveContext) -> Outcome:
    """Best-of-N: N sampled answers, the one with the highest reward is returned (with PSRM: pass@N)."""
    generations = _samples(problem, ctx, token_reward_k(ctx.reward))
    samples = [g.tokens for g in generations]
    texts = [ctx.llm.decode(s) for s in samples]
    eos = [ctx.llm.eos_text(s) for s in samples]
    results, verifier_tokens = _judge_samples(problem, ctx, texts, eos, generations)
    pick = best_of_n_choice([r.value for r in results])
    return Outcome(
        method="bon", text=texts[pick], tokens=len(samples[pick]), rewards=[r.value for r in results], eos=eos[pick],
        samples=[{"text": t, "eos": e, "reward": r.value, "tokens": len(s), "verifier_tokens": v,
                  "reward_details": r.details} for t, e, r, s, v in zip(texts, eos, results, samples, verifier_tokens)],
        solver_tokens=sum(len(s) for s in samples), verifier_tokens=sum(verifier_tokens),
        reward_calls=len(samples), best_text=texts[pick], best_reward=results[pick].value, stop_reason="done",
    )


def self_consistency(problem: Problem, ctx: SolveContext) -> Outcome:
    """Self-consistency: N sampled answers, majority vote of the extracted answers."""
    samples = [g.tokens for g in _samples(problem, ctx)]
    texts = [ctx.llm.decode(s) for s in samples]
    eos = [ctx.llm.eos_text(s) for s in samples]
    grader = ctx.grader
    preds = [grader.extract(t, problem.dataset, problem.answer, e) for t, e in zip(texts, eos)]
    pick = majority_vote(preds)
    return Outcome(
        method="sc", text=texts[pick], tokens=len(samples[pick]), eos=eos[pick],
        samples=[{"text": t, "eos": e, "pred": p, "tokens": len(s)} for t, e, p, s in zip(texts, eos, preds, samples)],
        solver_tokens=sum(len(s) for s in samples), stop_reason="done",
    )


METHOD_FUNCTIONS: dict[str, Callable[[Problem, SolveContext], Outcome]] = {
    "latentseek": latentseek, "random": random_control, "cot": cot, "bon": best_of_n, "sc": self_consistency,
    "gradcuit": gradcuit_method, "ltpo": ltpo,
}
