"""The plain re-implementation of GradCuit's loop (tests/reference_gradcuit.py) against hand-derived facts on tiny
random models: where the hook writes, when it stays out, what a zero offset changes (nothing), the loss by an
independent formula, the step-1 targets, the loop's order and stops, the bf16 sum, Muon's shape, layer 0, and the
random control's step. `--method gradcuit` is checked against this reference (phase 2)."""

from __future__ import annotations

import math

import pytest
import torch

import reference_gradcuit as ref
from tiny import tiny_model, tiny_tokenizer

EOS = 257
QUESTION = "What is 2 + 3?"
LAYER = 2
PREFIX = "Let's think."


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def prompt_text(tok):
    return tok.apply_chat_template([{"role": "system", "content": "Please reason step by step, and put your final "
                                                                  "answer within \\boxed{}."},
                                    {"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True)


def llama(seed: int = 0, dtype=torch.float32):
    return tiny_model("llama", seed=seed, layers=4).to(dtype)


def eos_model(seed: int = 3):
    """A tiny Qwen2 (untied head) whose EOS row of lm_head is a large random vector: its answers end at EOS after a
    few tokens, so the step-1 targets (re-tokenised text) can be told from the generated ids (with EOS)."""
    model = tiny_model("qwen2", seed=seed, layers=4)
    with torch.no_grad():
        w = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(seed))
        model.lm_head.weight[EOS] = w / w.norm() * 2.0 * model.lm_head.weight.norm(dim=1).mean()
    return model


class Scripted:
    """reward(question, text): the scripted values in order (the last repeats); records the texts it judged."""

    def __init__(self, *values):
        self.values, self.texts = list(values), []

    def __call__(self, question, text):
        assert question == QUESTION
        self.texts.append(text)
        return self.values[min(len(self.texts) - 1, len(self.values) - 1)]


def ids_of(tok, prompt_text):
    prompt = ref.encode_prompt(tok, prompt_text)
    prefix = ref.encode_prefix(tok, PREFIX)
    return prompt, prefix, prompt.shape[1], prompt.shape[1] + prefix.shape[1]


def block_inputs(model, ids, within=None):
    """The input hidden states of every decoder block for one no-cache forward (`within`: a context manager
    entered first, so its hook runs before the recorders); also returns the logits."""
    seen = {}

    def recorder(i):
        def hook(_module, args, kwargs):
            seen[i] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        return hook

    context = within if within is not None else ref.prefix_override(model, 0, None, 0, 0)
    with context, torch.no_grad():
        handles = [layer.register_forward_pre_hook(recorder(i), with_kwargs=True)
                   for i, layer in enumerate(ref.decoder_layers(model))]
        try:
            logits = model(input_ids=ids, use_cache=False).logits
        finally:
            for handle in handles:
                handle.remove()
    return seen, logits


# ------------------------------------------------------------------------------------ the hook
def test_hidden_states_index_is_the_input_of_that_block(tok, prompt_text):
    """GradCuit reads init from hidden_states[L] (G:204-206) and writes at block L's input (G:143): the same place."""
    model = llama()
    prompt, prefix, _, _ = ids_of(tok, prompt_text)
    ids = torch.cat([prompt, prefix], dim=1)
    seen, _ = block_inputs(model, ids)
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
    assert len(hidden) == 5  # embeddings + 4 blocks
    for i in range(4):
        assert torch.equal(hidden[i], seen[i])
    assert torch.equal(hidden[0], model.get_input_embeddings()(ids))


def test_hook_replaces_exactly_the_prefix_positions_at_block_L(tok, prompt_text):
    model = llama()
    prompt, prefix, p, end = ids_of(tok, prompt_text)
    ids = torch.cat([prompt, prefix, torch.tensor([[65, 66, 67]])], dim=1)
    state = torch.full((1, end - p, model.config.hidden_size), 7.0)
    plain, plain_logits = block_inputs(model, ids)
    hooked, hooked_logits = block_inputs(model, ids, ref.prefix_override(model, LAYER, state, p, end))
    for i in range(LAYER):  # below L: untouched
        assert torch.equal(hooked[i], plain[i])
    assert torch.equal(hooked[LAYER][:, p:end], state)  # at L: the prefix positions are the state...
    assert torch.equal(hooked[LAYER][:, :p], plain[LAYER][:, :p])  # ...and nothing else changed
    assert torch.equal(hooked[LAYER][:, end:], plain[LAYER][:, end:])
    assert torch.allclose(hooked[LAYER + 1][:, :p], plain[LAYER + 1][:, :p], atol=1e-6)  # causal: the prompt is blind
    assert not torch.allclose(hooked[LAYER + 1][:, p:], plain[LAYER + 1][:, p:], atol=1e-3)
    assert torch.allclose(hooked_logits[:, :p], plain_logits[:, :p], atol=1e-5)
    assert not torch.allclose(hooked_logits[:, end:], plain_logits[:, end:], atol=1e-3)
    assert not ref.decoder_layers(model)[LAYER]._forward_pre_hooks  # removed on leaving


def test_hook_leaves_short_inputs_alone_and_reads_the_keyword_form():
    state = torch.ones(1, 3, 4)
    hook = ref.prefix_hook(state, 2, 5)
    short = torch.zeros(1, 4, 4)  # fewer than 5 positions: a cached decoding step
    args, kwargs = hook(None, (short, "rest"), {"x": 1})
    assert args[0] is short and args[1] == "rest" and kwargs == {"x": 1}
    long = torch.zeros(2, 6, 4)
    (updated, rest), kwargs = hook(None, (long, "rest"), {})
    assert rest == "rest" and long.abs().sum() == 0  # cloned, not written in place
    assert updated[:, 2:5].eq(1).all() and updated[:, :2].eq(0).all() and updated[:, 5:].eq(0).all()  # 1 row -> 2
    args, kwargs = hook(None, (), {"hidden_states": torch.zeros(1, 6, 4), "y": 2})
    assert args == () and kwargs["y"] == 2 and kwargs["hidden_states"][:, 2:5].eq(1).all()
    with pytest.raises(ValueError):
        ref.prefix_hook(torch.ones(2, 3, 4), 2, 5)(None, (torch.zeros(3, 6, 4),), {})


def test_cached_generation_hooks_the_prefill_only_and_equals_full_reforwards(tok, prompt_text):
    """HF generate feeds [prompt, prefix] once, then one position per step: the hook acts on the first call only
    (G:121-122); the prefix's KV then carries the state. Decoding without a cache (the hook at every step) gives
    the same tokens."""
    model = llama()
    prompt, prefix, p, end = ids_of(tok, prompt_text)
    full = torch.cat([prompt, prefix], dim=1)
    init = ref.initial_prefix_state(model, prompt, prefix, LAYER)
    state = init + 3.0 * torch.randn(init.shape, generator=torch.Generator().manual_seed(1))
    lengths = []
    recorder = ref.decoder_layers(model)[LAYER].register_forward_pre_hook(
        lambda _m, args, kwargs: lengths.append((args[0] if args else kwargs["hidden_states"]).shape[1]),
        with_kwargs=True)
    try:
        with ref.prefix_override(model, LAYER, state, p, end):
            cached = ref.hf_greedy(model, full, 12, ref.pad_id(tok))
    finally:
        recorder.remove()
    assert lengths[0] == end and set(lengths[1:]) == {1} and len(lengths) == cached.shape[1]
    with ref.prefix_override(model, LAYER, state, p, end):
        uncached = ref.reforward_greedy(model, full, 12, {EOS})
    assert cached.tolist() == uncached.tolist()
    plain = ref.hf_greedy(model, full, 12, ref.pad_id(tok))
    assert cached.tolist() != plain.tolist()  # the state did reach the answer


# ------------------------------------------------------------------------------------ zero offset, loss, gradient
@pytest.mark.parametrize("layer", [0, LAYER])
def test_zero_offset_changes_nothing(tok, prompt_text, layer):
    model = llama()
    prompt, prefix, p, end = ids_of(tok, prompt_text)
    init = ref.initial_prefix_state(model, prompt, prefix, layer)
    if layer == 0:
        assert torch.equal(init, model.get_input_embeddings()(prefix))
    targets = torch.tensor([[72, 105, 33, EOS]])
    hooked = ref.answer_log_probs(model, prompt, prefix, targets, init, layer)
    with torch.no_grad():
        logits = model(input_ids=torch.cat([prompt, prefix, targets[:, :-1]], dim=1)).logits[0, end - 1:]
    plain = torch.log_softmax(logits, -1)[torch.arange(4), targets[0]]
    assert torch.allclose(hooked[0], plain, atol=1e-5)
    full = torch.cat([prompt, prefix], dim=1)
    trace = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(0.0), prefix_text=PREFIX, layer=layer,
                             max_new_tokens=16)
    with ref.prefix_override(model, layer, init, p, end):
        if layer == 0:
            inputs = torch.cat([model.get_input_embeddings()(prompt), init], dim=1)
            with torch.no_grad():
                hooked_answer = ref.hf_greedy(model, None, 16, ref.pad_id(tok), inputs_embeds=inputs)
        else:
            hooked_answer = ref.hf_greedy(model, full, 16, ref.pad_id(tok))
    assert hooked_answer[0].tolist() == trace.answer_ids[0]


def independent_log_probs(model, prompt, prefix, targets, state, layer, p, end):
    """log p(y_t) one target at a time: a forward of [prompt, prefix, y_<t] with the state injected, the last
    position's log-softmax at y_t (not `answer_log_probs`' slicing of one forward)."""
    total = []
    for t in range(targets.shape[1]):
        ids = torch.cat([prompt, prefix, targets[:, :t]], dim=1)
        with ref.prefix_override(model, layer, state, p, end), torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits[0, -1]
        total.append(float(torch.log_softmax(logits.double(), -1)[targets[0, t]]))
    return total


def test_loss_is_minus_R_times_the_summed_log_probs_of_every_answer_token(tok, prompt_text):
    model = llama()
    rewards = Scripted(-1.0, -1.0, -1.0)
    trace = ref.run_gradcuit(model, tok, prompt_text, QUESTION, rewards, prefix_text=PREFIX, layer=LAYER, lr=0.05,
                             max_steps=2, max_new_tokens=10)
    assert len(trace.losses) == 2 and len(rewards.texts) == 3
    _, prefix, p, end = ids_of(tok, prompt_text)
    states = [trace.init] + trace.states  # the state each loss was computed with (delta 0 at step 1)
    for k in range(2):
        targets = torch.tensor([trace.targets[k]])
        log_probs = independent_log_probs(model, trace.prompt_ids, prefix, targets, states[k], LAYER, p, end)
        assert len(log_probs) == len(trace.targets[k])  # every answer token, EOS included when present
        assert trace.losses[k] == pytest.approx(-(-1.0) * sum(log_probs), rel=1e-5)  # no baseline, no mean


def test_gradient_matches_finite_differences():
    """d loss / d delta by autograd against central differences along random directions (float64 weights; the
    model's RMSNorm still computes in float32, so the differences use a step of 0.03 on a unit direction)."""
    model = llama().double()
    prompt = torch.tensor([[60, 61, 62, 63, 64]])
    prefix = torch.tensor([[70, 71, 72]])
    targets = torch.tensor([[80, 81, 82, EOS]])
    init = ref.initial_prefix_state(model, prompt, prefix, LAYER)
    delta = torch.nn.Parameter(0.1 * torch.randn(init.shape, generator=torch.Generator().manual_seed(2),
                                                 dtype=torch.float64))

    def loss(d):
        return -(-1.0 * ref.answer_log_probs(model, prompt, prefix, targets, ref.prefix_state(init, d), LAYER).sum())

    loss(delta).backward()
    for seed in (10, 11, 12):
        v = torch.randn(delta.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        v /= v.norm()
        with torch.no_grad():
            numeric = (loss(delta + 0.03 * v) - loss(delta - 0.03 * v)) / 0.06
        assert (delta.grad * v).sum().item() == pytest.approx(numeric.item(), rel=1e-3)
    assert (delta.grad.abs().sum(-1) > 0).all()  # every prefix position gets a gradient


# ------------------------------------------------------------------------------------ targets and the loop
def test_step_one_targets_are_the_retokenised_text_without_eos(tok, prompt_text):
    model = eos_model()
    trace = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=0.1, max_steps=2, max_new_tokens=24)
    assert trace.answer_ids[0][-1] == EOS and trace.answer_ids[1][-1] == EOS
    assert trace.targets[0] == tok.encode(trace.texts[0], add_special_tokens=False)  # text -> ids again
    assert EOS not in trace.targets[0]
    assert trace.targets[1] == trace.answer_ids[1]  # step 2: the generated ids, EOS included
    fixed = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=0.1, max_steps=1, max_new_tokens=24, targets="ids")
    assert fixed.targets[0] == fixed.answer_ids[0]


