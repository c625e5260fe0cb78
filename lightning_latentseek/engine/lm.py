"""The frozen LLM as *transformer body + lm_head*, with the tokenizer and its chat template.

`FrozenLM` is loaded once per process (`engine.loading.load_llm`), never trained, never copied
per problem and never registered as a submodule of a LightningModule: fits only see their latents
and borrow `lm_head` for the REINFORCE term. It holds no state between calls: generation is the
`GenerationEngine`'s job, and nothing on this object couples one caller to another.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import Tensor
from transformers import DynamicCache

from lightning_latentseek.engine.injection import InjectionHooks

# ori_generation.py stops the CoT when the decoded token is one of these (plus the tokenizer's EOS);
# opt_generation.py stops a continuation at the tokenizer's EOS only.
ORIGINAL_STOP_WORDS = ("</s>", "<|im_end|>", "<|endoftext|>")


class FrozenLM:
    """A frozen causal LM split into body and lm_head; tokenization as the original code does it."""

    def __init__(self, model, tokenizer, name: str = "model"):
        model.eval()
        model.requires_grad_(False)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.body = model.get_decoder()
        self.lm_head = model.get_output_embeddings()
        self._injections: InjectionHooks | None = None
        # transformers 5 names the body's cache argument `cache` (`past_key_values` before)
        parameters = inspect.signature(self.body.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        configured = getattr(model.generation_config, "eos_token_id", None)
        configured = list(configured) if isinstance(configured, (list, tuple)) else [configured]
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else configured[0]
        if self.eos_id is None:
            raise ValueError(f"{name}: the tokenizer has no EOS token")
        # The CoT stops at the original's stop words, a continuation at EOS, `generate` at the checkpoint's EOS ids.
        self.cot_stop_ids = frozenset({self.eos_id, *self._single_token_ids(ORIGINAL_STOP_WORDS)})
        self.continuation_stop_ids = frozenset({self.eos_id})
        self.generation_stop_ids = frozenset({self.eos_id, *(i for i in configured if i is not None)})
        # Sliding-window attention: the engine's caches and prefix store hold whole sequences, so it serves
        # only sequences within the window (the engine fails a row that reaches it). None: no sliding layers.
        layers = DynamicCache(config=model.config).layers
        self.num_layers = len(layers)  # of the KV cache
        sliding = any(getattr(layer, "is_sliding", False) for layer in layers)
        self.sliding_window = int(getattr(model.config, "sliding_window", 0) or 0) if sliding else None
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_id
        self._special_texts = tuple(t for t in tokenizer.all_special_tokens if t) + tuple(
            t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False))

    def _single_token_ids(self, words: Sequence[str]) -> list[int]:
        """Ids of the tokens whose decoded text is one of `words`."""
        found = []
        for word in words:
            token_id = self.tokenizer.convert_tokens_to_ids(word)
            if isinstance(token_id, int) and self.tokenizer.decode([token_id]) == word:
                found.append(token_id)
        return found

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def hidden_size(self) -> int:
        return self.lm_head.weight.shape[1]

    # ---------------------------------------------------------------- text <-> ids
    def encode_chat(self, messages: Sequence[dict], add_special_tokens: bool = False) -> list[int]:
        """Token ids of `messages` after the chat template (with the generation prompt).

        As the original: the rendered template is tokenized as one string, with the tokenizer's own
        special tokens added when `add_special_tokens` (the original's solver prompt goes through
        ``tokenizer(text)``, its verifier prompts through ``apply_chat_template``, which adds none).

        Our fix: special-token strings inside a message (``<|im_end|>``, ``<|eot_id|>`` ...) stay plain
        text. Only when a message contains one is the text tokenized piecewise: the template's pieces
        with special tokens, the messages' content with ``split_special_tokens=True``.
        """
        rendered = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        if not any(self.contains_special_text(m["content"]) for m in messages):
            return self.tokenizer(rendered, add_special_tokens=add_special_tokens)["input_ids"]
        marks = [f"\x00LLS{i}\x00" for i in range(len(messages))]
        shell = [{**m, "content": mark} for m, mark in zip(messages, marks)]
        rendered = self.tokenizer.apply_chat_template(shell, tokenize=False, add_generation_prompt=True)
        ids: list[int] = []
        for mark, message in zip(marks, messages):
            head, found, rendered = rendered.partition(mark)
            if not found:
                raise ValueError(f"chat template of {self.name} dropped a {message['role']} message")
            ids += self._encode(head, special=add_special_tokens and not ids) + self._encode(message["content"],
                                                                                           split_special=True)
        return ids + self._encode(rendered)

    def _encode(self, text: str, special: bool = False, split_special: bool = False) -> list[int]:
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=special, split_special_tokens=split_special)["input_ids"]

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, no special tokens added (``tokenizer.encode(text, add_special_tokens=False)``:
        GradCuit's prefix and its re-tokenised first targets)."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Answer text: the tokens' text without special tokens (the original keeps them; see README, Fidelity)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def eos_text(self, ids: Sequence[int]) -> str:
        """The text of the special token that ended a generation (``<|im_end|>``), which `decode` drops and the
        original's decode keeps (ori_generation.py:40-49, opt_generation.py:122-133); "" when the last token
        is not a stop token (the cap cut the generation) or is ordinary text."""
        if not ids or ids[-1] not in self.cot_stop_ids | self.continuation_stop_ids:
            return ""
        if self.tokenizer.decode([ids[-1]], skip_special_tokens=True):
            return ""  # an ordinary token: `decode` already kept it
        return self.tokenizer.decode([ids[-1]])

    def token_text(self, ids: Sequence[int]) -> list[str]:
        """The text of each token on its own (latent tokens in records and reports)."""
        return [self.tokenizer.decode([i]) for i in ids]

    def contains_special_text(self, text: str) -> bool:
        """Whether `text` contains a special token's text (``<|im_end|>`` ...), which our tokenization keeps as text."""
        return any(special in text for special in self._special_texts)

    # ---------------------------------------------------------------- forward primitive
    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.model.config)

    def forward(self, ids: Tensor, cache, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        """The body on `ids` (B, L) on top of `cache`: final-normed hidden states (B, L, H), the inputs of lm_head."""
        out = self.body(input_ids=ids, use_cache=True, attention_mask=attention_mask, position_ids=position_ids,
                        **{self._cache_argument: cache})
        return out.last_hidden_state

    def forward_uncached(self, ids: Tensor) -> Tensor:
        """The body on `ids` (B, L) without a cache (every position attends to the whole sequence in one forward,
        as ``model(input_ids, attention_mask=ones, use_cache=False)`` runs it): final-normed hidden states (B, L, H).
        Autograd records it when its inputs (an injected state) require gradients."""
        out = self.body(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
        return out.last_hidden_state

    @torch.no_grad()
    def block_input(self, ids: Tensor, layer: int) -> Tensor:
        """The input of decoder block `layer` (0: the embeddings) for `ids` (B, L), from one forward without a
        cache: ``hidden_states[layer]`` of ``model(ids, output_hidden_states=True, use_cache=False)``."""
        self.injections.check_layer(layer)
        out = self.body(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, output_hidden_states=True)
        return out.hidden_states[layer]

    @property
    def injections(self) -> InjectionHooks:
        """The decoder blocks' injection hooks (`engine.injection`), made on first use."""
        if self._injections is None:
            self._injections = InjectionHooks(self.body)
        return self._injections

    @property
    def num_blocks(self) -> int:
        """The number of decoder blocks (GradCuit's layer index runs over 0..num_blocks - 1)."""
        return len(self.injections)

    def logits(self, hidden: Tensor) -> Tensor:
        """lm_head in float32 (greedy choices and sampling read these)."""
        return self.lm_head(hidden).float()
