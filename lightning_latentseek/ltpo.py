"""LTPO's prompt, slots and reward (arXiv 2510.04182; code ltpo2025/LTPO @ 0863323, cited as ``ltpo.py:LINE``).

LTPO asks the model to solve the problem and appends a paragraph announcing N "special tokens that contain
compressed latent reasoning information"; those N placeholder tokens' input embeddings H are the only thing
optimised. Its reward is the model's own confidence at the placeholders: no verifier, no decoded text.

* `ltpo_prompt`: LTPO's user message (ltpo.py:59-75) with the placeholders of the chat template's family
  (ltpo.py:18-26), rendered as ``apply_chat_template(add_generation_prompt=False)`` does, the slots [s, e) by
  LTPO's arithmetic (ltpo.py:82-89) and its assistant header appended by hand (ltpo.py:91-98). LTPO picks the
  family from the model's *name*; we pick it from the chat template's end of a user turn and check that the slots
  hold the placeholders (README, Fidelity).
* `ltpo_confidence`: LTPO's reward (ltpo.py:110-117): the mean over the N slots and the template token after them
  of -(1/k) sum over the top-k of log(p + 1e-10), in the dtype of the logits, summed position by position as LTPO does.
* `LTPOScorer`: that reward for candidate slot embeddings. Through the engine (no gradient): a row fed the candidate
  at the slots (an `Injection` at block 0, whose input is the embeddings), on top of the KV of the prompt before the
  slots, forwarding only positions s..e (the logits there do not depend on later positions); with a gradient (LTPO's
  autograd option): one forward of the prompt on this thread, as LTPO's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from lightning_latentseek.engine import GenerationEngine, Injection, Row
from lightning_latentseek.errors import UserError

# ltpo.py:18-26 and 91-98: per family, the placeholder of slot i, the assistant header LTPO appends, and how many
# template tokens follow the placeholders (ltpo.py:84-86: one, two for qwen's <|im_end|> + "\n")
FAMILIES = {
    "qwen": (lambda i: "<|endoftext|>", "<|im_start|>assistant\n", 2),
    "llama": (lambda i: f"<|reserved_special_token_{i}|>", "<|start_header_id|>assistant<|end_header_id|>\n\n", 1),
    "mistral": (lambda i: "<unk>", "", 1),
}
# how each family's chat template ends a user turn: what identifies the family here
TURN_ENDS = (("<|im_end|>", "qwen"), ("<|eot_id|>", "llama"), ("[/INST]", "mistral"))
PROBE = "\x00LTPO-PROBE\x00"


class LTPOTemplateError(UserError, ValueError):
    """The model's chat template is not one whose placeholder slots LTPO's code knows how to find."""


@dataclass(frozen=True)
class LTPOPrompt:
    """LTPO's input for one problem: `ids` (the templated prompt and the appended assistant header) and the
    placeholder slots [start, end)."""

    ids: list[int]
    start: int
    end: int
    family: str

    @property
    def n(self) -> int:
        return self.end - self.start


def prompt_content(question: str, n: int, placeholders: str) -> str:
    """LTPO's user message for math problems (ltpo.py:59-75, problem_type "math": every dataset we load)."""
    return (
        "Solve the following math problem efficiently and clearly:\n"
        "- For simple problems (2 steps or fewer):\n"
        "Provide a concise solution with minimal description.\n"
        "- For complex problems (3 steps or more):\n"
        "Use this step-by-step format:\n\n"
        "## Step 1: [Brief calculations]\n"
        "## Step 2: [Brief calculations]\n"
        "...\n"
        "IMPORTANT: Regardless of the approach, you MUST always put your final answer within \\boxed{}.\n\n"
        f"PROBLEM: {question}\n\n"
        f"There are {n} special tokens that contain compressed latent reasoning information that might be useful "
        f"for your reasoning.\n"
        f"If these tokens are useful for your case, you can use them as reference. If these tokens are not useful "
        f"for your case, you can ignore them and focus back to solving the problem.\n\n"
        f"Here are the {n} special tokens: {placeholders}"
    )


def template_family(llm) -> str:
    """The placeholder family of `llm`'s chat template, from how it ends a user turn (ChatML: qwen, as Qwen2.5 and
    SmolLM2; Llama 3: llama; Mistral: mistral)."""
    rendered = llm.tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], tokenize=False,
                                                 add_generation_prompt=False)
    tail = rendered.partition(PROBE)[2]
    for end, family in TURN_ENDS:
        if tail.startswith(end):
            return family
    raise LTPOTemplateError(f"--method ltpo: {llm.name}'s chat template ends a user turn with {tail[:30]!r}; LTPO's "
                            f"code knows ChatML (<|im_end|>), Llama 3 (<|eot_id|>) and Mistral ([/INST]) templates")


def _encode(tokenizer, text: str, split_special: bool = False) -> list[int]:
    return tokenizer(text, add_special_tokens=False, split_special_tokens=split_special)["input_ids"] if text else []


