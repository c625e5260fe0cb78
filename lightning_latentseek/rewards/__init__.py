"""Rewards are plug-ins: ``self``, ``single_verifier``, ``psrm``, ``constant``, ``confidence`` or an import path
``pkg.module.ClassName``. The verifier rewards (``self``, ``single_verifier``) are answered by the solver's engine or
by an OpenAI-compatible server (`server.ChatServer`, `--model.reward_server`)."""

from __future__ import annotations

import importlib
import inspect

from lightning_latentseek.errors import UserError
from lightning_latentseek.rewards.base import ConstantReward, Reward, RewardResult, RewardUnavailable, judge_many
from lightning_latentseek.rewards.confidence import ConfidenceReward, token_reward_k
from lightning_latentseek.rewards.psrm import PerfectSparseReward
from lightning_latentseek.typed import check_arguments

__all__ = ["ConfidenceReward", "ConstantReward", "PerfectSparseReward", "Reward", "RewardError", "RewardResult",
           "RewardUnavailable", "build_reward", "check_reward_args", "judge_many", "reward_class", "token_reward_k"]
BUILTIN = ("self", "single_verifier", "psrm", "constant", "confidence")


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
    if spec == "single_verifier":
        from lightning_latentseek.rewards.single_verifier import SingleVerifier

        return SingleVerifier
    module_name, _, class_name = spec.rpartition(".")
    if not module_name:
        raise RewardError(f"--model.reward {spec!r}: expected one of {', '.join(BUILTIN)} "
                          f"or an import path like pkg.module.ClassName")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise RewardError(f"--model.reward {spec!r}: cannot import it ({err})") from err


def check_reward_args(spec: str, args: dict | None) -> dict:
    """`--model.reward_args` checked against the reward's constructor: a name it does not take, or a bad choice or
    range of its annotations (`typed.check_arguments`), is one line naming ``--model.reward_args.<name>``. The run
    calls it before any work."""
    cls = reward_class(spec)
    args = dict(args or {})
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to read: the constructor checks its own arguments
        accepted = None
    if accepted is not None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = [name for name in args if name not in accepted or name in ("engine", "server", "grader")]
        if unknown:
            takes = [n for n, p in accepted.items() if n not in ("self", "engine", "server", "grader")
                     and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
            raise RewardError(f"--model.reward_args.{unknown[0]}: --model.reward {spec} takes no such argument "
                              f"(it takes: {', '.join(takes) or 'none'})")
    return check_arguments(cls, args, "--model.reward_args.")


def build_reward(spec: str, *, engine=None, prompt: str = "boxed", args: dict | None = None,
                 grader=None, server=None, **self_reward) -> Reward:
    """Instantiate the reward named by `--model.reward` with `--model.reward_args` (`check_reward_args`).

    ``grader`` (`grading.Grader`) is how PSRM grades and the single verifier extracts, the run's grading;
    ``self_reward`` holds the self-reward's settings from `--model.*` (prompt set, verifier cap, sampling, seed,
    format rule, verdict parse); `--model.reward_args` entries take precedence over them. `server` (a
    `ChatServer`) answers the verifier rewards' prompts instead of `engine`.
    """
    cls = reward_class(spec)
    args = check_reward_args(spec, args)
    if spec == "psrm":
        return cls(grader=grader, prompt=prompt, **args)
    if spec in ("constant", "confidence"):
        return cls(**args)
    if spec == "self":
        return cls(engine, prompt=prompt, server=server, **{**self_reward, **args})
    if spec == "single_verifier":
        return cls(engine, grader=grader, server=server,
                   **{"max_new_tokens": self_reward.get("max_new_tokens", 4096), **args})
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name, value in (("llm", engine.lm if engine is not None else None), ("engine", engine), ("prompt", prompt)):
        if name in accepted or takes_any:
            args.setdefault(name, value)
    reward = cls(**args)
    if not callable(reward):
        raise RewardError(f"--model.reward {spec!r}: instances must be callable as reward(problem, answer_text)")
    return reward
