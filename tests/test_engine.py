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

    from lightning_latentseek.engine.attention import GQA_SDPA, gqa_sdpa

    assert llm.model.config._attn_implementation == GQA_SDPA
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
    from tiny import tiny_tokenizer

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=window, bos_token_id=256,
                           eos_token_id=257, pad_token_id=258, attn_implementation="sdpa", initializer_range=0.3)
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
    those of a full re-forward."""
    from lightning_latentseek.engine.batch_cache import BatchCache

    monkeypatch.setattr(BatchCache, "min_room", 1)
    rows = prompts(llm, 8)
    caps = [3, 31, 7, 24, 2, 17, 40, 11]
    expected = [full_forward_greedy(llm, ids, cap, frozenset())[0] for ids, cap in zip(rows, caps)]
    engine = GenerationEngine(llm)
    got: dict[int, list[int]] = {}

    def call(i):
        for _ in range(i % 3):  # arrive at different steps
            engine.generate([Row(rows[0], 2, frozenset())])
        got[i] = engine.generate([Row(rows[i], caps[i], frozenset())])[0].tokens

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [got[i] for i in range(8)] == expected
        assert engine.stats["rebuilds"] >= 8 and engine.stats["allocations"] >= 2 and engine.stats["moved_rows"] >= 1
    finally:
        engine.close()
