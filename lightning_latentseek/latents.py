"""The latents z and the policy-gradient objective (LatentSeek, arXiv 2505.13308, Sec. 3).

The latent policy is pi(x_t | z_t) = softmax(lm_head(z_t))[x_t] with x_t = argmax lm_head(z_t).
Only z_{s+1..s+N} are trained; everything of the LLM stays frozen.
"""

from __future__ import annotations

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
def decode_latents(lm_head: nn.Module, z: Tensor) -> list[int]:
    """x_t = argmax lm_head(z_t): the tokens the latents stand for."""
    return token_logits(lm_head, z).argmax(-1).tolist()


def reinforce_loss(lm_head: nn.Module, z: Tensor, reward: float) -> Tensor:
    """Paper eq. (7) as a loss: L(z) = -R(x, c) * sum_t log pi(x_t | z_t), x_t = argmax lm_head(z_t).

    Its gradient w.r.t. z is -R * sum_t grad log pi(x_t | z_t), the REINFORCE estimate of
    -grad E[R] for the greedy sample; it flows through lm_head into z only.
    """
    log_probs = torch.log_softmax(token_logits(lm_head, z), dim=-1)
    tokens = log_probs.detach().argmax(-1)
    return -reward * log_probs.gather(-1, tokens[:, None]).sum()
