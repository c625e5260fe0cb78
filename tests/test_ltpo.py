"""``--method ltpo`` against LTPO's loop: the plain re-implementation `reference_ltpo` (itself pinned to LTPO's
original code by test_ltpo_reference.py) and the golden values of the original (tests/data/ltpo_golden.json), on the
tiny models of `ltpo_tiny`: the same prompt ids and slots, the same confidence at every step (our cached-prefix
forward against its full forward: float noise, rel 1e-4), the same best step and the same final token ids.

The two faults LTPO's code has are reproduced by default; the options that fix them are checked against the
reference loop with the fix applied by hand here (never against values of our own method).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import pytest
import torch

import reference_ltpo as ref
from lightning_latentseek.cli import LatentSeekCLI
from lightning_latentseek.config import IgnoredOptionError, SeekConfig
from lightning_latentseek.engine import FrozenLM, GenerationEngine
from lightning_latentseek.ltpo import LTPOTemplateError, ltpo_confidence, ltpo_prompt
from lightning_latentseek.methods import SolveContext, ltpo
from lightning_latentseek.problems import Problem
from lightning_latentseek.solve import FIT_FLAGS
from ltpo_tiny import CASES, MAX_NEW_TOKENS, QUESTION, SEED, _byte_tokenizer, family_model, family_tokenizer
from tiny import save_tiny_model, user_error, write_problems

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((Path(__file__).parent / "data" / "ltpo_golden.json").read_text())
FINAL_SLOTS: list[torch.Tensor] = []  # the slots the last `run_ours` generated its answer from


class RecordingEngine(GenerationEngine):
    """The engine, keeping what each generating row produced (the final answer's token ids) and the slot
    embeddings it was fed."""

    def __init__(self, lm):
        super().__init__(lm)
        self.generated, self.slots = [], []

    def generate(self, rows):
        results = super().generate(rows)
        self.generated += [g.tokens for row, g in zip(rows, results) if row.max_new_tokens > 0]
        self.slots += [row.inject.state for row in rows if row.max_new_tokens > 0]
        return results


def run_ours(family: str, dtype=torch.float32, steps: int = 10, **options):
    """Our method on a fresh tiny model of the family, seed 42 (LTPO main.py:32), LTPO's defaults (SeekConfig for
    ltpo) with the tiny cap; returns (outcome, final token ids); `FINAL_SLOTS` gets the slots they started from."""
    llm = FrozenLM(family_model(family, dtype), family_tokenizer(family), name=f"tiny-{family}")
    engine = RecordingEngine(llm)
    cfg = SeekConfig.for_method("ltpo", max_new_tokens=MAX_NEW_TOKENS, **options)
    trainer = dict(FIT_FLAGS, max_steps=steps, accelerator="cpu", devices=1, logger=False, precision="32-true")
    ctx = SolveContext(engine, None, cfg, make_trainer=lambda: L.Trainer(**trainer), seed=SEED, max_steps=steps)
    try:
        outcome = ltpo(Problem("p", QUESTION, "7", "arith"), ctx)
    finally:
        engine.close()
    FINAL_SLOTS[:] = [engine.slots[-1]]
    return outcome, engine.generated[-1]


def run_reference(family: str, dtype=torch.float32, **kwargs):
    """LTPO's loop (reference_ltpo) with main.py's arguments on its own model instance (transformers' attention)."""
    model = family_model(family, dtype)
    torch.manual_seed(SEED)
    args = dict(num_thought_tokens=10, lr=0.03, sigma=0.1, sigma_decay=0.99, max_rl_steps=10, reward_threshold=-1,
                use_auto_grad=False, disable_best_reward=False, top_k=10, data_name="openai/gsm8k",
                max_new_tokens=MAX_NEW_TOKENS, family=family)
    return ref.generate(family_tokenizer(family), model, QUESTION, **{**args, **kwargs})


def best_step(outcome) -> int:
    improved = [i for i, step in enumerate(outcome.steps) if step["best"]]
    return improved[-1] if improved else 0


# ------------------------------------------------------------------------------------------ the faithfulness test
@pytest.mark.parametrize(("name", "options", "reference"), [
    ("qwen_zo", {}, {}),
    ("llama_zo", {}, {}),
    ("mistral_zo", {}, {}),
    ("qwen_autograd", {"ltpo_update": "autograd"}, {"use_auto_grad": True}),
    ("qwen_last", {"ltpo_selection": "last"}, {"disable_best_reward": True}),
])
def test_ltpo_matches_the_reference_loop_and_the_original(name, options, reference):
    """Token ids and rewards: ours = the reference = LTPO's original code (golden), float32."""
    family = CASES[name]["family"]
    outcome, ids = run_ours(family, **options)
    _, _, reference_best, trace = run_reference(family, **reference)
    golden = GOLDEN["cases"][name]
    rewards = [step["confidence"] for step in outcome.steps]
    assert rewards == pytest.approx(trace["rewards"], rel=1e-4, abs=0)
    assert rewards == pytest.approx(golden["rewards"], rel=1e-4, abs=0)
    assert best_step(outcome) == reference_best == golden["best_step"]
    assert ids == trace["output_ids"] == golden["output_ids"]
    assert outcome.text == golden["response"]
    assert outcome.iterations == 10 and outcome.n_latents == 10 and outcome.stop_reason == "max_steps"
    assert outcome.reward_calls == 0 and outcome.rewards == [] and outcome.cot_text is None


def test_prompt_ids_and_slots_are_the_originals():
    """ltpo_prompt: the ids and slots LTPO's build_inputs made (golden), the family found from the chat template."""
    for name in ("qwen_zo", "llama_zo", "mistral_zo"):
        family = CASES[name]["family"]
        llm = FrozenLM(family_model(family), family_tokenizer(family), name="tiny")
        prompt = ltpo_prompt(llm, QUESTION, 10)
        assert prompt.family == family
        assert prompt.ids == GOLDEN["cases"][name]["input_ids"]
        assert [prompt.start, prompt.end] == GOLDEN["cases"][name]["thought_idx"]


def test_bf16_keeps_ltpos_dtypes():
    """A bf16 model: H and the reward stay bf16 (rewards on the bf16 grid, within one step of the original's: kernels
    differ between CPUs), and the run ends."""
    outcome, ids = run_ours("qwen", torch.bfloat16)
    golden = GOLDEN["cases"]["qwen_zo_bf16"]
    rewards = [step["confidence"] for step in outcome.steps]
    assert rewards == pytest.approx(golden["rewards"], abs=2 ** -6)
    assert all(value * 2 ** 6 == int(value * 2 ** 6) for value in rewards)
    assert FINAL_SLOTS[0].dtype == torch.bfloat16  # H stayed bf16 through the fit (its updates rounded into it)
    assert len(ids) > 0


def test_confidence_is_ltpos_formula():
    """Hand values: two positions of a 4-token vocabulary, k 2: -(1/2)(log 0.5 + log 0.25) = 1.0397208 and
    -(1/2)(log 0.7 + log 0.1) = 1.3296300, mean 1.1846754."""
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.7, 0.1, 0.1, 0.1]]))
    assert float(ltpo_confidence(logits, 2)) == pytest.approx(1.1846754, rel=1e-6)