def ltpo_prompt(llm, question: str, n: int) -> LTPOPrompt:
    """LTPO's input ids and slots for `question` with `n` placeholders (ltpo.py:7-100).

    The message is rendered by the chat template without a generation prompt and tokenized without added special
    tokens (what ``apply_chat_template(tokenize=True)`` does), so the placeholders are control tokens. A question
    containing a special token's text keeps it as text (our fix, as the solver prompts'): only then is the
    message tokenized piecewise. The slots s = L - n - (2 for qwen, else 1) must hold exactly the placeholder ids."""
    tokenizer = llm.tokenizer
    family = template_family(llm)
    placeholder, header, tail = FAMILIES[family]
    placeholders = [placeholder(i) for i in range(n)]
    content = prompt_content(PROBE, n, "".join(placeholders))
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=False)
    head, _, rest = rendered.partition(PROBE)
    if llm.contains_special_text(question):
        ids = _encode(tokenizer, head) + _encode(tokenizer, question, split_special=True) + _encode(tokenizer, rest)
    else:
        ids = _encode(tokenizer, head + question + rest)
    start = len(ids) - tail - n
    for text in dict.fromkeys(placeholders):
        found = _encode(tokenizer, text)
        if len(found) != 1:
            raise LTPOTemplateError(f"--method ltpo: the placeholder {text} is {len(found)} tokens in {llm.name}'s "
                                    f"vocabulary, not one special token")
    expected = [_encode(tokenizer, text)[0] for text in placeholders]
    if start < 0 or ids[start:start + n] != expected:
        raise LTPOTemplateError(f"--method ltpo: the slots {start}..{start + n - 1} of {llm.name}'s prompt do not hold "
                                f"the {n} placeholders {placeholders[0]} (its chat template adds other tokens after "
                                f"the user message)")
    return LTPOPrompt(ids + llm.encode(header), start, start + n, family)


def ltpo_confidence(logits: Tensor, k: int) -> Tensor:
    """LTPO's reward from the logits at positions s..e (ltpo.py:110-117): the softmax, top-k, log and sums in the
    logits' dtype (bf16 for a bf16 model), accumulated position by position from 0.0 and divided by the number of
    positions. A 0-dim tensor of the logits' dtype; always >= ln k > 0."""
    probs = torch.softmax(logits, dim=-1)
    confidence = 0.0
    for idx in range(probs.shape[0]):
        topk = torch.topk(probs[idx], k=k, largest=True)[0]
        confidence -= torch.sum(torch.log(topk + 1e-10)) / k
    return confidence / probs.shape[0]


class LTPOScorer:
    """LTPO's reward of one problem for candidate slot embeddings (a plain object: the frozen LLM stays out of
    the fit's module). `positions` counts the forward positions spent scoring."""

    def __init__(self, engine: GenerationEngine, prompt: LTPOPrompt, k: int = 10):
        self.engine, self.llm, self.prompt, self.k = engine, engine.lm, prompt, int(k)
        self.scored_ids = prompt.ids[:prompt.end + 1]  # up to the template token after the slots (position e)
        self.positions = 0
        # the prompt before the slots does not depend on them: prefilled once, into the engine's prefix store
        engine.generate([Row(prompt.ids[:prompt.start], 0, frozenset(), prompt_hidden=1)])

    @torch.no_grad()
    def initial_slots(self) -> Tensor:
        """H: the placeholders' input embeddings (N, d), in the model's dtype (ltpo.py:150, 163)."""
        ids = torch.tensor(self.prompt.ids[self.prompt.start:self.prompt.end], device=self.llm.device)
        return self.llm.model.get_input_embeddings()(ids).clone()

    @torch.no_grad()
    def score(self, candidates: Sequence[Tensor]) -> list[Tensor]:
        """The confidence of each candidate (N, d) at the slots: one engine call, each candidate a row fed its
        embeddings at the slots, forwarding positions s..e on the cached prefix."""
        start, n = self.prompt.start, self.prompt.n
        rows = [Row(self.scored_ids, 0, frozenset(), inject=Injection(0, start, candidate), prompt_hidden=n + 1)
                for candidate in candidates]
        generations = self.engine.generate(rows)
        self.positions += len(rows) * (n + 1)
        return [ltpo_confidence(self.llm.lm_head(g.prompt_hidden), self.k) for g in generations]

    def score_with_grad(self, candidate: Tensor) -> Tensor:
        """The confidence of `candidate` with its gradient: one forward of the prompt on this thread (as LTPO's
        autograd variant, ltpo.py:181-189), the candidate written into block 0's input at the slots."""
        start, end = self.prompt.start, self.prompt.end
        ids = torch.tensor([self.scored_ids], device=self.llm.device)
        with self.llm.injections.writing(0, [(0, start, candidate)]):
            hidden = self.llm.forward_uncached(ids)
        self.positions += len(self.scored_ids)
        return ltpo_confidence(self.llm.lm_head(hidden[0, start:end + 1]), self.k)

    def answer_row(self, slots: Tensor, max_new_tokens: int) -> Row:
        """The final generation (ltpo.py:220-234): greedy from the prompt with `slots` at the placeholders, to the
        checkpoint's EOS ids (what ``model.generate`` stops at) or `max_new_tokens`."""
        return Row(self.prompt.ids, max_new_tokens, self.llm.generation_stop_ids,
                   inject=Injection(0, self.prompt.start, slots))
