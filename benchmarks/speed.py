#!/usr/bin/env python
"""Side-by-side speed benchmark in PAPER mode: the original LatentSeek loop vs this library, same model,
same problems, one process.

    python benchmarks/speed.py [--problems 5] [--max-new-tokens 128] [--verifier-max-new-tokens 48]
                               [--max-steps 2] [--rewards psrm,self] [--prompt json] [--threads 2]

(a) reference: the original's loop as its code runs it (bigai-nlco/LatentSeek `ori_generation.py`,
    `opt_generation.py`, `rewards/reward.py`), written plainly: the CoT by greedy decoding that re-runs the
    WHOLE sequence through `model.model` for every new token (no KV cache), keeping the hidden states; then
    per iteration: tau check, loss = -R * sum_t log softmax(lm_head(z_t))[argmax], Adam step on z, argmax
    decode, greedy continuation re-running the whole sequence for every new token, reward. It regenerates
    and re-judges unchanged decodings. Its self-reward sends the four published verifier prompts
    (`prompts.get_vera_prompt`, each one fresh user message through the chat template) to four separate
    `model.generate` calls at the verifier cap (greedy: our default decoding; no early stop at the verdict).
    Two documented fixes of ours are applied on BOTH sides so that rewards can be compared: the verdict is
    read from the generated text only, and caps count new tokens (the original's `cnt > cap` allows one more).
(b) ours: `methods.latentseek` with `--model.prompt_set paper`, a per-problem Lightning Trainer as `solve`
    builds it, and the generation engine.

Both must give the same CoT and the same answer at every iteration, compared on TOKEN IDS, and the same
rewards; the only divergence allowed is a float difference (batching, KV cache) flipping a near-tie, which
is counted and shown with its top-2 logit gap. The last lines are `speedup:` (paper mode, all rewards) and
the compact prompt set's figure on the self-reward, with how often its verdicts agree with the paper's.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PHASES = ("cot", "continuations", "reward", "optimizer", "lightning", "other", "total")
PHASE_NAMES = {"cot": "CoT", "continuations": "continuations", "reward": "reward", "optimizer": "optimizer steps",
               "lightning": "Lightning overhead", "other": "other", "total": "total"}


# ------------------------------------------------------------------------------------------ timing
class Clock:
    """Seconds per phase name."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@contextmanager
