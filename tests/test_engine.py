"""The generation engine on tiny random models: batched rows give the tokens each row gets alone (checked
against a plain re-forward of the whole sequence per token), prefix reuse, stop rules, samplers, faults."""

from __future__ import annotations

import threading

import pytest
import torch

from lightning_latentseek.engine import EngineClosed, GenerationEngine, Row, TemperatureSampler


def full_forward_greedy(llm, ids, n, stop_ids):
    """Reference decoding without any cache: the whole sequence re-run for every token, as the original does.
    Returns (tokens, z) with z[t] the final hidden state that produced tokens[t]."""
    ids, out, states = list(ids), [], []
    for _ in range(n):
        with torch.no_grad():
            hidden = llm.body(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state[0, -1]
        token = int(llm.lm_head(hidden).argmax())
        out.append(token)
        states.append(hidden)
        ids.append(token)
        if token in stop_ids:
            break
    return out, torch.stack(states)


def prompts(llm, n):
    """n chat prompts of different lengths."""
    return [llm.encode_chat([{"role": "user", "content": f"What is {i} + {3 * i}? " * (i + 1)}]) for i in range(n)]


@pytest.fixture
def engine(llm):
    eng = GenerationEngine(llm)
    yield eng
    eng.close()


def test_batched_rows_match_full_reforward_and_keep_the_latents(llm):
    engine = GenerationEngine(llm, draft_tokens=0)  # one token per row and step: the step count below
    rows = prompts(llm, 4)
    caps = [5, 17, 9, 12]
    results = engine.generate([Row(ids, cap, llm.cot_stop_ids, keep_hidden=True) for ids, cap in zip(rows, caps)])
    for ids, cap, result in zip(rows, caps, results):
        tokens, states = full_forward_greedy(llm, ids, cap, llm.cot_stop_ids)
        assert result.tokens == tokens
        assert result.hit_cap == (tokens[-1] not in llm.cot_stop_ids) and len(tokens) <= cap
        torch.testing.assert_close(result.hidden, states, atol=1e-4, rtol=1e-4)
    assert engine.stats["rows"] == 4
    # every row's first token comes from its prefill, the rest from shared steps
    assert engine.stats["steps"] == max(len(r.tokens) for r in results) - 1
    engine.close()


def test_kept_latents_are_copies_not_views_of_a_forwards_output(llm):
    """z_t of a keep_hidden row is one (H,) row of a forward's (B, width, H) output (of the whole prompt's, for
    the first): the engine keeps a copy of that row, so no step's whole output stays alive while the CoT goes on."""
    engine = GenerationEngine(llm)  # drafts on: some steps are several positions wide
    kept_sizes: list[tuple[int, int]] = []  # (storage bytes, tensor bytes) of every latent the rows hold

    def look(tokens):  # runs in the engine thread right after a token and its latent were added
        for live in engine._rows:
            for z in live.hidden:
                kept_sizes.append((z.untyped_storage().nbytes(), z.numel() * z.element_size()))
        return False

    try:
        rows = prompts(llm, 3)
        results = engine.generate([Row(ids, 12, frozenset(), keep_hidden=True, stop=look) for ids in rows])
    finally:
        engine.close()
    assert [r.hidden.shape for r in results] == [(12, llm.hidden_size)] * 3
    assert len(kept_sizes) > 3 * 12  # every step looked at every kept latent so far
    assert {stored for stored, _ in kept_sizes} == {llm.hidden_size * 4}  # fp32: (H,) and nothing more
    assert all(stored == size for stored, size in kept_sizes)


def test_rows_from_many_threads_share_forwards(llm):
    engine = GenerationEngine(llm, draft_tokens=0)
    rows = prompts(llm, 6)
    expected = [full_forward_greedy(llm, ids, 20, frozenset())[0] for ids in rows]
    got: dict[int, list[int]] = {}
    barrier = threading.Barrier(6)

    def call(i):
        barrier.wait()
        got[i] = engine.generate([Row(rows[i], 20, frozenset())])[0].tokens

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(6)] == expected
    assert engine.stats["steps"] < 6 * 19  # shared forwards: far fewer steps than rows x tokens
    assert engine.stats["row_steps"] == 6 * 19
    engine.close()


