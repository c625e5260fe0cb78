"""Math problems and loading them from JSONL/JSON/Parquet files or the Hugging Face Hub.

Without ``--data.path`` the three benchmarks load from the hub, from the datasets and splits the
LatentSeek reference code uses (:data:`HUB_SOURCES`); ``--data.path FILE`` reads a local copy.
Every problem carries a stable id and a ground-truth answer normalised per dataset.
Bad rows produce :class:`ProblemDataError` messages that name the file, the line (JSONL)
or row index, and the field. Dataset text is only ever treated as data.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lightning_latentseek.config import FILE_DATASETS
from lightning_latentseek.errors import UserError, one_line

DATASETS = FILE_DATASETS  # the datasets read from the hub or a file (arith is generated: `arith`)
# Default (question fields, answer fields, id fields) per dataset, each tried in order: the hub's
# column names and those of the local JSONL copies (AIME: hub Problem/Answer/ID, JSONL problem/answer/id).
_DEFAULT_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "gsm8k": (("question",), ("answer",), ()),
    "math500": (("problem",), ("answer",), ("unique_id",)),
    "aime2024": (("problem", "Problem"), ("answer", "Answer"), ("id", "ID")),
    "jsonl": (("question", "problem"), ("answer",), ("id", "ID", "unique_id")),
}


@dataclass(frozen=True)
class HubSource:
    """A benchmark on the Hugging Face hub: dataset id, config (None: the default one) and split."""

    id: str
    config: str | None
    split: str


# As the LatentSeek reference code (src/data.py) loads them.
HUB_SOURCES = {
    "gsm8k": HubSource("openai/gsm8k", "socratic", "test"),
    "math500": HubSource("HuggingFaceH4/MATH-500", None, "test"),
    "aime2024": HubSource("Maxwell-Jia/AIME_2024", None, "train"),
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


class ProblemDataError(UserError, ValueError):
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


def _records(name: str, path: str | None, split: str | None) -> tuple[str, _Records]:
    """Resolve ``path`` (a local file or hub id; None: the dataset's hub source) to a source label and its records."""
    hub = HUB_SOURCES.get(name)
    if path is None:
        if hub is None:
            raise ProblemDataError(
                f"--data.path is required for --data.name {name} (a .jsonl, .json or .parquet file)"
            )
        return _hub_records(hub.id, hub.config, split or hub.split)
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
    if hub is not None and path == hub.id:  # the benchmark's own hub dataset: its config and split
        return _hub_records(hub.id, hub.config, split or hub.split)
    return _hub_records(path, None, split or "test")


def _hub_records(hub_id: str, config: str | None, split: str) -> tuple[str, _Records]:
    """Load ``hub_id`` (``config``, ``split``) with ``datasets.load_dataset``; failures become one-line errors."""
    from datasets import load_dataset

    source = f"{hub_id} ({'' if config is None else f'config {config}, '}split {split})"
    try:
        with _quiet_hub_retries():
            dataset = load_dataset(hub_id, config, split=split)
    except Exception as err:  # network, auth, unknown repo, config or split: report with the hub id
        local_copy = "pass a local copy with --data.path FILE (.jsonl, .json or .parquet)"
        if _unreachable(err):
            raise ProblemDataError(f"{source}: the Hugging Face hub could not be reached; {local_copy}") from err
        raise ProblemDataError(
            f"{source}: could not be loaded from the Hugging Face hub ({one_line(err, 300)}); or {local_copy}"
        ) from err
    return source, _read_dataset(dataset, source)


def _unreachable(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) says the hub could not be reached."""
    seen: BaseException | None = err
    for _ in range(20):  # the chain is short; the bound guards against cycles
        if seen is None:
            return False
        name = type(seen).__name__
        if isinstance(seen, (ConnectionError, TimeoutError)) or any(w in name for w in ("Connect", "Timeout", "Offline")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def _quiet_hub_retries():
    """huggingface_hub logs a warning line per retry of a failed request (about 25 s of them when
    offline): keep them off stderr, so a failed load ends in the one error line."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _gsm8k_answer(answer: str) -> str:
    """The text after the last ``####`` (commas kept: the original's label, utils.py:18-20), else the whole answer."""
    if "####" not in answer:
        return answer.strip()
    return answer.rsplit("####", 1)[1].strip()


def _ground_truth(name: str, answer: object, where: str, answer_field: str) -> str:
    """Normalise a raw answer value according to the dataset's rule."""
    if answer is None or isinstance(answer, (bool, list, dict)):
        raise ProblemDataError(f"{where}: field {answer_field!r} must be a string or number, got {answer!r}")
    text = str(answer)
    if name == "aime2024":  # the hub's Answer column is int64 (what the original compares): "025" -> "25", 25.0 -> "25"
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
    answer_fields: tuple[str, ...],
    id_fields: tuple[str, ...],
    id_required: bool,
) -> Problem:
    """Validate one record and build its :class:`Problem` (of each field tuple, the first field present is read)."""
    where = _where(meta)
    if not isinstance(record, dict):
        raise ProblemDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    present = ", ".join(map(str, record)) or "none"
    question_field = next((f for f in question_fields if f in record), None)
    if question_field is None:
        wanted = " or ".join(repr(f) for f in question_fields)
        raise ProblemDataError(f"{where}: missing field {wanted} (fields present: {present})")
    answer_field = next((f for f in answer_fields if f in record), None)
    if answer_field is None:
        wanted = " or ".join(repr(f) for f in answer_fields)
        raise ProblemDataError(f"{where}: missing field {wanted} (fields present: {present})")
    question = record[question_field]
    if not isinstance(question, str):
        raise ProblemDataError(f"{where}: field {question_field!r} must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ProblemDataError(f"{where}: field {question_field!r} is empty")
    answer = _ground_truth(name, record[answer_field], where, answer_field)
    if not answer.strip():
        raise ProblemDataError(f"{where}: field {answer_field!r} is empty")
    raw_id = next((record[f] for f in id_fields if record.get(f) is not None), None)
    if raw_id is None and id_required:
        raise ProblemDataError(f"{where}: missing field {id_fields[0]!r} (fields present: {present})")
    problem_id = str(index) if raw_id is None else str(raw_id)
    return Problem(id=problem_id, question=question.strip(), answer=answer, dataset=name, meta=meta)


def load_problems_with_errors(
    name: str = "jsonl",
    path: str | None = None,
    split: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    start: int = 0,
    limit: int | None = None,
    on_error: str = "raise",
) -> tuple[list[Problem], list[ProblemDataError]]:
    """Load problems and the errors of the rows that were skipped.

    ``name`` picks the default fields, the ground-truth rule and, with ``path`` None, the hub
    dataset of a benchmark (:data:`HUB_SOURCES`); ``path`` is a local ``.jsonl``/``.json``/
    ``.parquet`` file or a Hugging Face Hub dataset id. ``split`` (None: the benchmark's split,
    else ``test``) applies to hub datasets. Fields left as None use the dataset defaults. With
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
    default_questions, default_answers, default_ids = _DEFAULT_FIELDS[name]
    question_fields = default_questions if question_field is None else (question_field,)
    answer_fields = default_answers if answer_field is None else (answer_field,)
    id_fields = default_ids if id_field is None else (id_field,)
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
                answer_fields,
                id_fields,
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
    split: str | None = None,
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
