"""Arith: this project's own seeded benchmark of short arithmetic word problems (1 to 3 operations).

Small models fail GSM8K almost always (SmolLM2-135M-Instruct solves none), so LatentSeek's effect
cannot be measured there. Arith asks the same kind of question at a controlled depth: a short story
about one person's collection of objects, where every sentence after the first changes the count
by one operation (+, -, x or exact division) or by adding / removing a product ("buys 3 packs of 5
stickers"), followed by a question about the final count. ``steps`` is the number of arithmetic
operations in the story (1, 2 or 3). The idea of templated problems with varied names, objects,
numbers and phrasings follows GSM-Symbolic (Mirzadeh et al., 2024); the templates, word lists and
code here are written for this project.

How the ground truth is computed: the story is built step by step from a running count. Each step
draws its numbers so that the new count is a whole number in ``[1, MAX_VALUE)`` (subtraction never
goes to zero or below, division is exact), applies the operation with integer arithmetic and
appends the step's operation to a fully parenthesised ``expression`` string, e.g.
``"((14 + (3 * 5)) - 9)"``. The answer is the final count; the expression lets a reader (or a test)
recompute it independently.

Entry point: :func:`generate`; ``python -m lightning_latentseek.arith --steps 2 --n 500 --seed 0
--out FILE.jsonl`` writes the rows as JSONL, ready for ``train_free.py --data.path FILE.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from typing import Callable

LEVELS = (1, 2, 3)
# Small numbers on purpose: the task is the reasoning, not the arithmetic. Calibration, seed 0, greedy boxed
# CoT of the embedded SmolLM2-135M-Instruct (Q4_1), 128 new tokens, 100 problems, graded with the original's
# answer extraction and grading (the defaults; numeric grading gives the same): 1 step 38%; with strict extraction
# (\boxed{} only) 7%; 2 steps 1%, 3 steps 0%.
MAX_VALUE = 100  # every intermediate and final count is below this
START_RANGE = (2, 20)  # first count of a plain setup ("Maya has 14 stickers.")
ADD_RANGE = (2, 9)  # added / removed amounts
FACTOR_RANGE = (2, 3)  # "doubles", "three times as many"
DIVISOR_RANGE = (2, 3)  # "keeps half", "splits into 3 equal piles and keeps one"
COUNT_RANGE = (2, 5)  # number of packs / friends / days in a product
SIZE_RANGE = (2, 6)  # objects per pack / friend / day in a product
MAX_STALLED_DRAWS = 20_000  # consecutive duplicate or infeasible draws before giving up

# ---------------------------------------------------------------------------------- word lists
# (name, he, him, his, himself)
_SHE = ("she", "her", "her", "herself")
_HE = ("he", "him", "his", "himself")
NAMES: tuple[tuple[str, tuple[str, str, str, str]], ...] = tuple(
    [(n, _SHE) for n in (
        "Maya", "Sofia", "Aisha", "Emma", "Priya", "Lucia", "Hannah", "Mei", "Fatima", "Chloe",
        "Amara", "Ingrid", "Yuki", "Olivia", "Zara", "Rosa", "Leila", "Nadia", "Grace", "Ana",
    )]
    + [(n, _HE) for n in (
        "Leo", "Omar", "Liam", "Kenji", "Mateo", "Ravi", "Noah", "Tariq", "Lucas", "Ethan",
        "Diego", "Sven", "Kwame", "Ivan", "Samuel", "Hugo", "Arjun", "Felix", "Malik", "Tom",
    )]
)
# (objects, container, containers)
OBJECTS: tuple[tuple[str, str, str], ...] = (
    ("stickers", "pack", "packs"), ("marbles", "bag", "bags"), ("pencils", "box", "boxes"),
    ("cookies", "tray", "trays"), ("apples", "basket", "baskets"), ("baseball cards", "pack", "packs"),
    ("crayons", "box", "boxes"), ("beads", "jar", "jars"), ("stamps", "sheet", "sheets"),
    ("seashells", "bucket", "buckets"), ("buttons", "jar", "jars"), ("balloons", "bag", "bags"),
    ("candles", "box", "boxes"), ("eggs", "carton", "cartons"), ("oranges", "crate", "crates"),
    ("cupcakes", "tray", "trays"), ("toy cars", "box", "boxes"), ("comic books", "stack", "stacks"),
    ("bottle caps", "bag", "bags"), ("postcards", "set", "sets"), ("markers", "pack", "packs"),
    ("lemons", "bag", "bags"), ("potatoes", "sack", "sacks"), ("muffins", "box", "boxes"),
    ("pebbles", "bucket", "buckets"), ("flowers", "bunch", "bunches"), ("tomatoes", "basket", "baskets"),
    ("chocolates", "box", "boxes"), ("coins", "pouch", "pouches"), ("paper clips", "box", "boxes"),
    ("feathers", "bag", "bags"), ("tennis balls", "can", "cans"), ("batteries", "pack", "packs"),
    ("puzzle pieces", "bag", "bags"), ("ribbons", "roll", "rolls"), ("plums", "bowl", "bowls"),
)
RELATIVES = (
    "brother", "sister", "cousin", "aunt", "uncle", "grandmother", "grandfather", "neighbour",
    "mother", "father", "teacher", "best friend",
)
TIMES_WORD = {2: "twice", 3: "three times", 4: "four times", 5: "five times"}
GROW_VERB = {2: "doubles", 3: "triples", 4: "quadruples", 5: "quintuples"}
FRACTION_WORD = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}

# ---------------------------------------------------------------------------------- templates
# Placeholders: {name} {He} {he} {His} {his} {him} {himself} {objs} {cont} {conts} {rel} {friend}
# and the step's numbers: {x} (setup count), {n} (amount), {k} (factor / divisor) with {times},
# {grow}, {frac} (its words), {a} (how many packs / friends / days) and {b} (objects in each).
SETUP_PLAIN = (
    "{name} has {x} {objs}.",
    "{name} owns {x} {objs}.",
    "{name} starts the week with {x} {objs}.",
    "{name} has a collection of {x} {objs}.",
    "{name} keeps {x} {objs} in a drawer.",
    "At the start of the month, {name} has {x} {objs}.",
)
SETUP_PRODUCT = (  # count = a * b
    "{name} has {a} {conts} of {objs} with {b} {objs} in each.",
    "{name} owns {a} {conts}, and each {cont} holds {b} {objs}.",
    "{name} buys {a} {conts} of {objs}, and each {cont} has {b} {objs}.",
    "{name} has {a} {conts} with {b} {objs} in every {cont}.",
    "{name} starts with {a} full {conts} of {objs}, {b} {objs} per {cont}.",
    "{name}'s {rel} gives {him} {a} {conts} of {objs}, and there are {b} {objs} in each {cont}.",
)
ADD = (  # count + n
    "{He} buys {n} more {objs}.",
    "{His} {rel} gives {him} {n} {objs}.",
    "{He} finds {n} more {objs} under the sofa.",
    "{friend} gives {him} another {n} {objs}.",
    "{He} wins {n} {objs} at the school fair.",
    "{He} gets {n} more {objs} for {his} birthday.",
    "The next day, {he} collects another {n} {objs}.",
    "{He} trades a book for {n} more {objs}.",
)
SUBTRACT = (  # count - n
    "{He} gives {n} {objs} to {his} {rel}.",
    "{He} loses {n} of them.",
    "{He} sells {n} {objs} to a neighbour.",
    "{He} uses {n} {objs} for a school project.",
    "{friend} borrows {n} {objs} and never gives them back.",
    "{He} trades away {n} of {his} {objs}.",
    "{n} of the {objs} get damaged, and {he} throws them away.",
    "{He} donates {n} {objs} to the library sale.",
)
MULTIPLY = (  # count * k
    "The number of {objs} {he} has {grow}.",
    "A month later, {he} has {times} as many {objs} as before.",
    "{His} {rel} gives {him} enough {objs} to make {his} collection {times} as large.",
    "After a lucky trade, {he} ends up with {times} as many {objs}.",
    "By the end of the week, {his} pile of {objs} has grown to {times} its size.",
    "{He} keeps collecting until {he} has {times} as many {objs} as {he} had.",
)
DIVIDE = (  # count / k
    "{He} keeps {frac} of {his} {objs} and gives the rest away.",
    "{He} splits {his} {objs} into {k} equal piles and keeps only one pile.",
    "{He} shares {his} {objs} equally among {k} people, including {himself}, and keeps {his} share.",
    "{He} packs {his} {objs} equally into {k} boxes and gives away all but one box.",
    "{He} sells all but {frac} of {his} {objs}.",
    "After a move, only {frac} of {his} {objs} are left; the rest are lost.",
)
ADD_PRODUCT = (  # count + a * b
    "{He} buys {a} {conts} of {objs} with {b} {objs} in each.",
    "{He} buys {a} {conts}, and each {cont} holds {b} {objs}.",
    "{friend} gives {him} {a} {conts}, each with {b} {objs}.",
    "{He} wins {a} {conts} of {b} {objs} each.",
    "For {a} days, {he} gets {b} new {objs} every day.",
    "{His} {rel} visits {a} times and brings {him} {b} {objs} on each visit.",
)
SUBTRACT_PRODUCT = (  # count - a * b
    "{He} gives {b} {objs} to each of {his} {a} friends.",
    "{He} uses {b} {objs} a day for {a} days.",
    "{He} sells {a} {conts} of {objs} with {b} {objs} in each.",
    "{He} fills {a} gift bags with {b} {objs} each and gives the bags away.",
    "{He} loses {b} {objs} every week for {a} weeks.",
    "Each of {his} {a} cousins takes {b} {objs}.",
)
QUESTION = (
    "How many {objs} does {name} have now?",
    "How many {objs} does {name} have at the end?",
    "How many {objs} does {name} end up with?",
    "How many {objs} does {name} have in the end?",
    "What is the number of {objs} {name} has now?",
    "How many {objs} does {name} have after all this?",
)
QUESTION_TOTAL = (  # a story that is only the product setup
    "How many {objs} does {name} have?",
    "How many {objs} does {name} have in total?",
    "How many {objs} does {name} have altogether?",
    "What is the total number of {objs} {name} has?",
)


@dataclass(frozen=True)
class _Move:
    """One kind of story step: its templates, how many operations it adds, how it draws numbers."""

    name: str
    ops: int
    templates: tuple[str, ...]
    # (count, rng) -> (new count, number fields, expression builder) or None when no numbers fit
    draw: Callable[[int, random.Random], tuple[int, dict, Callable[[str], str]] | None]


def _draw_add(x: int, rng: random.Random):
    """count + n."""
    n = rng.randint(*ADD_RANGE)
    return (x + n, {"n": n}, lambda e: f"({e} + {n})") if x + n < MAX_VALUE else None


def _draw_subtract(x: int, rng: random.Random):
    """count - n, n < count."""
    high = min(ADD_RANGE[1], x - 1)
    if high < ADD_RANGE[0]:
        return None
    n = rng.randint(ADD_RANGE[0], high)
    return x - n, {"n": n}, lambda e: f"({e} - {n})"


def _draw_multiply(x: int, rng: random.Random):
    """count * k."""
    options = [k for k in range(FACTOR_RANGE[0], FACTOR_RANGE[1] + 1) if x * k < MAX_VALUE]
    if not options:
        return None
    k = rng.choice(options)
    return x * k, {"k": k, "times": TIMES_WORD[k], "grow": GROW_VERB[k]}, lambda e: f"({e} * {k})"


def _draw_divide(x: int, rng: random.Random):
    """count / k, exact."""
    options = [k for k in range(DIVISOR_RANGE[0], DIVISOR_RANGE[1] + 1) if x % k == 0]
    if not options:
        return None
    k = rng.choice(options)
    return x // k, {"k": k, "frac": FRACTION_WORD[k]}, lambda e: f"({e} / {k})"


def _draw_add_product(x: int, rng: random.Random):
    """count + a * b."""
    a, b = rng.randint(*COUNT_RANGE), rng.randint(*SIZE_RANGE)
    return (x + a * b, {"a": a, "b": b}, lambda e: f"({e} + ({a} * {b}))") if x + a * b < MAX_VALUE else None


def _draw_subtract_product(x: int, rng: random.Random):
    """count - a * b, a * b < count."""
    a, b = rng.randint(*COUNT_RANGE), rng.randint(*SIZE_RANGE)
    return (x - a * b, {"a": a, "b": b}, lambda e: f"({e} - ({a} * {b}))") if a * b < x else None


MOVES = (
    _Move("add", 1, ADD, _draw_add),
    _Move("subtract", 1, SUBTRACT, _draw_subtract),
    _Move("multiply", 1, MULTIPLY, _draw_multiply),
    _Move("divide", 1, DIVIDE, _draw_divide),
    _Move("add_product", 2, ADD_PRODUCT, _draw_add_product),
    _Move("subtract_product", 2, SUBTRACT_PRODUCT, _draw_subtract_product),
)
PRODUCT_SETUP_CHANCE = 0.25  # chance that the first sentence is itself a product ("3 packs of 5")


def _fill(template: str, words: dict) -> str:
    """The template with its placeholders filled, first letter upper case."""
    text = template.format(**words)
    return text[0].upper() + text[1:]


def _draw_problem(steps: int, rng: random.Random) -> tuple[str, int, str] | None:
    """One random problem with ``steps`` operations: (question, answer, expression), or None when the
    drawn plan has no numbers that keep every count a whole number in [1, MAX_VALUE)."""
    name, (he, him, his, himself) = rng.choice(NAMES)
    objs, cont, conts = rng.choice(OBJECTS)
    others = [n for n, _ in NAMES if n != name]

    def people() -> dict:
        """A relative and a friend for one sentence (each sentence draws its own)."""
        return {"rel": rng.choice(RELATIVES), "friend": rng.choice(others)}
    words = {
        "name": name, "he": he, "He": he.capitalize(), "him": him, "his": his, "His": his.capitalize(),
        "himself": himself, "objs": objs, "cont": cont, "conts": conts,
    }
    sentences = []
    if rng.random() < PRODUCT_SETUP_CHANCE:
        a, b = rng.randint(*COUNT_RANGE), rng.randint(*SIZE_RANGE)
        count, expression, left = a * b, f"({a} * {b})", steps - 1
        sentences.append(_fill(rng.choice(SETUP_PRODUCT), {**words, **people(), "a": a, "b": b}))
    else:
        count = rng.randint(*START_RANGE)
        expression, left = str(count), steps
        sentences.append(_fill(rng.choice(SETUP_PLAIN), {**words, "x": count}))
    used: set[str] = set()  # no template twice in one story
    while left > 0:
        move = rng.choice([m for m in MOVES if m.ops <= left])
        drawn = move.draw(count, rng)
        if drawn is None:
            return None
        count, numbers, build = drawn
        expression = build(expression)
        template = rng.choice([t for t in move.templates if t not in used])
        used.add(template)
        sentences.append(_fill(template, {**words, **people(), **numbers}))
        left -= move.ops
    questions = QUESTION_TOTAL if len(sentences) == 1 else QUESTION
    sentences.append(_fill(rng.choice(questions), words))
    return " ".join(sentences), count, expression


def generate(steps: int, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct arithmetic word problems with ``steps`` operations each, drawn with ``seed``.

    Rows: ``{"id": "arith{steps}-{seed}-{i:04d}", "question", "answer" (integer as a string),
    "steps", "expression" (the fully parenthesised computation, e.g. "((14 + (3 * 5)) - 9)")}``.
    The same (steps, seed) always gives the same sequence, and a smaller ``n`` gives a prefix of a
    larger one. Raises ValueError for a level outside 1-3, a negative ``n``, or an ``n`` beyond the
    distinct problems the templates can produce (no new problem in ``MAX_STALLED_DRAWS`` draws).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps not in LEVELS:
        raise ValueError(f"steps must be one of {', '.join(map(str, LEVELS))}, got {steps!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rng = random.Random(f"arith:{steps}:{seed}")  # str seeds are hashed with SHA-512: stable across runs
    rows: list[dict] = []
    seen: set[str] = set()
    stalled = 0
    while len(rows) < n:
        drawn = _draw_problem(steps, rng)
        if drawn is None or drawn[0] in seen:
            stalled += 1
            if stalled >= MAX_STALLED_DRAWS:
                raise ValueError(
                    f"only {len(rows)} distinct {steps}-step problems could be generated with seed {seed} "
                    f"(asked for {n}): the templates produce no more without duplicates"
                )
            continue
        stalled = 0
        question, answer, expression = drawn
        seen.add(question)
        rows.append({
            "id": f"arith{steps}-{seed}-{len(rows):04d}",
            "question": question,
            "answer": str(answer),
            "steps": steps,
            "expression": expression,
        })
    return rows


def arith_problems(steps: int, size: int, seed: int = 0, start: int = 0, limit: int | None = None) -> list:
    """``--data.name arith``: the first `size` problems of a level as `Problem`s (dataset ``arith``: numeric
    answers), then ``[start:start + limit]``. Bad options are user errors."""
    from lightning_latentseek.problems import Problem, ProblemDataError

    try:
        rows = generate(steps, size, seed)
    except ValueError as err:
        raise ProblemDataError(f"--data.arith_steps {steps} / --data.arith_size {size}: {err}") from None
    selected = rows[start: None if limit is None else start + limit]
    if not selected:
        raise ProblemDataError(f"arith: no problems after --data.start {start} / --data.limit {limit} ({len(rows)})")
    return [Problem(id=row["id"], question=row["question"], answer=row["answer"], dataset="arith",
                    meta={"source": f"arith steps={steps} seed={seed}", "row": i, "expression": row["expression"]})
            for i, row in enumerate(selected, start=start)]


def main(argv: list[str] | None = None) -> None:
    """CLI: write ``generate(steps, n, seed)`` as JSONL to ``--out`` (stdout when omitted)."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_latentseek.arith",
        description="Write seeded arithmetic word problems (this project's Arith benchmark) as JSONL.",
    )
    parser.add_argument("--steps", type=int, required=True, help="operations per problem: 1, 2 or 3")
    parser.add_argument("--n", type=int, required=True, help="number of distinct problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSONL file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        rows = generate(args.steps, args.n, args.seed)
    except ValueError as err:
        parser.error(str(err))
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as err:
        parser.error(f"--out {args.out}: cannot write ({err.strerror or err})")


if __name__ == "__main__":
    main()
