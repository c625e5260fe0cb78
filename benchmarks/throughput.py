#!/usr/bin/env python
"""Throughput of many problems at once (`--data.batch_size B`), in one process.

    python benchmarks/throughput.py [--problems 16] [--batch-sizes 1,4,8,16] [--rewards psrm,self]
                                    [--max-new-tokens 96] [--verifier-max-new-tokens 32] [--max-steps 3]
    python benchmarks/throughput.py --random-7b      # GPU: a Qwen2.5-7B-sized random model in bf16

The same GSM8K problems (the first N of ../shared/data/gsm8k_test.jsonl) are solved by LatentSeek with PSRM
and with the paper's self-reward at every B, exactly as `train_free.py` solves them (`solve.solve_concurrently`:
a Lightning fit per problem, up to B at once, their generation sharing the engine's batched forwards).
For each B: problems per hour, generated tokens per second (solver + verifier tokens over the wall time),
peak resident memory (CPU; peak allocated on a GPU), and whether every problem's answers (CoT and every
iteration, TOKEN IDS) and rewards are those of B = 1; a divergence is shown with the top-2 logit gap of the
token where it starts. Then the engine's tricks are measured at the best B, each against what it replaces:
continuous admission vs static waves (rows admitted only when the batch is empty, as batched `generate`
calls would run), the prefix cache vs prefilling every row whole, the static batch cache (positions
written in place) vs transformers' `DynamicCache` (which concatenates every layer's whole cache at every
step), and prompt-lookup drafts vs one token per forward (`--tricks` picks among them). The last line is `throughput: X.Xx`, the best problems/hour over B = 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

QWEN25_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                 rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)


class PeakMemory:
    """Peak resident set size of this process while the block runs (sampled every 50 ms), or the CUDA peak."""

    def __init__(self, cuda: bool):
        self.cuda, self.peak, self._stop = cuda, 0, threading.Event()

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        process = psutil.Process()

        def sample():
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, process.memory_info().rss)

        self.peak = process.memory_info().rss
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def solve_all(llm, problems, reward_name: str, batch: int, args, trainer_kwargs: dict, method: str = "latentseek",
              **engine_options) -> dict:
    """Solve `problems` B at once as the run does (`method`: LatentSeek, or another of `METHOD_FUNCTIONS`, e.g.
    ``cot``); returns answers (LatentSeek's, per iteration), rewards and the measurements."""
    import lightning as L

    from lightning_latentseek.callbacks import RewardThreshold
    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.engine import GenerationEngine
    from lightning_latentseek.methods import METHOD_FUNCTIONS, SolveContext
    from lightning_latentseek.rewards import build_reward
    from lightning_latentseek.search import ProblemSearch
    from lightning_latentseek.solve import problem_seed, release_memory, solve_concurrently

    cfg = SeekConfig(llm=args.llm, reward=reward_name, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                     verifier_max_new_tokens=args.verifier_max_new_tokens, prompt_set="paper")
    engine = GenerationEngine(llm, **engine_options)
    reward = build_reward(reward_name, engine=engine, prompt=cfg.prompt, max_new_tokens=cfg.verifier_max_new_tokens,
                          prompt_set="paper")
    searches: dict[str, ProblemSearch] = {}
    init = ProblemSearch.__init__

    def keep(self, engine_, problem, *rest, **kw):
        init(self, engine_, problem, *rest, **kw)
        searches[problem.id] = self

    def solve_one(problem):
        ctx = SolveContext(engine, reward, cfg, seed=problem_seed(0, problem), max_steps=args.max_steps,
                           make_trainer=lambda: L.Trainer(**trainer_kwargs, callbacks=[RewardThreshold(cfg.tau)]))
        return METHOD_FUNCTIONS[method](problem, ctx)

    outcomes = {}
    ProblemSearch.__init__ = keep
    release_memory()  # the previous run's freed memory back to the OS: each peak is this run's
    try:
        with PeakMemory(llm.device.type == "cuda") as memory:
            started = time.perf_counter()
            solve_concurrently(problems, solve_one, batch, engine, lambda p: None,
                               lambda p, outcome, s: outcomes.__setitem__(p.id, outcome))
            wall = time.perf_counter() - started
    finally:
        ProblemSearch.__init__ = init
        engine.close()
    tokens = sum(o.solver_tokens + o.verifier_tokens for o in outcomes.values())
    return {"answers": {pid: [s.tokens for it in search.history for s in it.samples] for pid, search in searches.items()},
            "prompts": {pid: search.prompt_ids + search.fixed for pid, search in searches.items()},
            "rewards": {pid: outcomes[pid].rewards for pid in outcomes}, "wall": wall, "tokens": tokens,
            "peak": memory.peak, "stats": dict(engine.stats), "n": len(outcomes),
            "iterations": sum(o.iterations for o in outcomes.values())}


def top2_gap(llm, ids: list[int]) -> float:
    with torch.no_grad():
        hidden = llm.body(input_ids=torch.tensor([ids], device=llm.device), use_cache=False).last_hidden_state
        top = llm.lm_head(hidden[0, -1]).float().topk(2).values
    return float(top[0] - top[1])


def differences(llm, base: dict, other: dict) -> list[str]:
    """Problems whose answers (token ids) or rewards differ from the B = 1 run, with where and how near a tie."""
    out = []
    for pid, answers in base["answers"].items():
        theirs = other["answers"].get(pid)
        if theirs == answers and other["rewards"].get(pid) == base["rewards"][pid]:
            continue
        where = "rewards"
        for k, (a, b) in enumerate(zip(answers, theirs or [])):
            j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
            if j is not None:
                context = base["prompts"][pid] + a[:j] if k == 0 else None
                gap = f", top-2 logit gap {top2_gap(llm, context):.1e}" if context else ""
                where = f"answer {k} token {j}{gap}"
                break
        out.append(f"{pid}: {where}")
    return out


def build_random_7b(device: str):
    from transformers import AutoModelForCausalLM, Qwen2Config

    from lightning_latentseek.engine import FrozenLM, load_llm
    from lightning_latentseek.engine.attention import GQA_SDPA

    tokenizer = load_llm("smollm2").tokenizer if device == "cpu" else _tokenizer()
    config = Qwen2Config(**QWEN25_7B, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation=GQA_SDPA)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return FrozenLM(model, tokenizer, name="random-qwen2.5-7b")


def _tokenizer():
    from transformers import AutoTokenizer

    from lightning_latentseek.engine import resolve_llm_source

    source, gguf = resolve_llm_source("smollm2")
    return AutoTokenizer.from_pretrained(source, gguf_file=gguf)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"))
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--rewards", default="psrm,self")
    parser.add_argument("--prompt", choices=("boxed", "json"), default="boxed")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--verifier-max-new-tokens", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--precision", choices=("32", "bf16"), default="32", help="the LLM's dtype")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-ab", action="store_true", help="skip the engine A/B measurements")
    parser.add_argument("--tricks", default="waves,prefix,batchcache,drafts",
                        help="which engine tricks the A/B measures (names: waves, prefix, batchcache, drafts)")
    parser.add_argument("--stats", action="store_true", help="print the engine's counters after each run")
    parser.add_argument("--random-7b", action="store_true", help="GPU: Qwen2.5-7B-sized random model, bf16")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.rewards = [r for r in args.rewards.split(",") if r]
    args.tricks = [t for t in args.tricks.split(",") if t]
    unknown = set(args.tricks) - {name for name, _, _ in TRICKS}
    if unknown:
        parser.error(f"--tricks {','.join(sorted(unknown))}: choose among {', '.join(n for n, _, _ in TRICKS)}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from lightning_latentseek.engine import load_llm
    from lightning_latentseek.problems import load_problems
    from lightning_latentseek.solve import per_problem_trainer_kwargs, quiet_lightning

    quiet_lightning()
    device = "cuda" if args.random_7b else "cpu"
    if args.random_7b:
        llm = build_random_7b(device)
    else:
        llm = load_llm(args.llm, device, torch.bfloat16 if args.precision == "bf16" else torch.float32)
    problems = load_problems("gsm8k", args.data, limit=args.problems)
    trainer_kwargs = per_problem_trainer_kwargs({"max_steps": args.max_steps}, "cuda" if args.random_7b else "cpu", 0)
    print(f"model {llm.name} ({llm.dtype}, {llm.device}); torch threads {torch.get_num_threads()}; "
          f"{len(problems)} GSM8K problems; rewards {','.join(args.rewards)} (paper prompts); prompt {args.prompt}; "
          f"max_new_tokens {args.max_new_tokens}, verifier_max_new_tokens {args.verifier_max_new_tokens}, "
          f"K {args.max_steps}", flush=True)
    import lightning as L

    L.Trainer(**trainer_kwargs)  # warm lazy imports
    results: dict[int, dict[str, dict]] = {}
    print(f"\n  {'B':>3} {'reward':>7} {'seconds':>9} {'problems/h':>11} {'tokens/s':>9} {'peak MiB':>9} "
          f"{'mean rows/step':>15}  same as B=1", flush=True)
    for batch in args.batch_sizes:
        results[batch] = {}
        for reward_name in args.rewards:
            run = solve_all(llm, problems, reward_name, batch, args, trainer_kwargs)
            results[batch][reward_name] = run
            base = results[args.batch_sizes[0]][reward_name]
            diff = differences(llm, base, run) if batch != args.batch_sizes[0] else []
            occupancy = run["stats"].get("row_steps", 0) / max(1, run["stats"].get("steps", 1))
            print(f"  {batch:>3} {reward_name:>7} {run['wall']:9.1f} {run['n'] / run['wall'] * 3600:11.1f} "
                  f"{run['tokens'] / run['wall']:9.1f} {run['peak'] / 2**20:9.0f} {occupancy:15.1f}  "
                  + ("identical" if not diff else f"{len(problems) - len(diff)}/{len(problems)}; " + "; ".join(diff)),
                  flush=True)
            if args.stats:
                print("       engine: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in sorted(run["stats"].items())), flush=True)
    per_hour = {b: len(args.rewards) * len(problems) / sum(r["wall"] for r in results[b].values()) * 3600
                for b in args.batch_sizes}
    identical = {b: all(not differences(llm, results[args.batch_sizes[0]][r], results[b][r]) for r in args.rewards)
                 for b in args.batch_sizes}
    print("\n  B   problems/h (all rewards)   identical to B=1")
    for b in args.batch_sizes:
        print(f"  {b:<3} {per_hour[b]:>24.1f}   {'yes' if identical[b] else 'no (float near-ties, above)'}")
    best = max(args.batch_sizes, key=lambda b: per_hour[b])
    if not args.no_ab:
        ab_tests(llm, problems, args, trainer_kwargs, best, results[best])
    print(f"\nthroughput: {per_hour[best] / per_hour[args.batch_sizes[0]]:.1f}x (B = {best}: {per_hour[best]:.1f} "
          f"problems/h against {per_hour[args.batch_sizes[0]]:.1f} at B = {args.batch_sizes[0]})")


TRICKS = (("waves", "static waves instead of continuous admission", {"continuous": False}),
          ("prefix", "no prefix cache (every row prefilled whole)", {"prefix_cache": False}),
          ("batchcache", "DynamicCache (whole cache copied every step)", {"static_cache": False}),
          ("drafts", "one token per forward (no prompt-lookup drafts)", {"draft_tokens": 0}))


def ab_tests(llm, problems, args, trainer_kwargs: dict, batch: int, measured: dict) -> None:
    """Each engine trick against what it replaces, at the best B, on the same problems (paper self-reward
    and PSRM together), in this process."""
    print(f"\nengine tricks at B = {batch} (seconds over all rewards; each against what it replaces)")
    base = sum(r["wall"] for r in measured.values())
    for name, label, options in TRICKS:
        if name not in args.tricks:
            continue
        runs = {r: solve_all(llm, problems, r, batch, args, trainer_kwargs, **options) for r in args.rewards}
        wall = sum(r["wall"] for r in runs.values())
        same = all(not differences(llm, measured[r], runs[r]) for r in args.rewards)
        prefill = sum(r["stats"].get("prefill_tokens", 0) for r in runs.values())
        ours_prefill = sum(r["stats"].get("prefill_tokens", 0) for r in measured.values())
        rebuilds = sum(r["stats"].get("rebuild_seconds", 0.0) for r in runs.values())
        ours_rebuilds = sum(r["stats"].get("rebuild_seconds", 0.0) for r in measured.values())
        print(f"  {label:<48} {wall:8.1f} s vs {base:8.1f} s: the trick is worth {wall / base:.2f}x"
              f"  (prefilled tokens {prefill} vs {ours_prefill}; rebuilding {rebuilds:.1f} s vs {ours_rebuilds:.1f} s;"
              f" answers {'identical' if same else 'differ'})", flush=True)


if __name__ == "__main__":
    main()
