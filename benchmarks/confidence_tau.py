#!/usr/bin/env python
"""Where the confidence reward of greedy CoTs lies, to choose tau for ``--model.reward confidence`` (and a model).

For each problem: the greedy CoT of the solver prompt (as ``--method cot``: boxed prompt, the original's stop words,
``--max-new-tokens``), the per-token confidence C_t = -(1/k) sum over the top-k of log(p + 1e-10) (LTPO's measure,
ltpo2025/LTPO ltpo.py:113-115) from the logits that chose token t, its mean over the tokens after the latent window
(t >= int(rho*T)), and the reward R = (C - ln k) / (C_max - ln k) - 1 with C_max = -((k-1) ln(1e-10) + ln(1 + 1e-10))
/ k, clipped to [-1, 0] (`rewards.confidence`, README "Methods"). Prints R's quantiles, its mean over right and wrong
CoTs, the AUROC of R for correctness and how many CoTs are above each tau. The generation is plain
``model.generate`` in left-padded batches (not the engine); C_t and R are the project's functions:

    python benchmarks/confidence_tau.py --n 40 --threads 2 [--llm smollm2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lightning_latentseek.arith import arith_problems  # noqa: E402
from lightning_latentseek.engine.loading import load_llm  # noqa: E402
from lightning_latentseek.grading import Grader  # noqa: E402
from lightning_latentseek.prompts import solver_messages  # noqa: E402
from lightning_latentseek.engine.sampling import token_confidence  # noqa: E402
from lightning_latentseek.rewards.confidence import confidence_reward as reward  # noqa: E402

GRADER = Grader("boxed")  # the paper extraction and grading, as the runs


def auroc(positive: list[float], negative: list[float]) -> float | None:
    if not positive or not negative:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llm", default="smollm2", help="--model.llm: hub id, directory, .gguf file or smollm2")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--steps", type=int, default=1, help="arith level")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--rho", type=float, default=0.2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    llm = load_llm(args.llm)
    problems = arith_problems(args.steps, 500, seed=0, limit=args.n)
    rows = []
    started = time.perf_counter()
    stops = llm.cot_stop_ids
    prompts = [llm.encode_chat(solver_messages(p.question, "boxed", p.dataset), add_special_tokens=True)
               for p in problems]
    for first in range(0, len(problems), args.batch):  # left-padded batches (float noise of batching only)
        chunk = prompts[first:first + args.batch]
        width = max(map(len, chunk))
        ids = torch.tensor([[llm.pad_id] * (width - len(c)) + c for c in chunk])
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk])
        with torch.no_grad():
            out = llm.model.generate(ids, attention_mask=mask, max_new_tokens=args.max_new_tokens, do_sample=False,
                                     eos_token_id=sorted(stops), pad_token_id=llm.pad_id,
                                     output_logits=True, return_dict_in_generate=True)
        logits = torch.stack(out.logits, dim=1)  # (B, steps, V)
        for b, problem in enumerate(problems[first:first + args.batch]):
            tokens = out.sequences[b, width:].tolist()
            end = next((i + 1 for i, t in enumerate(tokens) if t in stops), len(tokens))
            tokens = tokens[:end]
            conf = token_confidence(logits[b, :end], args.k).tolist()
            n_window = int(args.rho * len(tokens))
            after = conf[n_window:] or conf
            text = llm.decode(tokens)
            correct = bool(GRADER.judge(text, problem.dataset, problem.answer, llm.eos_text(tokens))[1])
            rows.append(dict(T=len(tokens), c_after=statistics.fmean(after), c_all=statistics.fmean(conf),
                             correct=correct))
            print(f"{problem.id}: T {len(tokens)} C {rows[-1]['c_after']:.3f} R {reward(rows[-1]['c_after'], args.k):.3f} "
                  f"correct {correct}", flush=True)
    seconds = time.perf_counter() - started
    rs = sorted(reward(r["c_after"], args.k) for r in rows)
    right = [reward(r["c_after"], args.k) for r in rows if r["correct"]]
    wrong = [reward(r["c_after"], args.k) for r in rows if not r["correct"]]
    q = statistics.quantiles(rs, n=10)
    print(f"{len(rows)} arith level-{args.steps} CoTs in {seconds:.0f} s; CoT accuracy {len(right)}/{len(rows)}")
    print(f"C after the window: mean {statistics.fmean(r['c_after'] for r in rows):.3f}; "
          f"C over all tokens: mean {statistics.fmean(r['c_all'] for r in rows):.3f}")
    print("R deciles: " + ", ".join(f"{x:.3f}" for x in q) + f"; min {rs[0]:.3f}, max {rs[-1]:.3f}")
    print(f"mean R right {statistics.fmean(right) if right else float('nan'):.3f}, "
          f"wrong {statistics.fmean(wrong) if wrong else float('nan'):.3f}; AUROC(R -> correct) {auroc(right, wrong)}")
    for tau in (-0.85, -0.8, -0.75, -0.7, -0.65, -0.6, -0.5, -0.2):
        above = sum(r > tau for r in rs)
        print(f"tau {tau}: {above}/{len(rs)} CoTs already above tau")


if __name__ == "__main__":
    main()
