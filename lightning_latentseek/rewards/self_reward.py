"""Self-reward, the paper's default reward: the frozen LLM itself judges (question, answer).

Four verifier prompts (`prompts.VERIFIER_CHECKS`: calculation 2, answer correct 1, completeness 2,
understanding 1); R = -(weights of the failed checks) / 6. With the ``paper`` prompt set each check
is the original's prompt as one fresh user message; with ``compact`` it is the solver's own
conversation (prompt + answer) followed by a short check turn. The four rows of an answer (and the
rows of every answer judged at once, `judge_many`) go to the engine as ONE batch, which prefills
their shared beginning once; a row leaves the batch as soon as its verdict
(``FINAL VERIFICATION ANSWER IS: True/False``) can be read from its own generated text. With
`--model.reward_server URL` an OpenAI-compatible server answers the same conversations instead (greedily, to
its EOS or the cap: the first readable verdict is the same).

Verdicts are read from the response only (`parse_verdict`, ``--model.verdict_parse response``: our fix),
or as the original reads them (`parse_verdict_paper`, ``paper``: the decoded prompt + response, after the
last marker, "true" anywhere; its rows then run to EOS, as the original's).
"""

from __future__ import annotations

import re
from typing import Sequence

from lightning_latentseek.engine import GenerationConfigSampler, GenerationEngine
from lightning_latentseek.config import ConfigError, PositiveInt, Prompt, PromptSet, VerdictParse, VerifierSampling
from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import VERDICT_MARKER, VERIFIER_CHECKS, solver_messages, verifier_messages
from lightning_latentseek.rewards.base import RewardResult
from lightning_latentseek.rewards.verifier import EngineVerifier, Reply, Verifier
from lightning_latentseek.seeds import stable_seed

FORMAT_PENALTY = 2.0
# The original's format rule (main.py:76-77 with --rule_format_string boxed; reward.py:152-164).
FORMAT_RE = re.compile(r"\\boxed{(.*)}", re.DOTALL)

# Between the marker and the verdict word: spaces, markdown emphasis, quotes, backticks,
# brackets, a colon, `$` and LaTeX wrappers such as \boxed{ or \text{.
_WRAPPERS = ("boxed", "text", "textbf", "mathrm", "mathbf")
_VERDICTS = ("true", "false")
_BEFORE_WORD = (r"(?:[\s*_`'\"\u2018\u2019\u201c\u201d\[\](){}<>:$]|\\(?:" + "|".join(_WRAPPERS) + r")\b)*")
_VERDICT_WORD = re.compile(_BEFORE_WORD + "(" + "|".join(_VERDICTS) + r")(?![A-Za-z0-9])", re.IGNORECASE)
_MARKER_PATTERNS: dict[str, re.Pattern] = {}


def _marker_pattern(marker: str) -> re.Pattern:
    """The marker, case-insensitive, any whitespace between its words; markdown may sit before its colon
    (``**FINAL VERIFICATION ANSWER IS**: True``). The colon stays required, so prose such as
    "whether the final verification answer is true" is not read as a verdict."""
    if marker not in _MARKER_PATTERNS:
        text = marker.strip()
        colon = text.endswith(":")
        words = text.rstrip(":").split()
        if not words:
            raise ValueError("the verdict marker must not be empty")
        pattern = r"\s+".join(re.escape(w) for w in words) + (r"[\s*_]*:" if colon else "")
        _MARKER_PATTERNS[marker] = re.compile(pattern, re.IGNORECASE)
    return _MARKER_PATTERNS[marker]


def parse_verdict(generated_text: str, marker: str = VERDICT_MARKER) -> bool | None:
    """The verdict in a verifier's *generated* text (never pass the prompt: it contains the marker).

    Finds the marker (case-insensitive) and reads the first word after it: ``True``/``False`` in
    any case, possibly wrapped in markdown bold, quotes, backticks, brackets or ``\\boxed{}``
    and followed by punctuation. When the marker occurs several times, the first occurrence
    followed by a verdict counts. None when there is no marker or no True/False right after it.
    """
    for found in _marker_pattern(marker).finditer(generated_text):
        word = _VERDICT_WORD.match(generated_text, found.end())
        if word is not None:
            return word.group(1).lower() == "true"
    return None


def parse_verdict_paper(decoded: str, marker: str = VERDICT_MARKER) -> bool:
    """The original's `extract_verifier_approval` (reward.py:71-116) on the decoded prompt + response: the
    text after the *last* marker (case-insensitive), asterisks removed; True when "true" is anywhere in it,
    else False (also without a marker; where the original's first-word fallback raises on a text of only
    asterisks, False). The prompt quotes the marker followed by True, so a response without a verdict can
    read the prompt's instructions."""
    found = re.search(r".*{}(.*)".format(re.escape(marker.lower())), decoded, flags=re.DOTALL | re.IGNORECASE)
    answer = found.group(1).strip() if found else None
    if not answer:
        return False
    return "true" in answer.replace("*", "").strip().lower()


