"""A plain re-implementation of LTPO's loop (ltpo2025/LTPO, commit 0863323, ``ltpo.py``): the independent
reference that ``--method ltpo`` is checked against. It imports nothing of ``lightning_latentseek``.

Each function transcribes one of ``ltpo.py``'s, line for line (the citations are ``ltpo.py:LINE``); plain
transformers calls, no KV cache in the reward forwards, everything in the model's own dtype, as the original runs:

* `build_inputs` (ltpo.py:7-100): LTPO's prompt with the placeholder paragraph, its placeholders chosen by the
  model *name* (``llama`` / ``qwen`` / ``mistral``), the slot arithmetic, the appended assistant header;
* `get_confidence` (ltpo.py:102-117): the mean over positions s..e *inclusive* of -(1/k) sum_topk log(p + 1e-10);
* `generate` (ltpo.py:119-235): the zeroth-order loop (or the Adam "autograd" variant), best-reward selection with
  best_reward = 0 and a strict ``>``, the saved state taken *after* the update, and one greedy ``model.generate``
  from ``inputs_embeds`` decoded with ``skip_special_tokens``.

Differences from the original, all outside the computation: ``device`` defaults to ``"cpu"`` (the original's
``"cuda"``, ltpo.py:11, is never overridden by its ``generate``); `build_inputs` takes an optional ``family`` to
pick a placeholder family for a model whose name names none (SmolLM2: ``family="qwen"``, its template being ChatML;
the original raises ``Unsupported model``, ltpo.py:27-28); `generate` returns a trace (per-step rewards, the slot
embeddings handed to the final generation, the output ids) besides the original's ``(response, best_reward,
best_reward_step)``; the unused self-scoring path (``disable_conf_reward``, reward.py) is not transcribed; the
per-step ``logger.info`` (ltpo.py:207-208) and ``torch.cuda.empty_cache()`` (ltpo.py:211) are left out.
"""

from __future__ import annotations

import torch

# ltpo.py:18-28: placeholder text and generation prompt per family; which family is found in the model name
FAMILIES = ("llama", "qwen", "mistral")


def placeholders(family: str, num_thought_tokens: int) -> tuple[str, str]:
    """(latent_thought_tokens, gen_prompt) of a family (ltpo.py:18-26)."""
    if family == "llama":
        return "".join(f"<|reserved_special_token_{i}|>" for i in range(num_thought_tokens)), \
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
    if family == "qwen":
        return "<|endoftext|>" * num_thought_tokens, "<|im_start|>assistant\n"
    if family == "mistral":
        return "<unk>" * num_thought_tokens, ""
    raise ValueError(f"Unsupported model family: {family}")


def family_of(model_name: str) -> str:
    """The family LTPO's code picks from the model name (ltpo.py:18-28): the first of llama, qwen, mistral in it."""
    for family in FAMILIES:
        if family in model_name.lower():
            return family
    raise ValueError(f"Unsupported model: {model_name}")


def prompt_content(prompt: str, num_thought_tokens: int, latent_thought_tokens: str, data_name: str = "") -> str:
    """The user message (ltpo.py:29-75): the task text, PROBLEM, then the placeholder paragraph."""
    problem_type = "code reasoning" if "cruxeval" in data_name else "math"
    paragraph = (
        f"There are {num_thought_tokens} special tokens that contain compressed latent reasoning information "
        f"that might be useful for your reasoning.\n"
        f"If these tokens are useful for your case, you can use them as reference. If these tokens are not useful "
        f"for your case, you can ignore them and focus back to solving the problem.\n\n"
        f"Here are the {num_thought_tokens} special tokens: {latent_thought_tokens}"
    )
    if "strategyqa" in data_name.lower():
        return (
            f"Solve the following reasoning problem step by step.\n"
            f"You are required to answer the question with `Yes` or `No`.\n"
            f"PROBLEM: {prompt}\n\n" + paragraph
        )
    if "date_understanding" in data_name.lower():
        return (
            f"Solve the following multiple choices problem step by step.\n"
            f"In the multiple choices problem, there are five options: A, B, C, D, E, and F, respectively.\n"
            f"The correct answer that solves the problem is one of these options.\n"
            f"Your job is to solve the problem and find the correct option.\n"
            f"IMPORTANT: you MUST always put your final answer within \\boxed{{answer}}, "
            f"where [answer] is the option from A, B, C, D, E, and F. "
            f"Only one letter from A to F is accepted in the answer span.\n\n"
            f"PROBLEM: {prompt}\n\n" + paragraph
        )
    return (
        f"Solve the following {problem_type} problem efficiently and clearly:\n"
        f"- For simple problems (2 steps or fewer):\n"
        f"Provide a concise solution with minimal description.\n"
        f"- For complex problems (3 steps or more):\n"
        f"Use this step-by-step format:\n\n"
        f"## Step 1: [Brief calculations]\n"
        f"## Step 2: [Brief calculations]\n"
        f"...\n"
        f"IMPORTANT: Regardless of the approach, you MUST always put your final answer within \\boxed{{}}.\n\n"
        f"PROBLEM: {prompt}\n\n" + paragraph
    )


