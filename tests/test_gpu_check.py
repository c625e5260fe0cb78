"""benchmarks/gpu_check.py runs its whole code on the CPU (`--device cpu --quick`, a tiny random model): every
phase, every summary line, the JSON; and its deadline and user errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

# --quick: B = 1 and 2; the constants phase's settings, in the script's order
KEYS = ["device", "parity_fp32", "per_hour[psrm,B=1]", "per_hour[self,B=1]", "per_hour[psrm,B=2]",
        "per_hour[self,B=2]", "latentseek_vs_cot[psrm]", "latentseek_vs_cot[self]", "draft_budget[32]",
        "draft_budget[256]", "draft_budget[unlimited]", "draft_budget[off]", "attention[sdpa]", "attention[packed]",
        "attention[row_groups]", "drop_finished[1/3]", "drop_finished[1/2]", "drop_finished[1]", "seconds_total"]
CPU_DEFAULTS = {"draft_budget[32]", "attention[row_groups]", "drop_finished[1/3]"}


def run_check(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LATENTSEEK_DEBUG", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def summary(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    pairs = [line[len("SUMMARY "):].split(": ", 1) for line in lines]
    assert [key for key, _ in pairs] == list(dict(pairs))  # no key twice
    return dict(pairs)


def test_the_quick_check_runs_every_phase_on_the_cpu(tiny_dir, tmp_path):
    out = tmp_path / "check.json"
    done = run_check("--device", "cpu", "--quick", "--llm", tiny_dir, "--threads", "1", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = summary(done.stdout)
    assert list(lines) == KEYS
    assert lines["device"].startswith("cpu CPU; torch ")
    assert lines["device"].endswith("tuning draft_budget 32, drop_finished 1/3, attention_plans True, "
                                    "group_call_cells 512")
    # fp32 on a CPU: the engine gives the no-cache loop's token ids, CoT and iteration, with both rewards
    assert lines["parity_fp32"].startswith("identical 2/2 (psrm 1/1, self 1/1; fp32, paper mode, K 1, caps 12/6;")
    for reward in ("psrm", "self"):
        assert re.fullmatch(r"\d+ problems/h \(1 problems in \d+\.\d s, fp32; \d+ tokens/s; peak \d+ MiB; "
                            r"the reference for B > 1\)", lines[f"per_hour[{reward},B=1]"])
        assert re.fullmatch(r"\d+ problems/h \(2 problems in \d+\.\d s, fp32; \d+ tokens/s; peak \d+ MiB; "
                            r"answers identical to B=1's on 1/1\)", lines[f"per_hour[{reward},B=2]"])
        assert re.fullmatch(r"\d+\.\dx \(LatentSeek \d+\.\d\d s per problem, 1\.0 iterations on average; CoT "
                            r"\d+\.\d\d s; fp32, one problem at a time, 1 problems, K 1\)",
                            lines[f"latentseek_vs_cot[{reward}]"])
    where = r"B=2, 2 problems, PSRM, fp32"
    for key in KEYS[8:-1]:
        if key in CPU_DEFAULTS:  # the CPU's own values are the baseline, run first and last
            assert re.fullmatch(rf"default \(\d+\.\d s and \d+\.\d s: a spread of \d+%; {where}\)", lines[key]), key
        else:
            assert re.fullmatch(rf"\d+\.\d\dx the default's speed \(\d+\.\d s against \d+\.\d s; answers identical "
                                rf"2/2; {where}\)", lines[key]), key
    assert re.fullmatch(r"\d+\.\d s", lines["seconds_total"])
    document = json.loads(out.read_text())
    assert document["complete"] is True and document["quick"] is True
    assert list(document["figures"]) == KEYS
    assert {key: value["summary"] for key, value in document["figures"].items()} == lines
    assert document["figures"]["parity_fp32"]["identical"] == 2
    assert document["figures"]["per_hour[self,B=2]"]["problems"] == 2
    assert {k for k, v in document["figures"].items() if v["status"] == "default"} == CPU_DEFAULTS
    assert document["device"]["tuning"]["draft_budget"] == "32"


def test_at_its_deadline_the_check_prints_what_it_has_and_exits_3(tiny_dir, tmp_path):
    out = tmp_path / "cut.json"
    done = run_check("--device", "cpu", "--quick", "--llm", tiny_dir, "--threads", "1", "--phases", "constants",
                     "--deadline", "0.01", "--out", str(out))
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the check reached its deadline of 0 s" in done.stderr
    lines = summary(done.stdout)
    assert list(lines) == ["device"] + KEYS[8:]
    assert all(lines[key] == "not reached (the --deadline of 0 s came first)" for key in KEYS[8:-1])
    assert lines["seconds_total"].endswith(" s (cut short)")
    document = json.loads(out.read_text())
    assert document["complete"] is False and document["figures"]["attention[packed]"]["status"] == "not reached"


def test_bad_options_are_one_line_errors(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    assert gpu_check.main(["--phases", "parity,nope"]) == 2
    assert capsys.readouterr().err == "error: --phases parity,nope: choose among parity, throughput, cot, constants\n"
    assert gpu_check.main(["--device", "tpu", "--quick"]) == 2
    assert capsys.readouterr().err == "error: --device tpu: not a device (cuda, cuda:N or cpu)\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_asking_for_cuda_without_one_is_a_one_line_error(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: no CUDA device here (torch ") and err.count("\n") == 1
