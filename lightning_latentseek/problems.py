"""Math problems and loading them from JSONL/JSON/Parquet files or the Hugging Face Hub.

Every problem carries a stable id and a ground-truth answer normalised per dataset.
Bad rows produce :class:`ProblemDataError` messages that name the file, the line (JSONL)
or row index, and the field. Dataset text is only ever treated as data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DATASETS = ("gsm8k", "math500", "aime2024", "jsonl")
# Default (question fields tried in order, answer field, id field) per dataset.
_DEFAULT_FIELDS: dict[str, tuple[tuple[str, ...], str, str | None]] = {
    "gsm8k": (("question",), "answer", None),
    "math500": (("problem",), "answer", "unique_id"),
    "aime2024": (("problem",), "answer", "id"),
    "jsonl": (("question", "problem"), "answer", "id"),
}
# Relative to the current working directory.
_DEFAULT_PATHS = {
    "gsm8k": "../shared/data/gsm8k_test.jsonl",
    "math500": "../shared/data/math500_test.jsonl",
    "aime2024": "../shared/data/aime2024.jsonl",
}
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_INTEGER_RE = re.compile(r"\s*([+-]?\d+)(?:\.0*)?\s*")


@dataclass(frozen=True)
class Problem:
    """One math problem with its normalised ground-truth answer."""

    id: str  # from the id field, else the 0-based row index as a string
    question: str
    answer: str  # ground truth, normalised per dataset
    dataset: str  # "gsm8k" | "math500" | "aime2024" | "jsonl"
    meta: dict = field(default_factory=dict, compare=False, hash=False)  # {"source": ..., "line"/"row": ...}


class ProblemDataError(ValueError):
    """Bad problem data or data options; the message names the file, line/row and field.

    ``location`` is the bad row's place in its source (``"line 3"``, ``"row 2"``) when the error
    is about one row, else None.
    """

    location: str | None = None


# A record source yields (meta, record) pairs; a record that could not even be parsed
# is yielded as the ProblemDataError describing it, so it still takes up its row index.
_Records = Iterator[tuple[dict, object]]


def _location(meta: dict) -> str:
    """``"line 3"`` for JSONL records, ``"row 2"`` (0-based) for other sources."""
    return f"line {meta['line']}" if "line" in meta else f"row {meta['row']}"


def _where(meta: dict) -> str:
    """``"data.jsonl, line 3"``: the source and location of a record."""
    return f"{meta['source']}, {_location(meta)}"


def _read_jsonl(path: Path, source: str) -> _Records:
    """Yield the records of a JSONL file line by line, skipping blank lines."""
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            meta = {"source": source, "line": line_number}
            try:
                yield meta, json.loads(raw)
            except ValueError as err:  # JSONDecodeError or UnicodeDecodeError
                yield meta, ProblemDataError(f"{_where(meta)}: not valid JSON ({err})")


def _read_json(path: Path, source: str) -> _Records:
    """Yield the records of a JSON file holding a list or ``{"data": [...]}``."""
    try:
        data = json.loads(path.read_bytes())
    except ValueError as err:
        raise ProblemDataError(f"{source}: not valid JSON ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ProblemDataError(f"{source}: expected a JSON list of objects or {{\"data\": [...]}}")
    for index, record in enumerate(data):
        yield {"source": source, "row": index}, record


def _read_dataset(dataset: object, source: str) -> _Records:
    """Yield the rows of a ``datasets.Dataset``."""
    for index, record in enumerate(dataset):  # type: ignore[call-overload]
        yield {"source": source, "row": index}, record


def _records(name: str, path: str | None, split: str) -> tuple[str, _Records]:
    """Resolve ``path`` (or the dataset's default) to a source label and its records."""
    if path is None:
        if name not in _DEFAULT_PATHS:
            raise ProblemDataError(
                f"--data.path is required for --data.name {name} (a .jsonl, .json or .parquet file)"
            )
        path = str((Path.cwd() / _DEFAULT_PATHS[name]).resolve())
    local = Path(path)
    suffix = local.suffix.lower()
    if local.is_file():
        if suffix == ".jsonl":
            return path, _read_jsonl(local, path)
        if suffix == ".json":
            return path, _read_json(local, path)
        if suffix == ".parquet":
            from datasets import load_dataset

            return path, _read_dataset(load_dataset("parquet", data_files=path, split="train"), path)
        raise ProblemDataError(f"{path}: unsupported file type (expected .jsonl, .json or .parquet)")
    if local.exists():
        raise ProblemDataError(f"{path}: not a file")
    if suffix in _FILE_SUFFIXES or not _HUB_ID_RE.fullmatch(path):
        raise ProblemDataError(f"{path}: file not found")
    from datasets import load_dataset

    source = f"{path} (split {split})"
    try:
        dataset = load_dataset(path, split=split)
    except Exception as err:  # network, auth, unknown repo or split: report with the hub id
        raise ProblemDataError(f"{source}: not a local file and could not be loaded from the Hub ({err})") from err
    return source, _read_dataset(dataset, source)


def _gsm8k_answer(answer: str) -> str:
    """The text after the last ``####`` without thousands commas, else the whole answer."""
    if "####" not in answer:
        return answer.strip()
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def _ground_truth(name: str, answer: object, where: str, answer_field: str) -> str:
    """Normalise a raw answer value according to the dataset's rule."""
    if answer is None or isinstance(answer, (bool, list, dict)):
        raise ProblemDataError(f"{where}: field {answer_field!r} must be a string or number, got {answer!r}")
    text = str(answer)
    if name == "aime2024":  # zero-padded labels: "025" -> "25"; 25.0 -> "25"
        match = _INTEGER_RE.fullmatch(text)
        if match is None:
            raise ProblemDataError(f"{where}: field {answer_field!r} is not an integer ({answer!r})")
        return str(int(match.group(1)))
    if name == "gsm8k" or (name == "jsonl" and "####" in text):
        return _gsm8k_answer(text)
    return text if name == "math500" else text.strip()


def _make_problem(
    name: str,
    record: object,
    meta: dict,
    index: int,
    question_fields: tuple[str, ...],
    answer_field: str,
    id_field: str | None,
    id_required: bool,
) -> Problem:
    """Validate one record and build its :class:`Problem`."""
    where = _where(meta)
    if not isinstance(record, dict):
        raise ProblemDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    present = ", ".join(map(str, record)) or "none"
    question_field = next((f for f in question_fields if f in record), None)
    if question_field is None:
        wanted = " or ".join(repr(f) for f in question_fields)
        raise ProblemDataError(f"{where}: missing field {wanted} (fields present: {present})")
    if answer_field not in record:
        raise ProblemDataError(f"{where}: missing field {answer_field!r} (fields present: {present})")
    question = record[question_field]
    if not isinstance(question, str):
        raise ProblemDataError(f"{where}: field {question_field!r} must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ProblemDataError(f"{where}: field {question_field!r} is empty")
    answer = _ground_truth(name, record[answer_field], where, answer_field)
    if not answer.strip():
        raise ProblemDataError(f"{where}: field {answer_field!r} is empty")
    raw_id = record.get(id_field) if id_field is not None else None
    if raw_id is None and id_required:
        raise ProblemDataError(f"{where}: missing field {id_field!r} (fields present: {present})")
    problem_id = str(index) if raw_id is None else str(raw_id)
    return Problem(id=problem_id, question=question.strip(), answer=answer, dataset=name, meta=meta)


def load_problems_with_errors(
    name: str = "jsonl",
    path: str | None = None,
    split: str = "test",
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    start: int = 0,
    limit: int | None = None,
    on_error: str = "raise",
) -> tuple[list[Problem], list[ProblemDataError]]:
    """Load problems and the errors of the rows that were skipped.

    ``name`` picks the default fields, default path and ground-truth rule; ``path`` is a
    local ``.jsonl``/``.json``/``.parquet`` file or a Hugging Face Hub dataset id (loaded
    with ``split``). Fields left as None use the dataset defaults. With
    ``on_error="raise"`` the first bad row raises; with ``"skip"`` bad rows are skipped,
    keep their row index, and are returned as errors (with their ``location``). Duplicate ids
    are always refused.
    ``problems[start:start + limit]`` is returned; an empty result raises.
    """
    if name not in DATASETS:
        raise ProblemDataError(f"unknown --data.name {name!r}; expected one of {', '.join(DATASETS)}")
    if on_error not in ("raise", "skip"):
        raise ProblemDataError(f"unknown --data.on_error {on_error!r}; expected 'raise' or 'skip'")
    if start < 0:
        raise ProblemDataError(f"--data.start must be >= 0, got {start}")
    if limit is not None and limit <= 0:
        raise ProblemDataError(f"--data.limit must be > 0, got {limit}")
    default_questions, default_answer, default_id = _DEFAULT_FIELDS[name]
    question_fields = default_questions if question_field is None else (question_field,)
    source, records = _records(name, path, split)

    problems: list[Problem] = []
    errors: list[ProblemDataError] = []
    first_seen: dict[str, dict] = {}
    for index, (meta, record) in enumerate(records):
        try:
            if isinstance(record, ProblemDataError):
                raise record
            problem = _make_problem(
                name,
                record,
                meta,
                index,
                question_fields,
                answer_field or default_answer,
                id_field or default_id,
                id_required=id_field is not None,
            )
        except ProblemDataError as err:
            err.location = _location(meta)
            if on_error == "raise":
                raise
            errors.append(err)
            continue
        if problem.id in first_seen:  # refused even with on_error="skip": results are keyed by id
            first = _location(first_seen[problem.id])
            raise ProblemDataError(f"{source}: duplicate id {problem.id!r} ({first} and {_location(meta)})")
        first_seen[problem.id] = meta
        problems.append(problem)

    if not problems:
        detail = f"all {len(errors)} rows invalid" if errors else "empty file"
        raise ProblemDataError(f"{source}: no problems ({detail})")
    selected = problems[start : None if limit is None else start + limit]
    if not selected:
        raise ProblemDataError(
            f"{source}: no problems after --data.start {start} / --data.limit {limit} ({len(problems)} loaded)"
        )
    return selected, errors


def load_problems(
    name: str = "jsonl",
    path: str | None = None,
    split: str = "test",
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    start: int = 0,
    limit: int | None = None,
    on_error: str = "raise",
) -> list[Problem]:
    """Load problems; see :func:`load_problems_with_errors` (skipped rows' errors are dropped)."""
    problems, _ = load_problems_with_errors(
        name, path, split, question_field, answer_field, id_field, start, limit, on_error
    )
    return problems
