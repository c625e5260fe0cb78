"""GradCuit's loop as its code runs it, re-written plainly for tests (nothing of lightning_latentseek is imported).

Source: github:Yuzhaoxin946/GradCuit at 8e143b5, ``src/gradcuit/gradcuit.py`` (G below; MIT). Every function
names the lines it follows. The model is a plain transformers causal LM (the tests use tiny random ones); the
hook, the no-cache teacher-forced forward and HF ``generate`` are used exactly where GradCuit uses them.

What GradCuit does, in order (G:283-518):
  0. y0 = greedy answer after [prompt, prefix] with no hook; init = hidden_states[L] at the prefix positions of a
     separate no-cache forward of [prompt, prefix] (L = 0: the prefix's embeddings); delta = zeros_like(init),
     the only parameter; R0 = reward(y0).
  1. for step in 1..K: stop if R > threshold; stop if the target ids are empty;
     loss = -R * sum_t log p(y_t) over EVERY answer token, teacher-forced with use_cache=False over
     [prompt, prefix, y[:-1]] with the prefix's block-L inputs replaced by init + delta; backward;
     optional clip; optimizer step; regenerate greedily from [prompt, prefix] with the hook (HF generate:
     the hook acts on the prefill only); R = reward(new answer).
  2. return the last answer.
Targets: step 1 re-tokenises y0's decoded text (no EOS; `targets="text"`, the default); later steps use the
generated ids (with EOS when generation stopped there).

Options that are not GradCuit's code (for the harness's fixes and controls; defaults are GradCuit's):
``targets="ids"`` uses y0's generated ids at step 1 too; ``delta_dtype=torch.float32`` keeps delta and the sum
init + delta in fp32 (GradCuit sums in the model's dtype, bf16 in its runs); ``step="random"`` replaces the
backward and optimizer step with a Gaussian move of the norm of Adam's first step (lr * sqrt(numel)).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import torch

Reward = Callable[[str, str], float]  # reward(question, answer_text) -> R in {-1, 0} (GradCuit's get_reward[0])


def decoder_layers(model):
    """G:74-88: model.model.layers, else model.model.decoder.layers, else model.transformer.h."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h"):
        value = model
        for name in path.split("."):
            value = getattr(value, name, None)
            if value is None:
                break
        if value is not None and len(value) > 0:
            return value
    raise ValueError("no decoder layers")


