"""Row samplers for `GenerationEngine`: temperature sampling, and decoding with a checkpoint's own
generation config (as the original's verifiers do, through `model.generate`). Greedy rows need none.

Every sampler owns a seeded `torch.Generator`, so a row's samples depend only on its seed and its
logits, never on which other rows share the batch.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from transformers import (LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                          TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % (2**63))


class TemperatureSampler:
    """x ~ softmax(logits / temperature) (Best-of-N and self-consistency samples)."""

    def __init__(self, temperature: float, seed: int):
        if temperature <= 0:
            raise ValueError(f"temperature {temperature}: must be > 0")
        self.temperature = float(temperature)
        self.generator = seeded(seed)

    def __call__(self, logits: Tensor, context: Sequence[int]) -> int:
        probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


class GenerationConfigSampler:
    """The next token as `model.generate` picks it under `generation_config`: repetition penalty, then
    temperature, top-k, top-p and min-p when `do_sample`, else argmax (transformers' own processors)."""

    def __init__(self, generation_config, seed: int):
        config = generation_config
        self.do_sample = bool(getattr(config, "do_sample", False))
        processors = LogitsProcessorList()
        penalty = getattr(config, "repetition_penalty", None)
        if penalty is not None and penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(penalty))
        if self.do_sample:
            temperature = getattr(config, "temperature", None)
            if temperature is not None and temperature != 1.0:
                processors.append(TemperatureLogitsWarper(temperature))
            top_k = getattr(config, "top_k", None)
            if top_k:
                processors.append(TopKLogitsWarper(top_k))
            top_p = getattr(config, "top_p", None)
            if top_p is not None and top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
            min_p = getattr(config, "min_p", None)
            if min_p:
                processors.append(MinPLogitsWarper(min_p))
        self.processors = processors
        self.generator = seeded(seed)

    def __call__(self, logits: Tensor, context: Sequence[int]) -> int:
        scores = logits.float().cpu()[None]
        if len(self.processors):
            scores = self.processors(torch.tensor([list(context)], dtype=torch.long), scores)
        if not self.do_sample:
            return int(scores.argmax(-1))
        return int(torch.multinomial(torch.softmax(scores, dim=-1)[0], 1, generator=self.generator))


CONFIDENCE_EPS = 1e-10  # LTPO's, added to each probability before the log (ltpo.py:115)


def token_confidence(logits: Tensor, k: int) -> Tensor:
    """LTPO's confidence of a next-token distribution (ltpo2025/LTPO ltpo.py:113-115), for each row of `logits`
    (..., V): C = -(1/k) sum over the k most likely tokens of log(p + 1e-10), p = softmax(logits) in float32.

    C is high when the top-k tail is thin: ln k when the k largest probabilities are equal (and hold all the
    mass), -((k - 1) ln 1e-10 + ln(1 + 1e-10)) / k (20.72 for k 10) when one token holds all of it."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, k, dim=-1).values
    return -torch.log(top + CONFIDENCE_EPS).sum(-1) / k
