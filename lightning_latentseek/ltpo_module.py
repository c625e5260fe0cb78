"""`LTPOModule`: one problem's LTPO fit (ltpo2025/LTPO ltpo.py:150-218). One `training_step` is one step of its loop.

The only parameter is H, the N placeholders' input embeddings, in the model's dtype as LTPO keeps it (updates
are rounded into it). Each step draws noise eps ~ N(0, sigma^2) (float32, from the problem's CPU generator, with
LTPO's call ``torch.normal(mean=0.0, std=sigma, size=H.shape)``), scores the candidate A = H + eps by the model's
confidence at the slots (`ltpo.LTPOScorer`), moves H, decays sigma and keeps the best state:

* ``zo`` (LTPO main.py's default): H += lr * R * eps / sigma^2 (ltpo.py:203-204), R always positive (>= ln k), no
  baseline: LTPO's first fault, reproduced by default. ``--model.ltpo_baseline mean`` subtracts the running mean
  of the rewards so far (the unperturbed H's first, one extra scoring); ``loo`` draws M candidates per step and
  subtracts from each the mean of the others: H += lr / M * sum_m (R_m - b_m) eps_m / sigma^2.
* ``autograd`` (its --use_auto_grad): Adam(lr, maximize=True) on R's exact gradient at the candidate (ltpo.py:
  157-161, 181-201).
* selection (ltpo.py:165-167, 213-216): best_R starts at 0.0; a step whose R > best_R (strict) becomes the best,
  and the state kept is H *after* that step's update, which was never scored: LTPO's second fault, reproduced by
  default; ``--model.ltpo_best_state scored`` keeps the candidate that earned R. ``--model.ltpo_selection last``
  ends with the last state instead (its --disable_best_reward).

LTPO has no tau: all K steps run (its main.py's reward_threshold -1, ltpo.py:217-218). The module logs
``confidence``, never ``reward``, so the run's tau callback (`RewardThreshold`, which reads ``reward``) never stops
it. The update is an optimizer's `step()` even for ``zo`` (`ZerothOrderStep`): with manual optimization Lightning
counts optimizer steps, so a fit without one would never reach K.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightning_latentseek.latents import leave_one_out_baselines
from lightning_latentseek.ltpo import LTPOScorer
from lightning_latentseek.module import LatentFault, iteration_stream


class ZerothOrderStep(torch.optim.Optimizer):
    """LTPO's zeroth-order update as an optimizer: ``step(moves=[...])`` adds each move to its parameter in place,
    rounding the sum into the parameter's dtype as LTPO's ``thought_hidden_states += grad_ascent`` does."""

    def __init__(self, params):
        super().__init__(params, {})

    @torch.no_grad()
    def step(self, closure=None, moves: list[Tensor] | None = None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        parameters = [p for group in self.param_groups for p in group["params"]]
        for parameter, move in zip(parameters, moves or []):
            parameter += move
        return None


class LTPOModule(L.LightningModule):
    """LTPO's loop for one problem (see the module docstring).

    Args:
        scorer: the problem's reward (`ltpo.LTPOScorer`).
        slots: H at the start, the placeholders' input embeddings (N, d), in the model's dtype.
        lr, sigma, sigma_decay: LTPO's step size, noise scale and its decay per step.
        update: ``zo`` or ``autograd``.
        selection: ``best`` or ``last``.
        best_state: ``updated`` (LTPO) or ``scored``.
        baseline: ``none`` (LTPO), ``mean`` or ``loo``.
        samples: M, candidates per step (``zo`` only; ``loo`` needs M >= 2).
        generator: the problem's CPU generator of the noise.
    """

    def __init__(self, scorer: LTPOScorer, slots: Tensor, lr: float = 0.03, sigma: float = 0.1,
                 sigma_decay: float = 0.99, update: Literal["zo", "autograd"] = "zo",
                 selection: Literal["best", "last"] = "best", best_state: Literal["updated", "scored"] = "updated",
                 baseline: Literal["none", "mean", "loo"] = "none", samples: int = 1,
                 generator: torch.Generator | None = None):
        super().__init__()
        if update == "autograd" and (baseline != "none" or samples != 1):
            raise ValueError("LTPO's autograd update follows one candidate's exact gradient: no baseline, M = 1")
        if baseline == "loo" and samples < 2:
            raise ValueError("a leave-one-out baseline needs at least 2 candidates per step")
        self.automatic_optimization = False
        self.save_hyperparameters({"lr": lr, "sigma": sigma, "sigma_decay": sigma_decay, "update_rule": update,
                                   "selection": selection, "best_state": best_state, "baseline": baseline,
                                   "samples": samples, "n_slots": int(slots.shape[0])})
        self.scorer = scorer
        self.slots = nn.Parameter(slots.detach().clone(), requires_grad=update == "autograd")
        self.sigma = float(sigma)
        self.generator = generator
        self.best_reward: Tensor | float = 0.0  # ltpo.py:165
        self.best_step: int | None = None
        self.best = self.slots.detach().clone()  # ltpo.py:167
        self.last_scored: Tensor | None = None
        self.seen: list[float] = []  # the rewards so far (the running-mean baseline)
        self.steps: list[dict] = []  # one entry per step, for the record

    def configure_optimizers(self):
        if self.hparams.update_rule == "autograd":
            return torch.optim.Adam([self.slots], lr=self.hparams.lr, maximize=True)  # ltpo.py:161
        return ZerothOrderStep([self.slots])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(iteration_stream(), batch_size=None)

    def noise(self) -> Tensor:
        """eps ~ N(0, sigma^2), LTPO's call (ltpo.py:171) on the problem's generator, float32, then on H's device."""
        return torch.normal(mean=0.0, std=self.sigma, size=self.slots.shape, generator=self.generator).to(
            self.slots.device)

    def training_step(self, batch, batch_idx):
        """One step of LTPO's loop: noise -> candidates -> confidence -> update -> sigma decay -> best state."""
        sigma, optimizer, H = self.sigma, self.optimizers(), self.slots
        before = H.detach().clone()
        baseline = None
        if self.hparams.update_rule == "autograd":
            optimizer.zero_grad()
            noise = [self.noise()]
            candidates = [H + noise[0]]  # ltpo.py:172: float32
            rewards = [self.scorer.score_with_grad(candidates[0])]
            self.manual_backward(rewards[0])  # ltpo.py:189 (no retained graph: it is rebuilt every step)
            optimizer.step()  # ltpo.py:201
            rewards, candidates = [rewards[0].detach()], [candidates[0].detach()]
        else:
            with torch.no_grad():
                noise = [self.noise() for _ in range(self.hparams.samples)]
                candidates = [H.detach() + eps for eps in noise]
                if self.hparams.baseline == "mean" and not self.seen:  # b_0: the unperturbed state's reward
                    self.seen.append(float(self.scorer.score([H.detach()])[0]))
                rewards = self.scorer.score(candidates)
                move, baseline = self.move(rewards, noise, sigma)
            optimizer.step(moves=[move])
        self.seen += [float(r) for r in rewards]
        self.sigma = sigma * self.hparams.sigma_decay  # ltpo.py:205
        if not torch.isfinite(H).all():
            raise LatentFault(f"non-finite placeholder embeddings after step {len(self.steps) + 1}")
        self.select(rewards, candidates, baseline, sigma, float((H.detach().float() - before.float()).norm()))
        self.log("confidence", float(self.steps[-1]["confidence"]), on_step=True, on_epoch=False, batch_size=1)
        return None

    def move(self, rewards: list[Tensor], noise: list[Tensor], sigma: float) -> tuple[Tensor, float | list | None]:
        """The zeroth-order move and the baseline used. Without a baseline and with one candidate it is LTPO's
        expression exactly, ``lr * reward * epsilon / sigma ** 2`` (R a 0-dim tensor of the logits' dtype)."""
        lr = self.hparams.lr
        if self.hparams.baseline == "none":
            move = lr * rewards[0] * noise[0] / sigma ** 2
            for reward, eps in zip(rewards[1:], noise[1:]):
                move = move + lr * reward * eps / sigma ** 2
            return (move / len(rewards) if len(rewards) > 1 else move), None
        if self.hparams.baseline == "mean":
            baselines = [sum(self.seen) / len(self.seen)] * len(rewards)
        else:
            baselines = leave_one_out_baselines([float(r) for r in rewards])
        move = sum(lr * (float(reward) - b) * eps / sigma ** 2 for reward, b, eps in zip(rewards, baselines, noise))
        return move / len(rewards), (baselines[0] if self.hparams.baseline == "mean" else baselines)

    def select(self, rewards: list[Tensor], candidates: list[Tensor], baseline, sigma: float, norm: float) -> None:
        """LTPO's best-step rule (ltpo.py:213-216) on the step's highest reward (the first among ties), and the
        step's record entry."""
        m = max(range(len(rewards)), key=lambda j: (float(rewards[j]), -j))
        reward = rewards[m]
        became_best = bool(reward > self.best_reward)
        if became_best:
            self.best_reward, self.best_step = reward, len(self.steps)
            self.best = (self.slots.detach().clone() if self.hparams.best_state == "updated"
                         else candidates[m].clone())
        self.last_scored = candidates[m]
        entry = {"iteration": len(self.steps) + 1, "confidence": float(reward), "sigma": sigma, "step_norm": norm,
                 "best": became_best}
        if len(rewards) > 1:
            entry["candidates"] = [float(r) for r in rewards]
        if baseline is not None:
            entry["baseline"] = baseline
        self.steps.append(entry)

    def final_slots(self) -> Tensor:
        """What the final generation sees at the slots (ltpo.py:220-221): the best state, or the last one (H, or
        with ``scored`` the last step's candidate)."""
        if self.hparams.selection == "best" or not self.steps:
            return self.best
        if self.hparams.best_state == "scored":
            return self.last_scored
        return self.slots.detach().clone()
