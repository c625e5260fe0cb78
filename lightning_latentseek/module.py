"""One problem's fit: `LatentSeekModule` (one `training_step` is one LatentSeek iteration) and `GradCuitModule`
(one GradCuit iteration)."""

from __future__ import annotations

import itertools
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_latentseek.config import Optimizer
from lightning_latentseek.errors import UserError
from lightning_latentseek.latents import LatentParameter, RandomStep, decode_windows, reinforce_loss
from lightning_latentseek.prefix import PrefixOffset, answer_log_probs, prefix_loss
from lightning_latentseek.search import ProblemSearch

Step = Literal["reinforce", "random"]
# keyed by `config.Optimizer`, with torch's defaults (GradCuit's G:153-167); Muon where the installed torch has it
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "muon": getattr(torch.optim, "Muon", None)}


def build_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """torch's optimizer `name` with its defaults and `lr`."""
    cls = OPTIMIZERS[name]
    if cls is None:
        raise UserError(f"--model.optimizer {name}: torch {torch.__version__} has no torch.optim.Muon (torch >= 2.9 "
                        f"has it); choose adam or sgd")
    return cls(params, lr=lr)


class LatentFault(RuntimeError):
    """The loss or the latents stopped being finite: the problem ends with its answers so far."""


class _Iterations(IterableDataset):
    """An endless index stream: the number of iterations is the Trainer's `max_steps` (K)."""

    def __iter__(self):
        return itertools.count()


def iteration_stream() -> IterableDataset:
    """The data of a per-problem fit: an endless index stream (the number of steps is the Trainer's max_steps, K)."""
    return _Iterations()


class SearchModule(L.LightningModule):
    """What LatentSeek's and GradCuit's fits share: the search's reward (what `RewardThreshold` compares with tau:
    the best reward of the current decodings), the optimizer of `trainable()` (or the random control's
    `RandomStep` with ``step="random"``) and one batch per iteration."""

    search: Any

    @property
    def reward(self) -> float:
        return self.search.reward

    def trainable(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def configure_optimizers(self):
        if self.hparams.step == "random":
            return RandomStep(self.trainable(), lr=self.hparams.lr, generator=self.generator)
        return build_optimizer(self.hparams.optimizer, self.trainable(), self.hparams.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Iterations(), batch_size=None)


class LatentSeekModule(SearchModule):
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

    def trainable(self) -> list[torch.Tensor]:
        return list(self.latents.parameters())

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


class GradCuitModule(SearchModule):
    """GradCuit's fit (`prefix`): the only parameter is the prefix offset delta (P, H), zero-initialised.

    Like `LatentSeekModule`, the frozen LLM lives in `search` (a `PrefixSearch`), not in the module.

    Args:
        search: the problem's search (prompt, prefix, baseline answer, reward, trajectory).
        init: the prefix's input to block L, (P, H), from one forward of [prompt, prefix] without a cache.
        lr, optimizer: delta's optimizer (``adam``, GradCuit's default, ``sgd`` or ``muon``), torch's defaults.
        step: ``gradient`` (GradCuit) or ``random`` (its control: Gaussian moves of the norm of Adam's first step,
            no gradient).
        grad_clip: clip delta's gradient norm to this (0: off, GradCuit's default; G:448-449).
        dtype: delta's dtype: bf16 (GradCuit's: the sum init + delta rounded as in bf16) or fp32.
        generator: seeds the random control's steps.
    """

    def __init__(self, search, init: torch.Tensor, lr: float = 1e-3, optimizer: Optimizer = "adam",
                 step: Literal["gradient", "random"] = "gradient", grad_clip: float = 0.0,
                 dtype: torch.dtype = torch.bfloat16, generator: torch.Generator | None = None):
        super().__init__()
        self.automatic_optimization = False  # the step sits between the loss and the regeneration
        self.save_hyperparameters({"lr": lr, "optimizer": optimizer, "step": step, "grad_clip": grad_clip,
                                   "n_latents": int(init.shape[0]), "dtype": str(dtype).removeprefix("torch.")})
        self.search = search
        self.offset = PrefixOffset(init, dtype)
        self.generator = generator

    def trainable(self) -> list[torch.Tensor]:
        return [self.offset.delta]

    def training_step(self, batch, batch_idx):
        """One GradCuit iteration (G:399-474):

        1. loss = -R * sum_t log p(y_t) over every token of the current answer (its targets), teacher-forced
           without a cache with init + delta injected at block L; backward; clip (if on); one optimizer step;
        2. regenerate the whole answer greedily with the new state injected; 3. reward it (`PrefixSearch.step`).
        The random control replaces 1 by a Gaussian move of delta (no gradient)."""
        search = self.search
        optimizer = self.optimizers()
        delta = self.offset.delta
        before = delta.detach().float().clone()
        loss = None
        if self.hparams.step == "gradient":
            optimizer.zero_grad()
            log_probs = answer_log_probs(search.llm, search.context, search.targets, search.injection(self.offset()))
            loss = prefix_loss(log_probs, search.reward)
            if not torch.isfinite(loss):
                raise LatentFault(f"non-finite loss {loss.item()} at iteration {len(search.history)}")
            self.manual_backward(loss)
            if self.hparams.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([delta], self.hparams.grad_clip)
        optimizer.step()
        norm = float((delta.detach().float() - before).norm())
        if not torch.isfinite(delta).all():
            raise LatentFault(f"non-finite prefix offset after iteration {len(search.history)}")
        with torch.no_grad():
            state = self.offset()
        iterate = search.step(state, loss=None if loss is None else float(loss.detach()), step_norm=norm)
        self.log("reward", iterate.best.reward.value, on_step=True, on_epoch=False, batch_size=1)
        self.log("step_norm", norm, on_step=True, on_epoch=False, batch_size=1)
        if loss is not None:
            self.log("loss", loss.detach().float(), on_step=True, on_epoch=False, batch_size=1)
        return None if loss is None else loss.detach()
