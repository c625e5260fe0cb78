"""Tests for problem loading."""

import json
from pathlib import Path

import pytest

from lightning_latentseek.problems import (
    Problem,
    ProblemDataError,
    load_problems,
    load_problems_with_errors,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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
        ("2", "GSM-style?", "1234"),  # the blank line is not a row
    ]
    assert all(p.dataset == "jsonl" for p in problems)
    assert problems[1].meta == {"source": path, "line": 3}


def test_problem_equality_ignores_meta() -> None:
    assert Problem("1", "q", "a", "jsonl", {"line": 1}) == Problem("1", "q", "a", "jsonl", {"line": 9})


@pytest.mark.parametrize(
    ("name", "row", "expected_id", "expected_answer"),
    [
        ("gsm8k", {"question": "q", "answer": "work\n#### 1,234"}, "0", "1234"),
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


def test_hub_id_is_loaded_with_split(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[str, str]] = []

    def fake_load_dataset(path: str, split: str) -> list[dict]:
        calls.append((path, split))
        return [{"problem": "q", "answer": "1", "unique_id": "u1"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    [problem] = load_problems("math500", "Org/MATH-500", split="test")
    assert calls == [("Org/MATH-500", "test")]
    assert problem.id == "u1"


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


def test_default_path_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    write_jsonl(data / "gsm8k_test.jsonl", [{"question": "q", "answer": "#### 9"}])
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    [problem] = load_problems("gsm8k")
    assert (problem.answer, problem.meta["source"]) == ("9", str(data / "gsm8k_test.jsonl"))


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


def _require(file_name: str) -> str:
    path = SHARED_DATA / file_name
    if not path.is_file():
        pytest.skip(f"benchmark file {path} is not present")
    return str(path)


def test_real_gsm8k() -> None:
    problems = load_problems("gsm8k", _require("gsm8k_test.jsonl"), limit=3)
    assert len(problems) == 3
    assert problems[0].answer == "18"
    assert problems[0].id == "0"


def test_real_aime2024() -> None:
    problems = load_problems("aime2024", _require("aime2024.jsonl"))
    assert len(problems) == 30
    assert problems[0].id == "60"
    assert all(p.answer.isdigit() and not p.answer.startswith("0") for p in problems)


def test_real_math500() -> None:
    problems = load_problems("math500", _require("math500_test.jsonl"))
    assert len(problems) == 500
    assert problems[0].id == "test/precalculus/807.json"
    assert problems[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
