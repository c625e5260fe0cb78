"""One problem's search in latent space: the decode -> continue -> reward half of an iteration.

`ProblemSearch` holds the prompt's KV cache, the fixed CoT prefix x_1..x_s, the reward and
the trajectory. Its `step(tokens)` turns the tokens decoded from the latents into a full
answer (continuing greedily from prompt + x_1..x_s + tokens) and rewards it. Nothing is
recomputed when the decoded tokens (or the answer text) were seen before in this problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lightning_latentseek.llm import CoT, FrozenLM
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import Reward, RewardResult


@dataclass
class Iterate:
    """One decoded answer on the search path; iteration 0 is the CoT itself."""

    iteration: int
    tokens: list[int]
    text: str
    reward: RewardResult
    hit_cap: bool
    reused: bool = False


class ProblemSearch:
    """Decode, continue and reward answers for one problem; remembers every answer it produced."""

    def __init__(self, llm: FrozenLM, problem: Problem, cot: CoT, reward: Reward, start: int, n: int,
                 max_new_tokens: int, reuse: bool = True):
        self.llm, self.problem, self.reward_fn = llm, problem, reward
        self.prompt = cot.prompt
        self.fixed = list(cot.tokens[:start])
        self.window = (start, n)
        self.max_new_tokens = max_new_tokens
        self.reuse = reuse
        self._answers: dict[tuple[int, ...], tuple[list[int], bool]] = {}
        self._rewards: dict[str, RewardResult] = {}
        self._answers[tuple(cot.tokens[start:start + n])] = (list(cot.tokens), cot.hit_cap)
        text = llm.decode(cot.tokens)
        self.history: list[Iterate] = [Iterate(0, list(cot.tokens), text, self._reward(text), cot.hit_cap)]

    @property
    def current(self) -> Iterate:
        return self.history[-1]

    @property
    def reward(self) -> float:
        """R of the latest decoded answer: the reward the next policy-gradient step uses."""
        return self.current.reward.value

    @property
    def best(self) -> Iterate:
        """The highest-rewarded answer (the earliest among ties)."""
        return max(self.history, key=lambda it: (it.reward.value, -it.iteration))

    def step(self, latent_tokens: Sequence[int]) -> Iterate:
        """Tokens decoded from the latents -> greedy continuation to EOS -> reward."""
        key = tuple(latent_tokens)
        reused = self.reuse and key in self._answers
        if reused:
            tokens, hit_cap = self._answers[key]
        else:
            prefix = self.fixed + list(latent_tokens)
            rest, hit_cap = self.llm.continue_greedy(self.prompt, prefix, max(0, self.max_new_tokens - len(prefix)))
            tokens = prefix + rest
            hit_cap = hit_cap or (not rest and len(prefix) >= self.max_new_tokens)
            self._answers[key] = (tokens, hit_cap)
        text = self.llm.decode(tokens)
        iterate = Iterate(len(self.history), tokens, text, self._reward(text), hit_cap, reused)
        self.history.append(iterate)
        return iterate

    def _reward(self, text: str) -> RewardResult:
        """R(x, c); identical answers are judged once per problem."""
        if not self.reuse or text not in self._rewards:
            self._rewards[text] = self.reward_fn(self.problem, text)
        return self._rewards[text]
