"""One Lightning logger receives the whole run: every iteration of every problem, each problem's final
metrics and the settings once (CSV and TensorBoard, through `--trainer.logger`)."""

from __future__ import annotations

import csv
import json

from lightning_latentseek.cli import main
from tiny import cli_args, write_problems


def test_csv_logger_gets_the_whole_run_in_one_file(tiny_dir, tmp_path):
    data = write_problems(tmp_path / "p.jsonl", 2)
    logs = tmp_path / "logs"
    main(cli_args(tiny_dir, data, tmp_path / "out", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                  "--trainer.logger.save_dir", str(logs), "--model.reuse", "false"))
    files = list(logs.rglob("metrics.csv"))
    assert len(files) == 1  # one version directory for the run, not one per problem
    rows = list(csv.DictReader(files[0].open()))
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    iterations = [r for r in rows if r.get("reward")]
    finals = [r for r in rows if r.get("correct")]
    # two iterations per problem (K=2, PSRM never clears tau on this model), then its final metrics
    assert [(r["problem"], r["step"]) for r in iterations] == [("0.0", "0"), ("0.0", "1"), ("1.0", "3"), ("1.0", "4")]
    assert [float(r["reward"]) for r in iterations] == [-1.0] * 4
    assert all(float(r["step_norm"]) > 0 and r["loss"] != "" for r in iterations)
    assert [(r["problem"], r["step"], r["iterations"], r["stop/max_steps"]) for r in finals] == [
        ("0.0", "2", "2.0", "1.0"), ("1.0", "5", "2.0", "1.0")]
    assert [float(r["correct"]) for r in finals] == [float(r["correct"]) for r in records]
    assert all(r["cot_correct"] != "" and float(r["tokens"]) > 0 and float(r["seconds"]) > 0 for r in finals)
    hparams = (files[0].parent / "hparams.yaml").read_text()
    assert "max_new_tokens: 8" in hparams and "reward: psrm" in hparams


def test_tensorboard_logger_gets_the_iterations(tiny_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_problems(tmp_path / "p.jsonl", 2)
    logs = tmp_path / "tb"
    main(cli_args(tiny_dir, data, tmp_path / "out", "--trainer.logger",
                  "lightning.pytorch.loggers.TensorBoardLogger", "--trainer.logger.save_dir", str(logs),
                  "--model.reuse", "false"))
    runs = {p.parent for p in logs.rglob("events.out.tfevents.*")}
    assert len(runs) == 1
    events = EventAccumulator(str(runs.pop()))
    events.Reload()
    assert [e.step for e in events.Scalars("reward")] == [0, 1, 3, 4]
    assert [e.step for e in events.Scalars("accuracy")] == [2, 5]
    assert [e.value for e in events.Scalars("iterations")] == [2.0, 2.0]
