"""Result records: grading an outcome, appending JSONL safely, resuming, merging ranks (their summary:
`summary.py`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterable

from lightning_latentseek.grading import extract_answer, grade, numeric_dataset
from lightning_latentseek.methods import Outcome
from lightning_latentseek.problems import Problem

RESULTS = "results.jsonl"
RUN_CONFIG = "run_config.json"


# ------------------------------------------------------------------------------------------ records
def build_record(problem: Problem, outcome: Outcome, prompt: str, seconds: float, config_hash: str,
                 reward: str | None = None, extraction: str = "paper") -> dict:
    """Outcome -> graded result record (one JSONL line). Every decoded answer is graded (trajectory
    entries, their samples, baseline samples), so a report can tell how often the reward was right."""

    def graded(text: str | None) -> tuple[str | None, bool | None]:
        if text is None:
            return None, None
        numeric = numeric_dataset(problem.dataset, problem.answer)
        pred = extract_answer(text, prompt, numeric, extraction)
        return pred, grade(pred, problem.answer, numeric)

    def entry(step: dict) -> dict:
        details = step.get("reward_details")
        compact = {**step, "reward_details": _compact(details)} if details else dict(step)
        if "samples" in step:
            compact["samples"] = [entry(s) for s in step["samples"]]
        return {**compact, **dict(zip(("pred", "correct"), graded(step["text"])))}

    pred, correct = graded(outcome.text)
    cot_pred, cot_correct = graded(outcome.cot_text)
    trajectory = [entry(step) for step in outcome.trajectory]
    samples = [entry(s) for s in outcome.samples]
    # unreadable verifier verdicts, once per distinct judged answer
    every = trajectory + samples + [s for step in trajectory for s in step.get("samples", ())]
    judged = {step["text"]: step["reward_details"] for step in every if step.get("reward_details")}
    verdict_failures = sum(d.get("verdict_failures", 0) for d in judged.values())
    return {
        "id": problem.id, "method": outcome.method, "reward": reward, "question": problem.question,
        "ground_truth": problem.answer,
        "cot_text": outcome.cot_text, "cot_pred": cot_pred, "cot_correct": cot_correct,
        "text": outcome.text, "pred": pred, "correct": correct,
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


def finished_records(out_dir: Path, config_hash: str) -> dict[str, dict]:
    """Every complete record of this configuration in `out_dir` (merged file and rank files), by problem id.

    A record of another configuration that slipped in, or a skipped row's record, never counts as
    finished: that problem is solved again.
    """
    found: dict[str, dict] = {}
    for path in results_files(out_dir):
        for record in read_records(path):
            if record.get("config_hash") == config_hash and not record.get("skipped"):
                found[str(record["id"])] = record
    return found


def merge(out_dir: Path, order: Iterable[str], config_hash: str, skipped: Iterable[dict] = (),
          final: bool = True) -> list[dict]:
    """Write results.jsonl: the finished records in dataset order, then the `skipped` rows' records.

    `final` drops the rank files once their records are in results.jsonl; otherwise they are kept
    (a rank may still be appending to its file) and stay part of the results.
    """
    found = finished_records(out_dir, config_hash)
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
