"""Continuous batching: the generation work of every problem in flight shares one forward per step.

Problems are solved concurrently (one Lightning fit each, in its own thread); whatever they need
generated (a CoT, continuations, sampled decodings, verifier prompts, Best-of-N samples) is a list
of `Row`s handed to `GenerationEngine.generate`, which blocks the calling problem until its rows are
done. One engine thread owns the model: at every step it admits the rows that arrived (prefilling
each on top of the longest cached prefix, `PrefixStore`), then runs ONE forward over all live rows
(left-padded, with attention mask and per-row positions), picks each row's next token (argmax, or
the row's sampler), and lets finished rows leave, so a finished problem's place is taken by the next
one's rows at once. A row's tokens are those it would get alone, up to the float noise of batched
arithmetic flipping a near-tie.

The batch's KV cache is a `BatchCache` (a transformers `Cache` of our own layers; a row's own prefill
uses a `DynamicCache`): buffers that outlive the batch, where decoding writes each position in place. The
batch is rearranged when rows join, when finished rows are dropped and when decoding reaches the buffers'
edge; rows that stay are moved only when they must be.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor
from lightning_latentseek.engine.batch_cache import BatchCache, PrefillCache
from lightning_latentseek.engine.injection import Injection
from lightning_latentseek.engine.lm import FrozenLM
from lightning_latentseek.engine.sampling import token_confidence
from lightning_latentseek.engine.tuning import EngineTuning, tuning_for
from lightning_latentseek.errors import UserError

Sampler = Callable[[Tensor, Sequence[int]], int]  # (float32 logits (V,), context + tokens so far) -> next token
DRAFT_NGRAMS = (3, 2, 1)  # prompt-lookup drafts: the longest of these n-grams that occurred before


@dataclass
class Row:
    """One sequence to extend: `ids` is its whole context; generation adds up to `max_new_tokens` tokens.

    A row ends at a token in `stop_ids` (kept as its last token), after `max_new_tokens`, or when
    `stop(tokens)` says so. `keep_hidden` keeps z_t, the final hidden state that produced each token
    (the CoT's latents). `sampler` None means greedy. `keep_cache` asks the engine to keep the KV of
    the finished sequence, for later rows that start with it (the compact verifier prompts). `inject` writes
    hidden states into a decoder block's input at some of the row's positions (`engine.injection`): its prefill
    reuses no stored KV beyond the injection's start, and its KV is never stored for other rows.

    `prompt_hidden` n > 0 also returns the final hidden states of the row's last n context positions
    (`Generation.prompt_hidden`; ``lm_head`` of them gives the logits there); with `max_new_tokens` 0 the row is
    only prefilled, which scores a prompt without generating (LTPO's reward). `confidence_k` k > 0 records, for each
    generated token, the confidence of the distribution it was chosen from (`sampling.token_confidence`, LTPO's
    measure: -(1/k) sum of log p over the k most likely tokens) in `Generation.confidence`, read off the logits the
    decoding computes anyway.
    """

    ids: Sequence[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    keep_hidden: bool = False
    sampler: Sampler | None = None
    stop: Callable[[list[int]], bool] | None = None
    keep_cache: bool = False
    inject: Injection | None = None
    prompt_hidden: int = 0
    confidence_k: int = 0


@dataclass
class Generation:
    """What a row generated."""

    tokens: list[int]
    hit_cap: bool  # it stopped at max_new_tokens (not at a stop token or its own stop rule)
    hidden: Tensor | None = None  # (len(tokens), H) for keep_hidden rows, in the LLM's dtype
    prompt_hidden: Tensor | None = None  # (n, H) for a row with prompt_hidden n: its last n context positions
    confidence: list[float] | None = None  # per token, for a row with confidence_k


class SequenceTooLong(UserError, ValueError):
    """A row would outgrow the model's sliding attention window, which the engine does not implement."""


class EngineClosed(RuntimeError):
    """The engine was cancelled or closed: the request was not (fully) served."""


class _Shutdown(EngineClosed):
    """`close()`'s failure: it also tells the engine thread to end (a `cancel` of any reason does not)."""


class _Request:
    def __init__(self, rows: list[Row]):
        self.rows = rows
        self.results: list[Generation | None] = [None] * len(rows)
        self.left = len(rows)
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, index: int, generation: Generation) -> None:
        self.results[index] = generation
        self.left -= 1
        if self.left == 0:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@dataclass
class _Live:
    """A row being decoded: its tokens so far; `tokens[-1]` is the next one to feed."""

    row: Row
    request: _Request
    index: int
    tokens: list[int] = field(default_factory=list)
    hidden: list[Tensor] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    prompt_hidden: Tensor | None = None  # its last context positions' hidden states (rows with prompt_hidden)
    done: bool = False
    sequence: list[int] = field(init=False)  # ids + tokens (drafts and samplers read it)
    _ngrams: dict = field(default_factory=dict)  # n-gram -> the end of its latest occurrence in `sequence`
    _indexed: int = 0  # the n-grams ending before this position are in `_ngrams`

    def __post_init__(self):
        self.sequence = list(self.row.ids)

    def add(self, token: int, hidden: Tensor, confidence: float | None = None) -> bool:
        """Append a token; True when the row is finished. `hidden` (H,) is a row of a forward's whole output:
        a kept one is copied, so that no step's (B, width, H) output stays alive until the row ends. `confidence`:
        the token's confidence (rows with `confidence_k`)."""
        self.tokens.append(token)
        self.sequence.append(token)
        if self.row.keep_hidden:
            self.hidden.append(hidden.clone())
        if self.row.confidence_k:
            self.confidence.append(confidence)
        return (token in self.row.stop_ids or len(self.tokens) >= self.row.max_new_tokens
                or (self.row.stop is not None and self.row.stop(self.tokens)))

    def draft(self, k: int) -> list[int]:
        """Prompt-lookup drafting: up to `k` tokens that followed the latest earlier occurrence of the row's last
        3 (else 2, else 1) tokens in its own sequence (prompt and output). Greedy decoding then checks them all
        in one forward; a draft only saves forwards, it never changes a token."""
        seq, last = self.sequence, len(self.sequence) - 1
        if k <= 0 or last < 1:
            return []
        for end in range(self._indexed, last):  # index the n-grams ending before the last token
            for n in DRAFT_NGRAMS:
                if end + 1 >= n:
                    self._ngrams[tuple(seq[end + 1 - n:end + 1])] = end
        self._indexed = last
        for n in DRAFT_NGRAMS:
            if last + 1 >= n:
                end = self._ngrams.get(tuple(seq[last + 1 - n:]))
                if end is not None:
                    return seq[end + 1:end + 1 + k]
        return []

    def result(self) -> Generation:
        hit_cap = len(self.tokens) >= self.row.max_new_tokens and self.tokens[-1] not in self.row.stop_ids
        hidden = torch.stack(self.hidden) if self.row.keep_hidden else None
        return Generation(list(self.tokens), hit_cap, hidden, self.prompt_hidden,
                          list(self.confidence) if self.row.confidence_k else None)


class PrefixStore:
    """Automatic prefix caching: the KV of recent sequences, so a new row prefills only what the longest
    stored prefix of its ids lacks (the prompt for every continuation of a problem, the shared part of
    the verifier prompts of an answer, ...). Least recently used entries go first.

    The store owns its entries and shares them without copies, because nothing writes them: an entry is a
    prefill's KV (new tensors made by our `PrefillCache`, whose layers only concatenate) or a finished row's
    columns gathered out of the batch (a gather makes new tensors); a prefill reads a stored prefix through a
    `PrefillCache`, and a row joining the batch is copied into it (`BatchCache.arrange`, or concatenated)."""

    def __init__(self, max_tokens: int = 32768, max_entries: int = 128):
        self.max_tokens, self.max_entries = max_tokens, max_entries
        self._entries: OrderedDict[tuple[int, ...], tuple[Tensor, list[tuple[Tensor, Tensor]]]] = OrderedDict()
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: Sequence[int], limit: int) -> tuple[int, list[tuple[Tensor, Tensor]] | None]:
        """(p, layers): the longest stored prefix of `ids`, at most `limit` tokens long."""
        if not self._entries or limit <= 0:
            return 0, None
        query = torch.tensor(list(ids[:limit]), dtype=torch.long)
        best, best_key = 0, None
        for key, (stored, _) in self._entries.items():
            n = min(len(stored), len(query))
            if n <= best:
                continue
            differs = (stored[:n] != query[:n]).nonzero()
            same = int(differs[0, 0]) if len(differs) else n
            if same > best:
                best, best_key = same, key
        if best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        return best, self._entries[best_key][1]

    def add(self, ids: Sequence[int], layers: list[tuple[Tensor, Tensor]]) -> None:
        key = tuple(ids)
        if not key or len(key) > self.max_tokens:
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        self._entries[key] = (torch.tensor(key, dtype=torch.long), layers)
        self._tokens += len(key)
        while self._tokens > self.max_tokens or len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._tokens -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._tokens = 0


