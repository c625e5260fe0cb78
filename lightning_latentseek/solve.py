"""The run: problems -> (shard, resume) -> one method call (a per-problem fit) each -> records -> summary.

Many ranks are independent processes (no DDP): problem i goes to rank i % world_size, each
rank loads the frozen LLM once on its own device and appends to its own results file; rank 0
merges them in dataset order once every rank has finished.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import gc
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import lightning as L
import torch

from lightning_latentseek.callbacks import ProblemCallback, RecordWriter, RewardThreshold, RichProblemProgress, RunLogger
from lightning_latentseek.config import (ITERATIVE, REWARDED, VERIFIERS, DataConfig, RunOptions, SeekConfig, max_steps,
                                         resolved_options, unused_options)
from lightning_latentseek.engine import GenerationEngine, load_llm, resolve_llm_source
from lightning_latentseek.errors import UserError
from lightning_latentseek.grading import Grader
from lightning_latentseek.methods import METHOD_FUNCTIONS, Outcome, SolveContext, check_reward_for
from lightning_latentseek.problems import Problem, ProblemDataError, load_problems_with_errors
from lightning_latentseek.records import (RESULTS, RUN_CONFIG, UNFINISHED, build_record, config_hash, finished_records,
                                          merge)
from lightning_latentseek.rewards import RewardUnavailable, build_reward, check_reward_args, reward_class
from lightning_latentseek.rewards.server import ChatServer
from lightning_latentseek.seeds import stable_seed
from lightning_latentseek.summary import summarize, summary_markdown

# Per-problem Trainer flags that keep a fit to milliseconds of overhead (see docs on per-problem fits).
FIT_FLAGS = dict(enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                 num_sanity_val_steps=0, limit_val_batches=0, max_epochs=-1)
# Trainer options that describe the whole run (ranks, the run's logger), not one problem's single-device fit.
RUN_ONLY_TRAINER_KEYS = ("devices", "num_nodes", "strategy", "logger", "callbacks", "precision")
FIT_PRECISION = "32-true"  # the latents are fp32; the LLM's dtype comes from --trainer.precision


class ConfigMismatchError(UserError, RuntimeError):
    """`--output_dir` already holds results of a different configuration."""


@dataclass
class RunSpec:
    """A whole run, as parsed by the command line."""

    model: SeekConfig = field(default_factory=SeekConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: dict = field(default_factory=dict)
    output_dir: str = "runs/latentseek"
    method: str = "latentseek"
    seed: int = 0
    overwrite: bool = False
    progress: bool = True
    config_yaml: str | None = None  # the resolved command-line config, saved as config.yaml
    command: list[str] | None = None  # how to start another local rank of this run (None: `rank_command(None)`)

    @property
    def max_steps(self) -> int:
        """K (`config.max_steps`): 0 means no iteration (the CoT is the answer)."""
        return max_steps(self.trainer)

    def result_config(self, accelerator: str) -> dict:
        """The settings that change a problem's result (keys of the resume hash), on the resolved device type
        (`resolve_accelerator`): the precision as resolved there and the LLM's dtype it implies, so a CPU run
        (fp32) and a GPU run (bf16) never share records."""
        # Options this run ignores (`config.unused_options`) change no result: a baseline's hash holds no search
        # option, so adding or changing one never turns its finished records away.
        unused = unused_options(resolved_options(RunOptions(method=self.method), self.model, self.data, self.trainer))
        model = {k: v for k, v in dataclasses.asdict(self.model).items() if f"model.{k}" not in unused}
        # speed only, as the batch size: a run may resume with another value; and how the verifier server is reached
        # (a run may resume on another server, or in process: serve the same verifier model)
        for key in ("draft_tokens", "reward_server", "reward_server_timeout", "reward_server_concurrency"):
            model.pop(key, None)
        data = {k: getattr(self.data, k) for k in ("name", "path", "split", "question_field", "answer_field",
                                                   "arith_steps", "arith_seed") if f"data.{k}" not in unused}
        precision, dtype = resolve_precision(self.trainer, accelerator)
        settings = {"method": self.method, "seed": self.seed, "max_steps": self.max_steps, "device": accelerator,
                    "precision": precision, "llm_dtype": str(dtype).removeprefix("torch."), "model": model,
                    "data": data}
        if "trainer.max_steps" in unused:
            del settings["max_steps"]
        return settings


# ------------------------------------------------------------------------------------------ ranks
# How long ranks wait for each other to start (nodes of one job start within minutes of each other).
JOIN_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    address: str = "127.0.0.1"  # where rank 0 (or torchrun's agent) hosts the store the ranks meet on
    port: int = 0
    needs_launch: bool = False  # a plain command asking for several devices: `launch_ranks` starts the others


def detect_rank(devices: int, num_nodes: int) -> Rank:
    """This process's rank, from the environment of whatever started it: torchrun, srun, `launch_ranks` (whose
    children carry torchrun's variables but TORCHELASTIC_RUN_ID) or a hand-set RANK/WORLD_SIZE/LOCAL_RANK.
    Read through Lightning's public cluster environments."""
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        env = TorchElasticEnvironment()
    elif SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        env = SLURMEnvironment()
    else:
        env = LightningEnvironment()
        if not env.creates_processes_externally:  # no LOCAL_RANK: this command is local rank 0 of its node
            world = devices * num_nodes
            return Rank(env.node_rank() * devices, world, needs_launch=True) if world > 1 else Rank()
        env.set_world_size(int(os.environ.get("WORLD_SIZE", devices * num_nodes)))
        env.set_global_rank(int(os.environ.get("RANK", env.node_rank() * devices + env.local_rank())))
    return Rank(env.global_rank(), env.world_size(), env.local_rank(), env.main_address, env.main_port)