def verdict_readable(text: str, marker: str = VERDICT_MARKER) -> bool:
    """The stop criterion of a verifier row: its verdict can be read from the text generated so far."""
    return parse_verdict(text, marker) is not None


def reward_value(verdicts: Sequence[bool | None], weights: Sequence[float], format_ok: bool | None = None) -> float:
    """R = -(weights of the failed checks) / (sum of all weights); a None verdict counts as failed.

    ``format_ok`` None: no format rule. True/False: the format rule is on, as the original's (reward.py:141-149):
    an answer without ``\\boxed{...}`` (False) adds `FORMAT_PENALTY` (2) to the penalty and the denominator
    stays the weights' sum, so R reaches -8/6 with the default checks.
    """
    if len(verdicts) != len(weights):
        raise ValueError(f"{len(verdicts)} verdicts for {len(weights)} weights")
    failed = sum(float(w) for v, w in zip(verdicts, weights) if v is not True)
    total = sum(float(w) for w in weights)
    if format_ok is not None:
        failed += 0.0 if format_ok else FORMAT_PENALTY
    if total <= 0:
        raise ValueError("the verifier checks' weights must sum to more than 0")
    return -failed / total if failed else 0.0




class SelfReward:
    """R(x, c) from the frozen LLM's own verdicts on four checks (the paper's self-reward).

    R = -(sum of the weights of the failed checks) / (sum of all weights), in [-1, 0]; a check
    fails when its verdict is False or cannot be read (marker missing, no True/False right after it,
    or the row hit `max_new_tokens`). With the default checks (weights 2, 1, 2, 1) R is a multiple
    of -1/6, e.g. failing calculation + completeness gives -4/6.

    With ``format_rule=True`` (the original's ``--rule_format_string boxed``) an answer without
    ``\\boxed{...}``, whatever the solver prompt, costs 2 more out of the same sum: R reaches -8/6.

    Args:
        engine: the generation engine of the frozen LLM (the verifier is the solver's own model).
        prompt: the solver prompt (``boxed``/``json``): the compact layout repeats it, the format rule reads it.
        prompt_set: ``paper`` (the original's verifier prompts) or ``compact`` (see `prompts`).
        max_new_tokens: cap on each verifier generation (the original's is 4096).
        sampling: ``greedy`` (deterministic; our default) or ``model`` (the checkpoint's generation
            config, as the original's `model.generate` calls decode: a fresh sample on every judgement,
            seeded by `seed`, the problem, the judgement's index in the problem and the check).
        seed: the run's seed (``--seed``), for ``sampling="model"``.
        format_rule: add the format penalty (see above).
        verdict_parse: ``response`` (`parse_verdict`) or ``paper`` (`parse_verdict_paper`; rows run to EOS).
        checks: names of the checks to run (default all four), with their weights.
        server: a `ChatServer` that answers the verifier conversations instead of `engine` (greedy only).

    The object keeps no state between calls: it is shared by every problem in flight.
    """

    def __init__(self, engine: GenerationEngine, prompt: Prompt = "boxed", prompt_set: PromptSet = "paper",
                 max_new_tokens: PositiveInt = 4096, sampling: VerifierSampling = "greedy", seed: int = 0,
                 format_rule: bool = False,
                 verdict_parse: VerdictParse = "response", checks: Sequence[str] | None = None,
                 marker: str = VERDICT_MARKER, server: Verifier | None = None):
        # The settings' choices and ranges are their types (`config`): checked in SeekConfig, and for
        # --model.reward_args by `build_reward` (`typed.check_arguments`).
        if engine is None:
            raise ValueError("the self reward needs the generation engine of the frozen LLM (engine=...)")
        known = {c.name: c for c in VERIFIER_CHECKS}
        names = list(known) if checks is None else list(checks)
        unknown = [n for n in names if n not in known]
        if unknown or not names or len(set(names)) != len(names):
            raise ConfigError(f"reward_args.checks {names}: choose distinct checks among {', '.join(known)}")
        if server is not None and sampling != "greedy":
            raise ConfigError("--model.verifier_sampling model: a --model.reward_server decodes greedily")
        self.engine, self.llm = engine, engine.lm
        self.verifier: Verifier = server if server is not None else EngineVerifier(engine)
        self.prompt, self.prompt_set = prompt, prompt_set
        self.max_new_tokens = int(max_new_tokens)
        self.sampling, self.seed = sampling, int(seed)
        self.format_rule = bool(format_rule)
        self.verdict_parse = verdict_parse
        self.deterministic = sampling == "greedy"  # a sampling verifier judges an answer afresh every time
        self.checks = tuple(known[n] for n in names)
        _marker_pattern(marker)  # validates it
        self.marker = marker

    @staticmethod
    def follows_format(answer: str) -> bool:
        """The original's format rule (reward.py:152-164 with ``\\\\boxed{(.*)}``): the answer holds ``\\boxed{``
        and a later ``}``, whatever the solver prompt (a JSON-prompt answer without a box fails it)."""
        return FORMAT_RE.search(answer) is not None

    def __call__(self, problem: Problem, answer: str, call: int = 0) -> RewardResult:
        return self.judge_many(problem, [answer], calls=[call])[0]

    def judge_many(self, problem: Problem, answers: Sequence[str], calls: Sequence[int] | None = None
                   ) -> list[RewardResult]:
        """Judge several answers to one problem: all their verifier rows are one engine call (or concurrent
        requests to the server). `calls` are the judgements' indices in the problem (they seed
        ``sampling="model"``)."""
        calls = list(range(len(answers))) if calls is None else list(calls)
        triples = [(answer, call, check) for answer, call in zip(answers, calls) for check in self.checks]
        conversations = [self._messages(problem, answer, check) for answer, _, check in triples]
        samplers = [self._sampler(problem, call, check) for _, call, check in triples]
        stop = self._verdict_written if self.verdict_parse == "response" else None  # paper: to EOS, as the original
        replies = self.verifier.answer(conversations, self.max_new_tokens, samplers=samplers, stop=stop)
        k = len(self.checks)
        return [self._result(answer, conversations[i * k:(i + 1) * k], replies[i * k:(i + 1) * k])
                for i, answer in enumerate(answers)]

    def _messages(self, problem: Problem, answer: str, check) -> list[dict]:
        solver = (solver_messages(problem.question, self.prompt, problem.dataset, self.prompt_set)
                  if self.prompt_set == "compact" else None)
        return verifier_messages(problem.question, answer, check.name, self.prompt_set, solver=solver)

    def _sampler(self, problem: Problem, call: int, check):
        if self.sampling != "model":
            return None
        # a fresh sample on every judgement, as reward.py:64
        return GenerationConfigSampler(self.llm.model.generation_config,
                                       stable_seed(self.seed, problem.id, call, check.name))

    def _whole_output(self, messages: list[dict], reply: Reply) -> str:
        """What the original parses (reward.py:65): prompt and response decoded together, without special tokens
        (a server's reply: its text after the prompt's)."""
        prompt = list(self.llm.encode_chat(messages))
        if reply.ids is not None:
            return self.llm.decode(prompt + list(reply.ids))
        return self.llm.decode(prompt) + reply.text

    def _verdict_written(self, tokens: list[int]) -> bool:
        """A row's stop rule: its verdict can be read from what it generated so far. A verdict becomes
        readable only with the last letter of "true"/"false": skip the full decode (O(length) per step)
        unless the newest token holds an "e" (or is an incomplete character)."""
        newest = self.llm.decode(tokens[-1:]).lower()
        if newest and "e" not in newest and "\ufffd" not in newest:
            return False
        return verdict_readable(self.llm.decode(tokens), self.marker)

    def _result(self, answer: str, conversations: Sequence[list[dict]], replies: Sequence[Reply]) -> RewardResult:
        texts = [reply.text for reply in replies]
        response_verdicts = [parse_verdict(text, self.marker) for text in texts]
        if self.verdict_parse == "paper":  # reward.py:65: the whole output, prompt included, without special tokens
            verdicts = [parse_verdict_paper(self._whole_output(messages, reply), self.marker)
                        for messages, reply in zip(conversations, replies)]
        else:
            verdicts = response_verdicts
        format_ok = self.follows_format(answer) if self.format_rule else None
        weights = [c.weight for c in self.checks]
        value = reward_value(verdicts, weights, format_ok)
        details = {
            "verdicts": {c.name: v for c, v in zip(self.checks, verdicts)},
            "verdict_failures": sum(v is None for v in verdicts),
            "format_ok": format_ok,
            "verifier_texts": {c.name: t for c, t in zip(self.checks, texts)},
        }
        if self.verdict_parse == "paper":  # what the response-only parse reads: how often the two disagree
            details["response_verdicts"] = {c.name: v for c, v in zip(self.checks, response_verdicts)}
        floor = -(sum(weights) + (FORMAT_PENALTY if self.format_rule else 0.0)) / sum(weights)
        return RewardResult(value, details, verifier_tokens=sum(reply.tokens for reply in replies), floor=floor)
