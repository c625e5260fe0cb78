"""Write one result record per finished problem, flushed at once: a crash loses only problems in flight."""

from __future__ import annotations

from pathlib import Path

from lightning_latentseek.callbacks.problem_callback import ProblemCallback
from lightning_latentseek.records import ResultsWriter


class RecordWriter(ProblemCallback):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer: ResultsWriter | None = None

    def on_run_start(self, problems: list) -> None:
        self._writer = ResultsWriter(self.path)

    def on_problem_end(self, problem, record: dict) -> None:
        self._writer.append(record)

    def on_run_end(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
