"""The engine's device-dependent constants (`engine.tuning`): a CPU keeps the values measured on CPUs, a GPU gets
its own (checked without a GPU: only the device's type is read), overrides, and what each value does."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch

from lightning_latentseek.engine import GenerationEngine, Row, tuning
from lightning_latentseek.engine.batching import _Live, _Request
from lightning_latentseek.engine.tuning import EngineTuning, defaults_for, tuning_for


def values(t: EngineTuning) -> tuple:
    return t.draft_budget, t.drop_finished, t.attention_plans, t.query_chunk, t.group_call_cells, t.max_row_groups


def test_a_cpu_keeps_the_values_measured_on_cpus():
    for device in ("cpu", torch.device("cpu")):
        assert values(defaults_for(device)) == (32, Fraction(1, 3), True, 256, 512, 4)
    assert tuning_for("cpu") == defaults_for("cpu")  # no override in force


def test_a_gpu_gets_the_gpu_values_without_needing_one():
    for device in ("cuda", "cuda:1", torch.device("cuda", 0)):
        assert values(defaults_for(device)) == (256, Fraction(1, 2), False, 256, 131072, 4)
        assert tuning_for(device) == defaults_for(device)


def test_an_override_changes_one_device_type_for_a_block_then_goes():
    with tuning.overridden("cuda", draft_budget=None, drop_finished=Fraction(1, 3)) as inside:
        assert inside.draft_budget is None and tuning_for("cuda:0").drop_finished == Fraction(1, 3)
        assert tuning_for("cuda").attention_plans is False  # the fields not named keep the device's default
        assert tuning_for("cpu").draft_budget == 32
    assert tuning_for("cuda").draft_budget == 256 and tuning_for("cuda").drop_finished == Fraction(1, 2)
    with pytest.raises(TypeError, match="unknown tuning field"):
        tuning.override("cpu", draft_tokens=2)
    with pytest.raises(ValueError, match="drop_finished"):
        tuning.override("cpu", drop_finished=0)
    with pytest.raises(ValueError, match="draft_budget"):
        tuning.override("cpu", draft_budget=0)
    assert tuning_for("cpu") == defaults_for("cpu")  # a rejected override changes nothing


def _repeating_rows(n: int) -> list[_Live]:
    """Rows whose last three tokens occurred before, followed by 4 5 6 1 2: a draft of up to 4 tokens each."""
    request = _Request([Row([1, 2, 3, 4, 5, 6, 1, 2, 3], 50, frozenset()) for _ in range(n)])
    return [_Live(row, request, i) for i, row in enumerate(request.rows)]


def test_the_draft_budget_cuts_drafts_on_a_cpu_and_hardly_on_a_gpu():
    on = {"cpu": SimpleNamespace(device=torch.device("cpu"), sliding_window=None),
          "cuda": SimpleNamespace(device=torch.device("cuda"), sliding_window=None)}  # only the device is read
    cpu = GenerationEngine(on["cpu"], static_cache=False)
    gpu = GenerationEngine(on["cuda"], static_cache=False)
    assert (cpu.draft_budget, gpu.draft_budget) == (32, 256)
    assert cpu._drafts(_repeating_rows(8)) == [[4, 5, 6]] * 8  # 32 // 8 - 1 = 3 drafts a row
    assert cpu._drafts(_repeating_rows(32)) == [[]] * 32  # 32 rows fill the CPU's budget: no drafts
    assert gpu._drafts(_repeating_rows(32)) == [[4, 5, 6, 1]] * 32  # 256 // 32 - 1 = 7: all 4 drafts
    assert gpu._drafts(_repeating_rows(64)) == [[4, 5, 6]] * 64  # 256 // 64 - 1 = 3
    unlimited = GenerationEngine(on["cpu"], static_cache=False, tuning=EngineTuning(
        draft_budget=None, drop_finished=Fraction(1, 3), attention_plans=True, query_chunk=256, group_call_cells=512,
        max_row_groups=4))
    assert unlimited._drafts(_repeating_rows(64)) == [[4, 5, 6, 1]] * 64
    with tuning.overridden("cpu", draft_budget=16):
        assert GenerationEngine(on["cpu"], static_cache=False)._drafts(_repeating_rows(8)) == [[4]] * 8


@pytest.mark.parametrize("share, rows_left", [(tuning.CPU.drop_finished, 2), (tuning.GPU.drop_finished, 3)])
def test_finished_rows_leave_the_batch_at_the_device_s_share(llama, share, rows_left):
    """One of three rows finishes: a third (the CPU's share) rebuilds the batch without it, a half (the GPU's)
    lets it ride along."""
    engine = GenerationEngine(llama, draft_tokens=0, tuning=EngineTuning(
        draft_budget=32, drop_finished=share, attention_plans=True, query_chunk=256, group_call_cells=512,
        max_row_groups=4))
    ids = [llama.encode_chat([{"role": "user", "content": "x" * (i + 1)}]) for i in range(3)]
    request = _Request([Row(i, cap, frozenset()) for i, cap in zip(ids, (2, 9, 9))])
    engine._queue.put(request)
    engine._admit(block=False)
    engine._step()  # the row of cap 2 gets its second token: finished
    assert len(request.results[0].tokens) == 2 and request.left == 2
    assert len(engine._rows) == rows_left
    assert sum(live.done for live in engine._rows) == rows_left - 2  # riding along, or gone


def test_attention_plans_follow_the_device_s_tuning(llama, monkeypatch):
    """On a CPU `gqa_sdpa` packs a masked multi-token GQA query itself; with plans off (a GPU's default) it hands
    the call to transformers' SDPA. The same result either way."""
    from lightning_latentseek.engine import attention

    calls = []
    original = attention.sdpa_attention_forward

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", spy)
    module = llama.body.layers[0].self_attn
    assert module.num_key_value_groups == 2
    torch.manual_seed(4)
    mask = torch.ones(2, 1, 3, 10, dtype=torch.bool).tril(diagonal=7)
    mask[1, ..., :2] = False  # left padding
    query, key, value = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 10, 8), torch.randn(2, 2, 10, 8)
    planned, _ = attention.gqa_sdpa(module, query, key, value, mask, scaling=0.3)
    assert calls == []
    with tuning.overridden("cpu", attention_plans=False):
        handed, _ = attention.gqa_sdpa(module, query, key, value, mask, scaling=0.3)
    assert calls == [1]
    torch.testing.assert_close(planned, handed)