def live_row(ids):
    from lightning_latentseek.engine.batching import _Live, _Request

    row = Row(ids, 10, frozenset())
    return _Live(row, _Request([row]), 0)


def test_a_draft_is_what_followed_the_latest_earlier_occurrence_of_the_last_tokens():
    assert live_row([5, 6, 7, 8, 9, 5, 6, 7]).draft(3) == [8, 9, 5]  # the last 3 tokens occurred at 0..2
    assert live_row([1, 2, 3, 4, 2, 3, 9, 2, 3]).draft(2) == [9, 2]  # (9, 2, 3) is new: the latest (2, 3)
    assert live_row([4, 7, 1, 4]).draft(5) == [7, 1, 4]  # only the last token occurred before
    assert live_row([4, 7, 1, 8]).draft(5) == []  # nothing to copy
    assert live_row([5, 6, 7, 8, 5, 6, 7]).draft(0) == []
    live = live_row([1, 2, 3, 1, 2])
    assert live.draft(2) == [3, 1]
    live.add(3, None)
    assert live.draft(3) == [1, 2, 3]  # the index grows with the row


@pytest.mark.parametrize("cache", ["batch", "dynamic"])
def test_drafted_tokens_are_checked_in_one_forward_and_change_no_token(llm, cache, monkeypatch):
    """Drafts that are right are kept, a wrong one ends the step: fewer forwards, the tokens and latents of a
    full re-forward. Random tiny models rarely repeat themselves, so the drafts here come from an oracle that
    knows the true tokens and spoils the last one of every other draft; a sampling row rides along."""
    from lightning_latentseek.engine.batching import _Live

    rows = prompts(llm, 3)
    caps = [30, 12, 25]
    truth = {tuple(ids): full_forward_greedy(llm, ids, cap, frozenset()) for ids, cap in zip(rows, caps)}

    def oracle(self, k):
        future = list(truth[tuple(self.row.ids)][0][len(self.tokens):len(self.tokens) + k])
        if future and len(self.tokens) % 2:
            future[-1] = (future[-1] + 1) % 256
        return future

    monkeypatch.setattr(_Live, "draft", oracle)
    engine = GenerationEngine(llm, static_cache=cache == "batch", draft_tokens=4)
    try:
        results = engine.generate([Row(ids, cap, frozenset(), keep_hidden=True) for ids, cap in zip(rows, caps)])
        for ids, result in zip(rows, results):
            tokens, states = truth[tuple(ids)]
            assert result.tokens == tokens
            torch.testing.assert_close(result.hidden, states, atol=1e-4, rtol=1e-4)
        assert engine.stats["generated_tokens"] == sum(caps) - len(caps)  # the first tokens come from prefills
        assert engine.stats["accepted_tokens"] >= 20
        assert engine.stats["steps"] <= 12  # the 30-token row alone needs 29 steps without drafts
        assert engine.stats["masked_columns"] > 0  # spoiled drafts and shorter drafts' padding
        alone = GenerationEngine(llm).generate([Row(rows[0], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=7))])
        together = engine.generate([Row(rows[1], 12, frozenset()),
                                    Row(rows[0], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=7))])
        assert together[0].tokens == truth[tuple(rows[1])][0]
        assert together[1].tokens == alone[0].tokens  # a sampling row never drafts
    finally:
        engine.close()


def test_the_kept_sequence_of_a_drafting_row_skips_its_masked_columns(llm):
    """A row that finished among rejected drafts keeps exactly its own sequence's KV for later rows."""
    rows = [ids + ids for ids in prompts(llm, 2)]
    engine = GenerationEngine(llm, draft_tokens=4)
    try:
        first = engine.generate([Row(rows[0], 14, frozenset(), keep_cache=True), Row(rows[1], 20, frozenset())])
        assert engine.stats["masked_columns"] > 0
        before = engine.stats["prefill_tokens"]
        follow = rows[0] + first[0].tokens + [50, 51]
        result = engine.generate([Row(follow, 6, frozenset())])[0]
        assert engine.stats["prefill_tokens"] - before == 3  # the kept prompt + 13 tokens, then 3 new ones
        assert result.tokens == full_forward_greedy(llm, follow, 6, frozenset())[0]
    finally:
        engine.close()


