"""Stopping at tau: end a LatentSeek fit as soon as the reward exceeds the threshold."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from lightning_latentseek.config import clears_tau


class RewardThreshold(Callback):
    """Stop when R > tau: before the first step (the CoT already clears tau: 0 iterations) and
    after every step whose logged `monitor` exceeds tau. Stock `EarlyStopping` only checks at
    epoch ends; K is the Trainer's `max_steps`. The comparison is `config.clears_tau`, the one the methods use.
    """

    def __init__(self, tau: float = -0.2, monitor: str = "reward"):
        self.tau = tau
        self.monitor = monitor

    def on_train_start(self, trainer, pl_module) -> None:
        if clears_tau(getattr(pl_module, "reward", float("-inf")), self.tau):
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and clears_tau(float(value), self.tau):
            trainer.should_stop = True