def test_retokenised_targets_can_differ_from_the_generated_ids(tok, prompt_text):
    """A byte-level answer that is not valid UTF-8 decodes to replacement characters, which re-encode to other
    bytes: GradCuit's step-1 loss is then computed on tokens the model never generated."""
    trace = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             max_steps=1, max_new_tokens=24)
    assert "\ufffd" in trace.texts[0]
    assert trace.targets[0] != trace.answer_ids[0]
    assert trace.targets[0] == tok.encode(trace.texts[0], add_special_tokens=False)


@pytest.mark.parametrize("script, max_steps, updates, stop", [
    ((0.0,), 5, 0, "reward_above_threshold"),  # the baseline clears tau: no update, one reward
    ((-1.0, -1.0, 0.0), 5, 2, "reward_above_threshold"),
    ((-1.0,), 3, 3, "max_steps"),  # K updates, K + 1 rewards
    ((-0.2, 0.0), 5, 1, "reward_above_threshold"),  # R > tau is strict: -0.2 does not stop
])
def test_loop_order_and_stops(tok, prompt_text, script, max_steps, updates, stop):
    rewards = Scripted(*script)
    trace = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, rewards, prefix_text=PREFIX, layer=LAYER, lr=0.05,
                             max_steps=max_steps, max_new_tokens=8)
    assert len(trace.losses) == len(trace.states) == updates
    assert len(rewards.texts) == len(trace.texts) == len(trace.answer_ids) == updates + 1
    assert rewards.texts == trace.texts and trace.answer == trace.texts[-1]
    assert trace.stop == stop


