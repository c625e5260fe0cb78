"""Result records: grading an outcome, appending JSONL safely, resuming, merging ranks (their summary:
`summary.py`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterable

from lightning_latentseek.grading import Grader
from lightning_latentseek.methods import Outcome
from lightning_latentseek.problems import Problem

RESULTS = "results.jsonl"
RUN_CONFIG = "run_config.json"
# Stop reasons of problems that ended without a result of their method (their verifier server failed): their
# records are kept and shown, but a resume solves them again (`finished_records`).
UNFINISHED = ("reward_unavailable",)


def is_finished(record: dict) -> bool:
    """A solved problem's record (not a skipped row's, not an unfinished problem's)."""
    return not record.get("skipped") and record.get("stop_reason") not in UNFINISHED


# ------------------------------------------------------------------------------------------ records
def build_record(problem: Problem, outcome: Outcome, grader: Grader, seconds: float, config_hash: str,
                 reward: str | None = None) -> dict:
    """Outcome -> graded result record (one JSONL line). Every decoded answer is graded by `grader` (trajectory
    entries, their samples, baseline samples), so a report can tell how often the reward was right. Each
    answer's ``eos`` (the stop token's text, which the original's decode keeps) is recorded beside it, so
    `regrade.py` can grade the record again exactly."""

    def graded(text: str | None, eos: str = "") -> tuple[str | None, bool | None]:
        return grader.judge(text, problem.dataset, problem.answer, eos)

    def entry(step: dict) -> dict:
        details = step.get("reward_details")
        compact = {**step, "reward_details": _compact(details)} if details else dict(step)
        if "samples" in step:
            compact["samples"] = [entry(s) for s in step["samples"]]
        return {**compact, **dict(zip(("pred", "correct"), graded(step["text"], step.get("eos", ""))))}

    pred, correct = graded(outcome.text, outcome.eos)
    cot_pred, cot_correct = graded(outcome.cot_text, outcome.cot_eos)
    trajectory = [entry(step) for step in outcome.trajectory]
    samples = [entry(s) for s in outcome.samples]
    # unreadable verifier verdicts, once per distinct judged answer
    every = trajectory + samples + [s for step in trajectory for s in step.get("samples", ())]
    judged = {step["text"]: step["reward_details"] for step in every if step.get("reward_details")}
    verdict_failures = sum(d.get("verdict_failures", 0) for d in judged.values())
    return {
        "id": problem.id, "method": outcome.method, "reward": reward, "question": problem.question,
        "ground_truth": problem.answer,
        "cot_text": outcome.cot_text, "cot_eos": outcome.cot_eos, "cot_pred": cot_pred, "cot_correct": cot_correct,
        "text": outcome.text, "eos": outcome.eos, "pred": pred, "correct": correct,
        "rewards": outcome.rewards, "iterations": outcome.iterations, "n_latents": outcome.n_latents,
        "cot_tokens": outcome.cot_tokens, "tokens": outcome.tokens,
        "solver_tokens": outcome.solver_tokens, "verifier_tokens": outcome.verifier_tokens,
        "reward_calls": outcome.reward_calls, "verdict_failures": verdict_failures,
        "best_text": outcome.best_text, "best_reward": outcome.best_reward,
        "seconds": round(seconds, 3), "finished_at": time.time(), "stop_reason": outcome.stop_reason, "hit_cap": outcome.hit_cap,
        "trajectory": trajectory, "samples": samples, "steps": outcome.steps,
        "scoring_positions": outcome.scoring_positions, "config_hash": config_hash,
    }


VERIFIER_TAIL = 240  # characters of each verifier response kept in records (where the verdict is)


def _compact(details: dict) -> dict:
    """Reward details for a record: verifier responses cut to their last characters."""
    texts = details.get("verifier_texts")
    if not texts:
        return details
    return {**details, "verifier_texts": {name: text[-VERIFIER_TAIL:] for name, text in texts.items()}}


def config_hash(result_config: dict) -> str:
    """A short hash of everything that changes a problem's result."""
    return hashlib.sha256(json.dumps(result_config, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ files
def read_records(path: Path) -> list[dict]:
    """Complete records of a JSONL results file; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # torn: the writer died before the newline
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            records.append(record)
    return records


def repair(path: Path) -> None:
    """Cut a torn last line so appends start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as f:
            f.truncate(end)


def results_files(out_dir: Path) -> list[Path]:
    return [out_dir / RESULTS, *sorted(out_dir.glob("results.rank*.jsonl"))]


class ResultsWriter:
    """Appends one record per finished problem, flushed and fsynced at once."""

    def __init__(self, path: Path):
        self.path = path
        repair(path)
        self._file = path.open("a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def current_records(out_dir: Path, config_hash: str) -> dict[str, dict]:
    """The latest record of each problem of this configuration in `out_dir` (merged file and rank files), by problem
    id: a finished one when there is one, else an unfinished one (`UNFINISHED`). Skipped rows' records and records of
    another configuration that slipped in are left out."""
    found: dict[str, dict] = {}
    for path in results_files(out_dir):
        for record in read_records(path):
            if record.get("config_hash") != config_hash or record.get("skipped"):
                continue
            key = str(record["id"])
            if is_finished(record) or key not in found or not is_finished(found[key]):
                found[key] = record
    return found


def finished_records(out_dir: Path, config_hash: str) -> dict[str, dict]:
    """Every finished record of this configuration in `out_dir`, by problem id: what a resume skips. A record of
    another configuration, a skipped row's record or an unfinished problem's never counts: that problem is solved
    again."""
    return {key: record for key, record in current_records(out_dir, config_hash).items() if is_finished(record)}


def merge(out_dir: Path, order: Iterable[str], config_hash: str, skipped: Iterable[dict] = (),
          final: bool = True) -> list[dict]:
    """Write results.jsonl: the problems' records in dataset order (finished ones, and unfinished ones of problems
    that have no finished record yet), then the `skipped` rows' records.

    `final` drops the rank files once their records are in results.jsonl; otherwise they are kept
    (a rank may still be appending to its file) and stay part of the results.
    """
    found = current_records(out_dir, config_hash)
    order = list(order)
    position = {pid: i for i, pid in enumerate(order)}
    records = sorted(found.values(), key=lambda r: position.get(str(r["id"]), len(order))) + list(skipped)
    tmp = out_dir / (RESULTS + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_dir / RESULTS)
    if final:
        for path in out_dir.glob("results.rank*.jsonl"):
            path.unlink()
    return records
