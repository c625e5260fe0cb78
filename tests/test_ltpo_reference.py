"""The LTPO reference (`reference_ltpo`) against golden values of LTPO's ORIGINAL functions.

``tests/data/ltpo_golden.json`` was written by ``benchmarks/golden_ltpo.py`` running ltpo2025/LTPO's own
``ltpo.py`` (commit 0863323) on the tiny models of ``ltpo_tiny.py``, seed 42 (see the file's ``patches`` for
what was changed to run it on a CPU). The reference is run here on the same models and seed and must give the
same prompts, slots, rewards per step, best step, final slot embeddings and final token ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import reference_ltpo as ref
from ltpo_tiny import (CASES, PROMPT_CASES, QUESTION, SCRIPTED, SEED, ScriptedConfidence, case_kwargs,
                       family_model, family_tokenizer)

GOLDEN = json.loads((Path(__file__).parent / "data" / "ltpo_golden.json").read_text())
FP32 = [name for name, case in CASES.items() if case["dtype"] == "float32"]
BF16 = [name for name, case in CASES.items() if case["dtype"] == "bfloat16"]
PLACEHOLDER = {"qwen": "<|endoftext|>", "llama": None, "mistral": "<unk>"}


def run_reference(case: dict, **override):
    tokenizer = family_tokenizer(case["family"])
    model = family_model(case["family"], getattr(torch, case["dtype"]))
    kwargs = {**case_kwargs(case), **override}
    kwargs.pop("disable_conf_reward")
    kwargs.pop("verbose")
    torch.manual_seed(SEED)
    return ref.generate(tokenizer, model, QUESTION, **kwargs)


def test_golden_file_is_from_the_original():
    assert GOLDEN["source"] == {"repository": "ltpo2025/LTPO", "commit": "0863323a1f106b90ba95ff66af904121c9a60f1b",
                                "files": ["ltpo.py"]}
    assert set(GOLDEN["cases"]) == set(CASES) and set(GOLDEN["scripted"]) == set(SCRIPTED)
    assert set(GOLDEN["prompts"]) == set(PROMPT_CASES)


@pytest.mark.parametrize("name", list(CASES) + list(PROMPT_CASES))
def test_prompt_and_slots(name):
    """LTPO's prompt text, the slots by its arithmetic, the appended assistant header (ltpo.py:7-100)."""
    case = CASES.get(name) or PROMPT_CASES[name]
    golden = GOLDEN["cases"][name] if name in CASES else GOLDEN["prompts"][name]
    kwargs = case_kwargs(case) if name in CASES else case
    tokenizer = family_tokenizer(case["family"])
    inputs, (s, e) = ref.build_inputs(tokenizer, kwargs["num_thought_tokens"], QUESTION, data_name=kwargs["data_name"],
                                      model_name=kwargs["model_name"])
    ids = inputs["input_ids"][0].tolist()
    assert ids == golden["input_ids"]
    assert [s, e] == golden["thought_idx"]
    assert inputs["attention_mask"][0].tolist() == [1] * len(ids)
    # the slots hold exactly the placeholders, and one (llama, mistral) or two (qwen) template tokens follow them
    slot_text = tokenizer.convert_ids_to_tokens(ids[s:e])
    n = kwargs["num_thought_tokens"]
    expected = [f"<|reserved_special_token_{i}|>" for i in range(n)] if case["family"] == "llama" \
        else [PLACEHOLDER[case["family"]]] * n
    assert slot_text == expected
    after = tokenizer.convert_ids_to_tokens(ids[e:e + 2])
    assert after[0] == {"qwen": "<|im_end|>", "llama": "<|eot_id|>", "mistral": "[/INST]"}[case["family"]]
    text = tokenizer.decode(ids)
    assert f"There are {n} special tokens that contain compressed latent reasoning information" in text


def test_prompt_is_ltpo_math_prompt_verbatim():
    """The math prompt, character for character (ltpo.py:59-75), for 2 placeholders of the qwen family."""
    tokenizer = family_tokenizer("qwen")
    inputs, _ = ref.build_inputs(tokenizer, 2, "What is 1 + 1?", data_name="openai/gsm8k", model_name="Qwen2.5")
    assert tokenizer.decode(inputs["input_ids"][0]) == (
        "<|im_start|>user\nSolve the following math problem efficiently and clearly:\n"
        "- For simple problems (2 steps or fewer):\nProvide a concise solution with minimal description.\n"
        "- For complex problems (3 steps or more):\nUse this step-by-step format:\n\n"
        "## Step 1: [Brief calculations]\n## Step 2: [Brief calculations]\n...\n"
        "IMPORTANT: Regardless of the approach, you MUST always put your final answer within \\boxed{}.\n\n"
        "PROBLEM: What is 1 + 1?\n\n"
        "There are 2 special tokens that contain compressed latent reasoning information that might be useful "
        "for your reasoning.\nIf these tokens are useful for your case, you can use them as reference. If these "
        "tokens are not useful for your case, you can ignore them and focus back to solving the problem.\n\n"
        "Here are the 2 special tokens: <|endoftext|><|endoftext|><|im_end|>\n<|im_start|>assistant\n")


def test_unknown_model_name_is_refused_as_the_original():
    with pytest.raises(ValueError, match="Unsupported model: SmolLM2-135M-Instruct"):
        ref.build_inputs(family_tokenizer("qwen"), 2, QUESTION, model_name="SmolLM2-135M-Instruct")


