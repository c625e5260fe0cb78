"""Several ranks: Lightning's launcher (`--trainer.devices 2`), a torchrun-style environment, SLURM detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_latentseek.cli import main
from lightning_latentseek.solve import Rank, detect_rank
from tiny import cli_args, write_problems

ROOT = Path(__file__).resolve().parents[1]
# Launcher variables a test must neither inherit nor leak.
RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
             "MASTER_PORT", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID",
             "SLURM_NTASKS_PER_NODE", "SLURM_NODELIST", "SLURM_JOB_ID", "SLURM_JOB_NAME")



def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def answers(records: list[dict]) -> list[tuple]:
    return [(r["id"], r["text"], r["pred"], r["rewards"]) for r in records]


def test_two_devices_match_one_process_and_resume_its_work(tiny_dir, tmp_path):
    data = write_problems(tmp_path / "p.jsonl", 7)
    main(cli_args(tiny_dir, data, tmp_path / "one"))
    out = tmp_path / "two"
    main(cli_args(tiny_dir, data, out, "--data.limit", "3"))  # 1 -> 2 devices: q0..q2 are already done
    done = results(out)

    proc = subprocess.run([sys.executable, "train_free.py", *cli_args(tiny_dir, data, out, "--trainer.devices", "2")],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)

    assert proc.returncode == 0, proc.stderr[-3000:]
    merged = results(out)
    assert [r["id"] for r in merged] == [f"q{i}" for i in range(7)]
    assert merged[:3] == done  # not solved again
    assert answers(merged) == answers(results(tmp_path / "one"))
    assert not list(out.glob("results.rank*.jsonl"))
    assert json.loads((out / "summary.json").read_text())["n"] == 7


def test_torchrun_style_environment(tiny_dir, tmp_path):
    """Two ranks started as torchrun starts them: its agent (here the test) hosts the store on a port the OS
    picked and holds (no free-port race), and the workers, told so by TORCHELASTIC_USE_AGENT_STORE, meet on it
    as clients under their restart's prefix."""
    from datetime import timedelta

    from torch.distributed import TCPStore

    data = write_problems(tmp_path / "p.jsonl", 4)
    out = tmp_path / "out"
    agent_store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=300))
    torchrun = dict(TORCHELASTIC_RUN_ID="test-run", TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="0",
                    WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", GROUP_RANK="0", MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(agent_store.port))
    command = [sys.executable, "train_free.py", *cli_args(tiny_dir, data, out)]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(RANK=str(r), LOCAL_RANK=str(r), **torchrun))
             for r in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]

    assert [p.returncode for p in procs] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    assert [r["id"] for r in results(out)] == ["q0", "q1", "q2", "q3"]
    assert not list(out.glob("results.rank*.jsonl"))
    # they met on the agent's store: rank 0's word to start, rank 1's report of its shard
    assert agent_store.get("lightning-latentseek/0/ready") == b"1"
    assert agent_store.get("lightning-latentseek/0/end/1") == b"done"


@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variables; whatever detection writes into os.environ is undone afterwards."""
    for name in RANK_VARS:
        monkeypatch.setenv(name, "")  # registers the variable, so the teardown also removes values set later
        monkeypatch.delenv(name)
    return monkeypatch


def test_plain_command_is_rank_zero_of_the_ranks_it_launches(clean_env):
    assert detect_rank(1, 1) == Rank()
    assert detect_rank(2, 1) == Rank(0, 2, needs_launch=True)
    clean_env.setenv("NODE_RANK", "1")
    assert detect_rank(4, 2) == Rank(4, 8, needs_launch=True)


def test_lightning_launcher_child(clean_env):
    for name, value in {"LOCAL_RANK": "1", "WORLD_SIZE": "4", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1",
                        "MASTER_PORT": "1234"}.items():
        clean_env.setenv(name, value)
    assert detect_rank(2, 2) == Rank(3, 4, 1, "10.0.0.1", 1234)


def test_torchrun(clean_env):
    for name, value in {"TORCHELASTIC_RUN_ID": "x", "RANK": "9", "LOCAL_RANK": "1", "WORLD_SIZE": "16",
                        "GROUP_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29400"}.items():
        clean_env.setenv(name, value)
    assert detect_rank(1, 1) == Rank(9, 16, 1, "node0", 29400)


def test_slurm(clean_env):
    for name, value in {"SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8", "SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
                        "SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "seek"}.items():
        clean_env.setenv(name, value)
    assert detect_rank(8, 2) == Rank(9, 16, 1, "gpu07", 4242 + 15000)  # Lightning's port rule: job id + 15000
