"""`LatentSeekModule`: one problem's fit. One `training_step` is one LatentSeek iteration."""

from __future__ import annotations

import itertools

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_latentseek.latents import LatentParameter, decode_latents, reinforce_loss
from lightning_latentseek.search import ProblemSearch


class LatentFault(RuntimeError):
    """The loss or the latents stopped being finite: the problem ends with its answers so far."""


class _Iterations(IterableDataset):
    """An endless index stream: the number of iterations is the Trainer's `max_steps` (K)."""

    def __iter__(self):
        return itertools.count()


class LatentSeekModule(L.LightningModule):
    """A tiny module whose only parameter is the latent window z (fp32).

    The frozen LLM lives in `search` (a plain object), so it is not a submodule: not in the
    state dict, the optimizer, a checkpoint or a DDP wrapper.
    """

    def __init__(self, search: ProblemSearch, latents: torch.Tensor, lr: float = 0.03, optimizer: str = "adam"):
        super().__init__()
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"--model.optimizer {optimizer!r}: choose adam or sgd")
        self.automatic_optimization = False  # the step sits between the loss and the next decode
        self.save_hyperparameters({"lr": lr, "optimizer": optimizer, "n_latents": int(latents.shape[0])})
        self.search = search
        self.latents = LatentParameter(latents)

    @property
    def reward(self) -> float:
        return self.search.reward

    def configure_optimizers(self):
        cls = torch.optim.Adam if self.hparams.optimizer == "adam" else torch.optim.SGD
        return cls(self.latents.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Iterations(), batch_size=None)

    def training_step(self, batch, batch_idx):
        """(2) REINFORCE step on z with the current reward; (3) decode + continue; (4) reward."""
        lm_head = self.search.llm.lm_head
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = reinforce_loss(lm_head, self.latents(), self.search.reward)  # eq. (7)
        if not torch.isfinite(loss):
            raise LatentFault(f"non-finite loss {loss.item()} at iteration {len(self.search.history)}")
        self.manual_backward(loss)
        optimizer.step()
        if not torch.isfinite(self.latents.z).all():
            raise LatentFault(f"non-finite latents after iteration {len(self.search.history)}")
        iterate = self.search.step(decode_latents(lm_head, self.latents()))
        self.log("reward", iterate.reward.value, on_step=True, on_epoch=False, batch_size=1)
        self.log("loss", loss.detach(), on_step=True, on_epoch=False, batch_size=1)
        return loss.detach()
