"""`LatentSeekModule`: one problem's fit. One `training_step` is one LatentSeek iteration."""

from __future__ import annotations

import itertools
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_latentseek.config import Optimizer
from lightning_latentseek.latents import LatentParameter, RandomStep, decode_windows, reinforce_loss
from lightning_latentseek.search import ProblemSearch

Step = Literal["reinforce", "random"]
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}  # keyed by `config.Optimizer`


class LatentFault(RuntimeError):
    """The loss or the latents stopped being finite: the problem ends with its answers so far."""


class _Iterations(IterableDataset):
    """An endless index stream: the number of iterations is the Trainer's `max_steps` (K)."""

    def __iter__(self):
        return itertools.count()


def iteration_stream() -> IterableDataset:
    """The data of a per-problem fit: an endless index stream (the number of steps is the Trainer's max_steps, K)."""
    return _Iterations()


class LatentSeekModule(L.LightningModule):
    """A tiny module whose only parameter is the latent window z (fp32).

    The frozen LLM lives in `search` (a plain object), so it is not a submodule: not in the state
    dict, the optimizer, a checkpoint or a DDP wrapper.

    Args:
        search: the problem's search (prompt, CoT, reward, trajectory).
        latents: z_{s+1..s+N} from the CoT.
        lr, optimizer: the latents' optimizer (``adam``, the paper's, or ``sgd``).
        samples_per_step: M, decodings of the window drawn per iteration.
        temperature: 0 decodes x_t = argmax lm_head(z_t) (the paper); T > 0 samples softmax(lm_head(z_t)/T).
        step: ``reinforce`` (the method) or ``random`` (the control: Gaussian noise of the norm of Adam's
            first step, no gradient).
        generator: seeds the sampled decodings and the random steps of this problem.
    """

    def __init__(self, search: ProblemSearch, latents: torch.Tensor, lr: float = 0.03, optimizer: Optimizer = "adam",
                 samples_per_step: int = 1, temperature: float = 0.0, step: Step = "reinforce",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.automatic_optimization = False  # the step sits between the loss and the next decodings
        self.save_hyperparameters({"lr": lr, "optimizer": optimizer, "n_latents": int(latents.shape[0]),
                                   "samples_per_step": samples_per_step, "temperature": temperature, "step": step})
        self.search = search
        self.latents = LatentParameter(latents)
        self.generator = generator

    @property
    def reward(self) -> float:
        """The best reward of the current decodings (what `RewardThreshold` compares with tau)."""
        return self.search.reward

    def configure_optimizers(self):
        if self.hparams.step == "random":
            return RandomStep(self.latents.parameters(), lr=self.hparams.lr, generator=self.generator)
        return OPTIMIZERS[self.hparams.optimizer](self.latents.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Iterations(), batch_size=None)

    def training_step(self, batch, batch_idx):
        """One iteration (paper Sec. 3.3): a step on z from the current decodings' rewards, then new decodings.

        1. loss = -sum_m (R_m - b_m) sum_t log pi(x^m_t | z_t) on the current decodings (eq. 7; the CoT at
           the first step; b_m the leave-one-out baseline when M > 1), one optimizer step on z;
        2. decode the window from the new z: argmax (M = 1, T = 0: the paper) or M samples at temperature T;
        3. continue each window greedily to EOS; 4. reward every answer (`ProblemSearch.step`).
        """
        z = self.latents()
        lm_head = self.search.llm.lm_head
        current = self.search.current
        optimizer = self.optimizers()
        before = z.detach().clone()
        loss = None
        if self.hparams.step == "reinforce":
            optimizer.zero_grad()
            loss = reinforce_loss(lm_head, z, [s.window for s in current.samples],
                                  [s.reward.value for s in current.samples], self.hparams.temperature)
            if not torch.isfinite(loss):
                raise LatentFault(f"non-finite loss {loss.item()} at iteration {len(self.search.history)}")
            self.manual_backward(loss)
        optimizer.step()  # Adam on the gradient, or the random control's noise step (no gradient)
        norm = float((z.detach() - before).norm())
        if not torch.isfinite(z).all():
            raise LatentFault(f"non-finite latents after iteration {len(self.search.history)}")
        windows = decode_windows(lm_head, z, self.hparams.samples_per_step, self.hparams.temperature, self.generator)
        iterate = self.search.step(windows, loss=None if loss is None else loss.detach().item(), step_norm=norm)
        self.log("reward", iterate.best.reward.value, on_step=True, on_epoch=False, batch_size=1)
        self.log("step_norm", norm, on_step=True, on_epoch=False, batch_size=1)
        if loss is not None:
            self.log("loss", loss.detach(), on_step=True, on_epoch=False, batch_size=1)
        return None if loss is None else loss.detach()
