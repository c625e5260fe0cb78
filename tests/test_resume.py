"""Exact resume: torn lines and records of another configuration are solved again; a changed configuration is refused
(a kill in the middle of a batch: test_batch.py)."""

from __future__ import annotations

import json
from pathlib import Path

from lightning_latentseek.cli import main
from lightning_latentseek.records import config_hash
from lightning_latentseek.solve import RunSpec
from tiny import cli_args, user_error, write_problems

ROOT = Path(__file__).resolve().parents[1]


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_torn_line_and_foreign_records_are_solved_again(tiny_dir, tmp_path):
    data = write_problems(tmp_path / "p.jsonl", 3)
    out = tmp_path / "out"
    main(cli_args(tiny_dir, data, out))
    first, second, third = (out / "results.jsonl").read_text().splitlines(keepends=True)
    foreign = json.loads(second) | {"config_hash": "0" * 16}  # a record of another configuration slipped in
    (out / "results.jsonl").write_text(first + json.dumps(foreign) + "\n" + third[: len(third) // 2])  # torn

    main(cli_args(tiny_dir, data, out))

    records = results(out)
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert records[0] == json.loads(first)
    # solved again: written by the second run, after the first run's records
    assert records[1]["finished_at"] > foreign["finished_at"] and records[2]["finished_at"] > json.loads(first)["finished_at"]
    assert {r["config_hash"] for r in records} == {json.loads(first)["config_hash"]}


def test_config_change_is_refused_unless_overwrite(tiny_dir, tmp_path, capsys):
    data = write_problems(tmp_path / "p.jsonl", 1)
    out = tmp_path / "out"
    main(cli_args(tiny_dir, data, out))
    before = results(out)

    line = user_error(capsys, cli_args(tiny_dir, data, out, "--model.lr", "0.1", "--model.tau", "-0.5"))
    assert line == (f"error: {out} holds results of a different configuration (changed: model.lr, model.tau); "
                    "use another --output_dir, or --overwrite to discard them")
    assert results(out) == before

    main(cli_args(tiny_dir, data, out, "--model.lr", "0.1", "--overwrite", "true"))
    after = results(out)
    assert [r["id"] for r in after] == ["q0"] and after[0]["config_hash"] != before[0]["config_hash"]
    main(cli_args(tiny_dir, data, out, "--model.lr", "0.1"))  # the same command again: nothing left to do
    assert results(out) == after


def test_the_resume_hash_holds_the_resolved_llm_dtype_and_device_type():
    """Precision unset means fp32 on a CPU and bf16 on a GPU: the two runs must not share an output directory."""
    cpu, gpu = RunSpec().result_config("cpu"), RunSpec().result_config("cuda")
    assert (cpu["device"], cpu["precision"], cpu["llm_dtype"]) == ("cpu", "32-true", "float32")
    assert (gpu["device"], gpu["precision"], gpu["llm_dtype"]) == ("cuda", "bf16-true", "bfloat16")
    assert config_hash(cpu) != config_hash(gpu)
    # bf16 on a CPU is another run; the default spelled out is the same run
    assert config_hash(RunSpec(trainer={"precision": "bf16-true"}).result_config("cpu")) != config_hash(cpu)
    assert RunSpec(trainer={"precision": "32-true"}).result_config("cpu") == cpu


def test_a_resume_in_another_llm_dtype_is_refused(tiny_dir, tmp_path, capsys):
    data = write_problems(tmp_path / "p.jsonl", 1)
    out = tmp_path / "out"
    main(cli_args(tiny_dir, data, out))
    saved = json.loads((out / "run_config.json").read_text())
    assert (saved["device"], saved["precision"], saved["llm_dtype"]) == ("cpu", "32-true", "float32")
    before = results(out)

    line = user_error(capsys, cli_args(tiny_dir, data, out, "--trainer.precision", "bf16-true"))
    assert line == (f"error: {out} holds results of a different configuration (changed: llm_dtype, precision); "
                    "use another --output_dir, or --overwrite to discard them")
    main(cli_args(tiny_dir, data, out, "--trainer.precision", "32-true"))  # the resolved default: nothing to redo
    assert results(out) == before


def test_the_resume_hash_leaves_out_what_the_run_ignores():
    """A baseline's records do not depend on the search's options (nor on K), a PSRM run's on the verifier's: those
    options stay out of its hash, so a new or changed search option never turns its finished records away."""
    from lightning_latentseek.config import DataConfig, SeekConfig

    cot = RunSpec(method="cot").result_config("cpu")
    assert "max_steps" not in cot and "lr" not in cot["model"] and "n_samples" not in cot["model"]
    assert cot["model"]["grading"] == "paper" and cot["model"]["prompt"] == "boxed"
    assert "arith_steps" not in cot["data"]  # a file dataset
    assert RunSpec(method="cot", model=SeekConfig(lr=0.5, rho=0.5)).result_config("cpu") == cot
    psrm = RunSpec(model=SeekConfig(reward="psrm")).result_config("cpu")
    assert "verifier_max_new_tokens" not in psrm["model"] and psrm["max_steps"] == 10 and psrm["model"]["lr"] == 0.03
    assert RunSpec(model=SeekConfig(reward="psrm", lr=0.5)).result_config("cpu") != psrm  # a used option counts
    arith = RunSpec(method="cot", data=DataConfig(name="arith")).result_config("cpu")
    assert arith["data"] == {"name": "arith", "arith_steps": 1, "arith_seed": 0}