def test_masked_multi_token_attention_keeps_grouped_heads_and_gives_sdpa_results(llm):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lightning_latentseek.engine.attention import gqa_sdpa

    module = llm.body.layers[0].self_attn
    assert module.num_key_value_groups == 2
    torch.manual_seed(0)
    query, key, value = torch.randn(3, 4, 5, 8), torch.randn(3, 2, 9, 8), torch.randn(3, 2, 9, 8)
    mask = torch.ones(3, 1, 5, 9, dtype=torch.bool).tril(diagonal=4)
    mask[1, :, :, :3] = False  # a padded row
    mask[2, :, :, 5] = False  # a hole (a rejected draft)
    ours, _ = gqa_sdpa(module, query, key, value, mask, scaling=0.3)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    assert ours.shape == (3, 5, 4, 8)
    torch.testing.assert_close(ours, theirs)


def test_a_loaded_model_attends_with_the_engines_attention(tmp_path, monkeypatch):
    """`load_llm` asks transformers for `GQA_SDPA` when it loads: the model's forwards call it."""
    from transformers import AttentionInterface

    from lightning_latentseek.engine import attention, load_llm
    from tiny import save_tiny_model

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return attention.gqa_sdpa(*args, **kwargs)

    AttentionInterface.register(attention.GQA_SDPA, counted)
    try:
        llm = load_llm(str(save_tiny_model(tmp_path / "model")))
        llm.forward(torch.tensor([[1, 2, 3]]), llm.new_cache())
    finally:
        AttentionInterface.register(attention.GQA_SDPA, attention.gqa_sdpa)
    assert len(calls) == llm.model.config.num_hidden_layers


def _left_padded_mask(first_columns: list[int], positions: int, columns: int) -> torch.Tensor:
    mask = torch.ones(len(first_columns), 1, positions, columns, dtype=torch.bool).tril(diagonal=columns - positions)
    for row, first in enumerate(first_columns):
        mask[row, ..., :first] = False
    return mask


def test_a_long_query_is_attended_in_chunks_each_reading_the_columns_it_sees(llm):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lightning_latentseek.engine import attention, tuning

    # 6 new positions on top of 4 cached ones: position i sees columns 0 .. 4 + i
    mask = torch.ones(1, 1, 6, 10, dtype=torch.bool).tril(diagonal=4)
    assert attention.query_chunks(mask, chunk=2) == [(0, 2, 6), (2, 4, 8), (4, 6, 10)]
    assert attention.query_chunks(mask, chunk=4) == [(0, 6, 10)]  # shorter than two chunks: one
    batch = _left_padded_mask([0, 3], positions=6, columns=10)  # row 1: 3 columns of padding
    assert attention.query_chunks(batch, chunk=3) == [(0, 3, 7), (3, 6, 10)]
    module = llm.body.layers[0].self_attn
    torch.manual_seed(2)
    query, key, value = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 10, 8), torch.randn(2, 2, 10, 8)
    with tuning.overridden("cpu", query_chunk=2):
        ours, _ = attention.gqa_sdpa(module, query, key, value, batch, scaling=0.3)
    theirs, _ = sdpa_attention_forward(module, query, key, value, batch, scaling=0.3)
    torch.testing.assert_close(ours, theirs)


