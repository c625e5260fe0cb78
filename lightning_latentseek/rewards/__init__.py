"""Rewards are plug-ins: ``psrm``, ``self`` or an import path ``pkg.module.ClassName``."""

from __future__ import annotations

import importlib
import inspect

from lightning_latentseek.errors import UserError
from lightning_latentseek.rewards.base import Reward, RewardResult
from lightning_latentseek.rewards.psrm import PerfectSparseReward

__all__ = ["Reward", "RewardResult", "PerfectSparseReward", "RewardError", "build_reward"]


class RewardError(UserError, ValueError):
    """`--model.reward` names no reward: not ``self``/``psrm`` and not an importable class."""


def build_reward(spec: str, *, llm=None, prompt: str = "boxed", args: dict | None = None,
                 verifier_max_new_tokens: int = 512, format_rule: bool = False) -> Reward:
    """Instantiate the reward named by `--model.reward` with `--model.reward_args`."""
    args = dict(args or {})
    if spec == "psrm":
        return PerfectSparseReward(prompt=prompt, **args)
    if spec == "self":
        from lightning_latentseek.rewards.self_reward import SelfReward

        args.setdefault("max_new_tokens", verifier_max_new_tokens)
        args.setdefault("format_rule", format_rule)
        return SelfReward(llm, prompt=prompt, **args)
    module_name, _, class_name = spec.rpartition(".")
    if not module_name:
        raise RewardError(f"--model.reward {spec!r}: expected 'self', 'psrm' or an import path like pkg.module.ClassName")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise RewardError(f"--model.reward {spec!r}: cannot import it ({err})") from err
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name, value in (("llm", llm), ("prompt", prompt)):
        if name in accepted or takes_any:
            args.setdefault(name, value)
    reward = cls(**args)
    if not callable(reward):
        raise TypeError(f"--model.reward {spec!r}: instances must be callable as reward(problem, answer_text)")
    return reward
