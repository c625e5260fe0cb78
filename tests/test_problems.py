"""Tests for problem loading."""

import json
from pathlib import Path

import pytest

from lightning_latentseek.errors import UserError
from lightning_latentseek.problems import (
    Problem,
    ProblemDataError,
    load_problems,
    load_problems_with_errors,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"  # slices of the real benchmark files (see tests/data/README.md)
DEMO = Path(__file__).resolve().parents[1] / "lightning_latentseek" / "data" / "demo.jsonl"


def write_jsonl(path: Path, lines: list[object]) -> str:
    """Write one JSON value (or a raw string) per line and return the path as a string."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def test_jsonl_defaults_ids_and_meta(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"question": "1+1?", "answer": 2},
            "",
            {"problem": "2+2?", "answer": " 4 ", "id": "p-2"},
            {"question": "GSM-style?", "answer": "steps\n#### 1,234"},
        ],
    )
    problems = load_problems("jsonl", path)
    assert [(p.id, p.question, p.answer) for p in problems] == [
        ("0", "1+1?", "2"),
        ("p-2", "2+2?", "4"),
        ("2", "GSM-style?", "1,234"),  # the blank line is not a row
    ]
    assert all(p.dataset == "jsonl" for p in problems)
    assert problems[1].meta == {"source": path, "line": 3}


def test_problem_equality_ignores_meta() -> None:
    assert Problem("1", "q", "a", "jsonl", {"line": 1}) == Problem("1", "q", "a", "jsonl", {"line": 9})


@pytest.mark.parametrize(
    ("name", "row", "expected_id", "expected_answer"),
    [
        ("gsm8k", {"question": "q", "answer": "work\n#### 1,234"}, "0", "1,234"),  # commas kept, as the original
        ("gsm8k", {"question": "q", "answer": " 1,234 "}, "0", "1,234"),
        (
            "math500",
            {"problem": "q", "answer": r"\frac{1}{2} ", "unique_id": "test/x/1.json"},
            "test/x/1.json",
            r"\frac{1}{2} ",  # kept as is
        ),
        ("aime2024", {"problem": "q", "answer": "025", "id": 60}, "60", "25"),
        ("aime2024", {"problem": "q", "answer": 7, "id": 61}, "61", "7"),
        ("jsonl", {"question": "q", "answer": 3.5}, "0", "3.5"),
    ],
)
def test_ground_truth_rules(tmp_path: Path, name: str, row: dict, expected_id: str, expected_answer: str) -> None:
    [problem] = load_problems(name, write_jsonl(tmp_path / "d.jsonl", [row]))
    assert (problem.id, problem.answer, problem.dataset) == (expected_id, expected_answer, name)


def test_aime_rejects_non_integer_answer(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "aime.jsonl", [{"problem": "q", "answer": "2.5"}])
    with pytest.raises(ProblemDataError, match=r"aime\.jsonl, line 1: field 'answer' is not an integer"):
        load_problems("aime2024", path)


def test_custom_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "label": "5", "key": "k1"}])
    [problem] = load_problems("jsonl", path, question_field="prompt", answer_field="label", id_field="key")
    assert (problem.id, problem.question, problem.answer) == ("k1", "q", "5")


def test_explicit_id_field_is_required(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "5"}])
    with pytest.raises(ProblemDataError, match=r"line 1: missing field 'key' \(fields present: question, answer\)"):
        load_problems("jsonl", path, id_field="key")


def test_json_file_list_and_data_key(tmp_path: Path) -> None:
    rows = [{"question": "a", "answer": "1"}, {"question": "b", "answer": "2"}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "dict.json").write_text(json.dumps({"data": rows}))
    for file_name in ("list.json", "dict.json"):
        problems = load_problems("jsonl", str(tmp_path / file_name))
        assert [(p.id, p.answer) for p in problems] == [("0", "1"), ("1", "2")]
        assert problems[1].meta["row"] == 1


def test_json_file_errors_name_row(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"question": "a", "answer": "1"}, {"question": "b"}]))
    with pytest.raises(ProblemDataError, match=r"d\.json, row 1: missing field 'answer'"):
        load_problems("jsonl", str(path))
    path.write_text('{"rows": []}')
    with pytest.raises(ProblemDataError, match=r"d\.json: expected a JSON list"):
        load_problems("jsonl", str(path))


def test_parquet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")  # keep ~/.cache clean
    path = tmp_path / "d.parquet"
    rows = [{"problem": "a", "answer": "007", "id": 60}, {"problem": "b", "answer": "12", "id": 61}]
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    problems = load_problems("aime2024", str(path))
    assert [(p.id, p.answer) for p in problems] == [("60", "7"), ("61", "12")]
    assert problems[0].meta == {"source": str(path), "row": 0}


def fake_hub(monkeypatch: pytest.MonkeyPatch, rows: list[dict] | None = None, error: Exception | None = None) -> list:
    """Replace ``datasets.load_dataset`` (no network in tests): record each call as (args, kwargs) and
    return ``rows`` as an in-memory ``datasets.Dataset``, or raise ``error``."""
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[tuple, dict]] = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        if error is not None:
            raise error
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_hub_id_is_loaded_with_split(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_hub(monkeypatch, [{"problem": "q", "answer": "1", "unique_id": "u1"}])
    [problem] = load_problems("math500", "Org/MATH-500", split="validation")
    assert calls == [(("Org/MATH-500", None), {"split": "validation"})]
    assert problem.id == "u1"
    assert problem.meta == {"source": "Org/MATH-500 (split validation)", "row": 0}
    load_problems("jsonl", "Org/other")  # another hub id without --data.split: its test split
    assert calls[1] == (("Org/other", None), {"split": "test"})


# One row of each benchmark as the hub holds it (column names and value types of the hub datasets).
HUB_ROWS = {
    "gsm8k": {"question": "Natalia sold 48 clips. How many?", "answer": "48 + 24 = <<48+24=72>>72\n#### 1,072"},
    "math500": {"problem": "Compute $1/2$.", "solution": "It is $\\frac{1}{2}$.", "answer": "\\frac{1}{2}",
                "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"},
    "aime2024": {"ID": "2024-I-1", "Problem": "Every morning Aya walks.", "Solution": "...", "Answer": 204},
}


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("gsm8k", ("openai/gsm8k", "socratic"), ("0", "Natalia sold 48 clips. How many?", "1,072")),
        ("math500", ("HuggingFaceH4/MATH-500", None), ("test/algebra/1.json", "Compute $1/2$.", "\\frac{1}{2}")),
        ("aime2024", ("Maxwell-Jia/AIME_2024", None), ("2024-I-1", "Every morning Aya walks.", "204")),
    ],
)
def test_benchmarks_load_from_the_hub_by_default(monkeypatch, name, args, expected) -> None:
    calls = fake_hub(monkeypatch, [HUB_ROWS[name]])
    [problem] = load_problems(name)
    split = "train" if name == "aime2024" else "test"  # as the LatentSeek reference code loads them
    assert calls == [(args, {"split": split})]
    assert (problem.id, problem.question, problem.answer, problem.dataset) == (*expected, name)
    config = "" if args[1] is None else f"config {args[1]}, "
    assert problem.meta == {"source": f"{args[0]} ({config}split {split})", "row": 0}


def test_data_split_overrides_the_benchmark_split(monkeypatch) -> None:
    calls = fake_hub(monkeypatch, [HUB_ROWS["aime2024"]])
    load_problems("aime2024", split="test")
    assert calls == [(("Maxwell-Jia/AIME_2024", None), {"split": "test"})]
    fake_hub(monkeypatch, [HUB_ROWS["gsm8k"]])
    [problem] = load_problems("gsm8k", split="train")
    assert problem.meta["source"] == "openai/gsm8k (config socratic, split train)"


def test_the_benchmarks_own_hub_id_gets_its_config_and_split(monkeypatch) -> None:
    calls = fake_hub(monkeypatch, [HUB_ROWS["gsm8k"]])
    load_problems("gsm8k", "openai/gsm8k")
    assert calls == [(("openai/gsm8k", "socratic"), {"split": "test"})]


def test_unreachable_hub_is_one_line_user_error(monkeypatch) -> None:
    fake_hub(monkeypatch, error=ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)"))
    with pytest.raises(ProblemDataError) as caught:
        load_problems("gsm8k")
    assert str(caught.value) == ("openai/gsm8k (config socratic, split test): the Hugging Face hub could not be "
                                 "reached; pass a local copy with --data.path FILE (.jsonl, .json or .parquet)")
    assert isinstance(caught.value, UserError)


def test_other_hub_failure_names_the_reason(monkeypatch) -> None:
    fake_hub(monkeypatch, error=ValueError("Unknown split \"dev\".\nShould be one of ['train']."))
    with pytest.raises(ProblemDataError) as caught:
        load_problems("aime2024", split="dev")
    assert str(caught.value) == (
        "Maxwell-Jia/AIME_2024 (split dev): could not be loaded from the Hugging Face hub "
        "(Unknown split \"dev\".; Should be one of ['train'].); or pass a local copy with --data.path FILE "
        "(.jsonl, .json or .parquet)")


def test_local_file_with_hub_column_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "aime.jsonl", [HUB_ROWS["aime2024"], {"ID": "2024-II-1", "Problem": "q", "Answer": "033"}])
    problems = load_problems("aime2024", path)
    assert [(p.id, p.answer) for p in problems] == [("2024-I-1", "204"), ("2024-II-1", "33")]


def test_start_and_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(5)])
    assert [p.id for p in load_problems("jsonl", path, start=1, limit=2)] == ["1", "2"]
    assert [p.id for p in load_problems("jsonl", path, start=3)] == ["3", "4"]
    assert [p.id for p in load_problems("jsonl", path, limit=10)] == ["0", "1", "2", "3", "4"]
    with pytest.raises(ProblemDataError, match=r"d\.jsonl: no problems after --data\.start 10 / --data\.limit"):
        load_problems("jsonl", path, start=10)
    with pytest.raises(ProblemDataError, match="--data.limit must be > 0"):
        load_problems("jsonl", path, limit=0)
    with pytest.raises(ProblemDataError, match="--data.start must be >= 0"):
        load_problems("jsonl", path, start=-1)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "q", "answer": "1"}', "{not json"], r"d\.jsonl, line 2: not valid JSON \("),
        (['["q", "1"]'], r"d\.jsonl, line 1: expected a JSON object, got list"),
        (
            [{"question": "q", "solution": "s"}],
            r"d\.jsonl, line 1: missing field 'answer' \(fields present: question, solution\)",
        ),
        (
            [{"text": "q", "answer": "1"}],
            r"d\.jsonl, line 1: missing field 'question' or 'problem' \(fields present: text, answer\)",
        ),
        ([{"question": "  ", "answer": "1"}], r"d\.jsonl, line 1: field 'question' is empty"),
        ([{"question": 5, "answer": "1"}], r"d\.jsonl, line 1: field 'question' must be a string"),
        ([{"question": "q", "answer": ""}], r"d\.jsonl, line 1: field 'answer' is empty"),
        ([{"question": "q", "answer": None}], r"d\.jsonl, line 1: field 'answer' must be a string or number"),
        (
            [{"id": "a", "question": "q", "answer": "1"}, "", {"id": "a", "question": "r", "answer": "2"}],
            r"d\.jsonl: duplicate id 'a' \(line 1 and line 3\)",
        ),
        ([], r"d\.jsonl: no problems \(empty file\)"),
        (["", "  "], r"d\.jsonl: no problems \(empty file\)"),
    ],
)
def test_jsonl_errors(tmp_path: Path, lines: list[object], message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(ProblemDataError, match=message):
        load_problems("jsonl", path)


def test_skip_reports_errors_and_keeps_ids_stable(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"question": "a", "answer": "1"},
            "{broken",
            {"question": "c"},
            {"question": "e", "answer": "5"},
        ],
    )
    problems, errors = load_problems_with_errors("jsonl", path, on_error="skip")
    assert [(p.id, p.question) for p in problems] == [("0", "a"), ("3", "e")]
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}, line 2", f"{path}, line 3"]
    assert [e.location for e in errors] == ["line 2", "line 3"]
    assert load_problems("jsonl", path, on_error="skip") == problems
    with pytest.raises(ProblemDataError, match="line 2"):
        load_problems_with_errors("jsonl", path)


def test_duplicate_ids_are_refused_even_when_skipping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "1"},
                                              {"question": "d", "answer": "4", "id": "0"}])  # row 0's index id
    with pytest.raises(ProblemDataError, match=r"duplicate id '0' \(line 1 and line 2\)"):
        load_problems_with_errors("jsonl", path, on_error="skip")


def test_skip_with_only_bad_rows_raises(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ["{", "]"])
    with pytest.raises(ProblemDataError, match=r"no problems \(all 2 rows invalid\)"):
        load_problems("jsonl", path, on_error="skip")


def test_missing_and_unsupported_paths(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    with pytest.raises(ProblemDataError, match=r"missing\.jsonl: file not found"):
        load_problems("jsonl", missing)
    (tmp_path / "d.csv").write_text("question,answer\n")
    with pytest.raises(ProblemDataError, match=r"d\.csv: unsupported file type"):
        load_problems("jsonl", str(tmp_path / "d.csv"))
    with pytest.raises(ProblemDataError, match="not a file"):
        load_problems("jsonl", str(tmp_path))
    with pytest.raises(ProblemDataError, match="--data.path is required"):
        load_problems("jsonl")


def test_default_is_the_hub_not_a_path_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "shared" / "data"  # the old default, ../shared/data, is there and must not be read
    data.mkdir(parents=True)
    write_jsonl(data / "gsm8k_test.jsonl", [{"question": "q", "answer": "#### 9"}])
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    calls = fake_hub(monkeypatch, [{"question": "hub q", "answer": "#### 5"}])
    [problem] = load_problems("gsm8k")
    assert (problem.question, problem.answer) == ("hub q", "5")
    assert problem.meta["source"] == "openai/gsm8k (config socratic, split test)"
    assert calls == [(("openai/gsm8k", "socratic"), {"split": "test"})]


def test_invalid_options(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}])
    with pytest.raises(ProblemDataError, match="unknown --data.name"):
        load_problems("mmlu", path)
    with pytest.raises(ProblemDataError, match="unknown --data.on_error"):
        load_problems("jsonl", path, on_error="ignore")


def test_demo_file() -> None:
    problems = load_problems("jsonl", str(DEMO))
    assert [p.id for p in problems] == [f"demo-{i}" for i in range(1, 11)]
    assert all(p.answer.isdigit() for p in problems)


def test_real_gsm8k() -> None:
    """The first 5 rows of GSM8K's test.jsonl: the label is the text after '####', the id the row index."""
    problems = load_problems("gsm8k", str(DATA / "gsm8k_test_head5.jsonl"), limit=3)
    assert [(p.id, p.answer) for p in problems] == [("0", "18"), ("1", "3"), ("2", "70000")]
    assert problems[0].question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert problems[0].meta["line"] == 1


def test_real_aime2024() -> None:
    """The first 8 rows of AIME 2024 (ids 60-67): the zero-padded label '025' reads as 25."""
    problems = load_problems("aime2024", str(DATA / "aime2024_head8.jsonl"))
    assert [(p.id, p.answer) for p in problems] == [
        ("60", "204"), ("61", "113"), ("62", "371"), ("63", "385"),
        ("64", "110"), ("65", "104"), ("66", "721"), ("67", "25"),
    ]
    assert problems[0].question.startswith("Every morning Aya goes for a $9$-kilometer-long walk")


def test_real_math500() -> None:
    """The first 5 rows of MATH-500: ids are unique_id, answers the LaTeX of the 'answer' field."""
    problems = load_problems("math500", str(DATA / "math500_test_head5.jsonl"))
    assert [(p.id, p.answer) for p in problems] == [
        ("test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)"),
        ("test/intermediate_algebra/1994.json", "p - q"),
        ("test/algebra/2584.json", r"\frac{14}{3}"),
        ("test/number_theory/572.json", "9"),
        ("test/algebra/1349.json", r"\text{Evelyn}"),
    ]
    assert problems[0].question.startswith(r"Convert the point $(0,3)$ in rectangular coordinates")