@pytest.mark.parametrize("name", FP32)
def test_fp32_run_matches_original(name):
    """Rewards per step, the best step, the slots handed to the final generation and its token ids (float32)."""
    golden = GOLDEN["cases"][name]
    response, best_reward, best_step, trace = run_reference(CASES[name])
    assert trace["thought_idx"] == golden["thought_idx"]
    assert trace["rewards"] == pytest.approx(golden["rewards"], rel=1e-5, abs=0)
    assert trace["candidate_sums"] == pytest.approx([st["candidate_sum"] for st in golden["steps"]], rel=1e-5, abs=1e-4)
    assert best_step == golden["best_step"]
    assert float(best_reward.detach()) == pytest.approx(golden["best_reward"], rel=1e-5)
    assert torch.allclose(trace["final_slot_embeds"].float(), torch.tensor(golden["final_slot_embeds"]),
                          rtol=1e-5, atol=1e-5)
    assert trace["output_ids"] == golden["output_ids"]
    assert response == golden["response"]


@pytest.mark.parametrize("name", BF16)
def test_bf16_run_matches_original_dtypes_and_rewards(name):
    """bf16: H, the injected slots and the reward stay bf16, the candidate is fp32 (ltpo.py:150-172); the rewards
    agree to one bf16 step (2**-6 between 2 and 4: matmul kernels differ between CPUs, so ties may move)."""
    golden = GOLDEN["cases"][name]
    assert {st["candidate_dtype"] for st in golden["steps"]} == {"float32"}
    assert {st["reward_dtype"] for st in golden["steps"]} == {"bfloat16"}
    assert golden["final_embeds_dtype"] == "bfloat16"
    _, best_reward, best_step, trace = run_reference(CASES[name])
    assert best_reward.dtype == torch.bfloat16 and trace["final_slot_embeds"].dtype == torch.bfloat16
    assert trace["rewards"] == pytest.approx(golden["rewards"], abs=2 ** -6)
    for value in trace["rewards"]:  # bf16 values between 2 and 4 are multiples of 2**-6
        assert value * 2 ** 6 == int(value * 2 ** 6)


@pytest.mark.parametrize("name", list(SCRIPTED))
def test_scripted_rewards_update_and_selection_match_original(name, monkeypatch):
    """With get_confidence scripted (ties, rewards <= 0, a threshold): the same steps run, the same best step and
    reward, and bit-identical slots for the final generation: H after the best step's update (ltpo.py:203-223)."""
    case, golden = SCRIPTED[name], GOLDEN["scripted"][name]
    dtype = getattr(torch, case["dtype"])
    scripted = ScriptedConfidence(case["values"], dtype)
    monkeypatch.setattr(ref, "get_confidence", scripted)
    _, best_reward, best_step, trace = run_reference(case, max_new_tokens=1)
    assert scripted.calls == golden["steps_run"]
    assert best_step == golden["best_step"]
    assert type(best_reward).__name__ == golden["best_reward_type"]
    assert (float(best_reward.detach()) if isinstance(best_reward, torch.Tensor) else best_reward) \
        == golden["best_reward"]
    assert str(trace["final_slot_embeds"].dtype) == "torch." + golden["final_embeds_dtype"]
    assert trace["final_slot_embeds"].float().tolist() == golden["final_slot_embeds"]


def test_scripted_values_pin_the_rules():
    """What the scripted golden cases show of the original's rules, read from the golden file: ties keep the earlier
    step, a reward of 0 never becomes best (best_reward starts at 0, strict >), the threshold stops after the
    first reward >= it."""
    scripted = GOLDEN["scripted"]
    assert scripted["ties_bf16"]["best_step"] == 3  # 3.359375 at steps 3 and 4
    assert scripted["autograd_ties_bf16"]["best_step"] == 1  # 2.0 at steps 1 and 2
    assert (scripted["never_above_zero_fp32"]["best_step"], scripted["never_above_zero_fp32"]["best_reward_type"]) \
        == (0, "float")
    assert scripted["threshold_fp32"]["steps_run"] == 2


def test_best_state_is_the_post_update_state_not_the_scored_candidate():
    """The fault peers.md names: the slots of the final generation are H after the best step's update, not H + eps
    that earned the reward. Rebuilt here by hand from the seeded noise for the scripted fp32 case."""
    case = SCRIPTED["threshold_fp32"]  # rewards 2.5, 3.5 (>= 3.0: stop); best step 1
    golden = GOLDEN["scripted"]["threshold_fp32"]
    model = family_model(case["family"])
    tokenizer = family_tokenizer(case["family"])
    inputs, (s, e) = ref.build_inputs(tokenizer, 2, QUESTION, data_name="openai/gsm8k", model_name="tiny-mistral")
    h = model.get_input_embeddings()(inputs["input_ids"])[0, s:e].detach().clone()
    torch.manual_seed(SEED)
    sigma, lr = 0.1, 0.03
    candidates = []
    for reward in (2.5, 3.5):
        eps = torch.normal(mean=0.0, std=sigma, size=h.shape)
        candidates.append(h + eps)
        h = h + lr * torch.tensor(reward) * eps / sigma ** 2
        sigma *= 0.99
    final = torch.tensor(golden["final_slot_embeds"])
    assert torch.equal(final, h)
    assert not torch.allclose(final, candidates[1], atol=1e-3)