def build_inputs(tokenizer, num_thought_tokens: int, prompt: str, device: str = "cpu", data_name: str = "",
                 model_name: str = "", family: str | None = None):
    """(inputs, [s, e]): the chat-templated prompt (a BatchEncoding with input_ids and attention_mask) and the
    slots s..e-1 of the placeholders (ltpo.py:7-100)."""
    if num_thought_tokens <= 0:
        raise ValueError("You must specify a positive int for num_thought_tokens")
    family = family or family_of(model_name)
    latent_thought_tokens, gen_prompt = placeholders(family, num_thought_tokens)
    input_content = prompt_content(prompt, num_thought_tokens, latent_thought_tokens, data_name)

    input_messages = [{"role": "user", "content": input_content}]
    inputs = tokenizer.apply_chat_template(
        input_messages, add_generation_prompt=False, return_dict=True, return_tensors="pt",
    ).to(device)

    # ltpo.py:82-89: the slots end one token before the end (two for qwen: <|im_end|> and "\n")
    input_ids = inputs["input_ids"][0]
    pure_input_length = len(input_ids)
    input_thought_start_idx = pure_input_length - 1 - num_thought_tokens
    if family == "qwen":
        input_thought_start_idx -= 1
    input_thought_end_idx = input_thought_start_idx + num_thought_tokens
    thought_idx = [input_thought_start_idx, input_thought_end_idx]

    if family != "mistral":  # ltpo.py:91-98: the assistant header is appended by hand
        gen_prompt_ids = torch.tensor(
            tokenizer.encode(gen_prompt, add_special_tokens=False), dtype=torch.long,
        ).unsqueeze(0).to(device)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], gen_prompt_ids], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"], device=device)
    return inputs, thought_idx


def get_confidence(model, inputs, thought_idx, thought_hidden_states, k: int = 10):
    """LTPO's reward (ltpo.py:102-117): write the slots into ``inputs['inputs_embeds']`` IN PLACE, one full forward
    without cache, then the mean over positions s..e inclusive (the N slots and the token after them) of
    -(1/k) sum over the top-k of log(p + 1e-10), in the dtype of the model's logits."""
    inputs["inputs_embeds"][0, thought_idx[0]:thought_idx[1]] = thought_hidden_states
    logits = model(**inputs, return_dict=True)["logits"][0]
    probs = torch.softmax(logits, dim=-1)
    confidence = 0.0
    for idx in range(thought_idx[0], thought_idx[1] + 1):
        topk = torch.topk(probs[idx], k=k, largest=True)[0]
        confidence -= torch.sum(torch.log(topk + 1e-10)) / k
    num_tokens = thought_idx[1] - thought_idx[0] + 1
    return confidence / num_tokens


