"""GradCuit's latents and loss (arXiv 2608.02585; code github:Yuzhaoxin946/GradCuit, MIT, `src/gradcuit/gradcuit.py`,
"G" below): a fixed text prefix is inserted right after the assistant header; its hidden states at the input of
decoder block L plus a zero-initialised offset delta are written into the model (`engine.Injection`), and delta,
(P, H), is the only trainable tensor. Each update lowers (R = -1) the likelihood of the whole rejected answer,
teacher-forced through the model with the state injected:

    loss = -R * sum_t log p(y_t | prompt, prefix, y_<t; init + delta)          (G:400-446)

Nothing of the LLM is trained; below block L nothing depends on delta, so autograd records only blocks L and up.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from lightning_latentseek.engine import FrozenLM, Injection

OFFSET_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}  # keyed by `config.OffsetDtype`


def middle_layer(n_blocks: int) -> int:
    """GradCuit's example layer: the middle block (14 of Llama-3.2-3B's 28, scripts/run_example.sh:16)."""
    return n_blocks // 2


def prefix_state(init: Tensor, delta: Tensor) -> Tensor:
    """The injected state init + delta (P, H).

    GradCuit adds them in the model's dtype, bf16 in its runs (G:360-369): a coordinate moves only once delta
    exceeds half a bf16 step of init there (2^-9 for |init| in [0.5, 1)), so a first Adam step of lr 1e-3 leaves
    most mid-layer coordinates where they were. A bf16 `delta` reproduces that rounding: with a bf16 `init` (a bf16
    LLM) the sum is GradCuit's bf16 sum exactly; with a finer `init` (an fp32 LLM on a CPU) only the move is
    rounded as in bf16 (init + (bf16(bf16(init) + delta) - bf16(init))), so a zero offset injects init unchanged.
    An fp32 `delta` is the fix: init + delta in fp32, cast to the block's dtype when it is written (G:124-127)."""
    if delta.dtype == torch.float32:
        return init.float() + delta
    coarse = init.to(delta.dtype)
    if init.dtype == delta.dtype:
        return coarse + delta
    return init + ((coarse + delta).to(init.dtype) - coarse.to(init.dtype))


class PrefixOffset(nn.Module):
    """The offset delta (P, H), zero-initialised in `dtype` (bf16: GradCuit's; fp32: the fix), and the problem's
    initial prefix state `init` (a buffer that is not saved: a constant of the problem, not trained).

    The shape is (P, H) whatever the optimizer: GradCuit's (1, P, H) for Adam and SGD (element-wise, the same
    steps) and its (P, H) for Muon (which needs a matrix), G:360-364."""

    def __init__(self, init: Tensor, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        if init.dim() != 2:
            raise ValueError(f"the prefix state must be (P, hidden), got shape {tuple(init.shape)}")
        self.register_buffer("init", init.detach().clone(), persistent=False)
        self.delta = nn.Parameter(torch.zeros(init.shape, dtype=dtype, device=init.device))

    def forward(self) -> Tensor:
        return prefix_state(self.init, self.delta)

    def __len__(self) -> int:
        return self.delta.shape[0]


def answer_log_probs(lm: FrozenLM, context: Sequence[int], targets: Sequence[int], injection: Injection) -> Tensor:
    """log p(y_t) of every target token (n,), teacher-forced without a cache over [context, y[:-1]] (context =
    prompt + prefix) with `injection` written into its block, as G:414-440 runs it: logits of every position in the
    model's dtype, those from the prefix's last position on, log_softmax, the targets' entries."""
    ids = torch.tensor([list(context) + list(targets[:-1])], dtype=torch.long, device=lm.device)
    with lm.injections.writing(injection.layer, [(0, injection.start, injection.state)]):
        hidden = lm.forward_uncached(ids)
    logits = lm.lm_head(hidden)  # model(...).logits: every position, the model's dtype
    first = len(context) - 1
    logits = logits[:, first:first + len(targets), :]
    chosen = torch.tensor([list(targets)], dtype=torch.long, device=lm.device)
    return torch.log_softmax(logits, dim=-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1)[0]


def prefix_loss(log_probs: Tensor, reward: float) -> Tensor:
    """-(R * sum_t log p(y_t)), R a tensor of the log-probabilities' dtype (G:441-446): no baseline, no mean."""
    return -(torch.as_tensor(reward, dtype=log_probs.dtype, device=log_probs.device) * log_probs.sum())