def prefix_hook(state: torch.Tensor, start: int, end: int):
    """G:108-141: the forward pre-hook (with kwargs) of block L. The block's input hidden states (positional or
    the ``hidden_states`` keyword) are cloned and positions [start, end) REPLACED by `state` (1 or B rows), cast
    to the block's dtype and device. Inputs shorter than `end` positions (cached decoding steps) pass untouched."""

    def hook(_module, args, kwargs):
        kwargs = kwargs or {}
        hidden = args[0] if args else kwargs.get("hidden_states")
        if hidden is None or hidden.ndim < 3 or hidden.size(1) < end:
            return args, kwargs
        replacement = state.to(device=hidden.device, dtype=hidden.dtype)
        if replacement.size(0) != hidden.size(0):
            if replacement.size(0) != 1:
                raise ValueError("state batch size must be 1 or match the batch")
            replacement = replacement.expand(hidden.size(0), -1, -1)
        updated = hidden.clone()
        updated[:, start:end, :] = replacement
        if args:
            return (updated, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": updated}

    return hook


@contextmanager
def prefix_override(model, layer: int, state: torch.Tensor, start: int, end: int):
    """G:96-147: the hook is registered on block `layer` for the duration of the block, then removed.
    Layer 0 installs nothing (GradCuit feeds the embeddings through ``inputs_embeds`` instead)."""
    if layer == 0:
        yield
        return
    handle = decoder_layers(model)[layer].register_forward_pre_hook(prefix_hook(state, start, end), with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def pad_id(tokenizer) -> int:
    """G:55-59: pad, else EOS, else 0."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def encode_prompt(tokenizer, prompt_text: str) -> torch.Tensor:
    """G:288-292 / 340-344: the chat-formatted prompt text, tokenised without special tokens (1, p)."""
    return tokenizer([prompt_text], return_tensors="pt", add_special_tokens=False).input_ids


def encode_prefix(tokenizer, prefix_text: str) -> torch.Tensor:
    """G:61-65 (+ 293 unsqueeze): the inserted prefix text without special tokens (1, P)."""
    ids = tokenizer.encode(prefix_text, add_special_tokens=False)
    if not ids:
        raise ValueError("the prefix text tokenises to nothing")
    return torch.tensor([ids], dtype=torch.long)


@torch.no_grad()
def initial_prefix_state(model, prompt_ids: torch.Tensor, prefix_ids: torch.Tensor, layer: int) -> torch.Tensor:
    """G:169-206: layer 0 -> the prefix's input embeddings; else hidden_states[layer] (the input of block `layer`)
    at the prefix positions of ONE no-cache forward of [prompt, prefix]. Shape (1, P, d), the model's dtype."""
    if layer == 0:
        return model.get_input_embeddings()(prefix_ids).detach()
    ids = torch.cat([prompt_ids, prefix_ids], dim=1)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True, use_cache=False)
    p = prompt_ids.shape[1]
    return out.hidden_states[layer][:, p:p + prefix_ids.shape[1], :].detach()


def hf_greedy(model, ids: torch.Tensor | None, max_new_tokens: int, pad: int,
              inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """G:246-253 / 273-280 / 299-306: HF ``generate``, greedy, with the KV cache; returns the NEW ids (1, n)."""
    source = ids if ids is not None else inputs_embeds
    mask = torch.ones(source.shape[:2], dtype=torch.long)
    kwargs = {"input_ids": ids} if ids is not None else {"inputs_embeds": inputs_embeds}
    out = model.generate(**kwargs, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         return_dict_in_generate=True, pad_token_id=pad)
    # with input_ids the sequences start with the input (G:281, 307-309); with inputs_embeds they hold only the
    # new tokens (G:457)
    return out.sequences[:, ids.shape[1]:] if ids is not None else out.sequences


@torch.no_grad()
def reforward_greedy(model, ids: torch.Tensor, max_new_tokens: int, stop_ids: set[int]) -> torch.Tensor:
    """The same greedy decoding without a cache: the whole sequence re-run for every token (an independent check
    of `hf_greedy` + the hook's decoding-step rule; with it the hook replaces the prefix at every step)."""
    seq, out = ids, []
    for _ in range(max_new_tokens):
        token = int(model(input_ids=seq, use_cache=False).logits[0, -1].argmax())
        out.append(token)
        seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
        if token in stop_ids:
            break
    return torch.tensor([out], dtype=torch.long)


def answer_log_probs(model, prompt_ids: torch.Tensor, prefix_ids: torch.Tensor, targets: torch.Tensor,
                     state: torch.Tensor, layer: int) -> torch.Tensor:
    """G:400-440: log p(y_t) of every target token (1, n), teacher-forced, no cache, the prefix state injected.
    Layer 0: [embed(prompt), state, embed(y[:-1])] as inputs_embeds; else ids [prompt, prefix, y[:-1]] with the
    hook on block `layer`. Logits from position prefix_end - 1 on predict y_0, y_1, ..."""
    if layer == 0:
        embed = model.get_input_embeddings()
        head = torch.cat([embed(prompt_ids).detach(), state], dim=1)
        inputs = torch.cat([head, embed(targets[:, :-1]).detach()], dim=1)
        logits = model(inputs_embeds=inputs, use_cache=False).logits
        start = head.size(1) - 1
    else:
        ids = torch.cat([prompt_ids, prefix_ids, targets[:, :-1]], dim=1)
        p, end = prompt_ids.shape[1], prompt_ids.shape[1] + prefix_ids.shape[1]
        with prefix_override(model, layer, state, p, end):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        start = end - 1
    logits = logits[:, start:start + targets.size(1), :]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def prefix_state(init: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """G:367-369: the injected state init + delta, summed in delta's dtype (GradCuit: the model's, bf16 in its
    runs); a 2-D delta (Muon's shape) gets its batch axis back."""
    return init.to(delta.dtype) + (delta.unsqueeze(0) if delta.dim() == 2 else delta)


def build_optimizer(name: str, params, lr: float):
    """G:153-167: torch's Adam / SGD with defaults, torch.optim.Muon where it exists."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "muon":
        return torch.optim.Muon(params, lr=lr)
    raise ValueError(name)


@dataclass
class Trace:
    """What one problem's loop produced: per iteration (baseline first) the answer ids and text and its reward;
    per update the targets it was computed on, the loss and the state after the step."""

    prompt_ids: torch.Tensor
    prefix_ids: torch.Tensor
    init: torch.Tensor
    answer_ids: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    targets: list[list[int]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    states: list[torch.Tensor] = field(default_factory=list)
    stop: str = "max_steps"

    @property
    def answer(self) -> str:
        return self.texts[-1]


def run_gradcuit(model, tokenizer, prompt_text: str, question: str, reward: Reward, *,
                 prefix_text: str = "Let's think about this problem and solve it step by step.", layer: int,
                 lr: float = 1e-3, optimizer: str = "adam", max_steps: int = 10, max_new_tokens: int = 2048,
                 grad_clip: float = 0.0, threshold: float = -0.2, decoding: str = "generate",
                 targets: str = "text", delta_dtype: torch.dtype | None = None, step: str = "gradient",
                 generator: torch.Generator | None = None) -> Trace:
    """One problem, G:283-518 in order (see the module docstring). `decoding` ``generate`` is GradCuit's HF
    generate; ``reforward`` decodes without a cache (same tokens up to float noise)."""
    model.requires_grad_(False)  # G:23
    if layer >= len(decoder_layers(model)):  # G:47-53
        raise ValueError("layer out of range")
    pad = pad_id(tokenizer)
    stop_ids = {tokenizer.eos_token_id}
    prompt_ids = encode_prompt(tokenizer, prompt_text)
    prefix_ids = encode_prefix(tokenizer, prefix_text)
    p, end = prompt_ids.shape[1], prompt_ids.shape[1] + prefix_ids.shape[1]
    full = torch.cat([prompt_ids, prefix_ids], dim=1)

    def greedy(state: torch.Tensor | None) -> torch.Tensor:
        if state is None:  # G:299-306: the baseline, no hook
            if decoding == "generate":
                return hf_greedy(model, full, max_new_tokens, pad)
            return reforward_greedy(model, full, max_new_tokens, stop_ids)
        if layer == 0:  # G:233-253, 452-457
            inputs = torch.cat([model.get_input_embeddings()(prompt_ids), state], dim=1)
            with torch.no_grad():
                return hf_greedy(model, None, max_new_tokens, pad, inputs_embeds=inputs)
        with prefix_override(model, layer, state, p, end):  # G:255-281
            if decoding == "generate":
                with torch.no_grad():
                    return hf_greedy(model, full, max_new_tokens, pad)
            return reforward_greedy(model, full, max_new_tokens, stop_ids)

    # G:283-317: y0 and init
    y0 = greedy(None)
    text = tokenizer.decode(y0[0], skip_special_tokens=True)
    init = initial_prefix_state(model, prompt_ids, prefix_ids, layer)
    trace = Trace(prompt_ids, prefix_ids, init, [y0[0].tolist()], [text])
    # G:356-369: delta = zeros_like(init) ((P, d) for Muon); the state is init + delta in delta's dtype
    dtype = delta_dtype or init.dtype
    muon = optimizer == "muon"
    delta = torch.nn.Parameter(torch.zeros(init.shape[1:] if muon else init.shape, dtype=dtype))
    opt = build_optimizer(optimizer, [delta], lr) if step == "gradient" else None

    def state() -> torch.Tensor:
        return prefix_state(init, delta)

    # G:371-376: step-1 targets: the decoded text re-tokenised (no EOS) unless targets == "ids"
    ids = (tokenizer.encode(text, return_tensors="pt", add_special_tokens=False) if targets == "text" else y0)
    current = float(reward(question, text))  # G:379
    trace.rewards.append(current)
    for _ in range(max_steps):  # G:384
        if current > threshold:  # G:385-395
            trace.stop = "reward_above_threshold"
            break
        if ids.size(1) == 0:  # G:396-398
            trace.stop = "empty"
            break
        trace.targets.append(ids[0].tolist())
        if step == "gradient":
            opt.zero_grad()  # G:400
            log_probs = answer_log_probs(model, prompt_ids, prefix_ids, ids, state(), layer)
            r = torch.as_tensor(current, dtype=log_probs.dtype)  # G:441-445
            loss = -(r * log_probs.sum())  # G:446
            loss.backward()  # G:447
            if grad_clip > 0:  # G:448-449
                torch.nn.utils.clip_grad_norm_([delta], grad_clip)
            opt.step()  # G:450
            trace.losses.append(loss.item())
        else:  # the random control (ours): a Gaussian move of the norm of Adam's first step
            with torch.no_grad():
                noise = torch.randn(delta.shape, generator=generator, dtype=torch.float32)
                delta.add_((noise * (lr * math.sqrt(delta.numel()) / noise.norm())).to(delta.dtype))
        with torch.no_grad():
            current_state = state().detach()
        trace.states.append(current_state)
        ids = greedy(current_state)  # G:452-463: the raw generated ids are the next targets
        text = tokenizer.decode(ids[0], skip_special_tokens=True)  # G:464-467
        current = float(reward(question, text))  # G:468-471
        trace.answer_ids.append(ids[0].tolist())
        trace.texts.append(text)
        trace.rewards.append(current)
    return trace  # G:509-518: the last answer
