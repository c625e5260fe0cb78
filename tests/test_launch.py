"""`solve.launch_ranks`: local ranks started as torchrun starts them (environment variables and subprocesses),
meeting on a store that rank 0 hosts. The whole-run behaviour (two devices, Ctrl-C, resume) is in test_ranks.py
and test_faults.py."""

from __future__ import annotations

import datetime
import json
import sys

import pytest
import torch.distributed as dist

from lightning_latentseek.errors import UserError
from lightning_latentseek.solve import Rank, join_ranks, launch_ranks, rank_command

VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
             "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE")
# A child that writes its launcher variables to env<LOCAL_RANK>.json, then meets rank 0 on the store
CHILD = """
import datetime, json, os, sys
import torch.distributed as dist
json.dump({k: os.environ.get(k) for k in sys.argv[2].split(",")},
          open(os.path.join(sys.argv[1], "env" + os.environ["LOCAL_RANK"] + ".json"), "w"))
url = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}?rank={os.environ['RANK']}&world_size=3"
store, _, _ = next(dist.rendezvous(url, timeout=datetime.timedelta(seconds=60)))
store.set("hello/" + os.environ["RANK"], "1")
"""


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "outer")  # never passed on: the children are not torchelastic's
    return monkeypatch


def test_local_ranks_get_torchruns_variables_and_meet_on_rank_zeros_store(tmp_path, clean_env):
    rank, children, store = launch_ranks(Rank(0, 3, needs_launch=True), 3,
                                         [sys.executable, "-c", CHILD, str(tmp_path), ",".join(VARIABLES)])
    try:
        assert [child.wait(timeout=120) for child in children] == [0, 0]
    finally:
        for child in children:
            child.kill()
    port = str(store.port)
    assert rank == Rank(0, 3, 0, "127.0.0.1", store.port)
    for local in (1, 2):
        env = json.loads((tmp_path / f"env{local}.json").read_text())
        assert env == {"RANK": str(local), "LOCAL_RANK": str(local), "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "3",
                       "NODE_RANK": "0", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                       "TORCHELASTIC_RUN_ID": None, "TORCHELASTIC_USE_AGENT_STORE": None}
        assert store.get(f"hello/{local}") == b"1"


def test_rank_zero_hosts_the_store_it_joins_with(clean_env):
    rank, children, store = launch_ranks(Rank(0, 2, needs_launch=True), 2, [sys.executable, "-c", "pass"])
    children[0].wait(timeout=60)
    joined = join_ranks(rank, store)  # rank 0 marks the store ready for the others
    client = dist.TCPStore("127.0.0.1", rank.port, None, False, timeout=datetime.timedelta(seconds=30))
    assert dist.PrefixStore("lightning-latentseek/0", client).get("ready") == b"1"
    assert joined.get("ready") == b"1"


def test_another_node_needs_the_address_of_node_zero(clean_env):
    with pytest.raises(UserError, match="set MASTER_ADDR and MASTER_PORT"):
        launch_ranks(Rank(4, 8, needs_launch=True), 4, [sys.executable, "-c", "pass"])


def test_rank_command(monkeypatch):
    assert rank_command(["--config", "c.yaml"]) == [sys.executable, "-m", "lightning_latentseek.cli", "--config", "c.yaml"]
    monkeypatch.setattr(sys, "argv", ["train_free.py", "--trainer.devices", "2"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None)
    command = rank_command(None)
    assert command[0] == sys.executable and command[1].endswith("/train_free.py") and command[2:] == [
        "--trainer.devices", "2"]
