"""Run directories for the report: ``DIR`` or ``NAME=DIR`` -> label, summary.json, results.jsonl records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lightning_latentseek.report_stats import run_stats

SUMMARY = "summary.json"
REWARD_METHODS = ("latentseek", "random", "bon")  # the methods that call the reward
RESULTS = "results.jsonl"


class ReportInputError(ValueError):
    """A run directory or one of its files cannot be read (the message names it)."""


@dataclass
class Run:
    """One run of train_free.py as the report sees it."""

    label: str
    directory: Path
    summary: dict
    records: list[dict] = field(default_factory=list)  # every record, skipped rows included

    @property
    def config(self) -> dict:
        return self.summary.get("config") or {}

    @property
    def method(self) -> str | None:
        return self.summary.get("method") or self.config.get("method") or next(
            (r["method"] for r in self.records if r.get("method")), None)

    @property
    def reward(self) -> str | None:
        """The reward the run used (None for methods that use none: cot, sc)."""
        if self.method not in REWARD_METHODS:
            return None
        return (self.config.get("model") or {}).get("reward")

    @property
    def tau(self) -> float | None:
        tau = (self.config.get("model") or {}).get("tau")
        return None if tau is None else float(tau)

    @property
    def stats(self) -> dict:
        """The table's numbers: summary.json, completed from the records."""
        return run_stats(self.summary, self.records)


def split_run_argument(argument: str) -> tuple[str | None, Path]:
    """``DIR`` -> (None, DIR); ``NAME=DIR`` -> (NAME, DIR) unless the whole argument is a directory."""
    if "=" in argument and not Path(argument).is_dir():
        name, _, directory = argument.partition("=")
        if name.strip():
            return name.strip(), Path(directory)
    return None, Path(argument)


def run_label(summary: dict, records: list[dict], directory: Path) -> str:
    """``method + reward (dir)``; Best-of-N with the perfect sparse reward is the oracle pass@N."""
    config = summary.get("config") or {}
    model = config.get("model") or {}
    method = summary.get("method") or config.get("method") or next(
        (r["method"] for r in records if r.get("method")), None) or "run"
    reward = model.get("reward") if method in REWARD_METHODS else None
    if method == "bon" and reward == "psrm":
        n = model.get("n_samples")
        base = f"BoN (oracle PSRM = pass@{n if n is not None else 'N'})"
    elif reward:
        base = f"{method} + {str(reward).rpartition('.')[2]}"
    else:
        base = str(method)
    return f"{base} ({directory.resolve().name})"


def read_results(path: Path) -> list[dict]:
    """The records of a results.jsonl; a torn last line (a run killed mid-write) is ignored, any other
    line that is not a JSON object with an ``id`` is an error naming the file and line."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not line.endswith("\n"):
                break  # torn last line
            raise ReportInputError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise ReportInputError(f"{path}:{number}: expected a JSON object with an 'id' field")
        records.append(record)
    return records


def load_run(argument: str) -> Run:
    """``DIR`` or ``NAME=DIR`` -> Run (summary.json is required, results.jsonl is read when present)."""
    name, directory = split_run_argument(argument)
    if not directory.is_dir():
        raise ReportInputError(f"{directory}: no such run directory")
    path = directory / SUMMARY
    if not path.is_file():
        raise ReportInputError(f"{path}: no {SUMMARY} (has the run finished?)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise ReportInputError(f"{path}: expected a JSON object")
    records = read_results(directory / RESULTS)
    return Run(name or run_label(summary, records, directory), directory, summary, records)


def load_runs(arguments: list[str]) -> list[Run]:
    return [load_run(argument) for argument in arguments]
