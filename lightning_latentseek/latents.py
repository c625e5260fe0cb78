"""The latents z and the policy-gradient objective (LatentSeek, arXiv 2505.13308, Sec. 3).

The latent policy is pi(x_t | z_t) = softmax(lm_head(z_t))[x_t]; the paper decodes x_t = argmax
lm_head(z_t). Only z_{s+1..s+N} are trained; everything of the LLM stays frozen.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def n_latents(cot_length: int, rho: float, max_latents: int = 300) -> int:
    """N = min(int(rho * T), max_latents): how many of the T CoT latents are optimised."""
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    return max(0, min(int(rho * cot_length), max_latents))


def latent_window(cot_length: int, rho: float, max_latents: int = 300, start_fraction: float = 0.0) -> tuple[int, int]:
    """(s, N): the latents z_{s+1..s+N} are optimised, s = int(start_fraction * T) (middle-stage ablation)."""
    if not 0.0 <= start_fraction < 1.0:
        raise ValueError(f"start_fraction must be in [0, 1), got {start_fraction}")
    start = int(start_fraction * cot_length)
    return start, min(n_latents(cot_length, rho, max_latents), cot_length - start)


class LatentParameter(nn.Module):
    """The N latents z, fp32 whatever the LLM's dtype: the only trainable tensor of a fit."""

    def __init__(self, latents: Tensor):
        super().__init__()
        if latents.dim() != 2:
            raise ValueError(f"latents must be (N, hidden), got shape {tuple(latents.shape)}")
        self.z = nn.Parameter(latents.detach().clone().float())

    def forward(self) -> Tensor:
        return self.z

    def __len__(self) -> int:
        return self.z.shape[0]


def token_logits(lm_head: nn.Module, z: Tensor) -> Tensor:
    """lm_head(z) in float32, with z cast to the head's dtype (bf16 LLM, fp32 latents)."""
    return lm_head(z.to(lm_head.weight.dtype)).float()


@torch.no_grad()
def decode_windows(lm_head: nn.Module, z: Tensor, samples: int = 1, temperature: float = 0.0,
                   generator: torch.Generator | None = None) -> list[list[int]]:
    """The tokens the latents stand for: x_t = argmax lm_head(z_t) (temperature 0, the paper), or
    `samples` draws x_t ~ softmax(lm_head(z_t) / temperature), one token per position, independently."""
    logits = token_logits(lm_head, z)
    if temperature <= 0:
        return [logits.argmax(-1).tolist()] * samples
    probs = torch.softmax(logits / temperature, dim=-1).cpu()
    drawn = torch.multinomial(probs, samples, replacement=True, generator=generator)  # (N, samples)
    return drawn.t().tolist()


def leave_one_out_baselines(rewards: Sequence[float]) -> list[float]:
    """b_m = mean of the other samples' rewards (0 for a single sample: the paper's plain REINFORCE)."""
    m = len(rewards)
    if m == 1:
        return [0.0]
    total = float(sum(rewards))
    return [(total - r) / (m - 1) for r in rewards]


def reinforce_loss(lm_head: nn.Module, z: Tensor, windows: Sequence[Sequence[int]], rewards: Sequence[float],
                   temperature: float = 0.0) -> Tensor:
    """Paper eq. (7) as a loss, with a leave-one-out baseline for several samples:

        L(z) = -sum_m (R_m - b_m) * sum_t log pi(x^m_t | z_t),   b_m = mean_{j != m} R_j  (b = 0 when M = 1)

    pi = softmax(lm_head(z)) for argmax decodings (temperature 0), softmax(lm_head(z) / T) for samples
    drawn at temperature T. With one argmax decoding this is -R * sum_t log pi(x_t | z_t), whose gradient
    -R * sum_t grad log pi(x_t | z_t) is the REINFORCE estimate of -grad E[R]; it flows into z only.
    """
    if len(windows) != len(rewards) or not windows:
        raise ValueError(f"{len(windows)} decodings for {len(rewards)} rewards")
    logits = token_logits(lm_head, z)
    log_probs = torch.log_softmax(logits / temperature if temperature > 0 else logits, dim=-1)
    tokens = torch.tensor([list(w) for w in windows], dtype=torch.long, device=z.device)  # (M, N)
    chosen = log_probs.gather(-1, tokens.t()).sum(0)  # (M,): sum_t log pi(x^m_t | z_t)
    advantages = torch.tensor([r - b for r, b in zip(rewards, leave_one_out_baselines(rewards))],
                              dtype=chosen.dtype, device=z.device)
    return -(advantages * chosen).sum()


def adam_step_norm(z: Tensor, lr: float) -> float:
    """The norm of Adam's first step on z: lr per coordinate (lr * sign(g)), so lr * sqrt(numel)."""
    return lr * math.sqrt(z.numel())


class RandomStep(torch.optim.Optimizer):
    """The random control as an optimizer: each `step()` moves every parameter by Gaussian noise scaled to
    the norm of Adam's first step (`adam_step_norm`), whatever the gradient; none is needed, so the
    control never calls backward. `generator` seeds the noise (CPU)."""

    def __init__(self, params, lr: float, generator: torch.Generator | None = None):
        super().__init__(params, {"lr": lr})
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                noise = torch.randn(p.shape, generator=self.generator, dtype=torch.float32)
                # scaled in fp32, then cast: a bf16 parameter (GradCuit's offset) gets the same move, rounded once
                p.add_((noise * (adam_step_norm(p, group["lr"]) / noise.norm().clamp_min(1e-12))).to(p.device, p.dtype))
        return None
