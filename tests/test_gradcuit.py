"""`--method gradcuit` against GradCuit's loop as its code runs it (tests/reference_gradcuit.py: plain transformers,
its hook, no-cache teacher-forced loss, HF generate), on tiny random models: the same answer token ids at every
iteration and the same losses, for its defaults (step-1 targets re-tokenised, bf16 offset on a bf16 model) and each
fix and option; then the pieces: the engine's injection, the prefix cache, the bf16 rounding of the offset on an
fp32 model, the method's defaults and its one-line errors."""

from __future__ import annotations

import threading

import lightning as L
import pytest
import torch

import reference_gradcuit as ref
from lightning_latentseek.callbacks import RewardThreshold
from lightning_latentseek.config import SeekConfig, apply_method_defaults
from lightning_latentseek.engine import FrozenLM, GenerationEngine, Injection, Row
from lightning_latentseek.errors import UserError
from lightning_latentseek.methods import SolveContext, gradcuit, gradcuit_method
from lightning_latentseek.prefix import PrefixOffset, prefix_state
from lightning_latentseek.problems import Problem
from lightning_latentseek.rewards import RewardResult
from lightning_latentseek.solve import FIT_FLAGS, quiet_lightning
from test_gradcuit_reference import eos_model
from tiny import tiny_model, tiny_tokenizer

quiet_lightning()
PROBLEM = Problem(id="p1", question="What is 2 + 3?", answer="5", dataset="jsonl")
PREFIX = "Let's think."
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


def text_reward(question: str, text: str) -> float:
    """A reward of the text only (the same on both sides): -1 unless the text holds a "5" after 6 characters."""
    assert question == PROBLEM.question
    return 0.0 if "5" in text[6:] else -1.0


class TextReward:
    def __call__(self, problem, answer):
        return RewardResult(text_reward(problem.question, answer))


def prompt_text(tok) -> str:
    messages = [{"role": "system", "content": BOXED}, {"role": "user", "content": PROBLEM.question}]
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def ours(model, max_steps=4, **cfg):
    """`--method gradcuit` on `model`: the Outcome and the token ids of every answer the engine generated."""
    lm = FrozenLM(model, tiny_tokenizer())
    engine = GenerationEngine(lm)
    generated = []
    generate = engine.generate

    def recording(rows):
        results = generate(rows)
        generated.extend(g.tokens for g in results)
        return results

    engine.generate = recording
    config = SeekConfig.for_method("gradcuit", reward="psrm", insert_prefix=PREFIX, **cfg)
    ctx = SolveContext(engine, TextReward(), config, seed=7, max_steps=max_steps, make_trainer=lambda: L.Trainer(
        **FIT_FLAGS, accelerator="cpu", devices=1, logger=False, max_steps=max_steps,
        callbacks=[RewardThreshold(config.tau)]))
    try:
        return gradcuit_method(PROBLEM, ctx), generated
    finally:
        engine.close()


def reference(model, max_steps=4, **kwargs):
    tok = tiny_tokenizer()
    return ref.run_gradcuit(model, tok, prompt_text(tok), PROBLEM.question, text_reward, prefix_text=PREFIX,
                            max_steps=max_steps, **kwargs)


