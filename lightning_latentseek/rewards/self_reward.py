"""Self-reward, the paper's default reward: the frozen LLM itself judges (question, answer).

Four verifier prompts (`prompts.VERIFIER_CHECKS`: calculation 2, answer correct 1, completeness 2,
understanding 1) are generated as ONE batched `FrozenLM.generate` call. Each is the solver's own
conversation (prompt + answer) followed by the check as a new user turn, so the four rows share
the cache the solver has just built for prompt + answer (`prompts.verifier_messages`), and every
row leaves the batch as soon as its verdict (``FINAL VERIFICATION ANSWER IS: True/False``) can be
read from its generated text, or as soon as too few tokens are left to ever write it.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from lightning_latentseek.grading import extract_boxed, extract_json_answer
from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import (VERDICT_MARKER, VERIFIER_CHECKS, VerifierCheck, solver_messages,
                                          verifier_messages)
from lightning_latentseek.rewards.base import RewardResult

FORMAT_PENALTY = 2.0
MEMO_SIZE = 256  # answers remembered for the current problem (the memo is cleared at a new problem)

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


def verdict_readable(text: str, marker: str = VERDICT_MARKER) -> bool:
    """The stop criterion of a verifier row: its verdict can be read from the text generated so far."""
    return parse_verdict(text, marker) is not None


# ----------------------------------------------------------------------------- verdict budget
# re.IGNORECASE also folds these four non-ASCII letters onto ASCII ones.
_FOLD = str.maketrans({"\u0131": "i", "\u0130": "i", "\u017f": "s", "\u212a": "k"})


def _skeleton(text: str) -> str:
    """The letters, digits and colons of `text`, case-folded as re.IGNORECASE compares them, with every
    run of colons written as one colon."""
    kept = "".join(ch for ch in text.translate(_FOLD).casefold() if ch.isalnum() or ch == ":")
    return re.sub(":+", ":", kept)


class VerdictBudget:
    """How many more tokens a verifier row needs, at the least, before its verdict can be readable.

    A readable verdict is the marker followed by True/False (`parse_verdict`). Whatever the
    whitespace, markdown or LaTeX around them, its skeleton (letters, digits and colons, colon runs
    as one) contains the marker's skeleton followed by a whole verdict word or the start of a LaTeX
    wrapper ("finalverificationansweris:" + true, false, boxed, text, ...): everything the pattern
    allows in between has no letters, and the only colons there join the marker's colon. From the
    text of every single token (`FrozenLM.token_texts`) this computes the fewest tokens that can
    spell one of those strings: a first token may end with its beginning, middle tokens must match
    exactly, a last token may start with its end; a token that starts with colons may also count
    without them (they can merge into a colon before it), and tokens with an empty skeleton never
    help. It is a lower bound, so a row that has fewer tokens left than `needed(text)` can never
    produce a readable verdict and stopping it changes no verdict and no reward.
    """

    def __init__(self, token_texts: Sequence[str], marker: str = VERDICT_MARKER):
        self.marker = marker
        self.base = _skeleton(marker)
        # What may follow the marker's skeleton: a verdict word, a wrapper, or (marker without a
        # colon of its own) a colon.
        self.next_words = sorted(set(_VERDICTS + _WRAPPERS) | ({":"} if not self.base.endswith(":") else set()))
        tokens: set[str] = set()
        for text in token_texts:
            skeleton = _skeleton(text)
            tokens.add(skeleton)
            tokens.add(skeleton.lstrip(":"))
        tokens.discard("")
        paths = [self._shortest(self.base + word, tokens) for word in self.next_words]
        self.fresh = min(fresh for fresh, _ in paths)
        # after[p]: fewest tokens when the text already ends with the first p letters of the marker
        self.after = [min(to_end[p] for _, to_end in paths) for p in range(len(self.base) + 1)]

    @staticmethod
    def _shortest(target: str, tokens: set[str]) -> tuple[int, list[int]]:
        """(fewest tokens from scratch, fewest tokens from each position p at a token boundary)."""
        n, inf = len(target), 10 ** 9
        substrings: dict[str, list[int]] = {}
        for i in range(n):
            for k in range(i + 1, n + 1):
                substrings.setdefault(target[i:k], []).append(i)
        first = [False] * (n + 1)  # first[j]: a token ends with target[:j]
        edges: list[list[int]] = [[] for _ in range(n + 1)]  # i -> i + len(token) for exact middle tokens
        last = [False] * (n + 1)  # a token starts with target[i:]
        whole = False
        for token in tokens:
            whole = whole or target in token
            for j in range(1, min(len(token), n) + 1):
                if token.endswith(target[:j]):
                    first[j] = True
            for i in substrings.get(token, ()):
                edges[i].append(i + len(token))
            for i in range(max(0, n - len(token)), n):
                if token.startswith(target[i:]):
                    last[i] = True
        # to_end[i]: fewest tokens that finish the target from position i (a token boundary)
        to_end = [inf] * (n + 1)
        to_end[n] = 0
        for i in range(n - 1, -1, -1):
            best = 1 if last[i] else inf
            for k in edges[i]:
                best = min(best, 1 + to_end[k])
            to_end[i] = best
        fresh = 1 if whole else min((1 + to_end[j] for j in range(1, n + 1) if first[j]), default=inf)
        return fresh, to_end

    def needed(self, text: str) -> int:
        """Fewest more tokens before a verdict can be readable, given the text generated so far."""
        if _marker_pattern(self.marker).search(text):
            return 1  # the marker is there: its verdict (possibly inside \\boxed{...}) may be one token away
        skeleton = _skeleton(text)
        best = self.fresh
        for p in range(1, len(self.base) + 1):  # the text may end in the middle of the marker
            if skeleton.endswith(self.base[:p]):
                best = min(best, self.after[p])
        return best


def reward_value(verdicts: Sequence[bool | None], weights: Sequence[float], format_ok: bool | None = None) -> float:
    """R = -(weights of the failed checks) / (sum of all weights); a None verdict counts as failed.

    ``format_ok`` None: no format rule. True/False: the format rule is on; the denominator grows by
    `FORMAT_PENALTY` (2) and an answer without ``\\boxed{}`` (False) adds 2 to the penalty, so R
    stays in [-1, 0] (default checks: R in {0, -1/8, ..., -8/8} instead of {0, -1/6, ..., -6/6}).
    """
    if len(verdicts) != len(weights):
        raise ValueError(f"{len(verdicts)} verdicts for {len(weights)} weights")
    failed = sum(float(w) for v, w in zip(verdicts, weights) if v is not True)
    total = sum(float(w) for w in weights)
    if format_ok is not None:
        total += FORMAT_PENALTY
        failed += 0.0 if format_ok else FORMAT_PENALTY
    if total <= 0:
        raise ValueError("the verifier checks' weights must sum to more than 0")
    return -failed / total if failed else 0.0


def _as_check(check: VerifierCheck | Mapping) -> VerifierCheck:
    if isinstance(check, VerifierCheck):
        return check
    if not isinstance(check, Mapping):
        raise TypeError(f"reward_args.checks: expected a mapping {{name, weight, instruction}}, got {check!r}")
    missing = {"name", "weight", "instruction"} - set(check)
    unknown = set(check) - {"name", "weight", "instruction"}
    if missing or unknown:
        raise ValueError(f"reward_args.checks entry {dict(check)!r}: "
                         + (f"missing {sorted(missing)} " if missing else "")
                         + (f"unknown {sorted(unknown)}" if unknown else "")
                         + " (expected keys name, weight, instruction)")
    weight = float(check["weight"])
    if not weight > 0:
        raise ValueError(f"reward_args.checks {check['name']!r}: weight {check['weight']} must be > 0")
    if not str(check["instruction"]).strip():
        raise ValueError(f"reward_args.checks {check['name']!r}: empty instruction")
    return VerifierCheck(str(check["name"]), weight, str(check["instruction"]))


class SelfReward:
    """R(x, c) from the frozen LLM's own verdicts on four checks (the paper's self-reward).

    R = -(sum of the weights of the failed checks) / (sum of all weights), in [-1, 0]; a check
    fails when its verdict is False or cannot be read (marker missing, no True/False after it,
    or the row hit `max_new_tokens`). With the default checks (weights 2, 1, 2, 1) R is a
    multiple of -1/6, e.g. failing calculation + completeness gives -4/6.

    With ``format_rule=True`` an answer whose final answer is not where the solver prompt asked
    for it (``\\boxed{...}``; the "final answer" key for the JSON prompt) costs 2 more and the
    denominator becomes sum(weights) + 2 (8 for the default checks), so R stays in [-1, 0].

    Args:
        llm: the frozen LLM (`FrozenLM`) used as verifier.
        prompt: the solver prompt style: the verifier prompts continue the solver's conversation, and
            it decides what the format rule looks for.
        max_new_tokens: cap on each verifier row; rows stop earlier as soon as their verdict is readable.
        format_rule: add the format penalty (see above).
        checks: the verifier checks, as `VerifierCheck`s or dicts ``{name, weight, instruction}``
            (from YAML ``reward_args``); default `prompts.VERIFIER_CHECKS`.
        marker: the text that introduces the verdict.

    Identical answers to the same problem are judged once: a repeated (problem id, answer) returns
    the remembered verdicts with ``verifier_tokens=0`` (nothing was generated for it). The memo
    is cleared whenever a different problem id comes in.
    """

    def __init__(self, llm, prompt: str = "boxed", max_new_tokens: int = 512, format_rule: bool = False,
                 checks: Sequence[VerifierCheck | Mapping] | None = None, marker: str = VERDICT_MARKER):
        if llm is None:
            raise ValueError("the self reward needs the frozen LLM (llm=...)")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens {max_new_tokens}: must be >= 1")
        self.llm = llm
        self.prompt = prompt
        self.max_new_tokens = int(max_new_tokens)
        self.format_rule = bool(format_rule)
        self.checks: tuple[VerifierCheck, ...] = tuple(_as_check(c) for c in (VERIFIER_CHECKS if checks is None else checks))
        if not self.checks:
            raise ValueError("reward_args.checks: at least one verifier check is needed")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"reward_args.checks: duplicate check names in {names}")
        _marker_pattern(marker)  # validates it
        self.marker = marker
        self.stop_hopeless_rows = True  # stop a row that can no longer fit marker + verdict (`VerdictBudget`)
        self._budget: VerdictBudget | None = None
        self._memo: dict[tuple[str, str], RewardResult] = {}
        self._memo_problem: str | None = None

    def budget(self) -> VerdictBudget | None:
        """The row stop rule's token budget for this LLM's vocabulary and marker (computed at first use),
        None when `stop_hopeless_rows` is off or the LLM has no `token_texts`."""
        if not self.stop_hopeless_rows or not hasattr(self.llm, "token_texts"):
            return None
        if self._budget is None:
            self._budget = VerdictBudget(self.llm.token_texts(), self.marker)
        return self._budget

    def follows_format(self, answer: str) -> bool:
        """The format rule: the final answer sits where the solver prompt asked for it
        (``\\boxed{}`` for the boxed prompt, the "final answer" key for the JSON prompt)."""
        found = extract_json_answer(answer) if self.prompt == "json" else extract_boxed(answer)
        return found is not None

    def __call__(self, problem: Problem, answer: str) -> RewardResult:
        if problem.id != self._memo_problem:
            self._memo.clear()
            self._memo_problem = problem.id
        key = (problem.id, answer)
        if key in self._memo:
            seen = self._memo[key]
            return RewardResult(seen.value, dict(seen.details), verifier_tokens=0)
        result = self._judge(problem, answer)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.pop(next(iter(self._memo)))
        self._memo[key] = result
        return result

    def _judge(self, problem: Problem, answer: str) -> RewardResult:
        solver = solver_messages(problem.question, self.prompt, problem.dataset)
        rows = [self.llm.encode_chat(verifier_messages(solver, answer, check, self.marker)) for check in self.checks]

        budget = self.budget()

        def stop(row: int, tokens: list[int]) -> bool:
            left = self.max_new_tokens - len(tokens)
            if budget is not None and left < budget.fresh and left < budget.needed(self.llm.decode(tokens)):
                return True  # too few tokens left to ever write marker + verdict: the verdict stays unreadable
            # A verdict becomes readable only with the last letter of "true"/"false": skip the
            # full decode (O(length) per step) unless the newest token holds an "e" (or is odd).
            newest = self.llm.decode(tokens[-1:]).lower()
            if newest and "e" not in newest and "\ufffd" not in newest:
                return False
            return verdict_readable(self.llm.decode(tokens), self.marker)

        outputs = self.llm.generate(rows, self.max_new_tokens, stop=stop)
        texts = [self.llm.decode(tokens) for tokens in outputs]
        verdicts = [parse_verdict(text, self.marker) for text in texts]
        format_ok = self.follows_format(answer) if self.format_rule else None
        value = reward_value(verdicts, [c.weight for c in self.checks], format_ok)
        details = {
            "verdicts": {c.name: v for c, v in zip(self.checks, verdicts)},
            "verdict_failures": sum(v is None for v in verdicts),
            "format_ok": format_ok,
            "verifier_texts": {c.name: t for c, t in zip(self.checks, texts)},
        }
        return RewardResult(value, details, verifier_tokens=sum(len(tokens) for tokens in outputs))