def _layers(cache) -> list[tuple[Tensor, Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _pad_left(x: Tensor, length: int) -> Tensor:
    """Pad dim -2 of a (B, heads, L, D) tensor on the left to `length` positions (zeros: masked out)."""
    missing = length - x.shape[-2]
    if missing <= 0:
        return x
    return torch.cat([x.new_zeros((*x.shape[:-2], missing, x.shape[-1])), x], dim=-2)


class GenerationEngine:
    """Serves `generate(rows)` calls from many threads with one batched forward per decoding step.

    Args:
        lm: the frozen LLM.
        prefix_cache: reuse the KV of stored prefixes (`PrefixStore`); False prefills every row whole.
        prefix_cache_tokens: how many tokens of KV the store keeps.
        continuous: admit arriving rows at every step (continuous batching); False admits them only when the
            batch is empty (static "waves", as repeated `generate` calls would batch them: a benchmark baseline).
        static_cache: decode into a `BatchCache` (positions written in place, buffers reused); False uses a
            `DynamicCache`, which copies the whole cache at every step (a benchmark baseline).
        draft_tokens: prompt-lookup decoding: a greedy row proposes up to this many tokens copied from its own
            sequence (`_Live.draft`) and one forward checks them; the row keeps the drafts the model itself
            would have chosen, plus the model's next token. Fewer forwards, the same tokens (up to the float
            noise of a multi-token forward). 0 turns it off; rows with a sampler never draft.
        tuning: the device-dependent speed constants (`engine.tuning`): the draft budget (at most so many tokens
            in one decoding forward, rows x (1 + drafts): drafts are cut to fit; on a CPU 32, which turns them
            off at 32 rows, where a forward of many rows is compute-bound) and the share of finished rows at which
            the batch is rebuilt without them. None: `tuning_for(lm.device)`.
    """

    def __init__(self, lm: FrozenLM, prefix_cache: bool = True, prefix_cache_tokens: int = 32768,
                 continuous: bool = True, static_cache: bool = True, draft_tokens: int = 4,
                 tuning: EngineTuning | None = None):
        self.lm = lm
        self.continuous = continuous
        self.static_cache = static_cache
        # columns of a row's sequence must be its positions under a sliding window: no drafts there
        self.draft_tokens = int(draft_tokens) if lm.sliding_window is None else 0
        self.tuning = tuning if tuning is not None else tuning_for(lm.device)
        self.draft_budget = self.tuning.draft_budget  # None: no budget
        self._drop_share = (self.tuning.drop_finished.numerator, self.tuning.drop_finished.denominator)
        self.store = PrefixStore(prefix_cache_tokens) if prefix_cache else None
        self.stats: Counter = Counter()  # forwards, steps, rows, rebuilds, prefill/generated tokens, row-steps, seconds
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # the batch: its rows (finished ones wait, masked, for the next rebuild), their left-padded cache,
        # attention mask (B, L) and next positions (B,)
        self._rows: list[_Live] = []
        self._batch_cache: BatchCache | None = None  # static_cache: the batch's buffers, kept between batches
        self._cache = None
        self._mask: Tensor | None = None
        self._positions: Tensor | None = None

    # ------------------------------------------------------------------ callers' side
    def generate(self, rows: Sequence[Row]) -> list[Generation]:
        """Generate every row (blocking; thread-safe). Rows of all callers are decoded together."""
        request = _Request(list(rows))
        if not request.rows:
            return []
        with self._lock:
            if self._failure is not None:
                raise EngineClosed(str(self._failure)) from self._failure
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="generation-engine", daemon=True)
                self._thread.start()
            self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            if isinstance(request.error, (EngineClosed, SequenceTooLong, torch.OutOfMemoryError)):
                raise request.error
            raise RuntimeError(f"generation failed: {request.error!r}") from request.error
        return request.results  # type: ignore[return-value]

    def cancel(self, reason: str = "cancelled") -> None:
        """Fail every request in flight or to come with `EngineClosed` (Ctrl-C); `reopen` undoes it."""
        with self._lock:
            self._failure = EngineClosed(reason)
            self._queue.put(None)  # wake the engine thread

    def reopen(self) -> None:
        """Serve again after `cancel` (not after a `close` whose thread has not ended yet)."""
        with self._lock:
            if not isinstance(self._failure, _Shutdown):
                self._failure = None

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the engine thread (requests in flight fail); True once it has ended.

        The thread ends after its current forward. If it is still running after `timeout` seconds (a forward
        that takes longer), close() warns and returns False: the engine keeps the thread and stays closed
        (requests fail with `EngineClosed`, no second thread is started), and a later close() joins it again.
        """
        with self._lock:
            self._failure = _Shutdown("the generation engine is closed")
            self._queue.put(None)  # wake the engine thread
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                warnings.warn(f"the generation engine's thread is still running {timeout:g} s after close() (a "
                              f"forward longer than that?); it ends after its current forward, and the engine "
                              f"stays closed until a later close() has joined it", RuntimeWarning, stacklevel=2)
                return False
        with self._lock:
            self._thread = None
            self._failure = None
        return True

    # ------------------------------------------------------------------ the engine thread
    def _serve(self) -> None:
        while True:
            try:
                failure = self._failure
                if failure is not None:
                    self._fail_all(failure)
                    if isinstance(failure, _Shutdown):
                        return
                if self.continuous or not self._rows:
                    self._admit(block=not self._rows)
                if self._rows:
                    self._step()
            except BaseException as error:  # out of memory or a bug: fail what is in flight, keep serving
                self._fail_live(error)

    def _take(self, block: bool) -> list[_Request]:
        requests = []
        try:
            item = self._queue.get(block=block, timeout=0.5 if block else None)
        except queue.Empty:
            return requests
        while True:
            if item is not None:
                requests.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return requests

    @torch.inference_mode()
    def _admit(self, block: bool) -> None:
        """Prefill the rows that arrived and add those still generating to the batch."""
        joining: list[tuple[_Live, list[tuple[Tensor, Tensor]], int]] = []
        for request in self._take(block):
            if self._failure is not None:
                request.fail(EngineClosed(str(self._failure)))
                continue
            for index, row in enumerate(request.rows):
                live = _Live(row, request, index)
                if self._outgrows_window(live):
                    break
                if row.max_new_tokens <= 0 and not row.prompt_hidden:
                    request.finish(index, Generation([], True, self._empty_hidden() if row.keep_hidden else None))
                    continue
                layers, hidden = self._prefill(row.ids, row.inject, max(1, row.prompt_hidden))
                scored = hidden[0].clone() if row.prompt_hidden else None
                if row.max_new_tokens <= 0:  # a prompt scored, nothing generated
                    request.finish(index, Generation([], True, self._empty_hidden() if row.keep_hidden else None,
                                                      prompt_hidden=scored))
                    continue
                hidden = hidden[:, -1]
                logits = self.lm.logits(hidden)
                token = self._choose(logits, [live])[0]
                confidence = self._confidences(logits, [live])
                live.prompt_hidden = scored
                if live.add(token, hidden[0], None if confidence is None else confidence[0]):
                    self._retire(live, None)
                else:
                    joining.append((live, layers, len(row.ids)))
        joining = [entry for entry in joining if entry[0].request.error is None]  # a failed request's rows stay out
        # longest first: rows of similar length side by side let attention skip more of the left padding
        joining.sort(key=lambda entry: -entry[2])
        if joining:
            self._rebuild(joining)

    def _outgrows_window(self, live: _Live) -> bool:
        """Fail the row's request when its sequence reaches the model's sliding attention window: the caches
        and the prefix store hold whole sequences, which is right only within the window."""
        window = self.lm.sliding_window
        length = len(live.row.ids) + len(live.tokens)
        if window is None or length < window:
            return False
        live.request.fail(SequenceTooLong(
            f"{self.lm.name} attends through a sliding window of {window} tokens, and the generation engine serves "
            f"only sequences within it (one reached {length}): lower --model.max_new_tokens / "
            f"--model.verifier_max_new_tokens, or use a model without sliding-window attention"))
        return True

    def _empty_hidden(self) -> Tensor:
        return torch.zeros((0, self.lm.hidden_size), dtype=self.lm.dtype, device=self.lm.device)

    def _prefill(self, ids: Sequence[int], inject: Injection | None = None,
                 last: int = 1) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
        """KV of `ids` (one row) and the final hidden states at its `last` positions (1, last, H). With `inject`, the stored
        prefix reused stops at the injection's start (the positions before it do not depend on the injected
        states) and the row's KV is not stored."""
        ids = list(ids)
        limit = len(ids) - 1 if inject is None else min(len(ids) - 1, inject.start)
        reused, layers = self.store.longest(ids, limit) if self.store is not None else (0, None)
        # the stored prefix is shared, not copied: PrefillCache never writes it (it concatenates into new tensors)
        cache = PrefillCache(self.lm.num_layers, [(k[:, :, :reused], v[:, :, :reused]) for k, v in layers]
                             if reused else None)
        started = time.perf_counter()
        feed = torch.tensor([ids[reused:]], device=self.lm.device)
        if inject is None:
            hidden = self.lm.forward(feed, cache)[:, -last:]
        else:
            with self.lm.injections.writing(inject.layer, [(0, inject.start - reused, inject.state)]):
                hidden = self.lm.forward(feed, cache)[:, -last:]
        self.stats["prefill_seconds"] += time.perf_counter() - started
        self.stats["forwards"] += 1
        self.stats["prefill_tokens"] += len(ids) - reused
        self.stats["reused_tokens"] += reused
        kept = cache.kv()
        if self.store is not None and inject is None:
            self.store.add(ids, kept)
        return kept, hidden

    @staticmethod
    def _confidences(logits: Tensor, rows: list[_Live]) -> list[float | None] | None:
        """`token_confidence` of each logits row whose `_Live` (`rows`, one per logits row) asks for it (one call per k);
        None when none does."""
        ks = [live.row.confidence_k for live in rows]
        if not any(ks):
            return None
        found: list[float | None] = [None] * len(ks)
        for k in set(ks) - {0}:
            at = [i for i, each in enumerate(ks) if each == k]
            for i, value in zip(at, token_confidence(logits[at], k).tolist()):
                found[i] = value
        return found

    def _choose(self, logits: Tensor, rows: list[_Live]) -> list[int]:
        """The next token of each row: argmax, or the row's sampler."""
        greedy = logits.argmax(-1).tolist()
        return [greedy[b] if live.row.sampler is None else live.row.sampler(logits[b], live.sequence)
                for b, live in enumerate(rows)]

    def _live_rows(self) -> int:
        return sum(not row.done for row in self._rows)

    def _rebuild(self, joining: list[tuple[_Live, list[tuple[Tensor, Tensor]], int]] = ()) -> None:
        """The new batch: the unfinished rows of the old one and the `joining` prefilled rows, each left-padded
        to the longest; leading columns no row uses are dropped.

        With `static_cache` the batch lives in a `BatchCache`, whose buffers outlive rebuilds: rows are moved
        within them, decoding writes each new position in place, and only a batch that outgrows them gets
        new ones. Without it, a transformers `DynamicCache` (every layer's cache concatenated at every step)."""
        started = time.perf_counter()
        keep = self._compaction()
        length = self._mask.shape[1] if self._rows else 0
        if keep:
            mask = self._mask[keep]
            start = int(mask.any(dim=0).long().argmax())  # leading columns that are padding in every kept row
        else:
            mask, start = None, length
        self.stats["trimmed_columns"] += start if keep else 0
        kept_length = length - start
        total = max([kept_length] + [n for _, _, n in joining])
        if total == 0 or (not keep and not joining):
            self._clear_batch()
            return
        masks, positions = [], []
        device = self.lm.device
        if keep:
            index = torch.tensor(keep, dtype=torch.long, device=device)
            masks.append(torch.nn.functional.pad(mask[:, start:], (total - kept_length, 0)))
            positions.append(self._positions[index])
        for _, _, n in joining:
            masks.append(torch.nn.functional.pad(torch.ones((1, n), dtype=torch.long, device=device), (total - n, 0)))
            positions.append(torch.tensor([n], dtype=torch.long, device=device))
        if self.static_cache:
            if self._batch_cache is None:  # the first batch (a batch with no rows yet always has joining rows)
                self._batch_cache = BatchCache(len(joining[0][1]))
            cache = self._batch_cache
            allocations, moved = cache.allocations, cache.moved_rows
            cache.arrange(keep, start, [layers for _, layers, _ in joining])
            self.stats["allocations"] += cache.allocations - allocations
            self.stats["moved_rows"] += cache.moved_rows - moved
        else:
            cache = self.lm.new_cache()
            old_layers = _layers(self._cache) if keep else []
            for layer_index in range(len(old_layers) or len(joining[0][1])):
                # one layer at a time: the transient copies are one layer's, not the whole cache's
                parts = [(k[index, :, start:length], v[index, :, start:length])
                         for k, v in old_layers[layer_index:layer_index + 1]]
                parts += [layers[layer_index] for _, layers, _ in joining]
                keys = torch.cat([_pad_left(k, total) for k, _ in parts])
                values = torch.cat([_pad_left(v, total) for _, v in parts])
                del parts
                cache.update(keys, values, layer_index)
                del keys, values
            del old_layers
        self._cache, self._mask, self._positions = cache, torch.cat(masks), torch.cat(positions)
        self._rows = [self._rows[b] for b in keep] + [live for live, _, _ in joining]
        self.stats["rows"] += len(joining)
        self.stats["rebuilds"] += 1
        self.stats["rebuild_seconds"] += time.perf_counter() - started

    def _compaction(self) -> list[int]:
        """The unfinished rows' old slots, in their new order: a row stays in its slot unless that slot is beyond
        the new batch, in which case it fills the slot of a finished row (the fewest rows moved)."""
        keep = [b for b, row in enumerate(self._rows) if not row.done]
        order = [b for b in keep if b < len(keep)]
        holes = [slot for slot in range(len(keep)) if self._rows[slot].done]
        for hole, row in zip(holes, (b for b in keep if b >= len(keep))):
            order.insert(hole, row)
        return order

    def _clear_batch(self) -> None:
        """No rows left (the batch cache keeps its buffers for the next batch)."""
        self._rows, self._cache, self._mask, self._positions = [], None, None, None

    def _drafts(self, rows: list[_Live]) -> list[list[int]]:
        """Each row's draft for this step (empty for finished and sampling rows), within the token budget, the
        row's own cap (a step adds at most 1 + len(draft) tokens) and the batch cache's room."""
        k = self.draft_tokens if self.draft_budget is None else min(self.draft_tokens,
                                                                    self.draft_budget // len(rows) - 1)
        if self.static_cache:
            k = min(k, self._cache.free() - 1)
        if k <= 0:
            return [[] for _ in rows]
        return [[] if row.done or row.row.sampler is not None
                else row.draft(min(k, row.row.max_new_tokens - len(row.tokens) - 1)) for row in rows]

    @torch.inference_mode()
    def _step(self) -> None:
        """One forward over every row of the batch (finished rows ride along, masked, until the next rebuild).

        A row with a draft feeds its next token and the draft; it keeps each drafted token the forward confirms
        (its argmax at the position before) and then the forward's own next token, so one step adds 1 to
        1 + len(draft) tokens. The columns of the rejected drafts (and the padding of shorter drafts) are
        masked out for good: a row's columns may have holes, its positions never do."""
        if self.static_cache and self._cache.full():
            self._rebuild()  # out of room: rows moved left or into bigger buffers (and finished rows dropped)
        rows = self._rows
        drafts = self._drafts(rows)
        width = 1 + max(len(d) for d in drafts)
        pad = self.lm.pad_id
        feed = torch.tensor([[pad] * width if row.done else [row.tokens[-1], *d] + [pad] * (width - 1 - len(d))
                             for row, d in zip(rows, drafts)], dtype=torch.long, device=self.lm.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), width))], dim=1)
        started = time.perf_counter()
        offsets = torch.arange(width, device=self.lm.device)
        hidden = self.lm.forward(feed, self._cache, attention_mask=self._mask,
                                 position_ids=self._positions[:, None] + offsets)
        live = [b for b, row in enumerate(rows) if not row.done]
        # lm_head only where a token may be chosen: a live row's next position and its drafts' (not the padding)
        first, at_rows, at_columns = [], [], []
        for b in live:
            first.append(len(at_rows))
            at_rows += [b] * (1 + len(drafts[b]))
            at_columns += range(1 + len(drafts[b]))
        logits = self.lm.logits(hidden[at_rows, at_columns])  # (positions, V)
        greedy = logits.argmax(-1).tolist()
        confidence = self._confidences(logits, [rows[b] for b in at_rows])
        self.stats["decode_seconds"] += time.perf_counter() - started
        self.stats["forwards"] += 1
        self.stats["steps"] += 1
        self.stats["row_steps"] += len(live)
        self.stats["batch_rows"] += len(rows)
        self.stats["drafted_tokens"] += sum(len(d) for d in drafts)
        fed = torch.ones(len(rows), dtype=torch.long)
        for i, b in enumerate(live):
            row, draft = rows[b], drafts[b]
            for j in range(width):
                if row.row.sampler is None:
                    token = greedy[first[i] + j]
                else:
                    token = row.row.sampler(logits[first[i]], row.sequence)
                self.stats["generated_tokens"] += 1
                if row.add(token, hidden[b, j], None if confidence is None else confidence[first[i] + j]):
                    self._retire(row, b)
                    break
                if self._outgrows_window(row):
                    row.done = True
                    break
                if j >= len(draft) or token != draft[j]:
                    break
                self.stats["accepted_tokens"] += 1
            fed[b] = j + 1
        fed = fed.to(self.lm.device)
        if width > 1:  # the columns written this step that are not the row's tokens are masked out for good
            self._mask[:, -width:] &= (offsets[None, :] < fed[:, None]).long()
            self.stats["masked_columns"] += int((width - fed).sum())
        self._positions = self._positions + fed
        done = sum(row.done for row in rows)
        if done == len(rows):
            self._clear_batch()
        elif done and (done * self._drop_share[1] >= self._drop_share[0] * len(rows) or not self.static_cache):
            self._rebuild()  # drop the finished rows (`EngineTuning.drop_finished`: a third of them on a CPU)

    def _retire(self, live: _Live, batch_index: int | None) -> None:
        """Hand a finished row's result to its request (and keep its KV when asked)."""
        live.done = True
        if live.row.keep_cache and live.row.inject is None and batch_index is not None and self.store is not None:
            length = len(live.row.ids) + len(live.tokens) - 1  # the last token was never fed
            # the row's columns (the mask skips its padding and rejected drafts); columns fed after its
            # last token (drafts it no longer needs) come after these
            columns = self._mask[batch_index].nonzero().squeeze(1)[:length]
            self.store.add([*live.row.ids, *live.tokens[:-1]],
                           [(k[batch_index:batch_index + 1, :, columns], v[batch_index:batch_index + 1, :, columns])
                            for k, v in _layers(self._cache)])
        if batch_index is not None:
            # it rides along until the next rebuild, attending only to the columns fed from now on (its output is
            # not read): attention then need not read its old columns (`attention.row_groups`)
            self._mask[batch_index] = 0
        live.request.finish(live.index, live.result())

    def _fail_live(self, error: BaseException) -> None:
        for row in self._rows:
            row.request.fail(error)
        self._clear_batch()
        self._batch_cache = None  # out of memory, say: let the buffers go

    def _fail_all(self, error: BaseException) -> None:
        """Fail what is queued, then what is live (waking its callers last, so a request made after
        they wake, once the engine is reopened, is served)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item.fail(error)
        self._fail_live(error)
