#!/usr/bin/env python
"""The LLM in fp32 against bf16 (`--trainer.precision bf16-true`) on a CPU, in one process.

    python benchmarks/precision.py [--problems 100] [--arith-steps 1] [--max-new-tokens 128] [--batch 16]
                                   [--threads 0] [--llm smollm2]

The same arith problems (the demo's: `--data.name arith`, seed 0) get a greedy CoT from the model loaded
in fp32 and in bf16, each side running its CoTs `--batch` at a time through the generation engine as
`train_free.py --method cot` does. For each dtype: generated tokens per second over the wall time, accuracy
(paper extraction, numeric grading) with its Wilson 95% interval; then how many CoTs are identical on token
ids, and on how many problems the two dtypes disagree on correctness (bf16 right / fp32 right). The last line
is `bf16/fp32 tokens/s: X.XXx`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def cots(llm, problems, args) -> tuple[list[list[int]], float, list[str]]:
    """Greedy CoTs of every problem (the rows `train_free.py --method cot` generates), `args.batch` problems at
    once through one engine; returns the token ids, the wall seconds and the texts."""
    from concurrent.futures import ThreadPoolExecutor

    from lightning_latentseek.config import SeekConfig
    from lightning_latentseek.engine import GenerationEngine, Row
    from lightning_latentseek.methods import SolveContext, solver_prompt_ids

    cfg = SeekConfig(llm=args.llm, reward="psrm", max_new_tokens=args.max_new_tokens, prompt="boxed")
    engine = GenerationEngine(llm)

    def one(problem):
        prompt = solver_prompt_ids(SolveContext(engine, None, cfg), problem)
        return engine.generate([Row(prompt, cfg.max_new_tokens, llm.cot_stop_ids)])[0].tokens

    try:
        begun = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.batch) as pool:
            ids = list(pool.map(one, problems))
        seconds = time.perf_counter() - begun
    finally:
        engine.close()
    return ids, seconds, [llm.decode(t) for t in ids]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--arith-steps", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--llm", default="smollm2")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from lightning_latentseek.arith import arith_problems
    from lightning_latentseek.engine import load_llm
    from lightning_latentseek.grading import Grader
    from lightning_latentseek.report_stats import wilson_interval

    problems = arith_problems(args.arith_steps, 500, 0, 0, args.problems)
    models = {"fp32": load_llm(args.llm, "cpu", torch.float32), "bf16": load_llm(args.llm, "cpu", torch.bfloat16)}
    print(f"model {args.llm}; torch threads {torch.get_num_threads()}; {len(problems)} arith problems "
          f"(steps {args.arith_steps}); greedy CoT, max_new_tokens {args.max_new_tokens}, {args.batch} at once",
          flush=True)
    tokens, seconds, correct = {}, {}, {}
    for name in ("fp32", "bf16"):
        tokens[name], seconds[name], texts = cots(models[name], problems, args)
        grader = Grader("boxed", extraction="paper", grading="numeric", model=args.llm)
        correct[name] = [grader.judge(text, "arith", p.answer, models[name].eos_text(ids))[1]
                         for text, ids, p in zip(texts, tokens[name], problems)]
    print(f"\n  {'dtype':>5} {'seconds':>8} {'tokens':>7} {'tokens/s':>9} {'accuracy':>9}  95% CI")
    rate = {}
    for name in ("fp32", "bf16"):
        n_tokens = sum(len(t) for t in tokens[name])
        rate[name] = n_tokens / seconds[name]
        hits = sum(correct[name])
        low, high = wilson_interval(hits, len(problems))
        print(f"  {name:>5} {seconds[name]:8.1f} {n_tokens:7d} {rate[name]:9.1f} {hits / len(problems):9.3f}  "
              f"[{low:.3f}, {high:.3f}]")
    same = sum(a == b for a, b in zip(tokens["fp32"], tokens["bf16"]))
    only_bf16 = sum(b and not a for a, b in zip(correct["fp32"], correct["bf16"]))
    only_fp32 = sum(a and not b for a, b in zip(correct["fp32"], correct["bf16"]))
    print(f"\nidentical CoTs (token ids): {same} of {len(problems)}; correct only in bf16: {only_bf16}, "
          f"only in fp32: {only_fp32}")
    print(f"bf16/fp32 tokens/s: {rate['bf16'] / rate['fp32']:.2f}x")


if __name__ == "__main__":
    main()