# ------------------------------------------------------------------------------------------ the fixes
def replay(family: str, rewards: list[float], steps: int):
    """H_0 and LTPO's noise and ZO updates replayed by hand from the seeded global generator and the given rewards:
    the candidate H_i + eps_i scored at each step (ltpo.py:171-205, float32)."""
    model = family_model(family)
    inputs, (s, e) = ref.build_inputs(family_tokenizer(family), 10, QUESTION, family=family)
    h = model.get_input_embeddings()(inputs["input_ids"])[0, s:e].detach().clone()
    torch.manual_seed(SEED)
    sigma, candidates = 0.1, []
    for reward in rewards[:steps]:
        eps = torch.normal(mean=0.0, std=sigma, size=h.shape)
        candidates.append(h + eps)
        h += 0.03 * torch.tensor(reward) * eps / sigma ** 2
        sigma *= 0.99
    return model, inputs, (s, e), candidates


def greedy_from(model, inputs, slots, span) -> list[int]:
    """HF generate (LTPO's call, ltpo.py:226-233) from the prompt's embeddings with `slots` at the placeholders."""
    embeds = model.get_input_embeddings()(inputs["input_ids"]).detach().clone()
    embeds[0, span[0]:span[1]] = slots
    out = model.generate(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], max_new_tokens=MAX_NEW_TOKENS,
                         do_sample=False, num_beams=1)
    return out[0].tolist()


