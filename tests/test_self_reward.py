"""Self-reward: verdict parsing, reward arithmetic, early stopping, memo, batched == one by one."""

from __future__ import annotations

import itertools

import pytest

from lightning_latentseek.problems import Problem
from lightning_latentseek.prompts import VERDICT_MARKER, VERIFIER_CHECKS, VerifierCheck
from lightning_latentseek.rewards import build_reward
from lightning_latentseek.rewards.self_reward import (SelfReward, VerdictBudget, parse_verdict, reward_value,
                                                      verdict_readable)

M = VERDICT_MARKER
PROBLEM = Problem(id="p1", question="Tom has 3 apples and buys 4 more. How many apples does he have?",
                  answer="7", dataset="jsonl")
NAMES = [c.name for c in VERIFIER_CHECKS]  # calculation_check, answer_correct, answer_completeness, understanding_check


class StubLM:
    """One token per character. `generate` plays scripted texts (row i gets scripts[i]) token by
    token and honours `stop` and `max_new_tokens` like `FrozenLM.generate`."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.generate_calls = 0
        self.prompts: list[str] = []

    def encode_chat(self, messages):
        return [ord(c) for c in "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def generate(self, rows, max_new_tokens, *, temperature=0.0, generator=None, stop=None):
        self.generate_calls += 1
        self.prompts = [self.decode(r) for r in rows]
        outputs = []
        for i, _ in enumerate(rows):
            tokens = []
            for ch in self.scripts[i % len(self.scripts)][:max_new_tokens]:
                tokens.append(ord(ch))
                if stop is not None and stop(i, tokens):
                    break
            outputs.append(tokens)
        return outputs


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
    llm = StubLM(["I think the solution is correct, it says True somewhere."])
    result = SelfReward(llm)(PROBLEM, "3 + 4 = \\boxed{7}")
    assert all(M in prompt for prompt in llm.prompts)  # the marker is in every prompt ...
    assert result.details["verdicts"] == {name: None for name in NAMES}  # ... but never read from it
    assert result.details["verdict_failures"] == 4
    assert result.value == -1.0


def test_garbage_verdicts_count_as_failed():
    llm = StubLM([f"{M} True", f"{M} perhaps", f"{M} False", "no verdict"])
    result = SelfReward(llm)(PROBLEM, "\\boxed{7}")
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
    assert reward_value(verdicts, weights, format_ok=True) == pytest.approx(-w / 8)
    assert reward_value(verdicts, weights, format_ok=False) == pytest.approx(-(w + 2) / 8)
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
    llm = StubLM([verdict_text(name not in failed) for name in NAMES])
    result = SelfReward(llm, format_rule=format_rule)(PROBLEM, answer)
    w = FAILED_WEIGHT[failed]
    expected = -w / 6 if extra is None else -(w + extra) / 8
    assert result.value == pytest.approx(expected)
    assert -1.0 <= result.value <= 0.0
    assert result.details["verdicts"] == {name: name not in failed for name in NAMES}
    assert result.details["verdict_failures"] == 0
    assert result.details["format_ok"] == (None if extra is None else extra == 0)
    assert set(result.details["verifier_texts"]) == set(NAMES)
    assert llm.generate_calls == 1  # the four checks are one batched generate


def test_format_rule_worst_case_is_minus_one():
    result = SelfReward(StubLM([f"{M} False"]), format_rule=True)(PROBLEM, "seven")
    assert result.value == -1.0 and result.details["format_ok"] is False


def test_build_reward_self():
    reward = build_reward("self", llm=StubLM([f"{M} True"]), verifier_max_new_tokens=77, format_rule=True)
    assert isinstance(reward, SelfReward)
    assert reward.max_new_tokens == 77 and reward.format_rule is True
    assert reward.checks == VERIFIER_CHECKS


# ------------------------------------------------------------------------------------ stopping
def test_rows_stop_as_soon_as_the_verdict_is_readable():
    head = f"Checking.\n{M} **True**"
    scripts = [head + "** and then a lot more text " * 20, f"{M} False. More words follow here.",
               "never any verdict " * 50, f"{M} maybe ... {M} True and more"]
    llm = StubLM(scripts)
    result = SelfReward(llm, max_new_tokens=200)(PROBLEM, "\\boxed{7}")
    texts = result.details["verifier_texts"]
    assert texts["calculation_check"] == f"Checking.\n{M} **True"  # stopped at the verdict word
    assert texts["answer_correct"] == f"{M} False"
    assert texts["answer_completeness"] == scripts[2][:200]  # ran to the cap
    assert texts["understanding_check"] == f"{M} maybe ... {M} True"
    assert result.verifier_tokens == sum(len(t) for t in texts.values())
    assert result.details["verdicts"] == dict(zip(NAMES, [True, False, None, True]))
    assert result.value == pytest.approx(-(1 + 2) / 6)  # answer_correct False, completeness unreadable


@pytest.mark.parametrize("script", [
    f"{M} **False**, since", f"abc {M}\n\n`TRUE` e", f"{M} Tru e {M} false!", f"{M} Truex True",
    f"{M}: maybe\n**{M[:-1]}**: [true]", "e" * 30, f"{M} Falsehood false",
])
def test_row_stops_at_the_first_readable_prefix(script):
    """The stop criterion (with its cheap pre-check) stops exactly where the verdict first becomes readable."""
    llm = StubLM([script])
    result = SelfReward(llm, checks=[VERIFIER_CHECKS[0]], max_new_tokens=len(script))(PROBLEM, "7")
    first = next((n for n in range(1, len(script) + 1) if verdict_readable(script[:n], M)), len(script))
    assert result.details["verifier_texts"]["calculation_check"] == script[:first]


# ------------------------------------------------------------------------------------ memo
def test_identical_answers_are_judged_once():
    llm = StubLM([f"{M} True", f"{M} False"])
    reward = SelfReward(llm)
    first = reward(PROBLEM, "\\boxed{7}")
    again = reward(PROBLEM, "\\boxed{7}")
    assert llm.generate_calls == 1
    assert again.value == first.value and again.details == first.details
    assert first.verifier_tokens > 0 and again.verifier_tokens == 0  # nothing generated the second time
    reward(PROBLEM, "\\boxed{8}")
    assert llm.generate_calls == 2


def test_memo_is_cleared_at_a_new_problem():
    llm = StubLM([f"{M} True"])
    reward = SelfReward(llm)
    other = Problem(id="p2", question="What is 1 + 1?", answer="2", dataset="jsonl")
    reward(PROBLEM, "\\boxed{7}")
    reward(other, "\\boxed{7}")  # same text, other problem: judged
    assert llm.generate_calls == 2
    assert len(reward._memo) == 1
    reward(PROBLEM, "\\boxed{7}")  # the memo only holds the current problem
    assert llm.generate_calls == 3


# ------------------------------------------------------------------------------------ batched == one by one
def test_batched_verifier_matches_one_row_at_a_time(llm):
    reward = SelfReward(llm, max_new_tokens=24)
    reward.stop_hopeless_rows = False  # byte-level tiny vocabulary: 26 tokens for the marker, more than the cap
    batches = []
    generate = llm.generate

    def spy(rows, *args, **kwargs):
        out = generate(rows, *args, **kwargs)
        batches.append((rows, out))
        return out

    llm.generate = spy
    result = reward(PROBLEM, "He has 3 + 4 = 7 apples. \\boxed{7}")
    assert len(batches) == 1 and len(batches[0][0]) == 4
    rows, batched = batches[0]
    marker = reward.marker

    def stop(_row, tokens):
        return verdict_readable(llm.decode(tokens), marker)

    single = [generate([row], 24, stop=stop)[0] for row in rows]
    assert batched == single
    texts = [llm.decode(t) for t in single]
    assert result.details["verifier_texts"] == dict(zip(NAMES, texts))
    assert result.details["verdicts"] == {n: parse_verdict(t, marker) for n, t in zip(NAMES, texts)}
    assert result.verifier_tokens == sum(len(t) for t in single)
    assert all(0 < len(t) <= 24 for t in single)


# ------------------------------------------------------------------------------------ configured checks
def test_checks_from_config_dicts():
    checks = [{"name": "arith", "weight": 3, "instruction": "Is the arithmetic right?"},
              {"name": "units", "weight": 1.0, "instruction": "Are the units right?"}]
    llm = StubLM([f"{M} False", f"{M} True"])
    reward = build_reward("self", llm=llm, args={"checks": checks})
    assert reward.checks == (VerifierCheck("arith", 3.0, "Is the arithmetic right?"),
                             VerifierCheck("units", 1.0, "Are the units right?"))
    result = reward(PROBLEM, "\\boxed{7}")
    assert len(llm.prompts) == 2
    assert "Is the arithmetic right?" in llm.prompts[0] and "Are the units right?" in llm.prompts[1]
    assert result.details["verdicts"] == {"arith": False, "units": True}
    assert result.value == pytest.approx(-3 / 4)


@pytest.mark.parametrize("checks", [
    [],
    [{"name": "a", "weight": 1}],
    [{"name": "a", "weight": 0, "instruction": "x"}],
    [{"name": "a", "weight": 1, "instruction": "x", "extra": 1}],
    [{"name": "a", "weight": 1, "instruction": "x"}, {"name": "a", "weight": 2, "instruction": "y"}],
])
def test_bad_config_checks_are_rejected(checks):
    with pytest.raises(ValueError):
        SelfReward(StubLM(["x"]), checks=checks)


def test_format_rule_follows_the_solver_prompt():
    from lightning_latentseek.rewards.self_reward import SelfReward

    boxed = SelfReward(object(), prompt="boxed", format_rule=True)
    json_prompt = SelfReward(object(), prompt="json", format_rule=True)
    assert boxed.follows_format("so the answer is \\boxed{4}") and not boxed.follows_format('{"final answer": 4}')
    assert json_prompt.follows_format('{"thought process": "2+2", "final answer": 4}')
    assert not json_prompt.follows_format("the answer is 4")


# ------------------------------------------------------------------------------------ hopeless rows stop
BUDGET_VOCAB = ["FINAL", " VERIFICATION ANSWER", " IS", ":", " True", " so", "is: \\boxed{", " verification", "x", "::",
                ": True"]


def test_verdict_budget_is_a_lower_bound_on_every_short_token_sequence():
    """Brute force over a small vocabulary: whenever a continuation b makes the verdict readable after the
    text a, b has at least `needed(a)` tokens, so stopping a row with fewer tokens left changes nothing."""
    budget = VerdictBudget(BUDGET_VOCAB)
    assert budget.fresh == 3  # "final" + "verificationanswer" + "is:boxed": no spaces needed, a lower bound
    shortest = None
    for length in range(1, 6):
        for seq in itertools.product(range(len(BUDGET_VOCAB)), repeat=length):
            text = "".join(BUDGET_VOCAB[i] for i in seq)
            if parse_verdict(text) is None:
                continue
            shortest = length if shortest is None else min(shortest, length)
            for cut in range(length):  # a = seq[:cut] has no verdict yet (the first readable point is later)
                before = "".join(BUDGET_VOCAB[i] for i in seq[:cut])
                if parse_verdict(before) is None:
                    assert length - cut >= budget.needed(before), (before, text)
    assert shortest == 4  # FINAL, VERIFICATION ANSWER, IS, ": True"
    assert budget.needed("the text so far") == budget.fresh
    assert budget.needed("FINAL VERIFICATION ANSWER") == 1  # "is:\\boxed{" may follow
    assert budget.needed("FINAL VERIFICATION ANSWER IS") == 1  # ": True"
    assert budget.needed("FINAL VERIFICATION ANSWER IS:") == 1  # the marker is there
    assert budget.needed("FINAL VERIFICATION ANSWER IS: \\boxed{") == 1  # marker there: verdict may be next


def test_verdict_budget_counts_the_colon_and_the_whole_verdict_word():
    """Word-level tokens as in byte-level BPE vocabularies: the colon and the verdict word cost a token each,
    and a run of colons counts as one colon."""
    budget = VerdictBudget(["FINAL", " VERIFICATION", " ANSWER", " IS", ":", "::", " True", " False", " Tr", "ue"])
    assert budget.fresh == 6  # FINAL, VERIFICATION, ANSWER, IS, :, True
    assert budget.needed("Let me see. FINAL VERIFICATION") == 4
    assert budget.needed("FINAL VERIFICATION ANSWER IS::") == 1  # the marker (its colon doubled) is there
    assert VerdictBudget(["FINAL VERIFICATION ANSWER IS", ": T", "rue"]).fresh == 3  # "T" alone is no verdict


def test_verdict_budget_on_byte_tokens_counts_every_letter(llm):
    budget = VerdictBudget(llm.token_texts())
    assert budget.fresh == len("finalverificationansweris:") + len("true")  # one character per token
    assert budget.needed("... Final verif") == budget.fresh - len("finalverif")


def test_hopeless_rows_stop_early_with_the_same_reward(llm):
    """A verifier cap below the marker's length: rows stop after one token, verdicts and R unchanged."""
    answer = "He has 3 + 4 = 7 apples. \\boxed{7}"
    full = SelfReward(llm, max_new_tokens=20)
    full.stop_hopeless_rows = False
    early = SelfReward(llm, max_new_tokens=20)
    a, b = full(PROBLEM, answer), early(PROBLEM, answer)
    assert a.value == b.value and a.details["verdicts"] == b.details["verdicts"]
    assert b.verifier_tokens == 4 < a.verifier_tokens  # 30 tokens needed, 19 left after the first one
    roomy = SelfReward(llm, max_new_tokens=60)  # room for the marker: rows run until 30 tokens are left
    assert roomy(PROBLEM, answer).verifier_tokens >= 4 * (60 - 30)


