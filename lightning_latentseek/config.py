"""The run's options: `--model.*` (the method) and `--data.*` (the problems)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lightning_latentseek.errors import UserError

METHODS = ("latentseek", "random", "cot", "bon", "sc")


class ConfigError(UserError, ValueError):
    """An option value outside its range or choices, e.g. ``--model.rho 2``."""


@dataclass
class SeekConfig:
    """LatentSeek and baseline settings (``--model.*``). K, the iteration cap, is ``--trainer.max_steps``.

    Args:
        llm: hub id, local model directory, ``.gguf`` file, or ``smollm2`` (the embedded default).
        reward: ``self`` (self-reward, 4 verifier prompts), ``psrm`` (perfect sparse reward), ``constant``
            (R = -1 always: the ablation) or an import path ``pkg.module.ClassName`` of your own reward.
        reward_args: keyword arguments for the reward's constructor.
        prompt: solver prompt: ``boxed`` (prompt 0) or ``json`` (prompt 1).
        prompt_set: ``paper`` (the original's prompts, exactly) or ``compact`` (our faster verifier layout:
            the solver's conversation + a short check turn, reusing the solver's KV cache).
        rho: fraction of the CoT's T latents that are optimised: N = min(int(rho*T), max_latents). 0.2: the paper's
            and the original's example script (its main.py defaults to 0.1).
        max_latents: cap on N.
        start_fraction: optimise the latents starting at int(start_fraction*T) (middle-stage ablation).
        lr: learning rate of the latents' optimizer.
        optimizer: ``adam`` or ``sgd``.
        tau: reward threshold; stop as soon as R > tau.
        max_new_tokens: cap on the new tokens of each generation: the CoT, and every continuation after
            the decoded latent tokens.
        samples_per_step: M, decodings of the latent window per iteration (1: the paper).
        temperature: 0 decodes x_t = argmax lm_head(z_t) (the paper); T > 0 samples x_t ~ softmax(lm_head(z_t)/T).
        extraction: how answers are read for grading and PSRM: ``paper`` (the original's `extract_answer` for the
            dataset, prompt and model name, on the text with its EOS) or ``strict`` (only ``\\boxed{}``, the JSON
            "final answer" key or "the answer is"; see `grading`).
        grading: how an extracted answer is judged, for records and PSRM: ``paper`` (the original's `judge_answer`:
            GSM8K/AIME exact strings, MATH-500 math-verify or Qwen's grader or string rules) or ``numeric``
            (our fix: numbers compared as numbers, symbolic answers with math-verify; see `grading`).
        answer_selection: ``last`` (the paper's rule: the last decoded answer) or ``best`` (highest reward).
        reuse: reuse the continuation and reward of decoded tokens seen before in the same problem.
        verifier_max_new_tokens: cap on each self-reward verifier generation (rows stop at their verdict).
        verifier_sampling: ``greedy`` (deterministic) or ``model`` (the checkpoint's generation config, as
            the original: a fresh sample on every judgement, seeded by --seed, the problem and the judgement).
        format_rule: self-reward only, as the original's ``--rule_format_string boxed``: an answer without
            ``\\boxed{...}`` (whatever the prompt) costs 2 more out of the same 6, so R reaches -8/6.
        verdict_parse: self-reward only: ``response`` (our fix: the verifier's response, the first marker followed
            by True/False) or ``paper`` (the original's: decoded prompt + response, after the last marker,
            "true" anywhere; rows run to EOS).
        n_samples: N for Best-of-N and self-consistency.
        sample_temperature: sampling temperature of Best-of-N and self-consistency.
        draft_tokens: speed only: greedy generation checks up to this many tokens copied from the row's own
            text (prompt-lookup drafts) in one forward, keeping those the model would have chosen; 0 decodes
            one token per forward. The tokens are the same, up to float noise.
    """

    llm: str = "smollm2"
    reward: str = "self"
    reward_args: dict = field(default_factory=dict)
    prompt: str = "boxed"
    prompt_set: str = "paper"
    rho: float = 0.2
    max_latents: int = 300
    start_fraction: float = 0.0
    lr: float = 0.03
    optimizer: str = "adam"
    tau: float = -0.2
    max_new_tokens: int = 1024
    samples_per_step: int = 1
    temperature: float = 0.0
    extraction: str = "paper"
    grading: Literal["paper", "numeric"] = "paper"
    answer_selection: str = "last"
    reuse: bool = True
    verifier_max_new_tokens: int = 4096
    verifier_sampling: str = "greedy"
    format_rule: bool = False
    verdict_parse: Literal["response", "paper"] = "response"
    n_samples: int = 4
    sample_temperature: float = 0.7
    draft_tokens: int = 4

    def __post_init__(self) -> None:
        checks = [
            (self.prompt in ("boxed", "json"), f"--model.prompt {self.prompt!r}: choose boxed or json"),
            (self.prompt_set in ("paper", "compact"), f"--model.prompt_set {self.prompt_set!r}: choose paper or compact"),
            (0.0 < self.rho <= 1.0, f"--model.rho {self.rho}: must be in (0, 1]"),
            (self.max_latents >= 1, f"--model.max_latents {self.max_latents}: must be >= 1"),
            (0.0 <= self.start_fraction < 1.0, f"--model.start_fraction {self.start_fraction}: must be in [0, 1)"),
            (self.lr > 0, f"--model.lr {self.lr}: must be > 0"),
            (self.optimizer in ("adam", "sgd"), f"--model.optimizer {self.optimizer!r}: choose adam or sgd"),
            (-1.0 <= self.tau <= 0.0, f"--model.tau {self.tau}: rewards lie in [-1, 0]"),
            (self.max_new_tokens >= 1, f"--model.max_new_tokens {self.max_new_tokens}: must be >= 1"),
            (self.extraction in ("paper", "strict"), f"--model.extraction {self.extraction!r}: choose paper or strict"),
            (self.answer_selection in ("last", "best"), f"--model.answer_selection {self.answer_selection!r}: choose last or best"),
            (self.samples_per_step >= 1, f"--model.samples_per_step {self.samples_per_step}: must be >= 1"),
            (self.temperature >= 0, f"--model.temperature {self.temperature}: must be >= 0"),
            (self.verifier_max_new_tokens >= 1, f"--model.verifier_max_new_tokens {self.verifier_max_new_tokens}: must be >= 1"),
            (self.verifier_sampling in ("greedy", "model"),
             f"--model.verifier_sampling {self.verifier_sampling!r}: choose greedy or model"),
            (self.n_samples >= 1, f"--model.n_samples {self.n_samples}: must be >= 1"),
            (self.sample_temperature > 0, f"--model.sample_temperature {self.sample_temperature}: must be > 0"),
            (self.draft_tokens >= 0, f"--model.draft_tokens {self.draft_tokens}: must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class DataConfig:
    """Which problems to solve (``--data.*``).

    Args:
        name: ``gsm8k``, ``math500``, ``aime2024``, ``jsonl`` (ground-truth rule and default fields) or ``arith``
            (this project's generated arithmetic word problems, `arith.py`).
        path: local JSONL/JSON/parquet file or hub dataset id; unset, the three benchmarks load from the hub.
        split: split of a hub dataset (unset: the benchmark's split, else ``test``).
        question_field: field holding the question (dataset default when unset).
        answer_field: field holding the ground truth (dataset default when unset).
        id_field: field holding a stable problem id (row index when unset or absent).
        start: skip this many problems.
        limit: solve at most this many problems.
        on_error: ``raise`` at a malformed row, or ``skip`` it (it is recorded as skipped).
        batch_size: B, problems solved at once on one device: their generation shares batched forwards.
        arith_steps: ``arith``: operations per problem (1 to 3; at 1 SmolLM2-135M's CoT scores about 38%).
        arith_seed: ``arith``: the generator's seed.
        arith_size: ``arith``: how many problems to generate (before start/limit).
    """

    name: str = "jsonl"
    path: str | None = None
    split: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    start: int = 0
    limit: int | None = None
    on_error: str = "raise"
    batch_size: int = 16
    arith_steps: int = 1
    arith_seed: int = 0
    arith_size: int = 500

    LOADER_FIELDS = ("name", "path", "split", "question_field", "answer_field", "id_field", "start", "limit",
                     "on_error")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--data.batch_size {self.batch_size}: must be >= 1")

    def loader_args(self) -> dict:
        """The arguments of `problems.load_problems_with_errors`."""
        return {name: getattr(self, name) for name in self.LOADER_FIELDS}
