"""One problem's search in latent space: the continue -> reward half of an iteration, and its trajectory.

`ProblemSearch` holds the prompt c, the fixed CoT prefix x_1..x_s, the reward and every decoded
answer. `step(windows)` turns the token windows decoded from the latents into full answers
(continuing greedily from prompt + x_1..x_s + window, all windows in one engine call) and rewards
them. A window decoded before in this problem is not continued again (greedy continuations are
deterministic), and an answer judged before is not judged again when the reward is deterministic
(`Reward.deterministic`: PSRM, the greedy verifier); a sampling verifier judges every time, as the original.
Each judgement of the problem has an index (0: the CoT's), which seeds a sampling verifier.

A reward of the solver's own token confidences (`rewards.ConfidenceReward`: its ``confidence_k``) judges a decoding,
not a text: every row then records its tokens' confidences, and an answer's reward is computed from those of the
tokens generated after the latent window (the CoT's from the window's end on), once per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lightning_latentseek.engine import Generation, GenerationEngine, Row
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import Reward, RewardResult, judge_many, token_reward_k


@dataclass
class Sample:
    """One decoded answer: the latent window's tokens, the whole answer, its reward."""

    window: list[int]
    tokens: list[int]
    text: str
    reward: RewardResult
    hit_cap: bool
    reused: bool = False  # continued or judged before in this problem: nothing was generated for it
    eos: str = ""  # the text of the stop token that ended it (`FrozenLM.eos_text`), "" when the cap cut it


@dataclass
class Iterate:
    """The decodings of one iteration (iteration 0: the CoT), with the step that led to them."""

    iteration: int
    samples: list[Sample]
    loss: float | None = None  # the policy-gradient loss of the step that produced these latents
    step_norm: float | None = None  # how far that step moved the latents
    solver_tokens: int = 0  # tokens the solver generated for these decodings (0 for reused ones)
    verifier_tokens: int = 0  # tokens the reward generated to judge them (0 for answers judged before)

    @property
    def best(self) -> Sample:
        """The highest-rewarded sample (the first among ties): what the stop rule and `last` look at."""
        return max(self.samples, key=lambda s: s.reward.value)


class AnswerJudge:
    """R(x, c) for one problem's answers, each ended by its `eos` text: the same answer twice in one call is judged
    once, and one judged before in this problem is not judged again when the reward is deterministic (and `reuse`).
    Each judgement has an index in the problem (0: the first answer's), which seeds a sampling verifier."""

    def __init__(self, reward: Reward, problem: Problem, reuse: bool = True):
        self.reward, self.problem = reward, problem
        self.reuse = reuse and getattr(reward, "deterministic", True)
        self.verifier_tokens = 0  # tokens the reward generated for this problem
        self.judgements = 0  # answers judged so far (the index of the next judgement)
        self._rewards: dict[tuple[str, str], RewardResult] = {}

    def __call__(self, texts: Sequence[str], eos: Sequence[str]) -> list[RewardResult]:
        keys = list(zip(texts, eos))
        new = [k for k in dict.fromkeys(keys) if not (self.reuse and k in self._rewards)]
        if new:
            calls = list(range(self.judgements, self.judgements + len(new)))
            self.judgements += len(new)
            results = judge_many(self.reward, self.problem, [t for t, _ in new], eos=[e for _, e in new],
                                 calls=calls)
            for key, result in zip(new, results):
                self._rewards[key] = result
                self.verifier_tokens += result.verifier_tokens
        return [self._rewards[k] for k in keys]

    def judged(self, text: str, eos: str) -> bool:
        """Whether this answer's reward would be reused (judged before, reward deterministic)."""
        return self.reuse and (text, eos) in self._rewards


class SearchHistory:
    """A search's answers, iteration by iteration (`history`, the first answer's first), judged by `judge`."""

    history: list[Iterate]
    judge: AnswerJudge

    @property
    def current(self) -> Iterate:
        return self.history[-1]

    @property
    def reward(self) -> float:
        """The best reward of the latest decodings: what tau is compared with."""
        return self.current.best.reward.value

    def best(self) -> Sample:
        """The highest-rewarded answer of the whole search (the earliest among ties)."""
        return max((s for it in self.history for s in it.samples), key=lambda s: s.reward.value)

    @property
    def verifier_tokens(self) -> int:
        """Tokens the reward generated for this problem."""
        return self.judge.verifier_tokens


