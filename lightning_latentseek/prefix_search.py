"""One problem's GradCuit search: the regenerate -> reward half of an iteration, and its trajectory.

`PrefixSearch` holds the prompt, the inserted prefix, the reward and every answer. It starts with GradCuit's
baseline answer (greedy after [prompt, prefix], no offset: G:283-311 of `src/gradcuit/gradcuit.py`) and its reward;
`step(state)` regenerates the whole answer greedily with `state` written into block L at the prefix's positions
(`engine.Injection`; G:255-281, 458-463) and rewards it. The answers are engine rows, batched with every other
problem's; the prompt's KV is shared from the prefix cache (it does not depend on the state).

Targets (what the next update lowers the likelihood of): at the first update GradCuit re-tokenises the baseline's
decoded text (no EOS, and not always the generated ids, G:371-376: `first_targets="text"`), later it uses the
generated ids, which end with EOS when the answer stopped there (G:281, 459-463). `first_targets="ids"` uses the
baseline's generated ids too (the fix).
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from lightning_latentseek.config import FirstTargets
from lightning_latentseek.engine import GenerationEngine, Injection, Row
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import Reward
from lightning_latentseek.search import AnswerJudge, Iterate, Sample, SearchHistory


class PrefixSearch(SearchHistory):
    """Regenerate and reward answers for one problem under a prefix state; remembers every answer.

    An answer judged before in this problem is not judged again (`reuse`, `search.AnswerJudge`) when the reward is
    deterministic (PSRM, greedy verifiers). States never repeat, so every iteration generates its answer."""

    def __init__(self, engine: GenerationEngine, problem: Problem, prompt_ids: Sequence[int],
                 prefix_ids: Sequence[int], layer: int, reward: Reward, max_new_tokens: int,
                 first_targets: FirstTargets = "text", reuse: bool = True):
        self.engine, self.llm, self.problem = engine, engine.lm, problem
        self.prompt_ids, self.prefix_ids = list(prompt_ids), list(prefix_ids)
        self.layer, self.max_new_tokens = layer, max_new_tokens
        self.judge = AnswerJudge(reward, problem, reuse)
        baseline = engine.generate([self._row(None)])[0]
        self.solver_tokens = len(baseline.tokens)
        text, eos = self.llm.decode(baseline.tokens), self.llm.eos_text(baseline.tokens)
        self.targets: list[int] = self.llm.encode(text) if first_targets == "text" else list(baseline.tokens)
        sample = Sample(self.prefix_ids, list(baseline.tokens), text, self.judge([text], [eos])[0], baseline.hit_cap,
                        eos=eos)
        self.history: list[Iterate] = [Iterate(0, [sample], solver_tokens=len(baseline.tokens),
                                               verifier_tokens=self.judge.verifier_tokens)]

    @property
    def context(self) -> list[int]:
        """prompt + prefix: what every answer continues."""
        return self.prompt_ids + self.prefix_ids

    @property
    def start(self) -> int:
        """The prefix's first position in the sequence."""
        return len(self.prompt_ids)

    def injection(self, state: Tensor) -> Injection:
        return Injection(self.layer, self.start, state)

    def step(self, state: Tensor, loss: float | None = None, step_norm: float | None = None) -> Iterate:
        """The whole answer regenerated greedily with `state` (P, H) injected -> reward; its ids are the next
        targets."""
        generation = self.engine.generate([self._row(state.detach())])[0]
        self.solver_tokens += len(generation.tokens)
        self.targets = list(generation.tokens)
        text, eos = self.llm.decode(generation.tokens), self.llm.eos_text(generation.tokens)
        reused, before = self.judge.judged(text, eos), self.judge.verifier_tokens
        sample = Sample(self.prefix_ids, list(generation.tokens), text, self.judge([text], [eos])[0],
                        generation.hit_cap, reused=reused, eos=eos)
        iterate = Iterate(len(self.history), [sample], loss, step_norm, len(generation.tokens),
                          self.judge.verifier_tokens - before)
        self.history.append(iterate)
        return iterate

    def _row(self, state: Tensor | None) -> Row:
        # HF generate stops at the checkpoint's EOS ids (G:273-280, 299-306)
        return Row(self.context, self.max_new_tokens, self.llm.generation_stop_ids,
                   inject=None if state is None else self.injection(state))