def test_empty_target_ids_stop_the_loop(tok, prompt_text):
    """G:396-398: an empty answer (here: the first generated token is EOS, whose text is empty) ends the loop
    before any update."""
    model = llama()
    prompt, prefix, _, _ = ids_of(tok, prompt_text)
    with torch.no_grad():  # the EOS row of the (tied) head along the last prefix position's final hidden state
        last = model.model(input_ids=torch.cat([prompt, prefix], dim=1)).last_hidden_state[0, -1]
        model.lm_head.weight[EOS] = 100 * last / last.norm()
    trace = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             max_steps=3, max_new_tokens=8)
    assert trace.answer_ids == [[EOS]] and trace.texts == [""] and trace.stop == "empty" and not trace.losses


def test_generate_and_reforward_decoding_give_the_same_loop(tok, prompt_text):
    kwargs = dict(prefix_text=PREFIX, layer=LAYER, lr=0.3, max_steps=3, max_new_tokens=10)
    cached = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), **kwargs)
    uncached = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), decoding="reforward", **kwargs)
    assert cached.answer_ids == uncached.answer_ids
    assert cached.losses == pytest.approx(uncached.losses, rel=1e-5)
    assert len(set(map(tuple, cached.answer_ids))) > 1  # the updates changed the answer


# ------------------------------------------------------------------------------------ dtype, optimizers, control
def test_bf16_sum_rounds_a_small_step_away():
    """GradCuit sums init + delta in bf16 (G:369). A step of -0.001 (bf16: -0.00099945068359375) is below half
    an ulp of 0.75 (2^-9) and -2 (2^-7): those stay; 0.3 (bf16 0.30078125, half ulp 2^-10) moves a whole ulp."""
    init = torch.tensor([[[0.75, 0.3, -2.0, 0.01]]], dtype=torch.bfloat16)
    delta = torch.full((1, 1, 4), -0.001, dtype=torch.bfloat16)
    summed = ref.prefix_state(init, delta)
    assert summed.dtype == torch.bfloat16
    assert summed[0, 0].tolist() == [0.75, 0.298828125, -2.0, 0.009033203125]
    fp32 = ref.prefix_state(init, delta.float())
    assert fp32.dtype == torch.float32 and fp32[0, 0, 0].item() == pytest.approx(0.75 - 0.00099945068359375)