def timed(owner, attr: str, clock: Clock, name: str, keep: list | None = None):
    """Time calls of `owner.attr` for the duration of the block (and keep what they return)."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        with clock(name):
            result = original(*args, **kwargs)
        if keep is not None:
            keep.append((args, result))
        return result

    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


def phases(seconds: dict, total: float) -> dict:
    out = {p: float(seconds.get(p, 0.0)) for p in PHASES if p not in ("other", "total")}
    out["total"] = total
    out["other"] = max(0.0, total - sum(v for k, v in out.items() if k != "total"))
    return out


# ------------------------------------------------------------------------------------------ reference
@dataclass
class Run:
    answers: list[list[int]] = field(default_factory=list)  # answer token ids per iteration (0 = CoT)
    rewards: list[float] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def full_forward_decode(llm, ids: list[int], max_new_tokens: int, stop_ids, keep_states: bool = False):
    """Greedy decoding as the original writes it: the whole sequence through `model.model` per new token."""
    sequence, tokens, states = list(ids), [], []
    with torch.no_grad():
        while len(tokens) < max_new_tokens:
            hidden = llm.body(input_ids=torch.tensor([sequence], device=llm.device), use_cache=False)
            z_t = hidden.last_hidden_state[:, -1]
            token = int(llm.lm_head(z_t).argmax(-1))
            tokens.append(token)
            if keep_states:
                states.append(z_t)
            sequence.append(token)
            if token in stop_ids:
                break
    return tokens, (torch.cat(states) if keep_states else None)


class ReferenceSelfReward:
    """`rewards/reward.py` of the original: four `model.generate` calls, one per published verifier prompt."""

    def __init__(self, llm, max_new_tokens: int):
        from lightning_latentseek.prompts import VERIFIER_CHECKS

        self.llm, self.max_new_tokens, self.checks = llm, max_new_tokens, VERIFIER_CHECKS

    def __call__(self, problem, answer: str):
        from transformers import GenerationConfig

        from lightning_latentseek.prompts import verifier_messages
        from lightning_latentseek.rewards.self_reward import parse_verdict, reward_value

        config = GenerationConfig(do_sample=False, max_new_tokens=self.max_new_tokens,
                                  eos_token_id=sorted(self.llm.generation_stop_ids), pad_token_id=self.llm.pad_id)
        verdicts = {}
        for check in self.checks:
            ids = self.llm.encode_chat(verifier_messages(problem.question, answer, check.name, "paper"))
            inputs = torch.tensor([ids], device=self.llm.device)
            with torch.no_grad():
                out = self.llm.model.generate(inputs, attention_mask=torch.ones_like(inputs), generation_config=config)
            verdicts[check.name] = parse_verdict(self.llm.decode(out[0, len(ids):].tolist()))  # response only
        return reward_value(list(verdicts.values()), [c.weight for c in self.checks]), verdicts


def reference_latentseek(llm, problem, reward, cfg, max_steps: int) -> Run:
    """The original's loop (opt_generation.py), one problem, timed per phase."""
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids

    clock, run, started = Clock(), Run(), time.perf_counter()
    prompt = solver_prompt_ids(SolveContext(engine=_Engine(llm), reward=None, cfg=cfg), problem)

    def judge(text: str) -> float:
        with clock("reward"):
            value, verdicts = reward(problem, text)
        run.rewards.append(value)
        run.verdicts.append(verdicts)
        return value

    with clock("cot"):
        cot, states = full_forward_decode(llm, prompt, cfg.max_new_tokens, llm.cot_stop_ids, keep_states=True)
    run.answers.append(cot)
    current = judge(llm.decode(cot))
    n = min(int(cfg.rho * len(cot)), cfg.max_latents)
    z = states[:n].detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=cfg.lr)
    for _ in range(max_steps if n > 0 else 0):
        if current > cfg.tau:
            break
        with clock("optimizer"):
            optimizer.zero_grad()
            log_probs = torch.log_softmax(llm.lm_head(z.to(llm.dtype)).float(), dim=-1)
            loss = -current * log_probs.gather(-1, log_probs.detach().argmax(-1)[:, None]).sum()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                window = llm.lm_head(z.to(llm.dtype)).float().argmax(-1).tolist()
        with clock("continuations"):
            rest, _ = full_forward_decode(llm, prompt + window, cfg.max_new_tokens, llm.continuation_stop_ids)
        run.answers.append(window + rest)
        current = judge(llm.decode(run.answers[-1]))
    run.seconds = phases(clock.seconds, time.perf_counter() - started)
    return run


class _Engine:
    """Just enough of an engine for `solver_prompt_ids` (the reference uses the same prompt ids as ours)."""

    def __init__(self, llm):
        self.lm = llm


