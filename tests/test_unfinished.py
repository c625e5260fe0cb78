"""A reward that becomes unavailable (its verifier server died, retries spent) ends only that problem, with
stop_reason `reward_unavailable`, inside a fit or before it: the record is kept, left out of the summary's accuracy
(`unfinished`), the run goes on and exits 1, and a resume solves exactly that problem again. (The real server's
version of this: tests/test_reward_server.py.)"""

from __future__ import annotations

import json

import pytest

from lightning_latentseek.cli import main
from lightning_latentseek.records import read_records
from tiny import write_problems


@pytest.mark.parametrize(("method", "after"), [("gradcuit", 1), ("latentseek", 1), ("latentseek", 0)],
                         ids=["gradcuit, in the fit", "latentseek, in the fit", "latentseek, the CoT's reward"])
def test_an_unavailable_reward_ends_that_problem_and_the_resume_solves_it(tiny_dir, tmp_path, capsys, method, after):
    data = write_problems(tmp_path / "problems.jsonl", 3)
    gate, out = tmp_path / "server-back", tmp_path / "out"
    config = tmp_path / "reward.yaml"
    config.write_text(json.dumps({"model": {"reward": "tiny.UnavailableReward",
                                            "reward_args": {"fail_id": "q1", "gate": str(gate), "after": after}}}))
    args = ["--config", str(config), "--method", method, "--model.llm", tiny_dir, "--data.path", str(data),
            "--model.max_new_tokens", "6", "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
            "--data.batch_size", "1", "--model.reuse", "false", "--progress", "false", "--output_dir", str(out)]
    if method == "latentseek":
        args += ["--model.rho", "0.5"]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().endswith("Incomplete: 1 of 3 problems ended without a reward "
                                                    "(reward_unavailable); rerun the same command to solve them again.")
    records = read_records(out / "results.jsonl")
    assert [(r["id"], r["stop_reason"] == "reward_unavailable") for r in records] == [
        ("q0", False), ("q1", True), ("q2", False)]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n"], summary["unfinished"], summary["skipped"]) == (2, 1, 0)
    kept = {r["id"]: r["finished_at"] for r in records}

    gate.touch()
    summary = main(args)
    records = read_records(out / "results.jsonl")
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert all(r["stop_reason"] != "reward_unavailable" for r in records)
    assert records[0]["finished_at"] == kept["q0"] and records[2]["finished_at"] == kept["q2"]  # not solved again
    assert records[1]["finished_at"] > kept["q1"]
    assert (summary["n"], summary["unfinished"]) == (3, 0)