def test_bf16_model_first_adam_step_leaves_large_coordinates_stuck(tok, prompt_text):
    model = llama(dtype=torch.bfloat16)
    kwargs = dict(prefix_text=PREFIX, layer=LAYER, lr=1e-3, max_steps=1, max_new_tokens=6)
    bf16 = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), **kwargs)
    # |Adam's first step| ~ lr < half an ulp above 0.5 (at exactly 0.5 a step towards 0 lands on 0.498046875)
    large = bf16.init.abs() > 0.5
    assert bf16.init.dtype == torch.bfloat16 and large.any() and (~large).any()
    assert torch.equal(bf16.states[0][large], bf16.init[large])
    assert (bf16.states[0][~large] != bf16.init[~large]).any()
    fp32 = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), delta_dtype=torch.float32, **kwargs)
    moved = (fp32.states[0] != fp32.init.float())[large].float().mean().item()
    assert fp32.states[0].dtype == torch.float32 and moved > 0.9


def test_adam_first_step_moves_every_coordinate_by_lr(tok, prompt_text):
    trace = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=1e-3, max_steps=1, max_new_tokens=6)
    step = (trace.states[0] - trace.init).abs()
    assert step.max().item() == pytest.approx(1e-3, rel=1e-3) and step.median().item() == pytest.approx(1e-3, rel=1e-2)