CASES = {  # name: (model dtype, our options, the reference's arguments)
    "defaults, fp32 offset on an fp32 model": (torch.float32, {"offset_dtype": "fp32"}, {}),
    "defaults, bf16 model (GradCuit's bf16 sum)": (torch.bfloat16, {}, {}),
    "fix: first targets are the generated ids": (torch.float32, {"offset_dtype": "fp32", "first_targets": "ids"},
                                                 {"targets": "ids"}),
    "sgd": (torch.float32, {"offset_dtype": "fp32", "optimizer": "sgd", "lr": 0.5}, {"optimizer": "sgd", "lr": 0.5}),
    "muon": (torch.float32, {"offset_dtype": "fp32", "optimizer": "muon", "lr": 0.05},
             {"optimizer": "muon", "lr": 0.05}),
    "gradient clipping": (torch.float32, {"offset_dtype": "fp32", "grad_clip": 0.5}, {"grad_clip": 0.5}),
    "layer 0 (the embeddings)": (torch.float32, {"offset_dtype": "fp32", "latent_layer": 0}, {"layer": 0}),
    "random control": (torch.float32, {"offset_dtype": "fp32", "step": "random", "lr": 0.2},
                       {"step": "random", "lr": 0.2, "generator": torch.Generator().manual_seed(7)}),
    "random control, bf16 model": (torch.bfloat16, {"step": "random", "lr": 0.2},
                                   {"step": "random", "lr": 0.2, "generator": torch.Generator().manual_seed(7)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradcuit_reproduces_gradcuits_loop(case):
    """The faithfulness test: identical answer token ids at every iteration, the same losses, iterations and stop."""
    dtype, options, kwargs = CASES[case]
    model = eos_model().to(dtype)
    options = {"lr": 0.05, "latent_layer": 2, "max_new_tokens": 20, **options}
    kwargs = {"lr": 0.05, "layer": 2, "max_new_tokens": 20, **kwargs}
    outcome, generated = ours(model, **options)
    trace = reference(model, **kwargs)
    assert generated == trace.answer_ids  # token ids, baseline first
    assert [step["text"] for step in outcome.trajectory] == trace.texts
    assert outcome.rewards == trace.rewards
    losses = [step["loss"] for step in outcome.trajectory]
    assert losses[0] is None  # the baseline: no update before it
    if options.get("step") == "random":
        assert all(loss is None for loss in losses) and trace.losses == []
    else:
        assert losses[1:] == pytest.approx(trace.losses, rel=1e-5)
    assert outcome.iterations == len(trace.answer_ids) - 1 == 4
    assert outcome.stop_reason == "max_steps" and trace.stop == "max_steps"
    assert outcome.text == trace.answer and outcome.n_latents == trace.prefix_ids.shape[1]
    assert len({tuple(ids) for ids in generated}) > 1  # the offset did change the answer


def test_step_one_targets_are_gradcuits_retokenised_text(tmp_path):
    """GradCuit's first update is on the baseline's text re-tokenised (no EOS), later ones on the generated ids (with
    EOS): ours computes the first loss on the same targets as the reference, and with `ids` on the generated ids."""
    model = eos_model()
    trace = reference(model, lr=0.05, layer=2, max_new_tokens=20, max_steps=2, delta_dtype=torch.float32)
    assert trace.answer_ids[0][-1] == 257 and 257 not in trace.targets[0]  # the text: EOS dropped
    assert trace.targets[0] != trace.answer_ids[0][:-1]  # and bytes of broken characters re-tokenised otherwise
    assert trace.targets[1] == trace.answer_ids[1]
    fixed = reference(model, lr=0.05, layer=2, max_new_tokens=20, max_steps=2, delta_dtype=torch.float32,
                      targets="ids")
    assert fixed.targets[0] == fixed.answer_ids[0]
    assert fixed.losses[0] != pytest.approx(trace.losses[0], rel=1e-3)  # the EOS term differs
    text, _ = ours(model, lr=0.05, latent_layer=2, max_new_tokens=20, max_steps=2, offset_dtype="fp32")
    ids, _ = ours(model, lr=0.05, latent_layer=2, max_new_tokens=20, max_steps=2, offset_dtype="fp32",
                  first_targets="ids")
    assert text.trajectory[1]["loss"] == pytest.approx(trace.losses[0], rel=1e-5)
    assert ids.trajectory[1]["loss"] == pytest.approx(fixed.losses[0], rel=1e-5)


def test_tau_stops_the_loop_and_the_baseline_above_tau_is_returned():
    """R > tau before an update stops (G:385): the baseline when its reward is 0, else after the step that got 0."""
    model = eos_model()
    lm = FrozenLM(model, tiny_tokenizer())
    engine = GenerationEngine(lm)

    class Scripted:
        def __init__(self, values):
            self.values, self.calls = values, 0

        def __call__(self, problem, answer):
            self.calls += 1
            return RewardResult(self.values[min(self.calls - 1, len(self.values) - 1)])

    try:
        for values, iterations, stop in (([0.0], 0, "cot_above_tau"), ([-1.0, -1.0, 0.0], 2, "reward_above_tau")):
            config = SeekConfig.for_method("gradcuit", reward="psrm", latent_layer=1, max_new_tokens=12, reuse=False)
            ctx = SolveContext(engine, Scripted(values), config, seed=0, max_steps=5, make_trainer=lambda: L.Trainer(
                **FIT_FLAGS, accelerator="cpu", devices=1, logger=False, max_steps=5,
                callbacks=[RewardThreshold(-0.2)]))
            outcome = gradcuit(PROBLEM, ctx)
            assert (outcome.iterations, outcome.stop_reason) == (iterations, stop)
            assert outcome.text == outcome.trajectory[-1]["text"] and outcome.method == "gradcuit"
            assert outcome.reward_calls == iterations + 1
    finally:
        engine.close()


# ------------------------------------------------------------------------------------ the engine's injection
def test_injected_rows_change_only_themselves_and_reuse_only_the_prompt():
    """An injected row is its prefill with the state written at block L (the same tokens as a hooked no-cache
    re-forward); the row beside it in the batch is what it is alone; the prefix store serves the injected row
    only the prompt, and never stores it."""
    model = tiny_model("llama", layers=4)
    lm = FrozenLM(model, tiny_tokenizer())
    prompt, prefix = list(range(60, 80)), list(range(90, 96))
    ids = prompt + prefix
    state = torch.randn(len(prefix), lm.hidden_size, generator=torch.Generator().manual_seed(0)) * 3
    engine = GenerationEngine(lm)
    try:
        plain = engine.generate([Row(ids, 12, frozenset({257}))])[0]
        engine.stats.clear()
        other = list(range(100, 130))
        injected, beside = engine.generate([Row(ids, 12, frozenset({257}), inject=Injection(2, len(prompt), state)),
                                            Row(other, 12, frozenset({257}))])
        assert engine.stats["reused_tokens"] == len(prompt)  # the prompt, not the prefix (stored with the plain row)
        assert engine.stats["prefill_tokens"] == len(prefix) + len(other)
        alone = engine.generate([Row(other, 12, frozenset({257}))])[0]
        again = engine.generate([Row(ids, 12, frozenset({257}))])[0]  # the injected row left nothing in the store
    finally:
        engine.close()
    expected = ref.reforward_greedy(model, torch.tensor([ids]), 12, {257})
    with ref.prefix_override(model, 2, state.unsqueeze(0), len(prompt), len(ids)):
        hooked = ref.reforward_greedy(model, torch.tensor([ids]), 12, {257})
    assert plain.tokens == expected[0].tolist() and again.tokens == plain.tokens
    assert injected.tokens == hooked[0].tolist() != plain.tokens
    assert beside.tokens == alone.tokens


def test_the_hook_acts_only_for_the_thread_that_set_the_injection():
    """One permanent hook: a forward of another thread at the same time sees the block's real input."""
    lm = FrozenLM(tiny_model("llama", layers=4), tiny_tokenizer())
    ids = torch.tensor([list(range(60, 80))])
    clean = lm.forward_uncached(ids)
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        inside.wait()
        seen["other"] = lm.forward_uncached(ids)
        outside.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    state = torch.ones(3, lm.hidden_size)
    with lm.injections.writing(2, [(0, 5, state)]):
        inside.set()
        outside.wait(30)
        hooked = lm.forward_uncached(ids)
    thread.join()
    assert torch.equal(seen["other"], clean)
    assert torch.equal(hooked[:, :5], clean[:, :5]) and not torch.allclose(hooked[:, 5:], clean[:, 5:])
    assert torch.equal(lm.forward_uncached(ids), clean)  # nothing left behind
    with pytest.raises(ValueError, match="4 decoder blocks"):
        with lm.injections.writing(4, []):
            pass


# ------------------------------------------------------------------------------------ the offset
def test_bf16_offset_on_an_fp32_model_rounds_the_move_as_gradcuits_bf16_sum():
    """GradCuit's bf16 sum init + delta on a bf16 model; on an fp32 model, init keeps its digits and only the move
    is rounded as in bf16: a zero offset injects init exactly, a 1e-3 step is lost where |init| >= 0.5."""
    init = torch.tensor([[0.3, 0.7, 1.5, -3.0, 0.51234567]])
    zero = torch.zeros(1, 5, dtype=torch.bfloat16)
    assert torch.equal(prefix_state(init, zero), init)
    step = torch.full((1, 5), 1e-3, dtype=torch.bfloat16)
    moved = prefix_state(init, step) - init
    assert moved[0, 0].item() == 2 ** -9  # |init| in [0.25, 0.5): bf16 steps of 2^-9, 1e-3 is more than half of one
    assert moved[0, 1:].tolist() == [0.0, 0.0, 0.0, 0.0]  # half a bf16 step of init is 2^-9 or more: lost
    big = torch.full((1, 5), 0.01, dtype=torch.bfloat16)
    assert prefix_state(init, big)[0, 1].item() == pytest.approx(0.7 + (0.7109375 - 0.69921875), abs=1e-7)
    coarse = init.to(torch.bfloat16)  # a bf16 model: exactly GradCuit's sum
    assert torch.equal(prefix_state(coarse, step), coarse + step)
    assert torch.equal(prefix_state(init, step.float()), init + step.float())  # the fp32 fix
    offset = PrefixOffset(init, torch.bfloat16)
    assert [name for name, _ in offset.named_parameters()] == ["delta"] and list(offset.state_dict()) == ["delta"]
    assert offset.delta.dtype == torch.bfloat16 and not offset.delta.any()


# ------------------------------------------------------------------------------------ options and errors
def test_gradcuits_defaults_unless_given():
    assert SeekConfig.for_method("gradcuit").lr == 1e-3
    assert SeekConfig.for_method("gradcuit").max_new_tokens == 2048
    assert SeekConfig.for_method("gradcuit").reward == "single_verifier"
    assert SeekConfig.for_method("latentseek").lr == 0.03
    config = SeekConfig(lr=0.03, max_new_tokens=128, reward="psrm")  # configs/demo.yaml's LatentSeek settings
    demo = apply_method_defaults("gradcuit", config, {"method"})  # --config demo.yaml --method gradcuit
    assert (demo.lr, demo.max_new_tokens, demo.reward) == (1e-3, 128, "psrm")  # its lr; the demo's cap and reward
    unset = apply_method_defaults("gradcuit", SeekConfig(), {"method"})
    assert (unset.lr, unset.max_new_tokens, unset.reward) == (1e-3, 2048, "single_verifier")
    assert apply_method_defaults("gradcuit", config, {"method", "model.lr"}).lr == 0.03  # --model.lr 0.03: wins
    assert apply_method_defaults("gradcuit", SeekConfig(lr=0.01), set()).lr == 0.01  # a GradCuit config file's lr
    assert apply_method_defaults("latentseek", config, {"method"}) is config
    assert apply_method_defaults("random", config, {"method"}) is config


def test_layer_out_of_range_and_empty_prefix_are_one_line_errors():
    lm = FrozenLM(tiny_model("llama", layers=4), tiny_tokenizer())
    engine = GenerationEngine(lm)
    try:
        for options, message in (({"latent_layer": 4}, "--model.latent_layer 4: tiny has 4 decoder blocks (0..3)"),
                                 ({"insert_prefix": " "}, "--model.insert_prefix ' ': GradCuit needs a non-empty"),
                                 ({"prompt": "json"}, "--method gradcuit --model.prompt json: GradCuit's JSON")):
            lm.name = "tiny"
            ctx = SolveContext(engine, TextReward(), SeekConfig.for_method("gradcuit", reward="psrm", **options))
            with pytest.raises(UserError) as error:
                gradcuit(PROBLEM, ctx)
            assert str(error.value).startswith(message)
    finally:
        engine.close()


def test_the_command_line_runs_gradcuit_with_its_own_defaults(tiny_dir, tmp_path, capsys):
    """`--method gradcuit` end to end: records with trajectories, GradCuit's lr in the resolved config; an explicit
    --model.lr wins; LatentSeek's window options are refused."""
    import json

    import yaml

    from lightning_latentseek.cli import main
    from tiny import user_error, write_problems

    data = write_problems(tmp_path / "problems.jsonl", 2)
    common = ["--model.llm", tiny_dir, "--method", "gradcuit", "--model.reward", "psrm", "--data.path", str(data),
              "--model.max_new_tokens", "8", "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
              "--progress", "false"]
    summary = main([*common, "--output_dir", str(tmp_path / "out")])
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["q0", "q1"] and summary["n"] == 2
    assert all(r["method"] == "gradcuit" and 1 <= len(r["trajectory"]) <= 3 for r in records)
    assert all(r["n_latents"] == len(tiny_tokenizer().encode("Let's think about this problem and solve it step by "
                                                             "step.", add_special_tokens=False)) for r in records)
    resolved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["model"]
    assert (resolved["lr"], resolved["max_new_tokens"], resolved["reward"]) == (1e-3, 8, "psrm")
    assert json.loads((tmp_path / "out" / "run_config.json").read_text())["model"]["lr"] == 1e-3
    main([*common, "--model.lr", "0.2", "--output_dir", str(tmp_path / "lr")])
    assert json.loads((tmp_path / "lr" / "run_config.json").read_text())["model"]["lr"] == 0.2
    line = user_error(capsys, [*common, "--model.rho", "0.5", "--output_dir", str(tmp_path / "rho")])
    assert line == "error: --model.rho is ignored with --method gradcuit; it applies to --method latentseek or random"
    rewards = [*common[:4], "--model.reward", "confidence", *common[6:]]
    line = user_error(capsys, [*rewards, "--output_dir", str(tmp_path / "confidence")])
    assert line == ("error: --method gradcuit --model.reward confidence: GradCuit's answers are judged by their text; "
                    "use psrm, self, single_verifier or constant")
    assert not (tmp_path / "confidence").exists()  # refused before any work
