"""Faults inside one problem (non-finite latents, out of memory) end only that problem; Ctrl-C ends the
run cleanly: the problem in flight is dropped, what finished is written, the exit code is 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lightning_latentseek.callbacks import RecordWriter
from lightning_latentseek import solve
from lightning_latentseek.cli import main
from lightning_latentseek.engine import FrozenLM, GenerationEngine
from lightning_latentseek.records import read_records
from tiny import cli_args as tiny_cli_args

ROOT = Path(__file__).resolve().parents[1]


def write_problems(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "question": f"Problem {i}: what is 1 + 1?", "answer": "2"}) + "\n"
                            for i in ids))
    return path


def cli_args(model, data, out, *extra) -> list[str]:
    return tiny_cli_args(model, data, out, "--model.reuse", "false", *extra)


def results(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def terminal_ctrl_c() -> None:
    """In a child before it starts: Ctrl-C handled as in a terminal. A background job (`cmd &` without job
    control, as CI runners may start pytest) inherits SIGINT ignored, and Python keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def problem_of(llm: FrozenLM, ids) -> str:
    """The id of the problem whose prompt these ids start with (questions read "Problem <id>: ...")."""
    return llm.decode(ids).split("Problem ", 1)[1].split(":", 1)[0]


@pytest.mark.parametrize("batch", ["1", "3"])
def test_faults_end_only_their_problem(tiny_dir, tmp_path, monkeypatch, batch):
    generate = GenerationEngine.generate
    continued: list[str] = []

    def faulty(self, rows):
        problem = problem_of(self.lm, rows[0].ids)
        if rows[0].keep_hidden:  # the CoT
            if problem == "oom-cot":
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            results = generate(self, rows)
            if problem in ("nan", "inf"):  # the latents the fit starts from are not finite
                results[0].hidden = results[0].hidden.clone()
                results[0].hidden[0, 0] = float(problem)
            return results
        continued.append(problem)
        if problem == "oom-fit" and continued.count("oom-fit") == 2:  # the 2nd iteration runs out of memory
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return generate(self, rows)

    releases = []
    monkeypatch.setattr(GenerationEngine, "generate", faulty)
    monkeypatch.setattr(solve, "release_memory", lambda: releases.append(1))
    data = write_problems(tmp_path / "p.jsonl", ["nan", "inf", "oom-fit", "oom-cot", "ok"])

    summary = main(cli_args(tiny_dir, data, tmp_path / "out", "--data.batch_size", batch))

    records = results(tmp_path / "out")
    for key in ("nan", "inf"):  # the CoT is the best answer so far
        assert records[key]["stop_reason"] == "non_finite"
        assert records[key]["iterations"] == 0 and records[key]["text"] == records[key]["cot_text"]
    assert records["oom-fit"]["stop_reason"] == "out_of_memory"
    assert records["oom-fit"]["iterations"] == 1  # keeps the answer of the iteration that completed
    assert records["oom-fit"]["text"] == records["oom-fit"]["trajectory"][1]["text"]
    assert records["oom-cot"]["stop_reason"] == "out_of_memory" and records["oom-cot"]["text"] == ""
    assert records["ok"]["stop_reason"] == "max_steps" and records["ok"]["iterations"] == 2
    assert summary["n"] == 5 and summary["stop_reasons"]["out_of_memory"] == 2
    assert len(releases) == 2  # memory freed after each out-of-memory problem


@pytest.mark.parametrize("batch", ["1", "2"])
def test_ctrl_c_in_process(tiny_dir, tmp_path, monkeypatch, batch):
    """Ctrl-C (SIGINT to this process) while problem "b" is being continued, once "a" is written: the problems in
    flight are dropped ("b"; with two at once also "c", which took a's slot), "a" is kept, exit code 130.

    Each step waits for the one before it (events, no sleeps): "b" sends SIGINT only once "a" is written (and,
    two at once, "c" has started), and "b" and "c" generate only once the run has cancelled the engine. The problems run in threads of their own,
    never on the main thread, which alone gets the KeyboardInterrupt."""
    generate, cancel, append = GenerationEngine.generate, GenerationEngine.cancel, RecordWriter.on_problem_end
    a_written, c_started, cancelled = threading.Event(), threading.Event(), threading.Event()
    threads: dict[str, threading.Thread] = {}

    def on_problem_end(self, problem, record):
        append(self, problem, record)
        if problem.id == "a":
            a_written.set()

    def cancel_and_tell(self, reason="cancelled"):
        cancel(self, reason)
        cancelled.set()

    def interrupted(self, rows):
        problem = problem_of(self.lm, rows[0].ids)
        threads.setdefault(problem, threading.current_thread())
        if problem == "b" and not rows[0].keep_hidden:  # b's first continuation
            assert a_written.wait(60)
            if batch == "2":  # c starts in a's slot once a is written
                assert c_started.wait(60)
            os.kill(os.getpid(), signal.SIGINT)
            assert cancelled.wait(60)
        elif problem not in ("a", "b"):
            c_started.set()
            assert cancelled.wait(60)
        return generate(self, rows)

    monkeypatch.setattr(GenerationEngine, "generate", interrupted)
    monkeypatch.setattr(GenerationEngine, "cancel", cancel_and_tell)
    monkeypatch.setattr(RecordWriter, "on_problem_end", on_problem_end)
    data = write_problems(tmp_path / "p.jsonl", ["a", "b", "c", "d"])
    # Ctrl-C as in a terminal, even when pytest itself runs with SIGINT ignored (a background job)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as stop:
            main(cli_args(tiny_dir, data, tmp_path / "out", "--data.batch_size", batch))
    finally:
        signal.signal(signal.SIGINT, handler)  # the run ignores further Ctrl-C while shutting down
    assert stop.value.code == 130
    assert list(results(tmp_path / "out")) == ["a"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n"] == 1
    assert sorted(threads) == (["a", "b"] if batch == "1" else ["a", "b", "c"])
    assert threading.main_thread() not in threads.values()


def test_ctrl_c_two_ranks_then_resume_on_one(tiny_dir, tmp_path):
    """SIGINT reaching rank 0 only: it passes it on to rank 1, both drop their problem in flight, rank 0
    writes what finished and exits 130; the rank files stay for the resume, here on one device (2 -> 1)."""
    ids = [f"q{i}" for i in range(6)]
    data = write_problems(tmp_path / "p.jsonl", ids)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK", "MASTER_PORT")}
    proc = subprocess.Popen([sys.executable, "train_free.py", *cli_args(tiny_dir, data, out, "--trainer.devices", "2",
                                                                "--data.batch_size", "1")],
                            cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=terminal_ctrl_c)
    rank_files = [out / "results.rank0.jsonl", out / "results.rank1.jsonl"]
    deadline = time.monotonic() + 300
    while not any(read_records(path) for path in rank_files):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]

    assert proc.returncode == 130, stderr[-3000:]
    shards = [[r["id"] for r in read_records(path)] for path in rank_files]
    assert set(shards[0]) <= {"q0", "q2", "q4"} and set(shards[1]) <= {"q1", "q3", "q5"}  # problem i -> rank i % 2
    finished = {r["id"]: r for path in rank_files for r in read_records(path)}
    assert list(results(out)) == [i for i in ids if i in finished]
    assert json.loads((out / "summary.json").read_text())["n"] == len(finished) < len(ids)
    assert not (out / "results.jsonl.tmp").exists()

    main(cli_args(tiny_dir, data, out))

    records = results(out)
    assert list(records) == ids
    assert all(records[i] == finished[i] for i in finished)  # finished problems were not solved again
    assert not list(out.glob("results.rank*.jsonl"))