def test_muon_takes_the_offset_as_a_matrix(tok, prompt_text):
    """torch.optim.Muon accepts 2-D parameters only, so GradCuit's delta is (P, d) for it (G:360-369)."""
    with pytest.raises(ValueError):
        torch.optim.Muon([torch.nn.Parameter(torch.zeros(1, 3, 4))])
    trace = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=0.02, optimizer="muon", max_steps=1, max_new_tokens=6)
    assert trace.states[0].shape == trace.init.shape
    assert (trace.states[0] != trace.init).any()


def test_sgd_step_is_lr_times_the_gradient(tok, prompt_text):
    model = llama()
    trace = ref.run_gradcuit(model, tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=0.01, optimizer="sgd", max_steps=1, max_new_tokens=6)
    delta = torch.nn.Parameter(torch.zeros_like(trace.init))
    targets = torch.tensor([trace.targets[0]])
    _, prefix, _, _ = ids_of(tok, prompt_text)
    (-(-1.0) * ref.answer_log_probs(model, trace.prompt_ids, prefix, targets, trace.init + delta, LAYER).sum()).backward()
    assert torch.allclose(trace.states[0] - trace.init, -0.01 * delta.grad, atol=5e-6)


def test_random_control_steps_have_the_norm_of_adams_first_step(tok, prompt_text):
    trace = ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(-1.0), prefix_text=PREFIX, layer=LAYER,
                             lr=1e-3, max_steps=3, max_new_tokens=6, step="random",
                             generator=torch.Generator().manual_seed(0))
    assert not trace.losses and len(trace.states) == 3
    numel = trace.init.numel()
    previous = trace.init
    for state in trace.states:
        assert (state - previous).norm().item() == pytest.approx(1e-3 * math.sqrt(numel), rel=1e-4)
        previous = state


def test_layer_out_of_range_is_refused(tok, prompt_text):
    with pytest.raises(ValueError):
        ref.run_gradcuit(llama(), tok, prompt_text, QUESTION, Scripted(0.0), layer=4, max_new_tokens=4)
