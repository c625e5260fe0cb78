"""User errors end the command with one line ``error: ...`` on stderr and exit status 2, without a
traceback; ``--debug`` or ``LATENTSEEK_DEBUG=1`` shows the traceback; a bug keeps its traceback.

Each case runs in-process through ``main([...])`` (``SystemExit(2)`` + captured stderr); one of each
kind (a bad row, a SeekConfig check, a choice, an ignored option, a parse error, --debug, a bug) also runs as a real
``python train_free.py`` process (exit status and the whole stderr), all started together so that
their start-up (about 6 s of imports each) overlaps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_latentseek.cli import main
from lightning_latentseek.config import ConfigError
from lightning_latentseek.problems import ProblemDataError
from tiny import cli_args, tiny_model, tiny_tokenizer, user_error, write_problems

ROOT = Path(__file__).resolve().parents[1]
RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID")


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def one_error_line(stderr: str) -> str:
    """The only non-empty line of `stderr`, which must start with ``error: `` (and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert "Traceback" not in stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ in-process
@pytest.fixture
def data(tmp_path) -> Path:
    return write_problems(tmp_path / "p.jsonl", 2)


def test_malformed_json_row(tiny_dir, tmp_path, capsys):
    bad = write_rows(tmp_path / "bad.jsonl", [{"question": "a", "answer": "1"}, "{not json"])
    line = user_error(capsys, cli_args(tiny_dir, bad, tmp_path / "out"))
    assert line.startswith(f"error: {bad}, line 2: not valid JSON (Expecting property name")


def test_missing_field(tiny_dir, tmp_path, capsys):
    bad = write_rows(tmp_path / "nofield.jsonl", [{"question": "a", "answer": "1"}, {"question": "b", "solution": "c"}])
    line = user_error(capsys, cli_args(tiny_dir, bad, tmp_path / "out"))
    assert line == f"error: {bad}, line 2: missing field 'answer' (fields present: question, solution)"


def test_missing_data_file(tiny_dir, tmp_path, capsys):
    line = user_error(capsys, cli_args(tiny_dir, tmp_path / "none.jsonl", tmp_path / "out"))
    assert line == f"error: {tmp_path / 'none.jsonl'}: file not found"


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        # ranges (typed.Range), checked when SeekConfig / DataConfig are made
        ("--model.rho", "2", "error: --model.rho 2.0: must be in (0, 1]"),
        ("--model.tau", "0.5", "error: --model.tau 0.5: rewards lie in [-1, 0]"),
        ("--model.draft_tokens", "-1", "error: --model.draft_tokens -1: must be >= 0"),
        ("--model.lr", "0", "error: --model.lr 0.0: must be > 0"),
        ("--model.start_fraction", "1", "error: --model.start_fraction 1.0: must be in [0, 1)"),
        ("--data.limit", "0", "error: --data.limit 0: must be >= 1"),
        ("--data.batch_size", "0", "error: --data.batch_size 0: must be >= 1"),
        # values the parser rejects (base type, Literal choices), named by the typed config
        ("--model.rho", "abc", "error: --model.rho abc: expected a float"),
        ("--model.max_latents", "1.5", "error: --model.max_latents 1.5: expected an int"),
        ("--model.reuse", "maybe", "error: --model.reuse maybe: expected true or false"),
        ("--data.limit", "x", "error: --data.limit x: expected int or null"),
        ("--method", "beam", "error: --method 'beam': choose one of latentseek, random, cot, bon, sc, gradcuit, ltpo"),
        ("--model.optimizer", "adamw", "error: --model.optimizer 'adamw': choose one of adam, sgd, muon"),
        ("--data.arith_steps", "4", "error: --data.arith_steps 4: choose one of 1, 2, 3"),
        ("--trainer.max_steps", "-1", "error: --trainer.max_steps -1: K must be an int >= 0 (0 returns the CoT)"),
        # the parser's own message, on one line
        ("--model.nope", "1", "error: unrecognized arguments: --model.nope 1 (see --help)"),
    ],
)
def test_invalid_option(tiny_dir, tmp_path, data, capsys, option, value, expected):
    assert user_error(capsys, cli_args(tiny_dir, data, tmp_path / "out", option, value)) == expected
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("yaml", "expected"), [
    ("model:\n  rho: 2\n", "error: --model.rho 2.0: must be in (0, 1]"),
    ("model:\n  prompt_set: fast\n", "error: --model.prompt_set 'fast': choose paper or compact"),
    ("method: beam\n", "error: --method 'beam': choose one of latentseek, random, cot, bon, sc, gradcuit, ltpo"),
])
def test_invalid_value_in_a_config_file(tiny_dir, tmp_path, data, capsys, yaml, expected):
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    line = user_error(capsys, ["--config", str(config), "--model.llm", tiny_dir, "--data.path", str(data),
                               "--output_dir", str(tmp_path / "out")])
    assert line == expected


