#!/usr/bin/env python
"""The GPU check: one prepared script that measures on one GPU, in under 8 minutes, what the CPU machines
could not (the embedded SmolLM2-135M-Instruct, or `--llm PATH`; no download).

    python benchmarks/gpu_check.py --out gpu_check.json          # the GPU (CUDA device 0)
    python benchmarks/gpu_check.py --device cpu --quick          # the same code: tiny sizes, B = 1 and 2

Four phases, each with a time budget (a phase whose budget is spent skips what is left and says so):

1. ``parity``: fp32, paper mode: token-id parity of our engine (`methods.latentseek`, a per-problem Trainer on
   the device) against a plain transformers loop with no cache (greedy, the whole sequence re-run per token, as
   the original code does; `speed.reference_latentseek`), on the CoT and every iteration, with PSRM and the
   paper self-reward (`speed.compare_one`).
2. ``throughput``: bf16, as `train_free.py` runs on a GPU (on a CPU: fp32, its default there): problems per hour
   at B = 1, 4, 16, 64 problems at once with PSRM and with the paper self-reward (`throughput.solve_all`: the
   run's own concurrent fits), and whether each problem's answers (token ids) are those of B = 1.
3. ``cot``: the time of one LatentSeek problem against one CoT, one problem at a time (bf16 on a GPU).
4. ``constants``: the engine's device-dependent constants (`engine.tuning`) as they act on this device, each
   setting against the device's default on the same problems at one B (paper self-reward): the draft budget
   (32: the CPU's; 256; none; drafts off), attention (transformers' SDPA; `gqa_sdpa`'s packed GQA heads and
   chunks; with row groups at the CPU's call cost) and the share of finished rows at which the batch is rebuilt
   (1/3: the CPU's; 1/2; 1). The default runs first and last (its spread shows the noise).

The problems are the generated arithmetic ones of the demo (`--data.name arith`, seed 0) unless `--data` gives a
GSM8K JSONL. bf16 runs on a copy of the fp32 model cast to bf16 (the same weights as loading in bf16: checked
on the embedded model, all tensors equal), which saves a second load.

It ends with one line per figure, ``SUMMARY <key>: <value> (<details>)``, in a fixed order (README: "GPU check"
says what each means); ``--out FILE`` writes every figure as JSON, also after each phase. At ``--deadline``
seconds a watchdog prints the summary of what was measured (the rest "not reached") and exits 3. Exit 1: a
figure failed (its line says why); 2: a user error.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # speed.py, throughput.py

import torch  # noqa: E402

REWARDS = ("psrm", "self")
REWARD_NAMES = {"psrm": "PSRM", "self": "paper self-reward"}
PHASES = ("parity", "throughput", "cot", "constants")


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of a check (`FULL` on a GPU, `QUICK` with --quick)."""

    parity_problems: int  # problems compared with each reward
    max_new_tokens: int
    verifier_max_new_tokens: int
    max_steps: int  # K
    batch_sizes: tuple[int, ...]
    min_problems: int  # problems at B: max(B, min_problems)
    constants_batch: int  # B (and problems) of the constants phase
    constants_reward: str = "self"  # the reward of the constants phase
    budgets: dict = field(default_factory=dict)  # phase -> seconds
    deadline: float = 450.0  # the watchdog's: seconds since the start


# On an H100 with the embedded model: loading and warming up take well under a minute; the budgets add up to
# 6 minutes; a unit started just before its phase's budget ends may run over it, and the watchdog stops it all at
# 7.5 minutes.
FULL = Plan(parity_problems=4, max_new_tokens=128, verifier_max_new_tokens=48, max_steps=2,
            batch_sizes=(1, 4, 16, 64), min_problems=8, constants_batch=16, constants_reward="self",
            budgets={"parity": 75, "throughput": 150, "cot": 25, "constants": 110}, deadline=450)
# --quick checks the code, not the machine: on a CPU each paper self-reward judgement prefills four ~700-token
# verifier prompts (seconds each on 2 cores), so it judges as few answers as every code path needs
QUICK = Plan(parity_problems=1, max_new_tokens=12, verifier_max_new_tokens=6, max_steps=1, batch_sizes=(1, 2),
             min_problems=1, constants_batch=2, constants_reward="psrm",
             budgets={"parity": 120, "throughput": 120, "cot": 60, "constants": 120}, deadline=600)