def generate(tokenizer, model, question: str, num_thought_tokens: int = 10, lr: float = 0.05, sigma: float = 0.1,
             sigma_decay: float = 0.99, max_rl_steps: int = 10, reward_threshold: float = -1,
             max_new_tokens: int = 4096, use_auto_grad: bool = True, disable_best_reward: bool = False,
             data_name: str = "", model_name: str = "", top_k: int = 10, device: str = "cpu",
             family: str | None = None, **kwargs):
    """LTPO's ``generate`` (ltpo.py:119-235) with its own signature defaults (lr 0.05, autograd on); LTPO's main.py
    passes lr 0.03 and autograd off (main.py:38, 50). Noise comes from the global CPU RNG (``torch.normal``).

    Returns (response, best_reward, best_reward_step, trace); trace: ``rewards`` (float per step), ``candidate_sums``
    (sum of each scored candidate H + eps), ``final_slot_embeds`` (what the final generation sees in the slots),
    ``output_ids``, ``inputs`` and ``thought_idx``."""
    model.eval()
    inputs, thought_idx = build_inputs(tokenizer=tokenizer, num_thought_tokens=num_thought_tokens, prompt=question,
                                       device=device, data_name=data_name, model_name=model_name, family=family)
    inputs_embeds = model.get_input_embeddings()(inputs["input_ids"])
    inputs["inputs_embeds"] = inputs_embeds
    inputs.pop("input_ids")
    device = inputs_embeds.device

    if use_auto_grad:  # ltpo.py:157-163: H is a Parameter in the model's dtype, Adam ascends on the reward
        thought_hidden_states = torch.nn.Parameter(
            inputs_embeds[0, thought_idx[0]:thought_idx[1]].clone().detach().requires_grad_(True))
        optimizer = torch.optim.Adam([thought_hidden_states], lr=lr, maximize=True)
    else:
        thought_hidden_states = inputs_embeds[0, thought_idx[0]:thought_idx[1]].clone()

    trace = {"rewards": [], "candidate_sums": [], "thought_idx": list(thought_idx)}
    best_reward = 0.0
    best_reward_step = 0
    best_thought_hidden_states = thought_hidden_states.clone()
    for i in range(max_rl_steps):
        if use_auto_grad:
            optimizer.zero_grad()
        # ltpo.py:171-172: fp32 noise from the global CPU generator; H (bf16) + eps (fp32) is fp32
        epsilon = torch.normal(mean=0.0, std=sigma, size=thought_hidden_states.shape).to(device)
        thought_hidden_states_cand = thought_hidden_states + epsilon
        if use_auto_grad:
            reward = get_confidence(model=model, inputs=inputs, thought_idx=thought_idx,
                                    thought_hidden_states=thought_hidden_states_cand, k=top_k)
            reward.requires_grad_(True)
            reward.backward(retain_graph=True)
        else:
            with torch.no_grad():
                reward = get_confidence(model=model, inputs=inputs, thought_idx=thought_idx,
                                        thought_hidden_states=thought_hidden_states_cand, k=top_k)
        trace["rewards"].append(float(reward.detach()))
        trace["candidate_sums"].append(float(thought_hidden_states_cand.detach().double().sum()))
        if use_auto_grad:
            optimizer.step()
        else:  # ltpo.py:203-204: one-sample ES step, no baseline, written back in H's dtype
            grad_ascent = lr * reward * epsilon / sigma ** 2
            thought_hidden_states += grad_ascent
        sigma *= sigma_decay

        del epsilon, thought_hidden_states_cand
        # ltpo.py:213-216: strict >, and the state saved is H AFTER this step's update, not the scored H + eps
        if reward > best_reward:
            best_reward = reward
            best_reward_step = i
            best_thought_hidden_states = thought_hidden_states.clone()
        if reward_threshold > 0 and reward >= reward_threshold:
            break

    if disable_best_reward:
        inputs_embeds[0, thought_idx[0]:thought_idx[1]] = thought_hidden_states
    else:
        inputs_embeds[0, thought_idx[0]:thought_idx[1]] = best_thought_hidden_states
    inputs["inputs_embeds"] = inputs_embeds

    kwargs.update(dict(max_new_tokens=max_new_tokens, do_sample=False, temperature=0.0, top_p=None, num_beams=1))
    outputs = model.generate(**inputs, **kwargs)
    response = tokenizer.decode(outputs[0], skip_special_tokens=True)
    trace["final_slot_embeds"] = inputs_embeds[0, thought_idx[0]:thought_idx[1]].detach().clone()
    trace["output_ids"] = outputs[0].tolist()
    trace["inputs"] = inputs
    return response, best_reward, best_reward_step, trace