def test_a_trainer_value_the_parser_rejects_is_its_message_on_one_line(tiny_dir, tmp_path, data, capsys):
    line = user_error(capsys, cli_args(tiny_dir, data, tmp_path / "out", "--trainer.max_steps", "many"))
    assert line.startswith("error: ") and line.endswith(" (see --help)") and "trainer.max_steps" in line
    assert "many" in line


def test_reward_args_are_checked_against_the_rewards_signature(tiny_dir, tmp_path, data, capsys):
    args = cli_args(tiny_dir, data, tmp_path / "out")
    args[args.index("psrm")] = "self"
    line = user_error(capsys, [*args, "--model.reward_args", "{sampling: hot}"])
    assert line == "error: --model.reward_args.sampling 'hot': choose greedy or model"
    line = user_error(capsys, [*args, "--model.reward_args", "{max_new_tokens: 0}"])
    assert line == "error: --model.reward_args.max_new_tokens 0: must be >= 1"


def test_missing_model_directory(tmp_path, data, capsys):
    line = user_error(capsys, cli_args("/no/such/dir", data, tmp_path / "out"))
    assert line == ("error: --model.llm /no/such/dir: path does not exist (expected a model directory, a .gguf file, "
                    "a hub id like Qwen/Qwen2.5-7B-Instruct, or 'smollm2')")


def test_directory_that_is_not_a_model(tmp_path, data, capsys):
    (tmp_path / "empty").mkdir()
    line = user_error(capsys, cli_args(str(tmp_path / "empty"), data, tmp_path / "out"))
    assert line == f"error: --model.llm {tmp_path / 'empty'}: not a model directory (no config.json)"


def test_model_that_transformers_cannot_load(tmp_path, data, capsys):
    """A config and a tokenizer but no weights: from_pretrained's OSError becomes one line naming --model.llm."""
    model = tmp_path / "no-weights"
    tiny_model().config.save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    line = user_error(capsys, cli_args(str(model), data, tmp_path / "out"))
    assert line == (f"error: --model.llm {model}: cannot load it (Error no file named model.safetensors, or "
                    f"pytorch_model.bin, found in directory {model}.)")


def test_unknown_reward(tiny_dir, tmp_path, data, capsys):
    args = cli_args(tiny_dir, data, tmp_path / "out")
    args[args.index("psrm")] = "nosuch_module.Reward"
    line = user_error(capsys, args)
    assert line == "error: --model.reward 'nosuch_module.Reward': cannot import it (No module named 'nosuch_module')"


def test_unreachable_hub(tiny_dir, tmp_path, capsys, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    args = [a for a in cli_args(tiny_dir, "unused", tmp_path / "out") if a not in ("--data.path", "unused")]
    line = user_error(capsys, [*args, "--data.name", "math500"])
    assert line == ("error: HuggingFaceH4/MATH-500 (split test): the Hugging Face hub could not be reached; "
                    "pass a local copy with --data.path FILE (.jsonl, .json or .parquet)")


def test_config_mismatch_on_resume(tiny_dir, tmp_path, data, capsys):
    out = tmp_path / "out"
    main(cli_args(tiny_dir, data, out))
    line = user_error(capsys, cli_args(tiny_dir, data, out, "--model.lr", "0.1"))
    assert line == (f"error: {out} holds results of a different configuration (changed: model.lr); "
                    "use another --output_dir, or --overwrite to discard them")


def test_debug_flag_and_env_raise_with_traceback(tiny_dir, tmp_path, data, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"^--model\.rho 2\.0: must be in \(0, 1\]$"):
        main(cli_args(tiny_dir, data, tmp_path / "out", "--model.rho", "2", "--debug"))
    monkeypatch.setenv("LATENTSEEK_DEBUG", "1")
    with pytest.raises(ProblemDataError, match="file not found"):
        main(cli_args(tiny_dir, tmp_path / "none.jsonl", tmp_path / "out"))
    with pytest.raises(ConfigError):
        main(cli_args(tiny_dir, data, tmp_path / "out", "--model.rho", "2"))
    for off in ("0", ""):  # LATENTSEEK_DEBUG=0 (or empty) is off
        monkeypatch.setenv("LATENTSEEK_DEBUG", off)
        assert user_error(capsys, cli_args(tiny_dir, data, tmp_path / "out", "--model.rho", "2")) == (
            "error: --model.rho 2.0: must be in (0, 1]")


def test_debug_flag_is_not_part_of_the_saved_config(tiny_dir, tmp_path, data):
    main(cli_args(tiny_dir, data, tmp_path / "out", "--debug"))
    saved = (tmp_path / "out" / "config.yaml").read_text()
    assert "\ndebug:" not in saved and "\nprogress: false" in saved


# ------------------------------------------------------------------------------------------ processes
def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*RANK_VARS, "LATENTSEEK_DEBUG")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests"), **extra}