def test_a_padded_batch_is_attended_in_row_groups_each_from_its_first_column(llm):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lightning_latentseek.engine import attention, tuning

    # one new position (decoding) on 10 columns; rows 2 and 3 are left-padded by 6 and 7 columns
    mask = _left_padded_mask([0, 0, 6, 7], positions=1, columns=10)
    # cells: one group 4 x 10 = 40; two groups 2 x 10 + 2 x 4 = 28; three 20 + 4 + 3 = 27 (+ the cost of calls)
    assert attention.row_groups(mask, call_cells=2) == [(0, 2, 0), (2, 4, 6)]
    assert attention.row_groups(mask, call_cells=0) == [(0, 2, 0), (2, 3, 6), (3, 4, 7)]
    assert attention.row_groups(mask, call_cells=20) == [(0, 4, 0)]  # two calls cost more than the padding
    assert attention.row_groups(mask, call_cells=0, max_groups=1) == [(0, 4, 0)]
    interleaved = _left_padded_mask([6, 0, 7, 0], 1, 10)  # each group of a padded row holds a row from column 0
    assert attention.row_groups(interleaved, call_cells=2) == [(0, 1, 6), (1, 2, 0), (2, 3, 7), (3, 4, 0)]
    assert attention.row_groups(interleaved, call_cells=8) == [(0, 4, 0)]  # 48 cells; (0, 1) + (1, 4): 12 + 38
    module = llm.body.layers[0].self_attn
    torch.manual_seed(3)
    for positions in (1, 3):  # one token per row, and a token with two drafts
        batch = _left_padded_mask([0, 1, 6, 7], positions=positions, columns=10)
        batch[1, ..., 4] = False  # a hole (a rejected draft)
        query, key, value = torch.randn(4, 4, positions, 8), torch.randn(4, 2, 10, 8), torch.randn(4, 2, 10, 8)
        with tuning.overridden("cpu", group_call_cells=2):
            ours, _ = attention.gqa_sdpa(module, query, key, value, batch, scaling=0.3)
        theirs, _ = sdpa_attention_forward(module, query, key, value, batch, scaling=0.3)
        torch.testing.assert_close(ours, theirs)


def test_a_finished_row_rides_along_attending_only_to_columns_fed_after_it_finished(llm):
    from lightning_latentseek.engine.batching import _Request

    engine = GenerationEngine(llm, draft_tokens=0)
    ids = prompts(llm, 4)
    engine._queue.put(_Request([Row(i, cap, frozenset()) for i, cap in zip(ids, (2, 9, 9, 9))]))
    engine._admit(block=False)
    slot = next(b for b, live in enumerate(engine._rows) if live.row.max_new_tokens == 2)
    engine._step()  # that row's second token: it is done; 1 of 4 rows done does not rebuild the batch
    assert engine._rows[slot].done and len(engine._rows) == 4
    assert int(engine._mask[slot].sum()) == 0
    engine._step()
    assert int(engine._mask[slot].sum()) == 1  # the one column fed since
    assert [int(engine._mask[b].sum()) - len(live.row.ids) for b, live in enumerate(engine._rows) if b != slot] == [2] * 3


def test_prefix_store_prefills_only_what_is_new(llm, engine):
    base = prompts(llm, 3)[2]
    engine.generate([Row(base, 4, frozenset())])
    before = engine.stats["prefill_tokens"]
    longer = base + [40, 41, 42]
    result = engine.generate([Row(longer, 6, frozenset())])[0]
    assert engine.stats["prefill_tokens"] - before == 3  # the stored prompt covers all but the 3 new tokens
    assert result.tokens == full_forward_greedy(llm, longer, 6, frozenset())[0]
    off = GenerationEngine(llm, prefix_cache=False)
    try:
        assert off.generate([Row(longer, 6, frozenset())])[0].tokens == result.tokens
        assert off.stats["prefill_tokens"] == len(longer)
    finally:
        off.close()


def test_the_prefix_store_owns_its_entries(llm, engine, monkeypatch):
    """Stored KV is shared with later prefills and rows without copies, and nothing writes it: after more
    generation on top of it, every entry holds what it held, and no entry shares storage with the batch's
    buffers. The prefills go through our own PrefillCache: transformers' DynamicLayer is not used at all."""
    from transformers.cache_utils import DynamicLayer

    def refuse(*args, **kwargs):
        raise AssertionError("DynamicLayer.update was called")

    monkeypatch.setattr(DynamicLayer, "update", refuse)
    base = prompts(llm, 3)[2]
    first = engine.generate([Row(base, 6, frozenset(), keep_cache=True)])[0]
    entries = list(engine.store._entries.values())
    snapshot = [[(k.clone(), v.clone()) for k, v in layers] for _, layers in entries]
    rows = [base + first.tokens[:-1] + [40 + i] for i in range(3)] + [base + [50, 51]]
    results = engine.generate([Row(ids, 5, frozenset()) for ids in rows])
    assert [r.tokens for r in results] == [full_forward_greedy(llm, ids, 5, frozenset())[0] for ids in rows]
    assert engine.stats["reused_tokens"] > 0
    for (_, layers), saved in zip(entries, snapshot):
        for (k, v), (k0, v0) in zip(layers, saved):
            assert torch.equal(k, k0) and torch.equal(v, v0)
    buffers = {t.untyped_storage().data_ptr() for layer in engine._batch_cache.layers
               for t in (layer.key_buffer, layer.value_buffer)}
    stored = {t.untyped_storage().data_ptr() for _, layers in engine.store._entries.values() for kv in layers for t in kv}
    assert not buffers & stored


