"""Tests for the Arith generator: determinism, distinctness, and ground truths recomputed independently."""

import ast
import json
import re

import pytest

from lightning_latentseek import arith
from lightning_latentseek.arith import generate, main
from lightning_latentseek.problems import load_problems

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def evaluate(expression: str) -> tuple[int, list[int], list[int], list[str]]:
    """Evaluate a parenthesised integer expression with this test's own rules.

    Returns (value, every intermediate value, the constants, the operators). Division must be exact.
    """
    intermediates: list[int] = []
    constants: list[int] = []
    operators: list[str] = []

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            constants.append(node.value)
            return node.value
        assert isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS, ast.dump(node)
        left, right = walk(node.left), walk(node.right)
        symbol = _OPERATORS[type(node.op)]
        operators.append(symbol)
        if symbol == "+":
            value = left + right
        elif symbol == "-":
            value = left - right
        elif symbol == "*":
            value = left * right
        else:
            assert right != 0 and left % right == 0, f"inexact division {left} / {right} in {expression}"
            value = left // right
        intermediates.append(value)
        return value

    return walk(ast.parse(expression, mode="eval").body), intermediates, constants, operators


def test_evaluator_itself() -> None:
    assert evaluate("((14 + (3 * 5)) - 9)") == (20, [15, 29, 20], [14, 3, 5, 9], ["*", "+", "-"])
    with pytest.raises(AssertionError, match="inexact"):
        evaluate("(7 / 2)")


# The first problem of each level for seed 0, spelled out: an accidental change of the generator shows here.
FIRST_SEED0 = {
    1: ("Nadia owns 13 plums. Yuki gives her another 6 plums. How many plums does Nadia have in the end?",
        "19", "(13 + 6)"),
    2: ("Hannah has a collection of 5 feathers. 2 of the feathers get damaged, and she throws them away. "
        "By the end of the week, her pile of feathers has grown to three times its size. "
        "How many feathers does Hannah have in the end?",
        "9", "((5 - 2) * 3)"),
    3: ("Malik starts the week with 19 markers. Each of his 2 cousins takes 6 markers. Ana gives him another "
        "2 markers. How many markers does Malik have at the end?",
        "9", "((19 - (2 * 6)) + 2)"),
}


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_first_problem_of_seed0_is_fixed(steps: int) -> None:
    first = generate(steps, 1, seed=0)[0]
    question, answer, expression = FIRST_SEED0[steps]
    assert first == {"id": f"arith{steps}-0-0000", "question": question, "answer": answer, "steps": steps,
                     "expression": expression}


def test_same_seed_same_problems_and_prefix() -> None:
    rows = generate(2, 60, seed=3)
    assert rows == generate(2, 60, seed=3)
    assert generate(2, 25, seed=3) == rows[:25]  # a smaller n is a prefix: calibration sets nest


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_different_seeds_give_different_problems(steps: int) -> None:
    a = {row["question"] for row in generate(steps, 200, seed=0)}
    b = {row["question"] for row in generate(steps, 200, seed=1)}
    assert len(a & b) <= 2


@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 987654321])
def test_500_distinct_problems_with_independently_checked_answers(steps: int, seed: int) -> None:
    rows = generate(steps, 500, seed=seed)
    assert len(rows) == 500
    assert len({row["question"] for row in rows}) == 500
    assert [row["id"] for row in rows] == [f"arith{steps}-{seed}-{i:04d}" for i in range(500)]
    used_operators: set[str] = set()
    for row in rows:
        assert row["steps"] == steps
        assert re.fullmatch(r"\d+", row["answer"]), row
        value, intermediates, constants, operators = evaluate(row["expression"])
        assert str(value) == row["answer"], row
        assert len(operators) == steps, row
        assert all(0 <= v < 100 for v in intermediates + constants), row  # small numbers
        assert value >= 1, row
        # Every number written in the question is an operand; the operands that are not written as
        # digits are small factors said in words ("doubles", "a third").
        written = [int(t) for t in re.findall(r"\d+", row["question"])]
        unwritten = list(constants)
        for number in written:
            assert number in unwritten, (number, row)
            unwritten.remove(number)
        assert all(2 <= c <= 5 for c in unwritten), row
        assert row["question"].endswith("?") and row["question"].count("?") == 1
        used_operators.update(operators)
    assert used_operators == {"+", "-", "*", "/"}


@pytest.mark.parametrize(("steps", "n", "seed"), [(0, 1, 0), (4, 1, 0), (1, -1, 0), (1, 2.0, 0), (1, 1, "0")])
def test_bad_arguments_raise(steps, n, seed) -> None:
    with pytest.raises(ValueError):
        generate(steps, n, seed)


def test_too_many_problems_for_the_templates_raises(monkeypatch) -> None:
    # Shrink the word lists and number ranges until only a few hundred distinct 1-step problems exist.
    monkeypatch.setattr(arith, "NAMES", arith.NAMES[:1] + arith.NAMES[-1:])
    monkeypatch.setattr(arith, "OBJECTS", arith.OBJECTS[:1])
    monkeypatch.setattr(arith, "RELATIVES", arith.RELATIVES[:1])
    for name in ("START_RANGE", "ADD_RANGE", "FACTOR_RANGE", "DIVISOR_RANGE", "COUNT_RANGE", "SIZE_RANGE"):
        monkeypatch.setattr(arith, name, (6, 6) if name == "START_RANGE" else (2, 2))
    monkeypatch.setattr(arith, "MAX_STALLED_DRAWS", 3000)
    with pytest.raises(ValueError, match=r"only \d+ distinct 1-step problems .*asked for 5000\)"):
        generate(1, 5000, seed=0)


def test_cli_writes_jsonl_the_loader_reads(tmp_path) -> None:
    out = tmp_path / "arith.jsonl"
    main(["--steps", "2", "--n", "3", "--seed", "0", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == generate(2, 3, seed=0)
    problems = load_problems("jsonl", str(out))
    assert [(p.id, p.answer) for p in problems] == [("arith2-0-0000", "9"), (rows[1]["id"], rows[1]["answer"]),
                                                   (rows[2]["id"], rows[2]["answer"])]


def test_cli_bad_level_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "4", "--n", "3"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("error: steps must be one of 1, 2, 3, got 4")