# (figure, tuning fields changed from the device's defaults, engine options): `constants`
VARIANTS = (
    ("draft_budget[32]", {"draft_budget": 32}, {}),
    ("draft_budget[256]", {"draft_budget": 256}, {}),
    ("draft_budget[unlimited]", {"draft_budget": None}, {}),
    ("draft_budget[off]", {}, {"draft_tokens": 0}),
    ("attention[sdpa]", {"attention_plans": False}, {}),
    ("attention[packed]", {"attention_plans": True, "max_row_groups": 1}, {}),
    ("attention[row_groups]", {"attention_plans": True, "max_row_groups": 4, "group_call_cells": 512}, {}),
    ("drop_finished[1/3]", {"drop_finished": Fraction(1, 3)}, {}),
    ("drop_finished[1/2]", {"drop_finished": Fraction(1, 2)}, {}),
    ("drop_finished[1]", {"drop_finished": Fraction(1)}, {}),
)


def run_order(variants=VARIANTS) -> list:
    """The settings in the order they run: one of each constant in turn (the first settings of each, then the
    second ...), so that a budget spent early still leaves a figure for every constant."""
    groups: dict[str, list] = {}
    for variant in variants:
        groups.setdefault(variant[0].split("[")[0], []).append(variant)
    rounds = max(len(group) for group in groups.values())
    return [group[i] for i in range(rounds) for group in groups.values() if i < len(group)]


def figure_keys(plan: Plan, phases: tuple[str, ...]) -> list[str]:
    """Every figure the check reports, in order (one SUMMARY line each)."""
    keys = ["device"]
    if "parity" in phases:
        keys.append("parity_fp32")
    if "throughput" in phases:
        keys += [f"per_hour[{reward},B={b}]" for b in plan.batch_sizes for reward in REWARDS]
    if "cot" in phases:
        keys += [f"latentseek_vs_cot[{reward}]" for reward in REWARDS]
    if "constants" in phases:
        keys += [name for name, _, _ in VARIANTS]
    return keys + ["seconds_total"]


class Figures:
    """The figures measured so far: their summary lines and their JSON (`--out`), written after every change
    of phase and at the end (also when the watchdog ends the run)."""

    def __init__(self, keys: list[str], out: Path | None, meta: dict):
        self.keys, self.out, self.meta = keys, out, meta
        self.values: dict[str, dict] = {}
        self.lock = threading.RLock()
        self.finished = False
        self.started = time.perf_counter()

    def set(self, key: str, summary: str, status: str = "measured", **data) -> None:
        with self.lock:
            self.values[key] = {"summary": summary, "status": status, **data}

    def summary_lines(self, missing: str) -> list[str]:
        return [f"SUMMARY {key}: {self.values[key]['summary'] if key in self.values else missing}"
                for key in self.keys]

    def write(self, complete: bool) -> None:
        if self.out is None:
            return
        with self.lock:
            document = {**self.meta, "complete": complete, "seconds": round(time.perf_counter() - self.started, 1),
                        "figures": {key: self.values.get(key, {"status": "not reached"}) for key in self.keys}}
            self.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.out.with_name(self.out.name + ".tmp")
            tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
            tmp.replace(self.out)

    def finish(self, complete: bool, missing: str) -> bool:
        """Print the summary lines and write the JSON once (the main thread or the watchdog, whichever is first)."""
        with self.lock:
            if self.finished:
                return False
            self.finished = True
            total = time.perf_counter() - self.started
            self.values["seconds_total"] = {"summary": f"{total:.1f} s" + ("" if complete else " (cut short)"),
                                            "status": "measured", "seconds": total}
            print("", flush=True)
            for line in self.summary_lines(missing):
                print(line)
            sys.stdout.flush()
            self.write(complete)
            return True


class Phase:
    """A phase's time budget."""

    def __init__(self, name: str, budget: float):
        self.name, self.budget, self.started = name, budget, time.perf_counter()

    def spent(self) -> bool:
        return time.perf_counter() - self.started >= self.budget

    def skipped(self) -> str:
        return f"skipped ({self.name} phase's budget of {self.budget:.0f} s spent)"

    def report(self, figures: "Figures") -> None:
        """The phase's seconds (printed and in the JSON), and the JSON written so far."""
        seconds = time.perf_counter() - self.started
        print(f"[{self.name}] phase done in {seconds:.1f} s (budget {self.budget:.0f} s)", flush=True)
        figures.meta.setdefault("phase_seconds", {})[self.name] = round(seconds, 1)
        figures.write(False)