def test_rows_of_one_request_share_their_prefix(llm, engine):
    shared = prompts(llm, 2)[1]
    rows = [shared + [60 + i, 70 + i] for i in range(4)]
    results = engine.generate([Row(ids, 5, frozenset()) for ids in rows])
    assert engine.stats["prefill_tokens"] == len(rows[0]) + 3 * 2  # the first row whole, then 2 tokens per row
    assert [r.tokens for r in results] == [full_forward_greedy(llm, ids, 5, frozenset())[0] for ids in rows]


def test_finished_sequence_is_kept_for_rows_that_start_with_it(llm, engine):
    ids = prompts(llm, 2)[0]
    first = engine.generate([Row(ids, 8, frozenset(), keep_cache=True)])[0]
    before = engine.stats["prefill_tokens"]
    follow = ids + first.tokens + [50, 51]
    result = engine.generate([Row(follow, 4, frozenset())])[0]
    # the kept sequence holds prompt + all but the last generated token
    assert engine.stats["prefill_tokens"] - before == 3
    assert result.tokens == full_forward_greedy(llm, follow, 4, frozenset())[0]


def test_stop_ids_stop_rule_and_caps(llm, engine):
    ids = prompts(llm, 1)[0]
    free = full_forward_greedy(llm, ids, 12, frozenset())[0]
    stop_token = free[5]
    first = free.index(stop_token)
    stopped, ruled, capped, empty = engine.generate([
        Row(ids, 12, frozenset({stop_token})),
        Row(ids, 12, frozenset(), stop=lambda tokens: len(tokens) == 3),
        Row(ids, 7, frozenset()),
        Row(ids, 0, frozenset(), keep_hidden=True),
    ])
    assert stopped.tokens == free[:first + 1] and not stopped.hit_cap  # the stop token is kept
    assert ruled.tokens == free[:3] and not ruled.hit_cap
    assert capped.tokens == free[:7] and capped.hit_cap
    assert empty.tokens == [] and empty.hidden.shape == (0, llm.hidden_size)


def test_sampled_rows_are_seeded_and_independent_of_the_batch(llm, engine):
    ids = prompts(llm, 3)
    alone = engine.generate([Row(ids[0], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=7))])[0].tokens
    together = engine.generate([Row(ids[1], 9, frozenset()),
                                Row(ids[0], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=7)),
                                Row(ids[2], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=8))])
    assert together[1].tokens == alone
    other_seed = engine.generate([Row(ids[0], 15, frozenset(), sampler=TemperatureSampler(1.0, seed=8))])[0].tokens
    assert other_seed != alone
    assert alone != full_forward_greedy(llm, ids[0], 15, frozenset())[0]


def test_cancel_fails_waiting_callers_and_reopen_serves_again(llm, engine):
    ids = prompts(llm, 1)[0]
    errors = []
    started = threading.Event()

    def slow_stop(tokens):
        started.set()
        return False

    def call():
        try:
            engine.generate([Row(ids, 100_000, frozenset(), stop=slow_stop)])
        except EngineClosed as error:
            errors.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    assert started.wait(30)
    engine.cancel("stop now")
    thread.join(30)
    assert len(errors) == 1 and "stop now" in str(errors[0])
    with pytest.raises(EngineClosed):
        engine.generate([Row(ids, 3, frozenset())])
    engine.reopen()
    assert len(engine.generate([Row(ids, 3, frozenset())])[0].tokens) == 3


