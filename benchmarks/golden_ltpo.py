#!/usr/bin/env python
"""Golden values of LTPO's ORIGINAL code on tiny in-process models, for `tests/test_ltpo_reference.py`.

It imports ``ltpo.py`` of an ltpo2025/LTPO checkout (an exported directory, or a bare git dir that is exported
with ``git archive`` to a temporary directory) and runs its own ``build_inputs`` and ``generate`` (which calls its
``get_confidence``) on the cases of ``tests/ltpo_tiny.py``: per case the prompt ids and slots, the reward of each
step, the best step, the slot embeddings handed to the final generation and the final token ids. Never run by the
tests; rerun it when a case changes:

    python benchmarks/golden_ltpo.py /work/.mirror/ltpo2025+LTPO/repo --out tests/data/ltpo_golden.json

What is changed to run the original on a CPU with a tiny model (all listed in the output's ``patches``):

* ``fastNLP`` (only its ``logger`` is used, ltpo.py:3, 208) is replaced by a module whose ``logger`` records the
  messages; ``termcolor`` (imported by reward.py, whose RewardModel the confidence path never calls) by a
  no-colour ``colored`` when it is not installed;
* ``build_inputs`` defaults to ``device='cuda'`` and ``generate`` does not pass one (ltpo.py:11, 142-148): the
  module's name ``build_inputs`` is rebound to a wrapper adding ``device='cpu'`` (the source is not edited);
* ``get_confidence`` and the model's ``generate`` are wrapped to record their results (values unchanged);
* ``max_new_tokens`` is 24 instead of main.py's 4096 (a ``generate`` argument, ltpo.py:130);
* the model is a tiny random Llama in float32 or bfloat16 on the CPU (main.py:97-102 loads a hub model in bf16 on
  cuda); the seed (42) is set with ``torch.manual_seed`` right before each case, as main.py:87-88 does once.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import re
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ltpo_tiny import (CASES, PROMPT_CASES, QUESTION, SCRIPTED, SEED, ScriptedConfidence, case_kwargs,  # noqa: E402
                       family_model, family_tokenizer)


def source_dir(checkout: str) -> tuple[Path, str | None]:
    """The directory holding ltpo.py (exported from a bare git dir when given one) and the commit, if known."""
    path = Path(checkout)
    if (path / "ltpo.py").is_file():
        return path, None
    sha = subprocess.check_output(["git", "--git-dir", str(path), "rev-parse", "HEAD"], text=True).strip()
    tar = subprocess.check_output(["git", "--git-dir", str(path), "archive", "--format=tar", sha])
    out = Path(tempfile.mkdtemp(prefix="ltpo_src_"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(out, filter="data")
    return out, sha


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def import_ltpo(src: Path):
    """Import the original ltpo.py with the stand-ins described in the module docstring."""
    patches = []
    recorder = _Recorder()
    logger = logging.getLogger("ltpo-original")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(recorder)
    try:
        import fastNLP  # noqa: F401
    except ImportError:
        sys.modules["fastNLP"] = types.SimpleNamespace(logger=logger)
        patches.append("fastNLP: stand-in module whose `logger` records the messages (ltpo.py:3, 208)")
    try:
        import termcolor  # noqa: F401
    except ImportError:
        sys.modules["termcolor"] = types.SimpleNamespace(colored=lambda text, *a, **k: text)
        patches.append("termcolor: stand-in `colored` returning the text (reward.py:3; unused on the confidence path)")
    sys.path.insert(0, str(src))
    import ltpo

    original_build_inputs = ltpo.build_inputs
    ltpo.build_inputs = functools.partial(original_build_inputs, device="cpu")
    patches.append("ltpo.build_inputs rebound to functools.partial(build_inputs, device='cpu') (ltpo.py:11, 142-148)")
    return ltpo, original_build_inputs, recorder, patches


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _floats(tensor: torch.Tensor) -> list:
    return tensor.detach().float().cpu().tolist()


def run_case(ltpo, recorder, name: str, case: dict) -> dict:
    tokenizer = family_tokenizer(case["family"])
    dtype = getattr(torch, case["dtype"])
    model = family_model(case["family"], dtype)
    kwargs = case_kwargs(case)

    steps = []
    get_confidence = ltpo.get_confidence

    def recording_confidence(model, inputs, thought_idx, thought_hidden_states, k=10):
        reward = get_confidence(model=model, inputs=inputs, thought_idx=thought_idx,
                                thought_hidden_states=thought_hidden_states, k=k)
        steps.append({"reward": float(reward.detach()),
                      "candidate_sum": float(thought_hidden_states.detach().double().sum()),
                      "candidate_dtype": str(thought_hidden_states.dtype).replace("torch.", ""),
                      "reward_dtype": str(reward.dtype).replace("torch.", "")})
        return reward

    final = {}
    generate = model.generate

    def recording_generate(**inputs):
        outputs = generate(**inputs)
        final["inputs_embeds"] = inputs["inputs_embeds"].detach().clone()
        final["attention_mask"] = inputs["attention_mask"].tolist()
        final["output_ids"] = outputs[0].tolist()
        return outputs

    ltpo.get_confidence = recording_confidence
    model.generate = recording_generate
    recorder.messages.clear()
    try:
        torch.manual_seed(SEED)
        response, best_reward, best_step = ltpo.generate(tokenizer=tokenizer, model=model, reward_model=None,
                                                         question=QUESTION, **kwargs)
    finally:
        ltpo.get_confidence = get_confidence
        del model.generate

    inputs, thought_idx = ltpo.build_inputs(tokenizer=tokenizer, num_thought_tokens=kwargs["num_thought_tokens"],
                                            prompt=QUESTION, data_name=kwargs["data_name"],
                                            model_name=kwargs["model_name"])
    s, e = thought_idx
    embeds = final["inputs_embeds"]
    # how far each greedy choice of the final generation is from a tie (for the test's tolerance): rerun greedy
    with torch.no_grad():
        scored = generate(inputs_embeds=embeds, attention_mask=torch.tensor(final["attention_mask"]),
                          max_new_tokens=kwargs["max_new_tokens"], do_sample=False, num_beams=1,
                          output_logits=True, return_dict_in_generate=True)
    assert scored.sequences[0].tolist() == final["output_ids"], "greedy generation is not deterministic"
    margins = [float(t[0] - t[1]) for t in (torch.topk(lg[0].float(), 2).values for lg in scored.logits)]
    rewards = [st["reward"] for st in steps]
    # how close each step's reward came to the best before it (strict >, best_reward starts at 0: ltpo.py:165, 213)
    running, gaps = 0.0, []
    for r in rewards:
        gaps.append(abs(r - running))
        running = max(running, r)
    return {
        "case": case, "kwargs": kwargs,
        "input_ids": inputs["input_ids"][0].tolist(), "thought_idx": [s, e],
        "slot_ids": inputs["input_ids"][0, s:e].tolist(),
        "rewards": rewards, "steps": steps, "logged": list(recorder.messages),
        "best_reward": _scalar(best_reward), "best_step": int(best_step),
        "final_slot_embeds": _floats(embeds[0, s:e]), "final_embeds_dtype": str(embeds.dtype).replace("torch.", ""),
        "output_ids": final["output_ids"], "response": response,
        "min_generation_margin": min(margins) if margins else None,
        "min_best_decision_gap": min(gaps, default=None),
    }


def scripted_case(ltpo, case: dict) -> dict:
    """generate() with get_confidence replaced by `ScriptedConfidence`: the update, selection and threshold rules."""
    tokenizer = family_tokenizer(case["family"])
    dtype = getattr(torch, case["dtype"])
    model = family_model(case["family"], dtype)
    kwargs = case_kwargs(case)
    scripted = ScriptedConfidence(case["values"], dtype)
    final = {}
    generate = model.generate

    def recording_generate(**inputs):
        final["inputs_embeds"] = inputs["inputs_embeds"].detach().clone()
        return generate(**inputs)

    get_confidence = ltpo.get_confidence
    ltpo.get_confidence = scripted
    model.generate = recording_generate
    try:
        torch.manual_seed(SEED)
        _, best_reward, best_step = ltpo.generate(tokenizer=tokenizer, model=model, reward_model=None,
                                                  question=QUESTION, **{**kwargs, "max_new_tokens": 1})
    finally:
        ltpo.get_confidence = get_confidence
        del model.generate
    _, (s, e) = ltpo.build_inputs(tokenizer=tokenizer, num_thought_tokens=kwargs["num_thought_tokens"],
                                  prompt=QUESTION, data_name=kwargs["data_name"], model_name=kwargs["model_name"])
    embeds = final["inputs_embeds"]
    return {"case": case, "kwargs": kwargs, "steps_run": scripted.calls, "best_reward": _scalar(best_reward),
            "best_reward_type": type(best_reward).__name__, "best_step": int(best_step),
            "final_slot_embeds": _floats(embeds[0, s:e]), "final_embeds_dtype": str(embeds.dtype).replace("torch.", "")}


def prompt_case(build_inputs, case: dict) -> dict:
    tokenizer = family_tokenizer(case["family"])
    inputs, thought_idx = build_inputs(tokenizer=tokenizer, num_thought_tokens=case["num_thought_tokens"],
                                       prompt=QUESTION, device="cpu", data_name=case["data_name"],
                                       model_name=case["model_name"])
    return {"case": case, "input_ids": inputs["input_ids"][0].tolist(), "thought_idx": list(thought_idx),
            "attention_mask": inputs["attention_mask"][0].tolist()}


def compact_json(value) -> str:
    """Indented JSON whose lists of numbers stay on one line (the token ids and embeddings)."""
    text = json.dumps(value, indent=1)
    return re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda m: "[" + ",".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="ltpo2025/LTPO: a directory holding ltpo.py, or a bare git dir")
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "ltpo_golden.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    src, sha = source_dir(args.checkout)
    ltpo, build_inputs, recorder, patches = import_ltpo(src)
    import transformers

    result = {
        "source": {"repository": "ltpo2025/LTPO", "commit": sha, "files": ["ltpo.py"]},
        "command": "python benchmarks/golden_ltpo.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "question": QUESTION, "seed": SEED, "patches": patches + [
            "ltpo.get_confidence and model.generate wrapped to record rewards and the final inputs/outputs",
            "max_new_tokens=24 (main.py:25 default 4096); tiny random Llama on CPU "
            "(main.py:97-102: hub model, bf16, cuda)",
        ],
        "cases": {}, "scripted": {}, "prompts": {},
    }
    for name, case in CASES.items():
        result["cases"][name] = run_case(ltpo, recorder, name, case)
        got = result["cases"][name]
        print(f"{name}: rewards {[round(r, 4) for r in got['rewards']]} best {got['best_step']} "
              f"tokens {got['output_ids'][:8]}... margin {got['min_generation_margin']:.4g} "
              f"best-decision gap {got['min_best_decision_gap']:.3g}")
    for name, case in SCRIPTED.items():
        result["scripted"][name] = got = scripted_case(ltpo, case)
        print(f"{name}: steps {got['steps_run']} best {got['best_step']} "
              f"({got['best_reward']}, {got['best_reward_type']})")
    for name, case in PROMPT_CASES.items():
        result["prompts"][name] = prompt_case(build_inputs, case)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(compact_json(result) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
