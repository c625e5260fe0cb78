"""One Lightning logger for the whole run: every problem's iterations on one global step, its final
metrics, the running accuracy and the run's settings (logged once).

Per-problem fits run without a logger (a Trainer per problem would make a version directory per
problem); this callback takes the run's `--trainer.logger` (CSV, TensorBoard, W&B, MLflow: any
Lightning `Logger`) and feeds it from the records, on the main process (rank 0) only: its own
problems as they finish, the other ranks' when they are merged.
"""

from __future__ import annotations

from typing import Iterable

from lightning.pytorch.loggers import Logger

from lightning_latentseek.callbacks.problem_callback import ProblemCallback

ITERATION_METRICS = ("reward", "loss", "step_norm")


def _loggers(logger) -> list[Logger]:
    if logger is None or logger is False:
        return []
    if logger is True:
        raise ValueError("--trainer.logger true: name a logger class, e.g. lightning.pytorch.loggers.CSVLogger")
    items = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    for item in items:
        if not isinstance(item, Logger):
            raise ValueError(f"--trainer.logger: {type(item).__name__} is not a Lightning Logger")
    return items


class RunLogger(ProblemCallback):
    """Log the run to `logger` (a Lightning Logger, a list of them, or None/False: off).

    Metrics: ``reward``, ``loss``, ``step_norm`` and ``problem`` (its index in the run) for every
    iteration of every problem, on a global step that counts iterations over the run; then, per problem,
    ``correct``, ``cot_correct``, ``iterations``, ``seconds``, ``tokens``, ``reward_calls``,
    ``stop/<reason>`` (1) and ``accuracy`` (running). The resolved settings are the hyper-parameters.
    """

    def __init__(self, logger, config: dict, max_steps: int | None = None):
        self.loggers = _loggers(logger)
        self.config = config
        self.step = 0
        self.logged: set[str] = set()
        self._correct = 0
        self._hparams_done = False

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def on_run_start(self, problems: list) -> None:
        if self.loggers and not self._hparams_done:
            for logger in self.loggers:
                logger.log_hyperparams(self.config)
            self._hparams_done = True

    def on_problem_end(self, problem, record: dict) -> None:
        self.log_records([record])

    def log_records(self, records: Iterable[dict]) -> None:
        """Log each record not logged yet (skipped rows are not problems)."""
        if not self.loggers:
            return
        for record in records:
            if record.get("skipped") or str(record["id"]) in self.logged:
                continue
            self.logged.add(str(record["id"]))
            index = len(self.logged) - 1
            for entry in record.get("trajectory") or []:
                if entry.get("iteration", 0) == 0:
                    continue
                metrics = {name: float(entry[name]) for name in ITERATION_METRICS if entry.get(name) is not None}
                self._log({**metrics, "problem": float(index)})
            self._correct += bool(record.get("correct"))
            final = {"problem": float(index), "correct": float(bool(record.get("correct"))),
                     "iterations": float(record.get("iterations") or 0), "seconds": float(record.get("seconds") or 0),
                     "tokens": float(record.get("tokens") or 0), "reward_calls": float(record.get("reward_calls") or 0),
                     f"stop/{record.get('stop_reason')}": 1.0, "accuracy": self._correct / len(self.logged)}
            if record.get("cot_correct") is not None:
                final["cot_correct"] = float(bool(record["cot_correct"]))
            self._log(final)
        for logger in self.loggers:
            logger.save()

    def _log(self, metrics: dict) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.step)
        self.step += 1

    def finish(self, records: list[dict], summary: dict) -> None:
        """After the merge: the other ranks' problems, then close the loggers."""
        if not self.loggers:
            return
        self.log_records(records)
        for logger in self.loggers:
            logger.finalize("success")