def call_in_thread(function, timeout: float = 60):
    """function() in a thread of its own: ("ok", result) or ("error", exception); ("hung", None) after `timeout` s."""
    outcome = []

    def target():
        try:
            outcome.append(("ok", function()))
        except BaseException as error:  # noqa: BLE001 -- handed to the test
            outcome.append(("error", error))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else ("hung", None)


def engine_threads(other_than=()) -> list[threading.Thread]:
    """The live engine threads but those of `other_than` (engines other tests left running)."""
    return [t for t in threading.enumerate() if t.name == "generation-engine" and t.is_alive() and t not in other_than]


def test_a_cancel_whose_reason_reads_closed_does_not_stop_the_engine(llm, engine):
    """Shutdown is close()'s own signal, not a message text: cancel("closed") is a cancel like any other."""
    ids = prompts(llm, 1)[0]
    in_flight = threading.Event()

    def stop(tokens):
        in_flight.set()
        return False

    caller = threading.Thread(target=lambda: outcome.append(call_in_thread(
        lambda: engine.generate([Row(ids, 100_000, frozenset(), stop=stop)]))))
    outcome: list = []
    caller.start()
    assert in_flight.wait(30)
    thread = engine._thread
    engine.cancel("closed")
    caller.join(60)
    [(status, error)] = outcome
    assert status == "error" and isinstance(error, EngineClosed) and str(error) == "closed"
    thread.join(1.0)  # a thread that took "closed" for its shutdown would have ended right after failing the caller
    assert thread.is_alive() and engine._thread is thread
    engine.reopen()
    status, results = call_in_thread(lambda: engine.generate([Row(ids, 3, frozenset())]))
    assert status == "ok" and results[0].tokens == full_forward_greedy(llm, ids, 3, frozenset())[0]


def test_close_keeps_track_of_a_thread_that_outlives_its_timeout(llm, monkeypatch):
    """A forward longer than close()'s timeout: close() reports it and returns False, the engine keeps the thread
    and stays closed (no second thread, no request served by the old one); a later close() joins it."""
    ids = prompts(llm, 1)[0]
    forward = type(llm).forward
    in_forward, release = threading.Event(), threading.Event()

    def slow(self, *args, **kwargs):
        in_forward.set()
        assert release.wait(60)
        return forward(self, *args, **kwargs)

    engine = GenerationEngine(llm)
    others = engine_threads()
    monkeypatch.setattr(type(llm), "forward", slow)
    caller = threading.Thread(target=call_in_thread, args=(lambda: engine.generate([Row(ids, 5, frozenset())]),))
    caller.start()
    assert in_forward.wait(30)
    [thread] = engine_threads(others)
    with pytest.warns(RuntimeWarning, match="still running 0.2 s after close"):
        assert engine.close(timeout=0.2) is False
    assert thread.is_alive() and engine._thread is thread  # not forgotten
    engine.reopen()  # does not undo a close
    with pytest.raises(EngineClosed, match="closed"):
        engine.generate([Row(ids, 3, frozenset())])
    assert engine_threads(others) == [thread]
    release.set()
    monkeypatch.setattr(type(llm), "forward", forward)
    caller.join(30)
    assert engine.close(timeout=30) is True  # the later close() joins it
    assert not thread.is_alive() and engine_threads(others) == []
    assert engine.generate([Row(ids, 3, frozenset())])[0].tokens == full_forward_greedy(llm, ids, 3, frozenset())[0]
    assert engine.close() is True


def test_a_failing_forward_fails_its_request_and_the_engine_goes_on(llm, engine, monkeypatch):
    ids = prompts(llm, 1)[0]
    forward = type(llm).forward
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("injected")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(llm), "forward", flaky)
    with pytest.raises(torch.OutOfMemoryError):
        engine.generate([Row(ids, 10, frozenset())])
    assert engine.generate([Row(ids, 4, frozenset())])[0].tokens == full_forward_greedy(llm, ids, 4, frozenset())[0]


def test_padding_no_row_uses_is_dropped(llm):
    engine = GenerationEngine(llm)
    try:
        short, long = prompts(llm, 4)[0], prompts(llm, 4)[3]
        results = engine.generate([Row(long, 2, frozenset()), Row(short, 12, frozenset())])
        assert results[1].tokens == full_forward_greedy(llm, short, 12, frozenset())[0]
        assert engine.stats["trimmed_columns"] >= len(long) - len(short)
    finally:
        engine.close()