# ------------------------------------------------------------------------------------------ setup
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (device 0), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny problem counts and caps, B = 1 and 2 only")
    parser.add_argument("--llm", default="smollm2", help="smollm2 (embedded), a model directory or a .gguf file")
    parser.add_argument("--data", default=None, help="a GSM8K JSONL (default: the generated arith problems)")
    parser.add_argument("--prompt", choices=("boxed", "json"), default="boxed")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"which phases, of {', '.join(PHASES)}")
    parser.add_argument("--out", default=None, help="write every figure to this JSON file")
    parser.add_argument("--deadline", type=float, default=None, help="seconds before the watchdog ends the run "
                        "(default: 450; 600 with --quick)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    args.phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    return args


def check_args(args) -> str | None:
    """The first problem with the options (a one-line user error), or None."""
    unknown = [p for p in args.phases if p not in PHASES]
    if unknown or not args.phases:
        return f"--phases {','.join(args.phases)}: choose among {', '.join(PHASES)}"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        return f"--device {args.device}: not a device (cuda, cuda:N or cpu)"
    if device.type not in ("cuda", "cpu"):
        return f"--device {args.device}: choose cuda, cuda:N or cpu"
    if device.type == "cuda" and not torch.cuda.is_available():
        return (f"--device {args.device}: no CUDA device here (torch {torch.__version__}); "
                f"run `--device cpu --quick` for the CPU's version of the check")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    if args.data is not None and not Path(args.data).is_file():
        return f"--data {args.data}: no such file"
    if args.deadline is not None and args.deadline <= 0:
        return f"--deadline {args.deadline}: must be > 0"
    return None


def device_summary(device: torch.device) -> tuple[str, dict]:
    import lightning
    import transformers

    from lightning_latentseek.engine.tuning import tuning_for

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    tuning = tuning_for(device)
    info = {"device": str(device), "name": name, "torch": torch.__version__, "transformers": transformers.__version__,
            "lightning": lightning.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "tuning": {k: str(v) for k, v in dataclasses.asdict(tuning).items()}}
    line = (f"{device} {name}; torch {torch.__version__}, transformers {transformers.__version__}, lightning "
            f"{lightning.__version__}; tuning draft_budget {tuning.draft_budget}, drop_finished "
            f"{tuning.drop_finished}, attention_plans {tuning.attention_plans}, group_call_cells "
            f"{tuning.group_call_cells}")
    return line, info


def load_models(spec: str, device: torch.device):
    """The fp32 model (`load_llm`, as the run loads it) and the model in the dtype the run uses on the device by
    default (`solve.resolve_precision`: bf16 on a GPU, a copy of the fp32 one cast to it; fp32 on a CPU)."""
    from lightning_latentseek.engine import FrozenLM, load_llm
    from lightning_latentseek.solve import resolve_precision

    fp32 = load_llm(spec, device, torch.float32)
    _, dtype = resolve_precision({}, device.type)
    if dtype == torch.float32:
        return fp32, fp32
    return fp32, FrozenLM(copy.deepcopy(fp32.model).to(dtype), fp32.tokenizer, name=fp32.name)


def dtype_name(llm) -> str:
    return str(llm.dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float32", "fp32")


def check_problems(args, count: int):
    if args.data:
        from lightning_latentseek.problems import load_problems

        return load_problems("gsm8k", args.data, limit=count)
    from lightning_latentseek.arith import arith_problems

    return arith_problems(1, max(count, 20), 0, 0, count)


def run_settings(args, plan: Plan, **changes) -> argparse.Namespace:
    """What `throughput.solve_all` reads from its arguments."""
    settings = dict(llm=args.llm, prompt=args.prompt, max_new_tokens=plan.max_new_tokens,
                    verifier_max_new_tokens=plan.verifier_max_new_tokens, max_steps=plan.max_steps)
    return argparse.Namespace(**{**settings, **changes})


def one_line(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text[:300]


# ------------------------------------------------------------------------------------------ phases
def parity(figures: Figures, phase: Phase, fp32, problems, args, plan: Plan, trainer_kwargs: dict) -> None:
    """fp32, paper mode: our engine against the no-cache loop of the original, on token ids and rewards."""
    import speed

    from lightning_latentseek.config import SeekConfig

    configs = {reward: SeekConfig(llm=args.llm, reward=reward, prompt=args.prompt, max_new_tokens=plan.max_new_tokens,
                                  verifier_max_new_tokens=plan.verifier_max_new_tokens, prompt_set="paper")
               for reward in REWARDS}
    references = {reward: speed.reference_reward(fp32, reward, args.prompt, plan.verifier_max_new_tokens)
                  for reward in REWARDS}
    same = {reward: 0 for reward in REWARDS}
    runs = {reward: 0 for reward in REWARDS}
    divergent, skipped, seconds = [], 0, {"reference": 0.0, "ours": 0.0}

    def record() -> None:  # after every run: a run cut short by the deadline keeps what was compared
        total_same, total = sum(same.values()), sum(runs.values())
        summary = (f"identical {total_same}/{total} (" + ", ".join(f"{r} {same[r]}/{runs[r]}" for r in REWARDS)
                   + f"; fp32, paper mode, K {plan.max_steps}, caps {plan.max_new_tokens}/"
                     f"{plan.verifier_max_new_tokens}; reference {seconds['reference']:.1f} s, ours "
                     f"{seconds['ours']:.1f} s, one problem at a time"
                   + (f"; {skipped} runs skipped: budget spent" if skipped else "")
                   + (f"; first divergence {divergent[0]}" if divergent else "") + ")")
        figures.set("parity_fp32", summary, identical=total_same, runs=total, skipped=skipped, seconds=seconds,
                    per_reward={r: [same[r], runs[r]] for r in REWARDS}, divergent=divergent)

    for index, problem in enumerate(problems[:plan.parity_problems]):
        for reward in REWARDS:  # both rewards per problem: a phase cut short still covers both
            if phase.spent():
                skipped += 1
                continue
            ref, ours, identical, where = speed.compare_one(fp32, problem, reward, references[reward], configs[reward],
                                                            plan.max_steps, trainer_kwargs, ours_first=index % 2 == 1)
            runs[reward] += 1
            same[reward] += identical
            seconds["reference"] += ref.seconds["total"]
            seconds["ours"] += ours.seconds["total"]
            if not identical:
                divergent.append(f"[{reward}] problem {problem.id}: {where}")
            record()
            print(f"[parity] {reward} problem {problem.id}: {len(ours.answers) - 1} iterations; reference "
                  f"{ref.seconds['total']:.1f} s, ours {ours.seconds['total']:.1f} s; "
                  + ("identical token ids" if identical else f"DIVERGED: {where}"), flush=True)
    record()


def throughput_phase(figures: Figures, phase: Phase, llm, problems, args, plan: Plan, trainer_kwargs: dict,
                     runs: dict) -> None:
    """The run's dtype on the device (bf16 on a GPU): problems per hour at each B with each reward; answers
    against B = 1's."""
    from throughput import differences, solve_all

    settings = run_settings(args, plan)
    first = plan.batch_sizes[0]
    for batch in plan.batch_sizes:
        count = max(batch, plan.min_problems)
        for reward in REWARDS:
            key = f"per_hour[{reward},B={batch}]"
            if phase.spent():
                figures.set(key, phase.skipped(), status="skipped")
                continue
            try:
                run = solve_all(llm, problems[:count], reward, batch, settings, trainer_kwargs)
            except Exception as error:  # noqa: BLE001 -- the other figures still get measured
                figures.set(key, f"failed: {one_line(error)}", status="failed")
                continue
            runs[(reward, batch)] = run
            per_hour = run["n"] / run["wall"] * 3600
            base = runs.get((reward, first))
            same = compared = None
            if batch == first:
                identity = f"the reference for B > {batch}"
            elif base is None:
                identity = f"not compared: no B={first} run"
            else:
                diff = differences(llm, base, run)
                compared = len(base["answers"])
                same = compared - len(diff)
                identity = f"answers identical to B={first}'s on {same}/{compared}" + (
                    f": {'; '.join(diff[:2])}" if diff else "")
            peak = run["peak"] / 2 ** 20
            figures.set(key, f"{per_hour:.0f} problems/h ({run['n']} problems in {run['wall']:.1f} s, "
                             f"{dtype_name(llm)}; {run['tokens'] / run['wall']:.0f} tokens/s; peak {peak:.0f} MiB; "
                             f"{identity})",
                        problems_per_hour=per_hour, problems=run["n"], seconds=run["wall"], tokens=run["tokens"],
                        peak_mib=peak, identical=same, compared=compared, engine=run["stats"])
            print(f"[throughput] B={batch} {reward}: {figures.values[key]['summary']}", flush=True)


def cot_phase(figures: Figures, phase: Phase, llm, problems, args, plan: Plan, trainer_kwargs: dict,
              runs: dict) -> None:
    """One problem at a time: LatentSeek's seconds per problem against CoT's on the same problems (those of the
    B = 1 runs of `throughput_phase`, whose LatentSeek runs it reuses)."""
    from throughput import solve_all

    settings = run_settings(args, plan)
    count = runs[("psrm", 1)]["n"] if ("psrm", 1) in runs else plan.min_problems
    chosen = problems[:count]
    try:
        cot = solve_all(llm, chosen, "psrm", 1, settings, trainer_kwargs, method="cot")
    except Exception as error:  # noqa: BLE001
        for reward in REWARDS:
            figures.set(f"latentseek_vs_cot[{reward}]", f"failed: {one_line(error)}", status="failed")
        return
    per_cot = cot["wall"] / cot["n"]
    for reward in REWARDS:
        key = f"latentseek_vs_cot[{reward}]"
        run = runs.get((reward, 1))
        if run is None or run["n"] != count:
            if phase.spent():
                figures.set(key, phase.skipped(), status="skipped")
                continue
            try:
                run = solve_all(llm, chosen, reward, 1, settings, trainer_kwargs)
            except Exception as error:  # noqa: BLE001
                figures.set(key, f"failed: {one_line(error)}", status="failed")
                continue
        per_problem = run["wall"] / run["n"]
        ratio = per_problem / per_cot
        figures.set(key, f"{ratio:.1f}x (LatentSeek {per_problem:.2f} s per problem, "
                         f"{run['iterations'] / run['n']:.1f} iterations on average; CoT {per_cot:.2f} s; "
                         f"{dtype_name(llm)}, one problem at a time, {count} problems, K {plan.max_steps})",
                    ratio=ratio, latentseek_seconds=per_problem, cot_seconds=per_cot, problems=count,
                    iterations=run["iterations"] / run["n"])
        print(f"[cot] {reward}: {figures.values[key]['summary']}", flush=True)


def constants_phase(figures: Figures, phase: Phase, llm, problems, args, plan: Plan, trainer_kwargs: dict,
                    runs: dict) -> None:
    """Each setting of the device-dependent constants against the device's default (`tuning.defaults_for`), on
    the same problems at one B (the paper self-reward; PSRM with --quick). The default runs first and, budget
    allowing, last."""
    from throughput import differences, solve_all

    from lightning_latentseek.engine import tuning

    device = llm.device
    default = tuning.defaults_for(device)
    settings = run_settings(args, plan)
    batch = plan.constants_batch
    chosen = problems[:batch]
    reward = plan.constants_reward
    where = f"B={batch}, {len(chosen)} problems, {REWARD_NAMES[reward]}, {dtype_name(llm)}"
    defaults = [name for name, changes, options in VARIANTS
                if dataclasses.replace(default, **changes) == default and not options]
    baseline: list[dict] = []
    measured: dict[str, dict] = {}

    def solve(changes: dict, options: dict) -> dict:
        with tuning.overridden(device, **changes):
            return solve_all(llm, chosen, reward, batch, settings, trainer_kwargs, **options)

    def record() -> None:  # against the mean of the default's runs so far (a deadline keeps what was measured)
        base = sum(r["wall"] for r in baseline) / len(baseline)
        spread = (max(r["wall"] for r in baseline) - min(r["wall"] for r in baseline)) / base
        runs_text = " and ".join(f"{r['wall']:.1f} s" for r in baseline)
        for name in defaults:
            figures.set(name, f"default ({runs_text}" + (f": a spread of {spread:.0%}" if len(baseline) > 1 else "")
                        + f"; {where})", status="default", seconds=[r["wall"] for r in baseline], spread=spread)
        for name, run in measured.items():
            same = len(baseline[0]["answers"]) - len(run["differences"])
            figures.set(name, f"{base / run['wall']:.2f}x the default's speed ({run['wall']:.1f} s against "
                              f"{base:.1f} s; answers identical {same}/{len(baseline[0]['answers'])}; {where})",
                        speed=base / run["wall"], seconds=run["wall"], default_seconds=base, identical=same,
                        engine=run["stats"])

    try:
        baseline.append(solve({}, {}))
    except Exception as error:  # noqa: BLE001
        for name, _, _ in VARIANTS:
            figures.set(name, f"failed (the default's run): {one_line(error)}", status="failed")
        return
    record()
    for name, changes, options in run_order():
        if name in defaults:
            continue
        if phase.spent():
            figures.set(name, phase.skipped(), status="skipped")
            continue
        try:
            run = solve(changes, options)
        except Exception as error:  # noqa: BLE001
            figures.set(name, f"failed: {one_line(error)}", status="failed")
            continue
        measured[name] = {**run, "differences": differences(llm, baseline[0], run)}
        record()
        print(f"[constants] {name}: {figures.values[name]['summary']}", flush=True)
    if not phase.spent():
        try:
            baseline.append(solve({}, {}))  # the default again, last: its spread against the first run is the noise
        except Exception as error:  # noqa: BLE001
            print(f"[constants] the default's second run failed: {one_line(error)}", flush=True)
        record()


def warm_up(llm, problems, args, trainer_kwargs: dict) -> None:
    """CUDA's lazy start (kernels, cuBLAS handles), Lightning's and the grader's lazy imports: outside the timings."""
    from throughput import solve_all

    plan = Plan(parity_problems=1, max_new_tokens=4, verifier_max_new_tokens=2, max_steps=1, batch_sizes=(1,),
                min_problems=1, constants_batch=1)
    solve_all(llm, problems[:1], "psrm", 1, run_settings(args, plan), trainer_kwargs)


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    error = check_args(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    deadline = args.deadline if args.deadline is not None else plan.deadline
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)

    import lightning as L

    from lightning_latentseek.errors import UserError
    from lightning_latentseek.solve import per_problem_trainer_kwargs, quiet_lightning

    quiet_lightning()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    line, info = device_summary(device)
    figures = Figures(figure_keys(plan, args.phases), Path(args.out) if args.out else None,
                      {"plan": dataclasses.asdict(plan), "quick": args.quick, "llm": args.llm,
                       "data": args.data or "arith (steps 1, seed 0)", "prompt": args.prompt, "phases": args.phases,
                       "deadline": deadline, "device": info})
    figures.set("device", line, status="info", **info)

    def on_deadline() -> None:
        print(f"\nthe check reached its deadline of {deadline:.0f} s", file=sys.stderr, flush=True)
        if figures.finish(False, f"not reached (the --deadline of {deadline:.0f} s came first)"):
            sys.stderr.flush()
            os._exit(3)

    watchdog = threading.Timer(deadline, on_deadline)
    watchdog.daemon = True
    watchdog.start()
    try:
        began = time.perf_counter()
        fp32, llm = load_models(args.llm, device)
        count = max(plan.batch_sizes + (plan.min_problems, plan.constants_batch, plan.parity_problems))
        problems = check_problems(args, count)
        accelerator = device.type
        trainer_kwargs = per_problem_trainer_kwargs({"max_steps": plan.max_steps}, accelerator, device.index or 0)
        L.Trainer(**trainer_kwargs)  # Lightning's lazy imports, once
        gc.freeze()  # what is loaded now stays: the collections before each run (`release_memory`) skip it
        print(f"{line}\nmodel {args.llm} ({sum(p.numel() for p in fp32.model.parameters()) / 1e6:.0f}M params) loaded "
              f"in {time.perf_counter() - began:.0f} s; {len(problems)} problems "
              f"({args.data or 'arith, steps 1, seed 0'}); prompt {args.prompt}; caps {plan.max_new_tokens}/"
              f"{plan.verifier_max_new_tokens}, K {plan.max_steps}; phases {', '.join(args.phases)}; "
              f"deadline {deadline:.0f} s", flush=True)
        runs: dict = {}
        if "parity" in args.phases:
            warm_up(fp32, problems, args, trainer_kwargs)
            phase = Phase("parity", plan.budgets["parity"])
            try:
                parity(figures, phase, fp32, problems, args, plan, trainer_kwargs)
            except Exception as error:  # noqa: BLE001
                figures.set("parity_fp32", f"failed: {one_line(error)}", status="failed")
            phase.report(figures)
        if set(args.phases) - {"parity"}:
            warm_up(llm, problems, args, trainer_kwargs)
        for name, run_phase in (("throughput", throughput_phase), ("cot", cot_phase), ("constants", constants_phase)):
            if name in args.phases:
                phase = Phase(name, plan.budgets[name])
                run_phase(figures, phase, llm, problems, args, plan, trainer_kwargs, runs)
                phase.report(figures)
    except UserError as error:
        watchdog.cancel()
        print(f"error: {error}", file=sys.stderr)
        return 2
    watchdog.cancel()
    figures.finish(True, "not reached")
    failed = [key for key, value in figures.values.items() if value.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