def test_scored_best_state_keeps_the_candidate_that_earned_the_reward():
    """--model.ltpo_best_state scored: the same steps and rewards as LTPO, but the final generation starts from
    H + eps of the best step (rebuilt by hand from the reference's rewards), not H after its update."""
    outcome, ids = run_ours("qwen", ltpo_best_state="scored")
    _, _, reference_best, trace = run_reference("qwen")
    assert [s["confidence"] for s in outcome.steps] == pytest.approx(trace["rewards"], rel=1e-4, abs=0)
    assert best_step(outcome) == reference_best
    model, inputs, span, candidates = replay("qwen", trace["rewards"], 10)
    assert torch.allclose(FINAL_SLOTS[0], candidates[reference_best], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(FINAL_SLOTS[0], trace["final_slot_embeds"], atol=1e-2)  # not LTPO's post-update H
    assert ids == greedy_from(model, inputs, candidates[reference_best], span)


def reference_with_baseline(family: str, baseline: str, samples: int, steps: int = 10):
    """LTPO's ZO loop with a baseline, written here from the reference's own pieces (build_inputs, get_confidence
    on full forwards, the global generator): R - b per candidate, the mean move over M candidates; the best step
    and its scored candidate kept. Returns (per-step best rewards, best step, the best candidate, model, inputs)."""
    model = family_model(family)
    inputs, span = ref.build_inputs(family_tokenizer(family), 10, QUESTION, family=family)
    embeds = model.get_input_embeddings()(inputs["input_ids"]).detach()
    scoring = {"inputs_embeds": embeds.clone(), "attention_mask": inputs["attention_mask"]}  # ltpo.py:150-152
    h = embeds[0, span[0]:span[1]].clone()
    torch.manual_seed(SEED)
    sigma, seen, best, best_step, best_state, per_step = 0.1, [], 0.0, 0, h.clone(), []
    with torch.no_grad():
        if baseline == "mean":
            seen.append(float(ref.get_confidence(model, scoring, span, h.clone())))
        for i in range(steps):
            noise = [torch.normal(mean=0.0, std=sigma, size=h.shape) for _ in range(samples)]
            rewards = [float(ref.get_confidence(model, scoring, span, h + eps)) for eps in noise]
            if baseline == "mean":
                baselines = [sum(seen) / len(seen)] * samples
            else:
                baselines = [(sum(rewards) - r) / (samples - 1) for r in rewards]
            move = sum(0.03 * (r - b) * eps / sigma ** 2 for r, b, eps in zip(rewards, baselines, noise)) / samples
            candidates = [h + eps for eps in noise]
            h = h + move
            sigma *= 0.99
            seen += rewards
            m = max(range(samples), key=lambda j: (rewards[j], -j))
            per_step.append(rewards[m])
            if rewards[m] > best:
                best, best_step, best_state = rewards[m], i, candidates[m]
    return per_step, best_step, best_state, model, inputs, span


@pytest.mark.parametrize(("baseline", "samples"), [("mean", 1), ("loo", 4)])
def test_baselines_match_the_reference_loop_with_the_fix(baseline, samples):
    """--model.ltpo_baseline mean | loo (with the scored best state): the per-step rewards, the best step and the
    final token ids of the reference loop with that baseline."""
    outcome, ids = run_ours("qwen", ltpo_baseline=baseline, samples_per_step=samples, ltpo_best_state="scored")
    rewards, expected_best, state, model, inputs, span = reference_with_baseline("qwen", baseline, samples)
    assert [s["confidence"] for s in outcome.steps] == pytest.approx(rewards, rel=1e-4, abs=0)
    assert best_step(outcome) == expected_best
    assert ids == greedy_from(model, inputs, state, span)
    norms = [s["step_norm"] for s in outcome.steps]
    plain, _ = run_ours("qwen")
    assert max(norms) < min(s["step_norm"] for s in plain.steps) / 5  # R - b is far smaller than R (always > 2)
    if baseline == "loo":
        assert all(len(s["candidates"]) == 4 and len(s["baseline"]) == 4 for s in outcome.steps)
    else:
        assert outcome.scoring_positions == (10 + 1) * 11  # one more scoring: the unperturbed state's


# ------------------------------------------------------------------------------------------ templates
def test_a_template_ltpo_does_not_know_is_a_one_line_error():
    tokenizer = _byte_tokenizer(["<s>", "</s>", "<pad>"], "<s>", "</s>", "<pad>",
                                "{% for m in messages %}{{ m['content'] }}<|end|>{% endfor %}")
    llm = FrozenLM(family_model("qwen"), tokenizer, name="odd")
    with pytest.raises(LTPOTemplateError, match=re.escape("odd's chat template ends a user turn with '<|end|>'")):
        ltpo_prompt(llm, QUESTION, 3)


def test_a_placeholder_that_is_not_one_token_is_refused():
    """A Llama 3 template whose tokenizer lacks <|reserved_special_token_i|> (LTPO would silently optimise
    whatever text pieces sit there)."""
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"]
    tokenizer = _byte_tokenizer(specials, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>",
                                family_tokenizer("llama").chat_template)
    llm = FrozenLM(family_model("qwen"), tokenizer, name="no-reserved")
    with pytest.raises(LTPOTemplateError, match=re.escape("placeholder <|reserved_special_token_0|> is 28 tokens")):
        ltpo_prompt(llm, QUESTION, 2)


def test_special_token_text_in_a_question_stays_text():
    llm = FrozenLM(family_model("qwen"), family_tokenizer("qwen"), name="tiny")
    plain = ltpo_prompt(llm, "What is 1 + 1?", 3)
    hostile = ltpo_prompt(llm, "What is 1 <|im_end|> 1?", 3)
    end = llm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert plain.ids.count(end) == hostile.ids.count(end) == 1  # the template's own, after the slots
    assert hostile.ids[hostile.start:hostile.end] == [llm.tokenizer.convert_tokens_to_ids("<|endoftext|>")] * 3
    assert len(hostile.ids) == len(plain.ids) + len("<|im_end|>") - len("+")  # the question's text: a token a byte


# ------------------------------------------------------------------------------------------ the command line
def ltpo_args(model: Path, data: Path, out: Path, *extra) -> list[str]:
    return ["--model.llm", str(model), "--method", "ltpo", "--model.max_new_tokens", "8", "--model.ltpo_slots", "3",
            "--data.path", str(data), "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
            "--output_dir", str(out), "--progress", "false", *extra]


def test_cli_ltpo_writes_a_record_per_problem_and_runs_all_k_steps(tmp_path):
    """LTPO's confidence (> 0) is logged as `confidence`, never as `reward`: the run's tau callback does not stop
    it, every problem takes its K steps."""
    from lightning_latentseek.cli import main

    model = save_tiny_model(tmp_path / "model")
    summary = main(ltpo_args(model, write_problems(tmp_path / "p.jsonl", 2), tmp_path / "out"))
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert summary["n"] == 2 and len(records) == 2
    for record in records:
        assert record["method"] == "ltpo" and record["reward"] is None
        assert record["iterations"] == 3 and len(record["steps"]) == 3 and record["n_latents"] == 3
        assert record["scoring_positions"] == 3 * 4 and record["reward_calls"] == 0
        assert record["stop_reason"] == "max_steps" and record["cot_text"] is None and record["trajectory"] == []
        assert all(step["confidence"] > 2.302 for step in record["steps"])  # >= ln 10


def test_ltpo_defaults_are_its_codes_unless_given(tmp_path):
    """METHOD_DEFAULTS: --method ltpo takes LTPO's cap (4096) unless a config or the command line gives one (the
    demo's 128 applies to any method), and grades its boxed answers even from a config made for LatentSeek's JSON
    prompt (a config's prompt is its own method's)."""
    demo = str(ROOT / "configs" / "demo.yaml")
    assert LatentSeekCLI(args=["--method", "ltpo"]).run_spec().model.max_new_tokens == 4096
    spec = LatentSeekCLI(args=["--config", demo, "--method", "ltpo"]).run_spec()
    assert (spec.model.max_new_tokens, spec.model.prompt, spec.model.lr, spec.max_steps) == (128, "boxed", 0.03, 5)
    assert (spec.model.ltpo_slots, spec.model.ltpo_sigma, spec.model.ltpo_sigma_decay, spec.model.ltpo_top_k) == \
        (10, 0.1, 0.99, 10)
    json_config = str(ROOT / "configs" / "gsm8k_json.yaml")
    assert LatentSeekCLI(args=["--config", json_config, "--method", "ltpo"]).run_spec().model.prompt == "boxed"
    spec = LatentSeekCLI(args=["--config", demo, "--method", "ltpo", "--model.max_new_tokens", "64"]).run_spec()
    assert spec.model.max_new_tokens == 64
    assert LatentSeekCLI(args=["--config", demo]).run_spec().model.max_new_tokens == 128  # LatentSeek: unchanged


@pytest.mark.parametrize(("extra", "expected"), [
    (["--model.prompt", "json"], "--model.prompt is ignored with --method ltpo; --method ltpo writes LTPO's own "
                                 "prompt (which asks for \\boxed{})"),
    (["--model.reward", "psrm"], "--model.reward is ignored with --method ltpo; --method cot, sc and ltpo use no "
                                 "reward; it applies to --method latentseek, random, bon or gradcuit"),
    (["--model.tau", "-0.5"], "--model.tau is ignored with --method ltpo; it applies to --method latentseek, random or gradcuit"),
    (["--model.ltpo_baseline", "loo"], "--model.ltpo_baseline loo is ignored with --model.samples_per_step 1 (the "
                                       "leave-one-out baseline of a single candidate is 0); pass "
                                       "--model.samples_per_step 4"),
    (["--model.ltpo_update", "autograd", "--model.ltpo_baseline", "mean"],
     "--model.ltpo_baseline is ignored with --model.ltpo_update autograd; --model.ltpo_update autograd follows the "
     "exact gradient of one candidate per step (Adam)"),
    (["--model.ltpo_update", "autograd", "--model.samples_per_step", "2"],
     "--model.samples_per_step is ignored with --model.ltpo_update autograd; --model.ltpo_update autograd follows the "
     "exact gradient of one candidate per step (Adam)"),
])
def test_options_ltpo_would_ignore_are_refused(tmp_path, capsys, extra, expected):
    line = user_error(capsys, ltpo_args(tmp_path / "none", tmp_path / "p.jsonl", tmp_path / "out", *extra))
    assert line == "error: " + expected


def test_ltpo_options_with_another_method_are_refused():
    from lightning_latentseek.config import check_ignored_options
    from test_ignored import values

    with pytest.raises(IgnoredOptionError, match="--model.ltpo_slots is ignored with --method latentseek; it applies "
                                                 "to --method ltpo"):
        check_ignored_options(values(model={"ltpo_slots": 5}), set())
