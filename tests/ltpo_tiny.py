"""Tiny in-process setups for the LTPO faithfulness check: one byte-level tokenizer per chat-template family
LTPO's ``build_inputs`` knows (ltpo2025/LTPO ltpo.py:18-28), a tiny random Llama sized to it, and the cases
that `benchmarks/golden_ltpo.py` runs LTPO's original functions on (golden values in
``tests/data/ltpo_golden.json``) and `tests/test_ltpo_reference.py` runs `reference_ltpo` on.

Families (what LTPO picks by the model *name*):

* ``qwen`` (ChatML, as Qwen2.5 and SmolLM2): the project's tiny tokenizer (as `tiny.tiny_tokenizer`), whose
  ``<|endoftext|>`` is one special token and whose template ends a turn with ``<|im_end|>`` + ``\\n``;
* ``llama`` (Llama 3): ``<|reserved_special_token_i|>`` placeholders, a turn ends with ``<|eot_id|>``;
* ``mistral`` (Mistral v0.3 style, ``[/INST]`` one control token): ``<unk>`` placeholders, no appended header.
"""

from __future__ import annotations

import torch

SEED = 42  # LTPO main.py:32 default, set with torch.manual_seed (main.py:57-70) right before the problem
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
N_RESERVED = 16

CHATML_TEMPLATE = (  # the same as tests/tiny.py's
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + '[/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)


def _byte_tokenizer(specials: list[str], bos: str, eos: str, pad: str, template: str, unk: str | None = None):
    """Byte-level BPE without merges (every byte a token, ids 0-255), then `specials` from id 256 on."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    extra = {"unk_token": unk} if unk else {}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad, **extra)
    tokenizer.chat_template = template
    return tokenizer


def family_tokenizer(family: str):
    """The tiny tokenizer of a family; in every family id 257 is the end-of-turn token (the tiny model's EOS)."""
    if family == "qwen":  # 256 <|im_start|>, 257 <|im_end|>, 258 <|endoftext|> (tests/tiny.py's tokenizer)
        return _byte_tokenizer(["<|im_start|>", "<|im_end|>", "<|endoftext|>"], "<|im_start|>", "<|im_end|>",
                               "<|endoftext|>", CHATML_TEMPLATE)
    if family == "llama":
        specials = ["<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"]
        specials += [f"<|reserved_special_token_{i}|>" for i in range(N_RESERVED)]
        return _byte_tokenizer(specials, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", LLAMA3_TEMPLATE)
    if family == "mistral":
        specials = ["<s>", "</s>", "<unk>", "[INST]", "[/INST]"]
        return _byte_tokenizer(specials, "<s>", "</s>", "<unk>", MISTRAL_TEMPLATE, unk="<unk>")
    raise ValueError(family)


def family_model(family: str, dtype: torch.dtype = torch.float32):
    """A tiny random Llama (seed 0, transformers' own "sdpa" attention: nothing of the project's engine) whose
    vocabulary covers the family's tokenizer; eval mode, as LTPO's main.py:103. Built here, not with tests/tiny.py,
    so that the golden values do not move when the project's tiny models change."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(family_tokenizer(family)), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=256, eos_token_id=257, pad_token_id=258,
                         attn_implementation="sdpa", initializer_range=0.3, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model


# Each case: the tokenizer family, the model name LTPO dispatches on, the dtype, and LTPO generate()'s keyword
# arguments beyond its main.py defaults (N 10, sigma 0.1, decay 0.99, lr 0.03, K 10, top_k 10, ZO, best on).
MAIN_DEFAULTS = dict(num_thought_tokens=10, lr=0.03, sigma=0.1, sigma_decay=0.99, max_rl_steps=10,
                     reward_threshold=-1, use_auto_grad=False, disable_conf_reward=False, disable_best_reward=False,
                     top_k=10, data_name="openai/gsm8k", verbose=1)
MAX_NEW_TOKENS = 24  # LTPO's 4096 (main.py:25) is cut for a tiny random model that rarely ends a turn

CASES = {
    "qwen_zo": dict(family="qwen", model_name="tiny-qwen", dtype="float32"),
    "llama_zo": dict(family="llama", model_name="tiny-llama", dtype="float32"),
    "mistral_zo": dict(family="mistral", model_name="tiny-mistral", dtype="float32"),
    "qwen_autograd": dict(family="qwen", model_name="tiny-qwen", dtype="float32", use_auto_grad=True),
    "qwen_last": dict(family="qwen", model_name="tiny-qwen", dtype="float32", disable_best_reward=True),
    "qwen_zo_bf16": dict(family="qwen", model_name="tiny-qwen", dtype="bfloat16"),
    "llama_autograd_bf16": dict(family="llama", model_name="tiny-llama", dtype="bfloat16", use_auto_grad=True,
                                num_thought_tokens=4, max_rl_steps=6),
}
# Scripted rewards: get_confidence replaced by `ScriptedConfidence` (the same in-place slot write, then the next value
# of a list as a 0-dim tensor of the logits' dtype), so the update arithmetic, the best-step rule (best_reward = 0,
# strict >, ties keep the earlier step), the post-update best state and the threshold are checked exactly, whatever
# the CPU's matmul kernels (only elementwise arithmetic and the seeded noise are involved).
SCRIPTED = {
    "ties_bf16": dict(family="qwen", model_name="tiny-qwen", dtype="bfloat16", num_thought_tokens=3, max_rl_steps=6,
                      values=[3.3125, 3.265625, 3.3125, 3.359375, 3.359375, 3.25]),
    "never_above_zero_fp32": dict(family="llama", model_name="tiny-llama", dtype="float32", num_thought_tokens=2,
                                  max_rl_steps=3, values=[0.0, -0.5, 0.0]),
    "threshold_fp32": dict(family="mistral", model_name="tiny-mistral", dtype="float32", num_thought_tokens=2,
                           max_rl_steps=5, reward_threshold=3.0, values=[2.5, 3.5, 2.0, 4.0, 1.0]),
    "autograd_ties_bf16": dict(family="llama", model_name="tiny-llama", dtype="bfloat16", num_thought_tokens=2,
                               max_rl_steps=4, use_auto_grad=True, values=[1.5, 2.0, 2.0, 1.0]),
}


class ScriptedConfidence:
    """Stands in for get_confidence: writes the candidate into the slots in place (ltpo.py:109), then returns the
    next scripted value as a 0-dim tensor of the model's dtype (as LTPO's reward is); in autograd mode the value is
    tied to the candidate (value + 0 * sum) so that backward reaches H with a zero gradient."""

    def __init__(self, values, dtype):
        self.values, self.dtype, self.calls = list(values), dtype, 0

    def __call__(self, model, inputs, thought_idx, thought_hidden_states, k=10):
        inputs["inputs_embeds"][0, thought_idx[0]:thought_idx[1]] = thought_hidden_states
        value = torch.tensor(self.values[self.calls], dtype=self.dtype)
        self.calls += 1
        if thought_hidden_states.requires_grad:
            value = value + 0 * thought_hidden_states.sum().to(self.dtype)
        return value


# build_inputs alone, for the other prompt variants (ltpo.py:29-75)
PROMPT_CASES = {
    "math": dict(family="qwen", model_name="tiny-qwen", data_name="HuggingFaceH4/MATH-500", num_thought_tokens=3),
    "code": dict(family="llama", model_name="tiny-llama", data_name="cruxeval", num_thought_tokens=2),
    "strategyqa": dict(family="mistral", model_name="tiny-mistral", data_name="strategyqa", num_thought_tokens=4),
    "date": dict(family="qwen", model_name="tiny-qwen", data_name="date_understanding", num_thought_tokens=5),
}


def case_kwargs(case: dict) -> dict:
    """LTPO generate()'s keyword arguments for a case (without tokenizer, model, reward model and question)."""
    extra = {k: v for k, v in case.items() if k not in ("family", "dtype", "values")}
    return {**MAIN_DEFAULTS, "max_new_tokens": MAX_NEW_TOKENS, **extra}
