"""The run's options: `--model.*` (the method), `--data.*` (the problems) and the top-level ones, with their
types, and the run's rules that belong to no one module: tau (`clears_tau`), K (`DEFAULT_MAX_STEPS`,
`max_steps`), the defaults a method has of its own (`METHOD_DEFAULTS`, `apply_method_defaults`) and which options
each run uses (`USED_ONLY`, `check_ignored_options`).

Choices are `Literal` types and ranges `Annotated[..., Range(...)]` (`typed`): the parser shows and checks
them, and each dataclass checks its own fields with `typed.check_fields` when it is made, so a bad value is
one line naming the option (``--model.rho 2.0: must be in (0, 1]``) from the command line or from Python.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, get_args

from lightning_latentseek.errors import UserError
from lightning_latentseek.typed import OptionError, Range, check_fields

# ------------------------------------------------------------------------------------------ choices and ranges
Method = Literal["latentseek", "random", "cot", "bon", "sc", "gradcuit", "ltpo"]
Prompt = Literal["boxed", "json"]
PromptSet = Literal["paper", "compact"]
Optimizer = Literal["adam", "sgd", "muon"]
PrefixStep = Literal["gradient", "random"]  # GradCuit's update, or its random control
FirstTargets = Literal["text", "ids"]  # GradCuit's first update: the baseline's text re-tokenised, or its ids
OffsetDtype = Literal["bf16", "fp32"]  # GradCuit's offset (and the sum init + offset): bf16 as its code, or fp32
Extraction = Literal["paper", "strict"]
Grading = Literal["paper", "numeric"]
VerdictParse = Literal["response", "paper"]
AnswerSelection = Literal["last", "best"]
LTPOUpdate = Literal["zo", "autograd"]  # LTPO's zeroth-order step (its main.py's), or its Adam option
LTPOSelection = Literal["best", "last"]  # LTPO's best-reward selection, or its --disable_best_reward
LTPOBestState = Literal["updated", "scored"]  # the state kept for the best step: after its update (LTPO), or scored
LTPOBaseline = Literal["none", "mean", "loo"]  # none (LTPO), a running mean, or leave-one-out over M candidates
VerifierSampling = Literal["greedy", "model"]
DatasetName = Literal["gsm8k", "math500", "aime2024", "jsonl", "arith"]
OnError = Literal["raise", "skip"]
ArithSteps = Literal[1, 2, 3]

Fraction = Annotated[float, Range(gt=0, le=1)]
StartFraction = Annotated[float, Range(ge=0, lt=1)]
Positive = Annotated[float, Range(gt=0)]
NonNegative = Annotated[float, Range(ge=0)]
PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
Tau = Annotated[float, Range(ge=-1, le=0, reason="rewards lie in [-1, 0]")]

METHODS: tuple[str, ...] = get_args(Method)
ITERATIVE = ("latentseek", "random", "gradcuit")  # a per-problem fit to tau: latents, tau, K
LATENT_WINDOW = ("latentseek", "random")  # LatentSeek's latents: a window of the CoT's last-layer states
FITTED = ITERATIVE + ("ltpo",)  # a per-problem fit of K steps at a learning rate (LTPO: no tau, no reward)
OWN_PROMPT = ("ltpo",)  # methods with a prompt of their own (--model.prompt, --model.prompt_set do not apply)
SOLVER_PROMPTED = tuple(m for m in METHODS if m not in OWN_PROMPT)  # the solver prompts of `prompts.py`
CANDIDATES = LATENT_WINDOW + ("ltpo",)  # M candidates per step (--model.samples_per_step)
SAMPLED = ("bon", "sc")  # N sampled solutions
REWARDED = ("latentseek", "random", "bon", "gradcuit")  # the methods that call the reward
VERIFIERS = ("self", "single_verifier")  # rewards an LLM computes (the solver's engine or --model.reward_server)
FILE_DATASETS = ("gsm8k", "math500", "aime2024", "jsonl")  # read from the hub or a file (not generated)

# ------------------------------------------------------------------------------------------ tau and K
DEFAULT_MAX_STEPS = 10  # K, the paper's iteration cap: --trainer.max_steps (GradCuit's run script's too)


def clears_tau(reward: float, tau: float) -> bool:
    """The stopping rule: a reward clears the threshold when R > tau (the CoT's reward too: 0 iterations)."""
    return float(reward) > tau


def max_steps(trainer: Mapping[str, Any]) -> int:
    """K from the run's --trainer.* options (`DEFAULT_MAX_STEPS` when unset); 0 returns the CoT."""
    steps = trainer.get("max_steps")
    steps = DEFAULT_MAX_STEPS if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise OptionError(f"--trainer.max_steps {steps}: K must be an int >= 0 (0 returns the CoT)")
    return steps


ConfigError = OptionError  # an option value outside its type (range, choices), e.g. ``--model.rho 2``

GRADCUIT_PREFIX = "Let's think about this problem and solve it step by step."  # GradCuit's scripts/run_example.sh:9

# ------------------------------------------------------------------------------------------ a method's own defaults
# The options whose default depends on the method: a method listed here takes these values unless the option is
# given: on the command line, or by a config file. A config file's value of an option that belongs to the config's
# own method (`METHOD_HYPERPARAMETERS`) does not count once the command line changes the method: the configs in
# configs/ hold LatentSeek's lr and solver prompt, so `--config configs/demo.yaml --method gradcuit` runs GradCuit's
# lr 1e-3 with the demo's problems, reward, cap and K. Every other method, and every other option, has the
# dataclass's default. GradCuit's are its code's and run script's (scripts/run_example.sh: --lr 0.001,
# --max_new_tokens 2048; its only reward is the single verifier); its layer default (the middle block) depends on
# the model and is `latent_layer` unset. LTPO's are its main.py's (--max_new_tokens 4096, main.py:25) and its own
# prompt, which asks for \boxed{} (the answers are graded as prompt ``boxed``); its N, sigma, decay, top-k are the
# defaults of its own options, and its lr (0.03) and K (10) are LatentSeek's.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "gradcuit": {"model.lr": 1e-3, "model.max_new_tokens": 2048, "model.reward": "single_verifier"},
    "ltpo": {"model.max_new_tokens": 4096, "model.prompt": "boxed"},
}
METHOD_HYPERPARAMETERS = ("model.lr", "model.prompt")


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
        insert_prefix: GradCuit: the text inserted right after the assistant header, whose states are optimised.
        latent_layer: GradCuit: the decoder block whose input carries the prefix state (0: the embeddings; unset:
            the model's middle block, n_blocks // 2).
        step: GradCuit: ``gradient`` (the method) or ``random`` (its control: Gaussian moves of the norm of Adam's
            first step, no gradient).
        grad_clip: GradCuit: clip the offset's gradient norm to this (0: off, GradCuit's default).
        first_targets: GradCuit's first update lowers the likelihood of ``text`` (the baseline answer's text
            re-tokenised, without EOS: GradCuit's code) or ``ids`` (the ids it was generated as: the fix).
        offset_dtype: GradCuit's offset and the sum init + offset: ``bf16`` (GradCuit's code: small steps are
            rounded away, whatever the LLM's dtype) or ``fp32`` (the fix).
        reward_server: URL of an OpenAI-compatible server (vLLM, SGLang, ``transformers serve``), e.g.
            ``http://127.0.0.1:8000/v1``, that answers the verifier prompts (``self``, ``single_verifier``)
            instead of the solver's own engine. Unset: the solver's engine.
        reward_server_model: the model name sent to the server (unset: the first one it lists at /v1/models).
        reward_server_timeout: seconds to wait for one verifier response.
        reward_server_concurrency: at most this many verifier requests in flight at once (all problems together).
        ltpo_slots: LTPO: N, the placeholder tokens whose input embeddings are optimised (its num_thought_tokens).
        ltpo_sigma: LTPO: the standard deviation of the noise added to the placeholders' embeddings at step 1.
        ltpo_sigma_decay: LTPO: sigma is multiplied by this after every step.
        ltpo_top_k: LTPO: k of its confidence reward (the mean of -(1/k) sum over the top k of log p).
        ltpo_update: LTPO: ``zo`` (its main.py's zeroth-order step H += lr R eps / sigma^2) or ``autograd`` (Adam
            ascending the reward's exact gradient, its --use_auto_grad).
        ltpo_selection: LTPO: the final generation uses the ``best`` step's state (highest confidence) or the
            ``last`` one (its --disable_best_reward).
        ltpo_best_state: LTPO: the state kept for a step: ``updated`` (after that step's update, which was never
            scored: LTPO's code) or ``scored`` (the candidate H + eps whose confidence was measured: the fix).
        ltpo_baseline: LTPO's zeroth-order step: ``none`` (LTPO's code: the always positive confidence R itself),
            ``mean`` (R minus the running mean of the rewards so far, the unperturbed state's first) or ``loo``
            (leave-one-out over the step's M = --model.samples_per_step candidates).
    """

    llm: str = "smollm2"
    reward: str = "self"
    reward_args: dict = field(default_factory=dict)
    prompt: Prompt = "boxed"
    prompt_set: PromptSet = "paper"
    rho: Fraction = 0.2
    max_latents: PositiveInt = 300
    start_fraction: StartFraction = 0.0
    lr: Positive = 0.03
    optimizer: Optimizer = "adam"
    tau: Tau = -0.2
    max_new_tokens: PositiveInt = 1024
    samples_per_step: PositiveInt = 1
    temperature: NonNegative = 0.0
    extraction: Extraction = "paper"
    grading: Grading = "paper"
    answer_selection: AnswerSelection = "last"
    reuse: bool = True
    verifier_max_new_tokens: PositiveInt = 4096
    verifier_sampling: VerifierSampling = "greedy"
    format_rule: bool = False
    verdict_parse: VerdictParse = "response"
    n_samples: PositiveInt = 4
    sample_temperature: Positive = 0.7
    draft_tokens: NonNegativeInt = 4
    insert_prefix: str = GRADCUIT_PREFIX
    latent_layer: NonNegativeInt | None = None
    step: PrefixStep = "gradient"
    grad_clip: NonNegative = 0.0
    first_targets: FirstTargets = "text"
    offset_dtype: OffsetDtype = "bf16"
    reward_server: str | None = None
    reward_server_model: str | None = None
    reward_server_timeout: Positive = 300.0
    reward_server_concurrency: PositiveInt = 16
    ltpo_slots: PositiveInt = 10
    ltpo_sigma: Positive = 0.1
    ltpo_sigma_decay: Fraction = 0.99
    ltpo_top_k: PositiveInt = 10
    ltpo_update: LTPOUpdate = "zo"
    ltpo_selection: LTPOSelection = "best"
    ltpo_best_state: LTPOBestState = "updated"
    ltpo_baseline: LTPOBaseline = "none"

    def __post_init__(self) -> None:
        check_fields(self, "--model.")

    @classmethod
    def for_method(cls, method: str, **values) -> "SeekConfig":
        """The settings of `method` from Python: its own defaults (`METHOD_DEFAULTS`, e.g. GradCuit's lr 1e-3),
        then `values`. (The command line applies them with `apply_method_defaults`.)"""
        own = {option.split(".", 1)[1]: value for option, value in METHOD_DEFAULTS.get(method, {}).items()}
        return cls(**{**own, **values})


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

    name: DatasetName = "jsonl"
    path: str | None = None
    split: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    start: NonNegativeInt = 0
    limit: PositiveInt | None = None
    on_error: OnError = "raise"
    batch_size: PositiveInt = 16
    arith_steps: ArithSteps = 1
    arith_seed: int = 0
    arith_size: PositiveInt = 500

    LOADER_FIELDS = ("name", "path", "split", "question_field", "answer_field", "id_field", "start", "limit",
                     "on_error")

    def __post_init__(self) -> None:
        check_fields(self, "--data.")

    def loader_args(self) -> dict:
        """The arguments of `problems.load_problems_with_errors`."""
        return {name: getattr(self, name) for name in self.LOADER_FIELDS}


@dataclass
class RunOptions:
    """The run's top-level options.

    Args:
        output_dir: where results.jsonl, summary.json and summary.md are written.
        method: latentseek; random (the control: random latent steps); ltpo (LTPO: the confidence of the
            placeholder tokens' embeddings, no verifier); or a baseline: cot (greedy), bon (Best-of-N; with
            --model.reward psrm the oracle pass@N), sc (self-consistency).
        seed: seed of everything sampled (sampling baselines, M > 1 decodings, the random control, a sampling
            verifier); each problem's seed comes from it and the problem's id. 0 is a valid seed.
        overwrite: discard results in --output_dir made with another configuration.
        progress: show the progress display and final table.
    """

    output_dir: str = "runs/latentseek"
    method: Method = "latentseek"
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_fields(self, "--")


# ------------------------------------------------------------------------------------------ options a run ignores
class IgnoredOptionError(UserError, ValueError):
    """An option the resolved run would ignore, e.g. ``--data.path`` with ``--data.name arith``."""


@dataclass(frozen=True)
class UsedOnly:
    """`options` are used only when the option `setting` has one of the values `among` (with `excluding`: none of
    them); otherwise the run would ignore them. `advice` says what to pass instead."""

    options: tuple[str, ...]
    setting: str
    among: tuple
    advice: str
    excluding: bool = False

    def uses(self, value: Any) -> bool:
        """Whether a run whose `setting` is `value` uses `options`."""
        found = any(value == choice and type(value) is type(choice) for choice in self.among)
        return found != self.excluding


# Every option used by only some runs, in one table (`check_ignored_options` reads it; tests/test_ignored.py
# checks that each --model.* and --data.* field is either here or in ALWAYS_USED). The first rule that matches
# an option is reported, so a method's rule comes before a reward's.
USED_ONLY = (
    UsedOnly(("data.path", "data.split", "data.question_field", "data.answer_field", "data.id_field",
              "data.on_error"), "data.name", FILE_DATASETS,
             "pass --data.name jsonl (or gsm8k, math500, aime2024) to read a file"),
    UsedOnly(("data.arith_steps", "data.arith_seed", "data.arith_size"), "data.name", ("arith",),
             "pass --data.name arith to solve the generated arithmetic problems"),
    UsedOnly(("model.prompt", "model.prompt_set"), "method", SOLVER_PROMPTED,
             "--method ltpo writes LTPO's own prompt (which asks for \\boxed{})"),
    UsedOnly(("model.rho", "model.max_latents", "model.start_fraction", "model.temperature"), "method",
             LATENT_WINDOW, "it applies to --method latentseek or random"),
    UsedOnly(("model.samples_per_step",), "method", CANDIDATES, "it applies to --method latentseek, random or ltpo"),
    UsedOnly(("model.tau", "model.answer_selection", "model.reuse"), "method", ITERATIVE,
             "it applies to --method latentseek, random or gradcuit"),
    UsedOnly(("model.lr", "trainer.max_steps"), "method", FITTED,
             "it applies to --method latentseek, random, gradcuit or ltpo"),
    UsedOnly(("model.insert_prefix", "model.latent_layer", "model.step", "model.grad_clip", "model.first_targets",
              "model.offset_dtype"), "method", ("gradcuit",), "it applies to --method gradcuit"),
    UsedOnly(("model.ltpo_slots", "model.ltpo_sigma", "model.ltpo_sigma_decay", "model.ltpo_top_k",
              "model.ltpo_update", "model.ltpo_selection", "model.ltpo_best_state", "model.ltpo_baseline"),
             "method", ("ltpo",), "it applies to --method ltpo"),
    UsedOnly(("model.ltpo_baseline", "model.samples_per_step"), "model.ltpo_update", ("zo",),
             "--model.ltpo_update autograd follows the exact gradient of one candidate per step (Adam)"),
    UsedOnly(("model.optimizer",), "method", ("latentseek", "gradcuit"),
             "it applies to --method latentseek or gradcuit (the random control's steps are Gaussian noise)"),
    UsedOnly(("model.optimizer", "model.grad_clip"), "model.step", ("gradient",),
             "--model.step random moves the offset by Gaussian noise, without a gradient"),
    UsedOnly(("model.n_samples", "model.sample_temperature"), "method", SAMPLED, "it applies to --method bon or sc"),
    UsedOnly(("model.reward", "model.reward_args", "model.verifier_max_new_tokens", "model.verifier_sampling",
              "model.format_rule", "model.verdict_parse", "model.reward_server", "model.reward_server_model",
              "model.reward_server_timeout", "model.reward_server_concurrency"), "method", REWARDED,
             "--method cot, sc and ltpo use no reward; it applies to --method latentseek, random, bon or gradcuit"),
    UsedOnly(("model.verifier_max_new_tokens", "model.reward_server", "model.reward_server_model",
              "model.reward_server_timeout", "model.reward_server_concurrency"), "model.reward", VERIFIERS,
             "it applies to --model.reward self or single_verifier (an LLM judges the answers)"),
    UsedOnly(("model.verifier_sampling", "model.format_rule", "model.verdict_parse"), "model.reward", ("self",),
             "it applies to --model.reward self (the model judges its own answers)"),
    UsedOnly(("model.reward_server_model", "model.reward_server_timeout", "model.reward_server_concurrency"),
             "model.reward_server", (None,), "pass --model.reward_server URL", excluding=True),
    UsedOnly(("model.verifier_sampling",), "model.reward_server", (None,),
             "a --model.reward_server decodes greedily (temperature 0)"),
    UsedOnly(("seed_everything",), "seed_everything", (False,),
             "each problem is seeded from --seed and its id: pass --seed N"),
)
ALWAYS_USED = ("model.llm", "model.max_new_tokens", "model.extraction", "model.grading", "model.draft_tokens",
               "data.name", "data.start", "data.limit", "data.batch_size")
HUB_ONLY = "data.split"  # with --data.path FILE the split is ignored too (it chooses a hub dataset's split)
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def option_defaults() -> dict[str, Any]:
    """The default of every option `USED_ONLY` names, by key (``model.rho``)."""
    defaults: dict[str, Any] = {"method": RunOptions.method, "trainer.max_steps": DEFAULT_MAX_STEPS,
                                "seed_everything": False}
    for group, cls in (("model", SeekConfig), ("data", DataConfig)):
        for item in fields(cls):
            defaults[f"{group}.{item.name}"] = item.default if item.default is not MISSING else item.default_factory()
    return defaults


def inapplicable_rules(values: Mapping[str, Any]) -> list[UsedOnly]:
    """The `USED_ONLY` rules whose options this run does not use (its setting is not among their values)."""
    return [rule for rule in USED_ONLY if not rule.uses(values.get(rule.setting))]


def unused_options(values: Mapping[str, Any]) -> set[str]:
    """The options this run ignores (`USED_ONLY`): left out of the resume hash, since they change no result."""
    return {option for rule in inapplicable_rules(values) for option in rule.options if option != rule.setting}


def is_given(option: str, setting: str, value: Any, default: Any, command_line: set[str]) -> bool:
    """Whether the user gave `option` for a run whose `setting` decides what it means: it is on the command line,
    or a config file set it (it differs from its default) and the command line did not change `setting`."""
    if option in command_line:
        return True
    return setting not in command_line and value != default


def apply_method_defaults(method: str, model: SeekConfig, command_line: set[str]) -> SeekConfig:
    """`model` with `method`'s own defaults (`METHOD_DEFAULTS`) for every option of them that was not given
    (`is_given`; for a hyperparameter, with the method as the setting it depends on): `--method gradcuit` runs lr
    1e-3, while `--method gradcuit --model.lr 0.01` runs 0.01."""
    defaults = option_defaults()
    changes = {}
    for option, value in METHOD_DEFAULTS.get(method, {}).items():
        name = option.split(".", 1)[1]
        setting = "method" if option in METHOD_HYPERPARAMETERS else ""  # "": no setting makes a config value moot
        if not is_given(option, setting, getattr(model, name), defaults[option], command_line):
            changes[name] = value
    return replace(model, **changes) if changes else model


def check_ignored_options(values: Mapping[str, Any], command_line: set[str]) -> None:
    """Refuse a run that would ignore an option the user gave: one `IgnoredOptionError` naming the option,
    why it is ignored and what to pass instead.

    `values` holds the resolved options by key (``method``, ``model.rho``, ``data.path``, ``trainer.max_steps``,
    ``seed_everything``); `command_line` the keys given on the command line. An option counts as given when it
    is on the command line, or when it differs from its default and the setting that makes it irrelevant was not
    changed on the command line: the configs in configs/ hold LatentSeek's settings and serve the baselines too
    (``--config configs/gsm8k_boxed.yaml --method cot``), while ``--method cot --model.lr 0.1`` is an error.
    """
    defaults = option_defaults()

    def given(option: str, setting: str) -> bool:
        return is_given(option, setting, values.get(option), defaults.get(option), command_line)

    for rule in inapplicable_rules(values):
        setting = values.get(rule.setting)
        for option in rule.options:
            if option in values and given(option, rule.setting):
                why = (f"--{option} {setting} is ignored" if option == rule.setting else
                       f"--{option} is ignored without --{rule.setting}" if rule.excluding else
                       f"--{option} is ignored with --{rule.setting} {setting}")
                raise IgnoredOptionError(f"{why}; {rule.advice}")
    path, split = values.get("data.path"), values.get(HUB_ONLY)
    if path is not None and Path(str(path)).suffix.lower() in LOCAL_SUFFIXES and given(HUB_ONLY, "data.path"):
        raise IgnoredOptionError(f"--{HUB_ONLY} {split} is ignored with the local file --data.path {path}; "
                                 f"a split chooses part of a hub dataset")
    if (values.get("method") == "ltpo" and values.get("model.ltpo_baseline") == "loo"
            and values.get("model.samples_per_step") == 1):
        raise IgnoredOptionError("--model.ltpo_baseline loo is ignored with --model.samples_per_step 1 (the "
                                 "leave-one-out baseline of a single candidate is 0); pass --model.samples_per_step 4")


def resolved_options(run: RunOptions, model: SeekConfig, data: DataConfig, trainer: Mapping[str, Any],
                     seed_everything: Any = False) -> dict[str, Any]:
    """The values `check_ignored_options` reads, by key."""
    values: dict[str, Any] = {"method": run.method, "trainer.max_steps": max_steps(trainer),
                              "seed_everything": seed_everything}
    for group, config in (("model", model), ("data", data)):
        values.update({f"{group}.{item.name}": getattr(config, item.name) for item in fields(config)})
    return values
