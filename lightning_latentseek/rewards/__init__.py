"""Rewards are plug-ins: ``self``, ``psrm``, ``constant``, ``confidence`` or an import path ``pkg.module.ClassName``."""

from __future__ import annotations

import importlib
import inspect

from lightning_latentseek.errors import UserError
from lightning_latentseek.rewards.base import ConstantReward, Reward, RewardResult, judge_many
from lightning_latentseek.rewards.confidence import ConfidenceReward, token_reward_k
from lightning_latentseek.rewards.psrm import PerfectSparseReward
from lightning_latentseek.typed import check_arguments

__all__ = ["ConfidenceReward", "ConstantReward", "PerfectSparseReward", "Reward", "RewardError", "RewardResult",
           "build_reward", "check_reward_args", "judge_many", "reward_class", "token_reward_k"]
BUILTIN = ("self", "psrm", "constant", "confidence")


class RewardError(UserError, ValueError):
    """`--model.reward` names no reward: not a built-in one and not an importable class."""


def reward_class(spec: str) -> type:
    """The class `--model.reward` names: a built-in one, or an import path ``pkg.module.ClassName``."""
    if spec == "psrm":
        return PerfectSparseReward
    if spec == "constant":
        return ConstantReward
    if spec == "confidence":
        return ConfidenceReward
    if spec == "self":
        from lightning_latentseek.rewards.self_reward import SelfReward

        return SelfReward
    module_name, _, class_name = spec.rpartition(".")
    if not module_name:
        raise RewardError(f"--model.reward {spec!r}: expected one of {', '.join(BUILTIN)} "
                          f"or an import path like pkg.module.ClassName")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise RewardError(f"--model.reward {spec!r}: cannot import it ({err})") from err


def check_reward_args(spec: str, args: dict | None) -> dict:
    """`--model.reward_args` checked against the annotations of the reward's constructor (`typed.check_arguments`):
    a bad choice or range is one line naming ``--model.reward_args.<name>``. The run calls it before any work."""
    return check_arguments(reward_class(spec), dict(args or {}), "--model.reward_args.")


def build_reward(spec: str, *, engine=None, prompt: str = "boxed", args: dict | None = None,
                 extraction: str = "paper", **self_reward) -> Reward:
    """Instantiate the reward named by `--model.reward` with `--model.reward_args` (`check_reward_args`).

    ``self_reward`` holds the self-reward's settings from `--model.*` (prompt set, verifier cap,
    sampling, seed, format rule); `--model.reward_args` entries take precedence over them.
    """
    cls = reward_class(spec)
    args = check_reward_args(spec, args)
    if spec == "psrm":
        return cls(prompt=prompt, extraction=extraction, **args)
    if spec in ("constant", "confidence"):
        return cls(**args)
    if spec == "self":
        return cls(engine, prompt=prompt, **{**self_reward, **args})
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name, value in (("llm", engine.lm if engine is not None else None), ("engine", engine), ("prompt", prompt)):
        if name in accepted or takes_any:
            args.setdefault(name, value)
    reward = cls(**args)
    if not callable(reward):
        raise RewardError(f"--model.reward {spec!r}: instances must be callable as reward(problem, answer_text)")
    return reward