# ------------------------------------------------------------------------------------------ ours
def ours_latentseek(engine, problem, reward, cfg, trainer_kwargs: dict) -> Run:
    """`methods.latentseek` with a per-problem Trainer as `solve` builds it, timed from the outside."""
    import lightning as L

    from lightning_latentseek.callbacks import RewardThreshold
    from lightning_latentseek import methods
    from lightning_latentseek.module import LatentSeekModule
    from lightning_latentseek.search import ProblemSearch

    clock, searches = Clock(), []
    engine_generate = engine.generate
    calls: list = []
    judging: list = []

    def generate(rows):  # the CoT is a problem's first engine call; the reward's calls count as reward
        if judging:
            return engine_generate(rows)
        phase = "cot" if not calls else "continuations"
        calls.append(1)
        with clock(phase):
            return engine_generate(rows)

    class TimedReward:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, problem, answer):
            return self.judge_many(problem, [answer])[0]

        def judge_many(self, problem, answers):
            from lightning_latentseek.rewards import judge_many

            judging.append(1)
            try:
                with clock("reward"):
                    return judge_many(self.inner, problem, answers)
            finally:
                judging.pop()

    original_init = ProblemSearch.__init__

    def keep_search(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        searches.append(self)

    ctx = methods.SolveContext(engine, TimedReward(reward), cfg, max_steps=trainer_kwargs["max_steps"],
                               make_trainer=lambda: L.Trainer(**trainer_kwargs, callbacks=[RewardThreshold(cfg.tau)]))
    engine.generate = generate
    ProblemSearch.__init__ = keep_search
    started = time.perf_counter()
    try:
        with timed(ProblemSearch, "step", clock, "search_step"), \
                timed(LatentSeekModule, "training_step", clock, "training_step"), \
                timed(methods, "_fit", clock, "fit"):
            outcome = methods.latentseek(problem, ctx)
    finally:
        engine.generate = engine_generate
        ProblemSearch.__init__ = original_init
    total = time.perf_counter() - started
    s = clock.seconds
    search = searches[0]
    run = Run(answers=[it.best.tokens for it in search.history], rewards=list(outcome.rewards),
              verdicts=[it.best.reward.details.get("verdicts", {}) for it in search.history])
    run.seconds = phases({"cot": s["cot"], "reward": s["reward"], "continuations": s["continuations"],
                          "optimizer": s["training_step"] - s["search_step"],
                          "lightning": s["fit"] - s["training_step"]}, total)
    run.outcome = outcome
    return run


# ------------------------------------------------------------------------------------------ checking
def top2_gap(llm, ids: list[int]) -> float:
    with torch.no_grad():
        states = llm.body(input_ids=torch.tensor([ids], device=llm.device), use_cache=False)
        top = llm.lm_head(states.last_hidden_state[0, -1]).float().topk(2).values
    return float(top[0] - top[1])


def compare(llm, prompt: list[int], ref: Run, ours: Run) -> tuple[bool, str]:
    """(identical on token ids and rewards, where the first divergence is)."""
    if ref.answers == ours.answers and ref.rewards == ours.rewards:
        return True, ""
    for k, (a, b) in enumerate(zip(ref.answers, ours.answers)):
        j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        what = "CoT" if k == 0 else f"iteration {k}"
        if j is not None:
            context = prompt + a[:j] if k == 0 else None
            gap = f", top-2 logit gap {top2_gap(llm, context):.2e}" if context is not None else ""
            return False, f"{what} token {j}: {a[j]} vs {b[j]}{gap}"
        if len(a) != len(b):
            return False, f"{what}: {len(a)} vs {len(b)} tokens"
        if k < min(len(ref.rewards), len(ours.rewards)) and ref.rewards[k] != ours.rewards[k]:
            return False, f"{what}: reward {ref.rewards[k]} vs {ours.rewards[k]} (verdicts {ref.verdicts[k]} vs " \
                          f"{ours.verdicts[k]})"
    return False, f"iterations: {len(ref.answers) - 1} vs {len(ours.answers) - 1}"


def reference_reward(llm, reward_name: str, prompt: str, verifier_max_new_tokens: int):
    """The reference side's reward: PSRM as ours grades it, or the original's four `generate` calls."""
    from lightning_latentseek.rewards import PerfectSparseReward

    if reward_name == "psrm":
        psrm = PerfectSparseReward(prompt=prompt)
        return lambda problem, text: (psrm(problem, text).value, {})
    if reward_name == "self":
        return ReferenceSelfReward(llm, verifier_max_new_tokens)
    raise SystemExit(f"--rewards {reward_name!r}: choose psrm and/or self")


def compare_one(llm, problem, reward_name: str, ref_reward, cfg, max_steps: int, trainer_kwargs: dict,
                ours_first: bool = False) -> tuple[Run, Run, bool, str]:
    """One problem through the reference loop and through ours (a fresh engine: no prefix cached from the
    other side's prompts), in the given order: (reference, ours, identical on token ids and rewards, where
    the first divergence is)."""
    from lightning_latentseek.engine import GenerationEngine
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids
    from lightning_latentseek.rewards import build_reward

    results = {}
    for side in (("ours", "ref") if ours_first else ("ref", "ours")):
        if side == "ref":
            results["ref"] = reference_latentseek(llm, problem, ref_reward, cfg, max_steps)
        else:
            engine = GenerationEngine(llm)
            try:
                reward = build_reward(reward_name, engine=engine, prompt=cfg.prompt,
                                      max_new_tokens=cfg.verifier_max_new_tokens, prompt_set=cfg.prompt_set)
                results["ours"] = ours_latentseek(engine, problem, reward, cfg, trainer_kwargs)
            finally:
                engine.close()
    prompt = solver_prompt_ids(SolveContext(_Engine(llm), None, cfg), problem)
    same, where = compare(llm, prompt, results["ref"], results["ours"])
    return results["ref"], results["ours"], same, where


def table(rows: dict[str, dict], title: str) -> str:
    lines = [title, f"  {'phase':<20}{'reference s':>13}{'ours s':>11}{'ratio':>10}"]
    for phase in PHASES:
        ref, ours = rows["ref"].get(phase, 0.0), rows["ours"].get(phase, 0.0)
        ratio = f"{ref / ours:9.1f}x" if ours > 0 and ref > 0 else f"{'-':>10}"
        lines.append(f"  {PHASE_NAMES[phase]:<20}{ref:13.2f}{ours:11.2f}{ratio}")
    return "\n".join(lines)


def add(into: dict, seconds: dict) -> None:
    for k, v in seconds.items():
        into[k] = into.get(k, 0.0) + v


# ------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=5, help="GSM8K test problems (the first N)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"),
                        help="GSM8K JSONL (default: ../shared/data beside the repository)")
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="cap on each generation's new tokens")
    parser.add_argument("--verifier-max-new-tokens", type=int, default=48, help="verifier cap (the original: 4096)")
    parser.add_argument("--max-steps", type=int, default=2, help="K")
    parser.add_argument("--rewards", default="psrm,self")
    parser.add_argument("--prompt", choices=("boxed", "json"), default="json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="problems ours solves at once in the batched run (default: the library's default)")
    parser.add_argument("--no-compact", action="store_true", help="skip the compact prompt set's figure")
    args = parser.parse_args(argv)
    args.rewards = [r.strip() for r in args.rewards.split(",") if r.strip()]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.engine import load_llm
    from lightning_latentseek.problems import load_problems
    from lightning_latentseek.rewards import PerfectSparseReward
    from lightning_latentseek.solve import per_problem_trainer_kwargs, quiet_lightning

    quiet_lightning()
    loaded = time.perf_counter()
    llm = load_llm(args.llm, "cpu", torch.float32)
    loaded = time.perf_counter() - loaded
    problems = load_problems("gsm8k", args.data, limit=args.problems)
    trainer_kwargs = per_problem_trainer_kwargs({"max_steps": args.max_steps}, "cpu", 0)
    print(f"model {llm.name} ({sum(p.numel() for p in llm.model.parameters()) / 1e6:.0f}M params, {llm.dtype}), "
          f"loaded in {loaded:.0f} s; torch threads {torch.get_num_threads()}; {len(problems)} GSM8K problems; "
          f"max_new_tokens {args.max_new_tokens}, verifier_max_new_tokens {args.verifier_max_new_tokens}, "
          f"K {args.max_steps}, prompt {args.prompt}, rewards {','.join(args.rewards)}; prompt set paper", flush=True)

    import lightning as L

    L.Trainer(**trainer_kwargs)  # warm lazy imports once (Lightning, the grader), as a long run amortises them
    PerfectSparseReward()(problems[0], "\\boxed{0}")
    totals = {"ref": {}, "ours": {}}
    divergent, runs = [], 0
    judged: list[tuple] = []  # (problem, answer text, paper verdicts) for the compact comparison
    reference_answers: dict[tuple, list] = {}
    for reward_name in args.rewards:
        cfg = SeekConfig(llm=args.llm, reward=reward_name, max_new_tokens=args.max_new_tokens, prompt=args.prompt,
                         verifier_max_new_tokens=args.verifier_max_new_tokens, prompt_set="paper")
        ref_reward = reference_reward(llm, reward_name, cfg.prompt, args.verifier_max_new_tokens)
        phase = {"ref": {}, "ours": {}}
        for index, problem in enumerate(problems):
            ref, ours, same, where = compare_one(llm, problem, reward_name, ref_reward, cfg, args.max_steps,
                                                 trainer_kwargs, ours_first=index % 2 == 1)  # against drifting load
            reference_answers[(reward_name, problem.id)] = ref.answers
            add(phase["ref"], ref.seconds)
            add(phase["ours"], ours.seconds)
            runs += 1
            if not same:
                divergent.append(f"[{reward_name}] problem {problem.id}: {where}")
            if reward_name == "self":
                judged += [(problem, llm.decode(a), v) for a, v in zip(ours.answers, ours.verdicts)]
            print(f"[{reward_name}] problem {problem.id}: ours {ours.seconds['total']:.1f} s, "
                  f"{len(ours.answers) - 1} iterations, rewards {[round(r, 3) for r in ours.rewards]}; reference "
                  f"{ref.seconds['total']:.1f} s ({ref.seconds['total'] / ours.seconds['total']:.1f}x); "
                  + ("identical token ids" if same else f"DIVERGED: {where}"), flush=True)
        print(table(phase, f"\n{reward_name}: seconds over {len(problems)} problems"), flush=True)
        totals[reward_name] = phase
        add(totals["ref"], phase["ref"])
        add(totals["ours"], phase["ours"])

    print(table(totals, f"\nall rewards ({', '.join(args.rewards)}): seconds over {len(problems)} problems each "
                        f"(ours one problem at a time)"))
    print(f"\nidentical results (token ids and rewards), one at a time: {runs - len(divergent)} of {runs} problem "
          f"runs; float-divergent: {len(divergent)}")
    for entry in divergent:
        print("  " + entry)
    # ours as train_free.py runs many problems: --data.batch_size at a time, all rows sharing forwards
    from lightning_latentseek.config import DataConfig
    from throughput import solve_all

    batch = args.batch_size or DataConfig().batch_size
    batched_seconds, batched_same = 0.0, 0
    for reward_name in args.rewards:
        run = solve_all(llm, problems, reward_name, batch, args, trainer_kwargs)  # as throughput.py measures it
        wall, answers = run["wall"], run["answers"]  # M = 1: one answer (token ids) per iteration
        batched_seconds += wall
        same = sum(answers[p.id] == reference_answers[(reward_name, p.id)] for p in problems)
        batched_same += same
        print(f"[{reward_name}] ours, {batch} problems at once: {wall:.1f} s for {len(problems)} problems "
              f"(reference {totals[reward_name]['ref']['total']:.1f} s: "
              f"{totals[reward_name]['ref']['total'] / wall:.1f}x); answers identical to the reference's "
              f"(token ids): {same} of {len(problems)}", flush=True)
    compact = ""
    if "self" in args.rewards and not args.no_compact:
        compact = compact_figures(llm, problems, args, trainer_kwargs, totals["self"]["ref"]["total"], judged)
    one_at_a_time = totals["ref"]["total"] / totals["ours"]["total"]
    print(f"speedup: {totals['ref']['total'] / batched_seconds:.1f}x ({batch} problems at once; one at a time "
          f"{one_at_a_time:.1f}x; identical {batched_same + runs - len(divergent)} of {2 * runs})" + compact)


def compact_figures(llm, problems, args, trainer_kwargs, reference_seconds: float, judged: list) -> str:
    """The compact prompt set on the same problems (self-reward): its time against the paper-mode reference,
    and how often its verdicts agree with the paper prompts' on the same answers."""
    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.engine import GenerationEngine
    from lightning_latentseek.rewards import build_reward

    cfg = SeekConfig(llm=args.llm, reward="self", max_new_tokens=args.max_new_tokens, prompt=args.prompt,
                     verifier_max_new_tokens=args.verifier_max_new_tokens, prompt_set="compact")
    seconds = 0.0
    for problem in problems:
        engine = GenerationEngine(llm)
        reward = build_reward("self", engine=engine, prompt=cfg.prompt, max_new_tokens=args.verifier_max_new_tokens,
                              prompt_set="compact")
        seconds += ours_latentseek(engine, problem, reward, cfg, trainer_kwargs).seconds["total"]
        engine.close()
    engine = GenerationEngine(llm)
    reward = build_reward("self", engine=engine, prompt=cfg.prompt, max_new_tokens=args.verifier_max_new_tokens,
                          prompt_set="compact")
    agree = checks = passed = 0
    for problem, text, paper_verdicts in judged:
        verdicts = reward(problem, text).details["verdicts"]
        agree += sum(bool(verdicts[name]) == bool(paper_verdicts[name]) for name in paper_verdicts)
        checks += len(paper_verdicts)
        passed += sum(bool(v) for v in verdicts.values())
    engine.close()
    ratio = reference_seconds / seconds
    print(f"\ncompact prompt set (self-reward, {len(problems)} problems): {seconds:.1f} s against the paper-mode "
          f"reference's {reference_seconds:.1f} s ({ratio:.1f}x); its verdicts agree with the paper prompts' on "
          f"{agree} of {checks} checks of the same {len(judged)} answers ({passed} passed)")
    return f" (paper mode; compact prompt set, self-reward: {ratio:.1f}x, verdicts agreeing {agree}/{checks})"


if __name__ == "__main__":
    main()
