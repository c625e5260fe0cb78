"""``python -m lightning_latentseek.grading --records DIR``: a finished run regraded without solving again."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lightning_latentseek.cli import main as run
from lightning_latentseek.regrade import main


def _write_jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _regrade(out: Path, *options) -> dict:
    stdout = io.StringIO()
    assert main(["--records", str(out), *options], io.StringIO(""), stdout) == 0
    return json.loads(stdout.getvalue())


def test_records_regraded_under_each_grading(tiny_dir, tmp_path):
    data = _write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}
                                                for i in range(3)])
    out = tmp_path / "out"
    saved = run(["--model.llm", tiny_dir, "--model.reward", "psrm", "--model.max_new_tokens", "8", "--model.rho", "0.5",
                 "--data.path", data, "--trainer.max_steps", "1", "--trainer.accelerator", "cpu", "--output_dir",
                 str(out), "--progress", "false"])
    same = _regrade(out)  # the run's own modes (paper, paper): nothing changes
    assert same["regraded"] == {"dataset": "jsonl", "prompt": "boxed", "model": tiny_dir, "extraction": "paper",
                                "grading": "paper", "changed_cot_verdicts": 0, "changed_final_verdicts": 0}
    assert {k: same[k] for k in ("n", "accuracy", "cot_accuracy")} == {k: saved[k] for k in ("n", "accuracy",
                                                                                           "cot_accuracy")}
    # known texts in place of the tiny model's random ones: "2.0" is right only numerically, the EOS hides "3"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    texts = [("The sum is \\boxed{1}.", "<|im_end|>"), ("So 1 + 1 = 2.0", "<|im_end|>"),
             ("Apples: 2\nTotal: 3", "<|im_end|>")]
    for record, (text, eos) in zip(records, texts):
        record.update(text=text, eos=eos, cot_text=text, cot_eos="", correct=False, cot_correct=False)
    _write_jsonl(out / "results.jsonl", records)
    paper, numeric = _regrade(out), _regrade(out, "--grading", "numeric")
    assert (paper["accuracy"], paper["cot_accuracy"]) == pytest.approx((1 / 3, 2 / 3))  # q0; the CoTs (no EOS) also q2
    assert (numeric["accuracy"], numeric["cot_accuracy"]) == pytest.approx((2 / 3, 1.0))
    assert paper["regraded"]["changed_final_verdicts"] == 1 and numeric["regraded"]["changed_cot_verdicts"] == 3
    strict = _regrade(out, "--extraction", "strict", "--grading", "numeric")
    assert strict["accuracy"] == pytest.approx(1 / 3)  # only \boxed{1}


def test_a_torn_record_is_one_error_naming_its_line(tmp_path, capsys):
    (tmp_path / "run_config.json").write_text(json.dumps({"model": {"prompt": "boxed", "llm": "m"},
                                                          "data": {"name": "gsm8k"}, "max_steps": 2}))
    (tmp_path / "results.jsonl").write_text('{"id": "0", "text": "\\\\boxed{1}", "ground_truth": "1"}\n{"id": "1", "te')
    assert main(["--records", str(tmp_path)], io.StringIO(""), io.StringIO()) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'results.jsonl'}, line 2: not JSON (Unterminated string " \
                                      f"starting at)\n"