class ProblemSearch(SearchHistory):
    """Continue and reward decoded windows for one problem; remembers every answer it produced."""

    def __init__(self, engine: GenerationEngine, problem: Problem, prompt_ids: Sequence[int], cot: Generation,
                 reward: Reward, start: int, n: int, max_new_tokens: int, reuse: bool = True):
        self.engine, self.llm, self.problem, self.reward_fn = engine, engine.lm, problem, reward
        self.prompt_ids = list(prompt_ids)
        self.fixed = list(cot.tokens[:start])
        self.window = (start, n)
        self.max_new_tokens = max_new_tokens
        self.reuse = reuse
        self.solver_tokens = len(cot.tokens)  # tokens the solver generated for this problem (CoT + continuations)
        self.judge = AnswerJudge(reward, problem, reuse)
        self.confidence_k = token_reward_k(reward)  # > 0: the reward reads the decodings' token confidences
        # window -> (the whole answer's tokens, hit_cap, confidences of the tokens after the window)
        self._answers: dict[tuple[int, ...], tuple[list[int], bool, list[float] | None]] = {}
        self._window_rewards: dict[tuple[int, ...], RewardResult] = {}  # confidence rewards: by window
        window = list(cot.tokens[start:start + n])
        scored = None
        if cot.confidence is not None:  # the CoT's tokens after its window (all of them if none follows it)
            scored = list(cot.confidence[start + n:]) or list(cot.confidence)
        if cot.tokens and cot.tokens[-1] in self.llm.continuation_stop_ids:
            # The continuation of the CoT's own window is the CoT itself, as long as the CoT ended at EOS: a CoT
            # cut by the cap (or by another stop word) would be continued further after its window.
            self._answers[tuple(window)] = (list(cot.tokens), cot.hit_cap, scored)
        text, eos = self.llm.decode(cot.tokens), self.llm.eos_text(cot.tokens)
        rewards, verifier_tokens = self._rewards_of([window], [text], [eos], [scored])
        cot_sample = Sample(window, list(cot.tokens), text, rewards[0], cot.hit_cap, eos=eos)
        self.history: list[Iterate] = [Iterate(0, [cot_sample], solver_tokens=len(cot.tokens),
                                               verifier_tokens=verifier_tokens)]

    def step(self, windows: Sequence[Sequence[int]], loss: float | None = None,
             step_norm: float | None = None) -> Iterate:
        """Windows decoded from the latents -> greedy continuations to EOS (one batched call) -> rewards."""
        windows = [list(w) for w in windows]
        fresh = [w for w in dict.fromkeys(map(tuple, windows)) if not (self.reuse and w in self._answers)]
        generated = 0
        if fresh:
            rows = [Row(self.prompt_ids + self.fixed + list(w), self.max_new_tokens, self.llm.continuation_stop_ids,
                        keep_cache=True, confidence_k=self.confidence_k) for w in fresh]
            for w, generation in zip(fresh, self.engine.generate(rows)):
                self._answers[w] = (self.fixed + list(w) + generation.tokens, generation.hit_cap, generation.confidence)
                generated += len(generation.tokens)
        self.solver_tokens += generated
        answers = [self._answers[tuple(w)] for w in windows]
        texts = [self.llm.decode(tokens) for tokens, _, _ in answers]
        eos = [self.llm.eos_text(tokens) for tokens, _, _ in answers]
        rewards, verifier_tokens = self._rewards_of(windows, texts, eos, [scored for _, _, scored in answers])
        samples = [Sample(w, tokens, text, reward, hit_cap, reused=self.reuse and tuple(w) not in fresh, eos=end)
                   for w, (tokens, hit_cap, _), text, reward, end in zip(windows, answers, texts, rewards, eos)]
        iterate = Iterate(len(self.history), samples, loss, step_norm, generated, verifier_tokens)
        self.history.append(iterate)
        return iterate

    def _rewards_of(self, windows: Sequence[Sequence[int]], texts: list[str], eos: list[str],
                    confidences: list[list[float] | None]) -> tuple[list[RewardResult], int]:
        """R of each decoding, and the tokens the reward generated for them: from the confidences of its scored
        tokens (a confidence reward, once per window), else from its text and EOS (`AnswerJudge`)."""
        if not self.confidence_k:
            before = self.judge.verifier_tokens
            results = self.judge(texts, eos)
            return results, self.judge.verifier_tokens - before
        results = []
        for window, scored in zip(windows, confidences):
            key = tuple(window)
            if not (self.reuse and key in self._window_rewards):
                self._window_rewards[key] = self.reward_fn.from_confidences(self.problem, scored)
            results.append(self._window_rewards[key])
        return results, 0
