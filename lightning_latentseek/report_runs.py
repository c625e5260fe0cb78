"""Run directories for the report: ``DIR`` or ``NAME=DIR`` -> label, summary.json, results.jsonl records
(or, for a run still going, run_config.json and the records written so far)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lightning_latentseek.report_stats import run_stats

SUMMARY = "summary.json"
REWARD_METHODS = ("latentseek", "random", "bon")  # the methods that call the reward
RESULTS = "results.jsonl"
RUN_CONFIG = "run_config.json"


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
    def answer_selection(self) -> str:
        """Which answer a search returns (``last`` or ``best``; what a budget curve replays)."""
        return (self.config.get("model") or {}).get("answer_selection") or "last"

    @property
    def stats(self) -> dict:
        """The table's numbers: summary.json, completed from the records."""
        return run_stats(self.summary, self.records)


def split_run_argument(argument: str) -> tuple[str | None, Path]:
    """``DIR`` -> (None, DIR); ``NAME=DIR`` -> (NAME, DIR) (split at the last "=") unless the argument is a directory."""
    if "=" in argument and not Path(argument).is_dir():
        name, _, directory = argument.rpartition("=")  # a name may hold "=" ("N=10"), a directory rarely
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


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ReportInputError(f"{path}: expected a JSON object")
    return value


def unfinished_records(directory: Path) -> list[dict]:
    """The records written so far by a run still going (or interrupted): results.jsonl and the ranks'
    results.rank*.jsonl, one per problem id (the last one read)."""
    by_id: dict[str, dict] = {}
    for path in [directory / RESULTS, *sorted(directory.glob("results.rank*.jsonl"))]:
        for record in read_results(path):
            by_id[str(record["id"])] = record
    return list(by_id.values())


def load_run(argument: str) -> Run:
    """``DIR`` or ``NAME=DIR`` -> Run: summary.json and results.jsonl of a finished run; for a run without
    summary.json that has written records and run_config.json, a summary made of its config and records
    (labelled "unfinished")."""
    name, directory = split_run_argument(argument)
    if not directory.is_dir():
        raise ReportInputError(f"{directory}: no such run directory")
    path = directory / SUMMARY
    if path.is_file():
        summary = _read_json(path)
        records = read_results(directory / RESULTS)
        return Run(name or run_label(summary, records, directory), directory, summary, records)
    records = unfinished_records(directory)
    if not records or not (directory / RUN_CONFIG).is_file():
        raise ReportInputError(f"{path}: no {SUMMARY} (has the run finished?)")
    config = _read_json(directory / RUN_CONFIG)
    from lightning_latentseek.summary import summarize  # torch: only for a run without summary.json

    summary = summarize(records, config, int(config.get("max_steps") or 0))
    label = name or run_label(summary, records, directory)[:-1] + ", unfinished)"
    return Run(label, directory, summary, records)


def load_runs(arguments: list[str]) -> list[Run]:
    return [load_run(argument) for argument in arguments]
