"""Many problems at once (`--data.batch_size`): each problem gets the record it gets alone, a finished problem's
slot goes to the next one while the others go on, K bounds each problem, resume after a kill mid-batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lightning_latentseek.cli import main
from lightning_latentseek.records import read_records
from tiny import cli_args

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "finished_at")
FLOATS = ("loss", "step_norm")  # from latents whose batched forwards differ in the last bits


def exact_part(record: dict) -> dict:
    """The record without timings, and its trajectory without the float measurements."""
    return {**record, "trajectory": [{k: v for k, v in step.items() if k not in FLOATS}
                                     for step in record["trajectory"]]}


def floats(record: dict) -> list:
    return [step[k] for step in record["trajectory"] for k in FLOATS if step[k] is not None]


def write_questions(path: Path, questions: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answer": "1"}) + "\n"
                            for i, q in enumerate(questions)))
    return path


def records(out: Path) -> dict[str, dict]:
    return {r["id"]: {k: v for k, v in r.items() if k not in TIMING}
            for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_a_batch_gives_every_problem_the_record_it_gets_alone(tiny_dir, tmp_path):
    # on the tiny model, "x" and "How many?" end at EOS after 17 and 24 tokens, the others at the cap of 40
    questions = ["What is 1 + 1?", "x", "How many?", "Why?", "Seven plus six?", "Is 7 prime?"]
    data = write_questions(tmp_path / "p.jsonl", questions)
    common = ["--model.reward", "tiny.TextReward", "--trainer.max_steps", "4", "--model.max_new_tokens", "40",
              "--model.lr", "0.5"]
    main(cli_args(tiny_dir, data, tmp_path / "alone", *common, "--data.batch_size", "1"))
    main(cli_args(tiny_dir, data, tmp_path / "batch", *common, "--data.batch_size", "3"))
    # and one token per forward (no drafts): the drafts change no record either
    main(cli_args(tiny_dir, data, tmp_path / "plain", *common, "--data.batch_size", "3", "--model.draft_tokens", "0"))
    alone = records(tmp_path / "alone")
    for other in (records(tmp_path / "batch"), records(tmp_path / "plain")):
        assert {k: exact_part(r) for k, r in other.items()} == {k: exact_part(r) for k, r in alone.items()}
        for key in alone:  # tokens, texts, rewards, stops are equal; losses and step norms to float precision
            assert floats(other[key]) == pytest.approx(floats(alone[key]), rel=1e-5)
    # the problems differ in CoT length, latent count and stop iteration
    assert len({r["cot_tokens"] for r in alone.values()}) > 1
    assert len({r["n_latents"] for r in alone.values()}) > 1
    assert len({r["iterations"] for r in alone.values()}) > 1
    assert {r["stop_reason"] for r in alone.values()} >= {"reward_above_tau", "max_steps"}


def test_a_finished_problem_frees_its_slot_and_k_bounds_each_problem(tiny_dir, tmp_path):
    data = write_questions(tmp_path / "p.jsonl", ["fast one?", "slow one?", "late one?"])
    events = tmp_path / "events.txt"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"reward": "tiny.ScheduleReward", "reward_args": {"stop_at": {"q0": 1}}},
        "trainer": {"callbacks": [{"class_path": "tiny.EventRecorder", "init_args": {"path": str(events)}}]},
    }))
    main(["--config", str(config), "--model.llm", tiny_dir, "--model.max_new_tokens", "8", "--model.rho", "0.5",
          "--model.reuse", "false", "--data.path", str(data), "--trainer.max_steps", "4", "--trainer.accelerator",
          "cpu", "--output_dir", str(tmp_path / "out"), "--progress", "false", "--data.batch_size", "2"])
    log = events.read_text().splitlines()
    # q0 clears tau at its first iteration; q2 takes its slot at once, while q1 goes on to K
    assert log[:4] == ["start q0", "start q1", "end q0 1", "start q2"]
    assert sorted(log[4:]) == ["end q1 4", "end q2 4"]


@pytest.mark.parametrize("batch", ["1", "2"])
def test_sigkill_mid_batch_then_resume_solves_each_problem_once(tiny_dir, tmp_path, batch):
    """SIGKILL right after the first record is written (a callback holds the run there until the kill), with
    two at once while the other problem is in flight (its reward waits for that point): the kill point does not
    depend on timing. The resume solves every other problem once and keeps the finished record as it was."""
    data = write_questions(tmp_path / "p.jsonl", [f"What is {i} + 1?" for i in range(5)])
    out = tmp_path / "out"
    held = tmp_path / "held.json"
    config = tmp_path / "hold.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "tiny.HoldAfterFirstRecord", "init_args": {"path": str(held)}}]}}))
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK", "MASTER_PORT")}
    args = cli_args(tiny_dir, data, out, "--data.batch_size", batch, "--trainer.max_steps", "3",
                    "--model.reward", "tiny.GateReward",
                    "--model.reward_args", json.dumps({"gate": str(held), "hold": ["q1"]}))
    proc = subprocess.Popen([sys.executable, "train_free.py", "--config", str(config), *args], cwd=ROOT,
                            env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not held.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.communicate()
    # q0 ended first; one at a time q1 had not started, two at once it was in flight
    assert json.loads(held.read_text()) == {"ended": "q0", "in_flight": [] if batch == "1" else ["q1"]}
    finished = {r["id"]: r for r in read_records(out / "results.jsonl")}
    assert list(finished) == ["q0"]

    main(args)

    done = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in done] == [f"q{i}" for i in range(5)]
    for record in done:
        if record["id"] in finished:
            assert record == finished[record["id"]]  # the same record (same `finished_at`): not solved again
