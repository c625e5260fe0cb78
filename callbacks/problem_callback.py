"""Problem-level hooks: a Lightning `Callback` that also hears about whole problems.

Lightning's own hooks fire inside each problem's fit (``on_train_batch_end`` sees the logged
reward); these fire around problems, for writing results and progress displays. Pass a
subclass with ``--trainer.callbacks`` and the run calls both kinds of hooks.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class ProblemCallback(Callback):
    def on_run_start(self, problems: list) -> None:
        """Before the first problem of this rank; `problems` is this rank's remaining shard."""

    def on_problem_start(self, problem) -> None:
        """Before a problem's CoT."""

    def on_problem_end(self, problem, record: dict) -> None:
        """After a problem ends, with its graded result record."""

    def on_run_end(self) -> None:
        """After the last problem of this rank (also after an error or Ctrl-C)."""