def rank_command(args: list[str] | None) -> list[str]:
    """The command that starts another local rank of this run, as torchrun re-runs a script: this process's
    own command (its script, or ``-m`` its module, and its arguments); when `cli.main` got `args` from Python,
    the command-line module with those arguments."""
    if args is not None:
        return [sys.executable, "-m", "lightning_latentseek.cli", *args]
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name:  # python -m module
        return [sys.executable, "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    return [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]]


def launch_ranks(rank: Rank, devices: int, command: list[str]):
    """Start local ranks 1..devices-1 of this node as torchrun would: the same command, each with RANK,
    LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK and the rendezvous address MASTER_ADDR:MASTER_PORT in
    its environment. Returns this process's rank (local rank 0), the children and, on rank 0, the store the
    ranks meet on, hosted here (on MASTER_PORT if set, else on a port the system picks: no race for it).

    The children are plain subprocesses in this process's group: Ctrl-C in a terminal reaches every rank,
    and `stop_children` passes on a SIGINT sent to this process alone; `wait_for_all_ranks` notices a
    child that dies without reporting (a crash, SIGKILL)."""
    import torch.distributed as dist

    node = rank.rank // devices
    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = os.environ.get("MASTER_PORT")
    store = None
    if rank.rank == 0:
        store = dist.TCPStore(address, int(port or 0), None, True, timeout=JOIN_TIMEOUT, wait_for_workers=False)
        port = store.port
    elif port is None or "MASTER_ADDR" not in os.environ:
        raise UserError(f"--trainer.num_nodes {rank.world // devices}: set MASTER_ADDR and MASTER_PORT to the "
                        f"address of node 0 on every node (or start the ranks with torchrun or srun)")
    base = {k: v for k, v in os.environ.items() if k not in ("TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RUN_ID")}
    base.update(WORLD_SIZE=str(rank.world), LOCAL_WORLD_SIZE=str(devices), NODE_RANK=str(node),
                GROUP_RANK=str(node), MASTER_ADDR=address, MASTER_PORT=str(port))
    children = [subprocess.Popen(command, env={**base, "RANK": str(rank.rank + local), "LOCAL_RANK": str(local)})
                for local in range(1, devices)]
    return Rank(rank.rank, rank.world, 0, address, int(port)), children, store


def join_ranks(rank: Rank, store=None):
    """Meet the other ranks on a key-value store (no process group: ranks never talk while solving): `store`
    when this process hosts it (`launch_ranks`), else the one at the rank's rendezvous address (torchrun's
    agent store if any).

    Rank 0 has prepared the output directory before it gets here; the others wait for its word, so
    none of them reads results that `--overwrite` is about to delete.
    """
    if rank.world == 1:
        return None
    import torch.distributed as dist

    if store is None:
        url = f"tcp://{rank.address}:{rank.port}?rank={rank.rank}&world_size={rank.world}"
        store, _, _ = next(dist.rendezvous(url, timeout=JOIN_TIMEOUT))  # reuses torchrun's agent store if any
    # torchrun's agent store outlives restarted workers: keep each attempt's keys apart
    store = dist.PrefixStore(f"lightning-latentseek/{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}", store)
    if rank.rank == 0:
        store.set("ready", "1")
    else:
        store.wait(["ready"])
    return store


def wait_for_all_ranks(store, rank: Rank, children: list[subprocess.Popen]) -> dict[int, str]:
    """Rank 0: wait until every other rank has reported the end of its shard; returns those that did not
    finish it (interrupted, or a local child that died). Polled, so Ctrl-C still works while waiting."""
    reports: dict[int, str] = {}
    while len(reports) < rank.world - 1:
        for other in range(1, rank.world):
            if other not in reports and store.check([f"end/{other}"]):
                reports[other] = store.get(f"end/{other}").decode()
        for local_rank, child in enumerate(children, start=1):
            code = child.poll()
            if code and rank.rank + local_rank not in reports:  # died without a report (crash, kill)
                reports[rank.rank + local_rank] = f"exit code {code}"
        time.sleep(0.2)
    return {other: report for other, report in reports.items() if report != "done"}


def stop_children(children: list[subprocess.Popen]) -> None:
    """Pass Ctrl-C on to the local ranks this process started and wait until they have closed their files."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in children:
        child.wait()


# ------------------------------------------------------------------------------------------ devices
def resolve_accelerator(trainer_cfg: dict) -> str:
    accelerator = str(trainer_cfg.get("accelerator") or "auto")
    if accelerator == "gpu":
        return "cuda"
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def count_devices(trainer_cfg: dict, accelerator: str) -> int:
    devices = trainer_cfg.get("devices", "auto")
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices in ("auto", -1, "-1", None):
        return torch.cuda.device_count() if accelerator == "cuda" else 1
    return int(devices)


def resolve_precision(trainer_cfg: dict, accelerator: str) -> tuple[str, torch.dtype]:
    """`--trainer.precision` and the LLM's dtype it implies: bf16 on GPU, fp32 on CPU unless set
    (``bf16-true``/``bf16-mixed`` load the LLM in bf16, ``16-*`` in fp16). The latents stay fp32 whatever
    it is: the per-problem fits always run at ``32-true`` (`FIT_PRECISION`)."""
    precision = trainer_cfg.get("precision")
    if precision is None:
        precision = "bf16-true" if accelerator == "cuda" else "32-true"
    precision = str(precision)
    if precision.startswith("bf16"):
        return precision, torch.bfloat16
    if precision.startswith("16"):
        return precision, torch.float16
    return precision, torch.float32


# ------------------------------------------------------------------------------------------ the run
def run(spec: RunSpec) -> dict | None:
    """Solve every problem of `spec` that `output_dir` does not hold yet; returns the summary (rank 0).

    Ctrl-C stops cleanly: the problems in flight are dropped (a resume solves them again), every finished
    record stays, rank 0 writes results.jsonl and the summary of what finished, and the process exits 130.
    """
    resolve_llm_source(spec.model.llm)  # a wrong --model.llm or --model.reward(_args) fails before any work
    if spec.method in REWARDED:
        check_reward_args(spec.model.reward, spec.model.reward_args)
        check_reward_for(spec.method, reward_class(spec.model.reward), spec.model.reward)
    server = connect_reward_server(spec)  # a server that cannot be reached: a user error, before any work
    accelerator = resolve_accelerator(spec.trainer)
    devices = count_devices(spec.trainer, accelerator)
    num_nodes = int(spec.trainer.get("num_nodes") or 1)
    problems, bad_rows = load_problems(spec.data)
    out_dir = Path(spec.output_dir)
    rank = detect_rank(devices, num_nodes)
    if rank.rank == 0:
        prepare_output_dir(out_dir, spec, accelerator)
        for error in bad_rows:
            print(f"Skipping a malformed row: {error}", file=sys.stderr)
    children, store = [], None
    if rank.needs_launch:
        rank, children, store = launch_ranks(rank, devices, spec.command or rank_command(None))
    store = join_ranks(rank, store)
    digest = config_hash(spec.result_config(accelerator))
    done = finished_records(out_dir, digest)
    shard = [p for i, p in enumerate(problems) if i % rank.world == rank.rank and str(p.id) not in done]
    run_logger = RunLogger(spec.trainer.get("logger"), run_config(spec), spec.max_steps) if rank.rank == 0 else None
    try:
        solve_shard(spec, shard, rank, accelerator, devices, out_dir, digest, run_logger, server)
        unfinished = wait_for_all_ranks(store, rank, children) if rank.rank == 0 else {}
        interrupted = False
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C presses must not cut the shutdown short
        interrupted, unfinished = True, {}
        stop_children(children)  # ranks on other nodes get Ctrl-C from torchrun/srun; they are not awaited
    except BaseException:
        stop_children(children)
        raise
    finally:
        if server is not None:
            server.close()
    if rank.rank > 0:
        store.set(f"end/{rank.rank}", "interrupted" if interrupted else "done")
        if interrupted:
            raise SystemExit(130)
        return None
    summary = finish(out_dir, spec, problems, bad_rows, digest, final=not (interrupted or unfinished),
                     run_logger=run_logger)
    if interrupted or unfinished:
        stopped = ", ".join(f"rank {r}: {why}" for r, why in sorted(unfinished.items())) or "interrupted"
        print(f"Stopped early ({stopped}): {summary['n']} of {len(problems)} problems are done; "
              f"rerun the same command to solve the rest.", file=sys.stderr)
        raise SystemExit(130 if interrupted or "interrupted" in unfinished.values() else 1)
    if summary.get("unfinished"):
        print(f"Incomplete: {summary['unfinished']} of {len(problems)} problems ended without a reward "
              f"({', '.join(UNFINISHED)}); rerun the same command to solve them again.", file=sys.stderr)
        raise SystemExit(1)
    return summary


def connect_reward_server(spec: RunSpec) -> ChatServer | None:
    """The run's verifier server (`--model.reward_server`), checked: None when the run's reward is answered in
    process."""
    model = spec.model
    if spec.method not in REWARDED or model.reward not in VERIFIERS or not model.reward_server:
        return None
    return ChatServer.connect(model.reward_server, model.reward_server_model, model.reward_server_timeout,
                              model.reward_server_concurrency)


def load_problems(data: DataConfig) -> tuple[list[Problem], list[ProblemDataError]]:
    """The run's problems: a dataset file or hub id, or this project's generated arithmetic problems."""
    if data.name != "arith":
        return load_problems_with_errors(**data.loader_args())
    from lightning_latentseek.arith import arith_problems

    return arith_problems(data.arith_steps, data.arith_size, data.arith_seed, data.start, data.limit), []


def solve_shard(spec: RunSpec, shard: list[Problem], rank: Rank, accelerator: str, local_ranks: int, out_dir: Path,
                digest: str, run_logger: RunLogger | None = None, server: ChatServer | None = None) -> None:
    """Solve this rank's problems, `--data.batch_size` at a time, appending each finished record to this
    rank's results file as soon as it is done. `server` answers the verifier reward's prompts (else the engine)."""
    _, dtype = resolve_precision(spec.trainer, accelerator)
    listed = spec.trainer.get("devices")
    device_index = listed[rank.local_rank] if isinstance(listed, (list, tuple)) else rank.local_rank
    device = torch.device(f"cuda:{device_index}") if accelerator == "cuda" else torch.device(accelerator)
    if accelerator == "cpu" and local_ranks > 1:  # CPU ranks of one node share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_ranks))
    results_path = out_dir / (RESULTS if rank.world == 1 else f"results.rank{rank.rank}.jsonl")
    problem_callbacks: list[ProblemCallback] = [RecordWriter(results_path)]
    if spec.progress and rank.rank == 0:
        problem_callbacks.append(RichProblemProgress())
    if run_logger is not None:
        problem_callbacks.append(run_logger)
    user_callbacks = list(spec.trainer.get("callbacks") or [])
    problem_callbacks += [cb for cb in user_callbacks if isinstance(cb, ProblemCallback)]
    try:
        for cb in problem_callbacks:
            cb.on_run_start(shard)
        if not shard:
            return
        llm = load_llm(spec.model.llm, device, dtype)
        engine = GenerationEngine(llm, draft_tokens=spec.model.draft_tokens)
        grader = Grader(spec.model.prompt, spec.model.extraction, spec.model.grading, spec.model.llm)
        reward = None if spec.method not in REWARDED else build_reward(
            spec.model.reward, engine=engine, prompt=spec.model.prompt, args=spec.model.reward_args, grader=grader,
            server=server,
            prompt_set=spec.model.prompt_set, max_new_tokens=spec.model.verifier_max_new_tokens,
            sampling=spec.model.verifier_sampling, seed=spec.seed, format_rule=spec.model.format_rule,
            verdict_parse=spec.model.verdict_parse)
        trainer_kwargs = per_problem_trainer_kwargs(spec.trainer, accelerator, device_index)
        solve = METHOD_FUNCTIONS[spec.method]

        def solve_one(problem: Problem) -> Outcome:
            ctx = SolveContext(engine, reward, spec.model, seed=problem_seed(spec.seed, problem),
                               max_steps=spec.max_steps, make_trainer=lambda: L.Trainer(**trainer_kwargs, callbacks=[
                                   RewardThreshold(spec.model.tau), *user_callbacks]))
            try:
                return solve(problem, ctx)
            except torch.OutOfMemoryError:
                # Out of memory outside a fit (the CoT, a baseline's samples; `_fit` handles its own):
                # this problem ends without an answer, the run goes on.
                return Outcome(method=spec.method, text="", tokens=0, stop_reason="out_of_memory")
            except RewardUnavailable:
                # The verifier server failed (retries spent): the problem ends unfinished (a resume solves it again)
                return Outcome(method=spec.method, text="", tokens=0, stop_reason="reward_unavailable")

        def started(problem: Problem) -> None:
            for cb in problem_callbacks:
                cb.on_problem_start(problem)

        def finished(problem: Problem, outcome: Outcome, seconds: float) -> None:
            record = build_record(problem, outcome, grader, seconds, digest,
                                  reward=spec.model.reward if spec.method in REWARDED else None)
            for cb in problem_callbacks:
                cb.on_problem_end(problem, record)

        try:
            solve_concurrently(shard, solve_one, spec.data.batch_size, engine, started, finished)
        finally:
            engine.close()
    finally:
        for cb in problem_callbacks:
            cb.on_run_end()


def solve_concurrently(problems: list[Problem], solve_one: Callable[[Problem], Outcome], batch_size: int,
                       engine: GenerationEngine, started: Callable[[Problem], None],
                       finished: Callable[[Problem, Outcome, float], None]) -> None:
    """Solve up to `batch_size` problems at once, each in a thread of its own (its own fit), their generation
    sharing the engine's batched forwards; a finished problem's slot goes to the next one at once.

    `started`/`finished` run on this (the calling) thread, in the order problems start and end. An error in
    one problem (a bug, not a fault the method handles) stops the admission of new problems; the problems in
    flight finish and are recorded (finished work is never lost), then the first error is raised here.
    Ctrl-C cancels the problems in flight at once (the engine fails their requests), waits until their
    threads have ended, and is raised again here.
    """
    waiting = iter(problems)
    running: dict[Future, tuple[Problem, float]] = {}
    handled = 0
    error: Exception | None = None
    with ThreadPoolExecutor(max_workers=batch_size, thread_name_prefix="problem") as pool:

        def start_next() -> None:
            problem = next(waiting, None) if error is None else None
            if problem is not None:
                started(problem)
                running[pool.submit(solve_one, problem)] = (problem, time.perf_counter())

        try:
            for _ in range(batch_size):
                start_next()
            while running:
                done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f][1]):
                    problem, begun = running.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 -- raised below, once the others have finished
                        error = error or exc
                        continue
                    finished(problem, outcome, time.perf_counter() - begun)
                    handled += 1
                    if outcome.stop_reason == "out_of_memory" or handled % 50 == 0:
                        release_memory()
                    start_next()
            if error is not None:
                raise error
        except BaseException:
            engine.cancel("the run is stopping")
            wait(list(running))
            engine.reopen()
            raise


def per_problem_trainer_kwargs(trainer_cfg: dict, accelerator: str, device_index: int) -> dict:
    """The run's --trainer.* options turned into one problem's single-device Trainer (no DDP, no logger:
    the run's logger gets the whole run through `RunLogger`)."""
    kwargs = {k: v for k, v in trainer_cfg.items() if k not in RUN_ONLY_TRAINER_KEYS}
    kwargs.update(FIT_FLAGS)
    kwargs["accelerator"] = accelerator
    kwargs["devices"] = [device_index] if accelerator == "cuda" else 1
    kwargs["precision"] = FIT_PRECISION
    kwargs["max_steps"] = max_steps(trainer_cfg)
    kwargs["logger"] = False
    return kwargs


def problem_seed(seed: int, problem: Problem) -> int:
    """A per-problem seed from --seed and the whole problem id (stable hash): the same whatever the
    sharding, the batch or the resume."""
    return stable_seed(seed, problem.id)


def run_config(spec: RunSpec) -> dict:
    """The resolved settings of the run, as plain JSON (summary.json, the logger's hyper-parameters)."""
    config = {"method": spec.method, "seed": spec.seed, "output_dir": spec.output_dir,
              "model": dataclasses.asdict(spec.model), "data": dataclasses.asdict(spec.data),
              "trainer": {k: v for k, v in spec.trainer.items() if k not in ("callbacks", "logger")}}
    return json.loads(json.dumps(config, default=str))


def prepare_output_dir(out_dir: Path, spec: RunSpec, accelerator: str) -> None:
    """Create `out_dir`; refuse to mix results of another configuration unless --overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir / RUN_CONFIG
    current = json.loads(json.dumps(spec.result_config(accelerator), default=str))
    if spec.overwrite:
        for path in [out_dir / RESULTS, out_dir / "summary.json", out_dir / "summary.md",
                     *out_dir.glob("results.rank*.jsonl")]:
            path.unlink(missing_ok=True)
    elif config_file.is_file():
        previous = json.loads(config_file.read_text())
        if previous != current:
            changed = sorted(_differences(previous, current))
            raise ConfigMismatchError(
                f"{out_dir} holds results of a different configuration (changed: {', '.join(changed)}); "
                f"use another --output_dir, or --overwrite to discard them")
    config_file.write_text(json.dumps(current, indent=2))
    if spec.config_yaml:
        (out_dir / "config.yaml").write_text(spec.config_yaml)


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = set(a) | set(b)
    out = []
    for key in keys:
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(prefix + key)
    return out


def finish(out_dir: Path, spec: RunSpec, problems: list[Problem], bad_rows: list[ProblemDataError], digest: str,
           final: bool = True, run_logger: RunLogger | None = None) -> dict:
    """Merge the records into results.jsonl, write summary.json and summary.md, print the table.

    `final`: every rank finished its shard, so the rank files are folded in and removed; after an
    interruption they stay (another node may still be writing) and the resume reads them. The run's
    logger gets the records of the other ranks (rank 0 logged its own as they arrived), then closes.
    """
    skipped = [skipped_record(error) for error in bad_rows]
    records = merge(out_dir, [str(p.id) for p in problems], digest, skipped, final=final)
    summary = summarize(records, run_config(spec), spec.max_steps)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "summary.md").write_text(summary_markdown(summary, title=spec.method) + "\n")
    if run_logger is not None:
        run_logger.finish(records, summary)
    if spec.progress:
        from lightning_latentseek.report import print_table

        from lightning_latentseek.report_stats import cot_vs_final_line

        print_table([(f"{spec.method} ({out_dir})", summary)])
        line = cot_vs_final_line(records) if spec.method in ITERATIVE else None
        if line:
            print(line)
    return summary


def skipped_record(error: ProblemDataError) -> dict:
    """The record of a malformed row skipped with --data.on_error skip: counted apart, never solved.

    Its id is the row's place in the file (``line 3``; ``row 2`` for JSON/Parquet), so it can never
    be taken for a problem's id; it is made afresh from the data at every merge, not resumed.
    """
    return {"id": error.location, "skipped": True, "error": str(error)}


def release_memory() -> None:
    """Resident memory creeps over thousands of Trainers and batch caches: collect now and then, and hand
    the freed heap back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def quiet_lightning() -> None:
    """Per-problem fits would otherwise print the same banners and warnings thousands of times."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (".*does not have many workers.*", ".*eval mode.*", ".*LeafSpec.*", ".*litlogger.*",
                    ".*GPU available.*", ".*max_epochs=-1.*"):
        warnings.filterwarnings("ignore", message=pattern)
