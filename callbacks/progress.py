"""One rich progress display over problems (rank 0): problem i/n, iterations, reward, running accuracy."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lightning_latentseek.callbacks.problem_callback import ProblemCallback


class RichProblemProgress(ProblemCallback):
    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task = None
        self._correct = self._seen = 0

    def on_run_start(self, problems: list) -> None:
        self._progress = Progress(TextColumn("[bold]problems"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
        self._progress.start()
        self._task = self._progress.add_task("", total=len(problems))

    def on_problem_start(self, problem) -> None:
        self._progress.update(self._task, description=f"{self._stats()} | solving {problem.id}")

    def on_problem_end(self, problem, record: dict) -> None:
        self._seen += 1
        self._correct += bool(record.get("correct"))
        rewards = record.get("rewards") or []
        last = f"{rewards[-1]:.2f}" if rewards else "-"
        self._progress.update(self._task, advance=1, description=(
            f"{self._stats()} | {problem.id}: iters {record.get('iterations', 0)}, reward {last}, "
            f"{'correct' if record.get('correct') else 'wrong'}"))

    def _stats(self) -> str:
        return f"acc {self._correct}/{self._seen}" if self._seen else "acc -"

    def on_run_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