# ------------------------------------------------------------------------------------ the solver's cache
def test_verifier_rows_start_from_the_solver_sequence_cache(llm):
    """The verifier prompts continue the solver's conversation: right after the answer was decoded, only
    the verifier turn is prefilled, and verdicts, texts and R are those of a verification from scratch."""
    from lightning_latentseek.llm import _common_prefix_length
    from lightning_latentseek.prompts import solver_messages, verifier_messages

    answer = "He has 3 + 4 = 7 apples. \\boxed{7}"
    solver = solver_messages(PROBLEM.question, "boxed", PROBLEM.dataset)
    prompt_ids = llm.encode_chat(solver)
    answer_ids = llm._encode(answer, split_special=True)
    rows = [llm.encode_chat(verifier_messages(solver, answer, check)) for check in VERIFIER_CHECKS]
    shared = min(_common_prefix_length(rows), min(len(r) for r in rows) - 1)  # as `FrozenLM.generate` splits them
    assert rows[0][:len(prompt_ids) + len(answer_ids)] == prompt_ids + answer_ids

    def judge(reuse: bool):
        llm.prefix_reuse = reuse
        llm.continue_greedy(llm.prefill(prompt_ids), answer_ids, 0)  # the solver has just decoded the answer
        reward = SelfReward(llm, prompt="boxed", max_new_tokens=12)
        reward.stop_hopeless_rows = False
        forwards = []
        forward = llm._forward

        def counting(ids, cache, **kwargs):
            forwards.append(tuple(ids.shape))
            return forward(ids, cache, **kwargs)

        llm._forward = counting
        try:
            return reward(PROBLEM, answer), forwards
        finally:
            del llm._forward
            llm.prefix_reuse = True

    fresh, fresh_forwards = judge(reuse=False)
    reused, reused_forwards = judge(reuse=True)
    assert fresh_forwards[0] == (1, shared)  # everything prefilled
    # the kept solver sequence holds prompt + answer but its last token (never fed back)
    assert reused_forwards[0] == (1, shared - (len(prompt_ids) + len(answer_ids) - 1))
    assert reused.value == fresh.value and reused.details == fresh.details
    assert reused.verifier_tokens == fresh.verifier_tokens