def sliding_llm(window: int):
    from transformers import MistralConfig, MistralForCausalLM

    from lightning_latentseek.engine import FrozenLM
    from lightning_latentseek.engine.attention import GQA_SDPA
    from tiny import tiny_tokenizer

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=window, bos_token_id=256,
                           eos_token_id=257, pad_token_id=258, attn_implementation=GQA_SDPA, initializer_range=0.3)
    return FrozenLM(MistralForCausalLM(config), tiny_tokenizer(), name=f"mistral-window-{window}")


def test_sliding_window_models_are_served_within_their_window_and_refused_beyond():
    from lightning_latentseek.engine import SequenceTooLong

    wide = sliding_llm(512)  # the window covers every sequence here: plain causal attention
    assert wide.sliding_window == 512
    engine = GenerationEngine(wide)
    try:
        rows = prompts(wide, 3)
        results = engine.generate([Row(ids, 6, frozenset()) for ids in rows])
        assert [r.tokens for r in results] == [full_forward_greedy(wide, ids, 6, frozenset())[0] for ids in rows]
    finally:
        engine.close()
    narrow = sliding_llm(40)
    engine = GenerationEngine(narrow)
    try:
        short, long = prompts(narrow, 2)
        assert len(short) < 40 < len(long)
        with pytest.raises(SequenceTooLong, match="sliding window of 40 tokens.*reached 40"):
            engine.generate([Row(short, 12, frozenset())])  # fits at first, outgrows the window while decoding
        with pytest.raises(SequenceTooLong, match=f"reached {len(long)}"):
            engine.generate([Row(long, 2, frozenset())])  # its prompt alone is longer than the window
        # the engine goes on serving rows that stay inside the window
        assert engine.generate([Row(short, 3, frozenset())])[0].tokens == full_forward_greedy(narrow, short, 3, frozenset())[0]
    finally:
        engine.close()


def test_models_without_sliding_layers_have_no_window(llm):
    assert llm.sliding_window is None


def test_rows_joining_and_leaving_at_every_step_keep_their_tokens(llm, monkeypatch):
    """Rows of different lengths and caps arrive while others decode, with so little room in the batch cache
    that rows are moved, moved left at its edge and copied into new buffers: each row's tokens are still
    those of a full re-forward. The arrivals are scripted in the engine thread (row i is queued right after
    step i, so it joins before step i + 1), not left to when threads happen to run."""
    from lightning_latentseek.engine.batch_cache import BatchCache
    from lightning_latentseek.engine.batching import _Request

    monkeypatch.setattr(BatchCache, "min_room", 1)
    rows = prompts(llm, 8)
    caps = [40, 3, 31, 7, 24, 2, 17, 11]  # row 0 needs >= 8 steps (<= 5 tokens a step): all join while it decodes
    expected = [full_forward_greedy(llm, ids, cap, frozenset())[0] for ids, cap in zip(rows, caps)]
    engine = GenerationEngine(llm)
    requests = [_Request([Row(ids, cap, frozenset())]) for ids, cap in zip(rows, caps)]
    step, steps = engine._step, []

    def step_then_send_the_next_row():
        step()
        steps.append(not requests[0].done.is_set())  # is row 0 still decoding?
        if len(steps) < len(requests):
            engine._queue.put(requests[len(steps)])

    engine._step = step_then_send_the_next_row  # the engine thread calls it
    try:
        engine._queue.put(requests[0])
        with engine._lock:  # as generate() starts the engine thread
            engine._thread = threading.Thread(target=engine._serve, name="generation-engine", daemon=True)
            engine._thread.start()
        for request in requests:
            assert request.done.wait(60) and request.error is None
        assert [request.results[0].tokens for request in requests] == expected
        # one arrival per step: 8 joins (8 rebuilds at least), the second one outgrows the first buffers
        assert engine.stats["rows"] == 8 and engine.stats["rebuilds"] >= 8
        assert engine.stats["allocations"] >= 2 and engine.stats["moved_rows"] >= 1
        assert all(steps[:7])  # row 0 was still decoding when each of the others arrived
    finally:
        engine.close()
