"""The regrade command: grade answer texts, or a finished run's records, under chosen modes.

``python -m lightning_latentseek.grading --dataset gsm8k --prompt boxed --model NAME --extraction paper --grading paper``
reads JSONL lines ``{"text": ..., "ground_truth": ...}`` (optional ``"eos"``: the text of the token that
ended the answer, e.g. ``<|im_end|>``, appended where the ``paper`` extraction reads; or put it at the
end of ``text``, as the original's decode writes it) on stdin and writes one line ``{"pred": ...,
"correct": ...}`` per input line, in order, on stdout.

``--records DIR`` regrades a finished run: every answer of DIR/results.jsonl (CoT, final, trajectory,
samples), with its recorded EOS text, under the chosen modes (dataset, prompt and model default to the
run's, from DIR/run_config.json), and prints the run's summary as JSON: accuracies as `records.summarize`
computes them, plus how many CoT and final verdicts changed. Nothing is solved again; nothing is written.

Bad input (a line that is not JSON or lacks a field, a missing run) ends the command with one line
``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

from lightning_latentseek.errors import UserError, one_line
from lightning_latentseek.grading import EXTRACTIONS, GRADINGS, Grader
from lightning_latentseek.paper_grading import DEFAULT_MODEL
from lightning_latentseek.prompts import DATASETS, PROMPTS


class RegradeError(UserError, ValueError):
    """Bad input to the regrade command."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        raise RegradeError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lightning_latentseek.grading", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, help="the problems' dataset (with --records: the run's)")
    p.add_argument("--prompt", choices=PROMPTS, help="the solver prompt the answers were written for (boxed)")
    p.add_argument("--model", help=f"the model name or path the original's extraction branches on ({DEFAULT_MODEL})")
    p.add_argument("--extraction", choices=EXTRACTIONS, default="paper")
    p.add_argument("--grading", choices=GRADINGS, default="paper")
    p.add_argument("--records", metavar="DIR", help="regrade this finished run's results.jsonl and print its summary")
    return p


def _field(obj: dict, name: str, where: str, kinds: tuple[type, ...], required: bool = True):
    if name not in obj:
        if required:
            raise RegradeError(f"{where}: missing field {name!r}")
        return None
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise RegradeError(f"{where}: field {name!r} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def _json_objects(lines: Iterable[str], source: str) -> Iterator[tuple[str, dict]]:
    """("SOURCE, line N", the object) for each non-blank line; a line that is not a JSON object is a
    `RegradeError` naming it."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise RegradeError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise RegradeError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield where, obj


def regrade_lines(grader: Grader, dataset: str, lines: IO[str], out: IO[str]) -> int:
    """stdin mode: one output line per non-blank input line; returns how many were graded."""
    count = 0
    for where, obj in _json_objects(lines, "stdin"):
        text = _field(obj, "text", where, (str,))
        truth = str(_field(obj, "ground_truth", where, (str, int, float)))
        eos = _field(obj, "eos", where, (str,), required=False) or ""
        pred, correct = grader.judge(text, dataset, truth, eos)
        out.write(json.dumps({"pred": pred, "correct": correct}, ensure_ascii=False) + "\n")
        out.flush()
        count += 1
    return count


def regrade_records(run_dir: Path, grader_args: dict, dataset: str | None) -> dict:
    """--records mode: the regraded summary of a finished run (see the module docstring)."""
    from lightning_latentseek.records import RESULTS, RUN_CONFIG
    from lightning_latentseek.summary import summarize

    results, config_file = run_dir / RESULTS, run_dir / RUN_CONFIG
    for path in (results, config_file):
        if not path.is_file():
            raise RegradeError(f"{path}: not found (is {run_dir} a finished run's --output_dir?)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        model_cfg, data_cfg = config["model"], config["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise RegradeError(f"{config_file}: not a run configuration ({one_line(err)})") from None
    dataset = dataset or data_cfg.get("name")
    grader = Grader(prompt=grader_args["prompt"] or model_cfg.get("prompt", "boxed"),
                    extraction=grader_args["extraction"], grading=grader_args["grading"],
                    model=grader_args["model"] or model_cfg.get("llm") or DEFAULT_MODEL)
    records, changed = [], {"cot": 0, "final": 0}
    for where, record in _json_objects(results.read_text(encoding="utf-8").splitlines(), str(results)):
        if not record.get("skipped"):
            for name in ("text", "ground_truth"):
                _field(record, name, where, (str,))
            record = _regraded(record, grader, dataset, changed)
        records.append(record)
    summary = summarize(records, config, int(config.get("max_steps") or 0))  # absent: a baseline (no iterations)
    summary["regraded"] = {"dataset": dataset, "prompt": grader.prompt, "model": grader.model,
                           "extraction": grader.extraction, "grading": grader.grading,
                           "changed_cot_verdicts": changed["cot"], "changed_final_verdicts": changed["final"]}
    return summary


def _regraded(record: dict, grader: Grader, dataset: str, changed: dict) -> dict:
    truth = record["ground_truth"]

    def judged(text, eos) -> tuple:
        return grader.judge(text, dataset, truth, eos or "")

    def entry(step: dict) -> dict:
        step = dict(step)
        if "text" in step:
            step["pred"], step["correct"] = judged(step["text"], step.get("eos"))
        if "samples" in step:
            step["samples"] = [entry(s) for s in step["samples"]]
        return step

    new = dict(record)
    new["pred"], new["correct"] = judged(record["text"], record.get("eos"))
    new["cot_pred"], new["cot_correct"] = judged(record.get("cot_text"), record.get("cot_eos"))
    new["trajectory"] = [entry(s) for s in record.get("trajectory") or []]
    new["samples"] = [entry(s) for s in record.get("samples") or []]
    changed["final"] += bool(new["correct"]) != bool(record.get("correct"))
    changed["cot"] += record.get("cot_text") is not None and bool(new["cot_correct"]) != bool(record.get("cot_correct"))
    return new


def main(argv: list[str] | None = None, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    try:
        args = parser().parse_args(argv)
        grader_args = {"prompt": args.prompt, "model": args.model, "extraction": args.extraction,
                       "grading": args.grading}
        if args.records:
            summary = regrade_records(Path(args.records), grader_args, args.dataset)
            stdout.write(json.dumps(summary, indent=2) + "\n")
            return 0
        if args.dataset is None:
            raise RegradeError("--dataset is required (or --records DIR)")
        grader = Grader(prompt=args.prompt or "boxed", extraction=args.extraction, grading=args.grading,
                        model=args.model or DEFAULT_MODEL)
        regrade_lines(grader, args.dataset, stdin, stdout)
        return 0
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