@pytest.fixture(scope="module")
def processes(tiny_dir, tmp_path_factory):
    """Run every command line case as `python train_free.py ...` at once; {case: (exit status, stderr)}."""
    tmp = tmp_path_factory.mktemp("processes")
    data = write_problems(tmp / "p.jsonl", 2)
    bad = write_rows(tmp / "bad.jsonl", [{"question": "a", "answer": "1"}, "{not json"])
    exploding = write_rows(tmp / "boom.jsonl", [{"id": "ok", "question": "1+1?", "answer": "2"},
                                                {"id": "boom", "question": "2+2?", "answer": "4"}])
    internal = cli_args(tiny_dir, exploding, tmp / "boom")
    internal[internal.index("psrm")] = "tiny.ExplodingReward"
    cases = {
        "malformed_row": (cli_args(tiny_dir, bad, tmp / "bad"), {}),
        "rho": (cli_args(tiny_dir, data, tmp / "rho", "--model.rho", "2"), {}),
        "method": (cli_args(tiny_dir, data, tmp / "method", "--method", "nope"), {}),
        "ignored_option": (["--config", "configs/demo.yaml", "--data.path", "missing.jsonl",
                            "--output_dir", str(tmp / "ignored")], {}),
        "unknown_option": (cli_args(tiny_dir, data, tmp / "nope", "--model.nope", "1"), {}),
        "debug_flag": (cli_args(tiny_dir, data, tmp / "dbg", "--model.nope", "1", "--debug"), {}),
        "internal_error": (internal, {}),
    }
    procs = {name: subprocess.Popen([sys.executable, "train_free.py", *args], cwd=ROOT, env=_env(**env),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, (args, env) in cases.items()}
    results = {}
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=600)
        results[name] = (proc.returncode, stderr)
    return {"tmp": tmp, **results}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed_row", "error: {tmp}/bad.jsonl, line 2: not valid JSON (Expecting property name enclosed in double "
                          "quotes: line 1 column 2 (char 1))"),
        ("rho", "error: --model.rho 2.0: must be in (0, 1]"),
        ("method", "error: --method 'nope': choose one of latentseek, random, cot, bon, sc, gradcuit, ltpo"),
        ("ignored_option", "error: --data.path is ignored with --data.name arith; pass --data.name jsonl (or gsm8k, "
                           "math500, aime2024) to read a file"),
        ("unknown_option", "error: unrecognized arguments: --model.nope 1 (see --help)"),
    ],
)
def test_user_error_process_prints_one_line_and_exits_2(processes, case, expected):
    status, stderr = processes[case]
    assert status == 2, stderr[-3000:]
    assert one_error_line(stderr) == expected.format(tmp=processes["tmp"])


def test_debug_shows_the_traceback(processes):
    status, stderr = processes["debug_flag"]
    assert status == 1, stderr[-3000:]
    assert "Traceback (most recent call last):" in stderr
    assert stderr.strip().splitlines()[-1] == "argparse.ArgumentError: unrecognized arguments: --model.nope 1"
    assert not any(line.startswith("error: ") for line in stderr.splitlines())


def test_internal_error_keeps_its_traceback(processes):
    status, stderr = processes["internal_error"]
    assert status == 1, stderr[-3000:]
    assert "Traceback (most recent call last):" in stderr
    assert stderr.strip().splitlines()[-1] == "RuntimeError: reward exploded"
    assert not any(line.startswith("error: ") for line in stderr.splitlines())
    records = (processes["tmp"] / "boom" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in records] == ["ok"]  # the problem before the crash is kept
