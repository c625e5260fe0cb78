"""An option the run would ignore is a user error: one line naming it and what to pass instead, exit 2.

`config.check_ignored_options` is the one place; `config.USED_ONLY` says which options each run uses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lightning_latentseek.cli import LatentSeekCLI, command_line_keys
from lightning_latentseek.config import (ALWAYS_USED, METHODS, USED_ONLY, DataConfig, IgnoredOptionError, RunOptions,
                                         SeekConfig, check_ignored_options, resolved_options)
from tiny import cli_args, user_error, write_problems

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p) for p in (ROOT / "configs").glob("*.yaml"))


def values(method="latentseek", trainer=None, seed_everything=False, model=None, data=None) -> dict:
    return resolved_options(RunOptions(method=method), SeekConfig(**(model or {})), DataConfig(**(data or {})),
                            trainer or {}, seed_everything)


def refused(given: dict, command_line=()) -> str:
    with pytest.raises(IgnoredOptionError) as error:
        check_ignored_options(given, set(command_line))
    return str(error.value)


def test_the_issues_case_data_path_with_the_generated_dataset(tmp_path, capsys):
    line = user_error(capsys, ["--config", str(ROOT / "configs" / "demo.yaml"), "--data.path", "missing.jsonl",
                               "--output_dir", str(tmp_path / "out")])
    assert line == ("error: --data.path is ignored with --data.name arith; pass --data.name jsonl (or gsm8k, math500, "
                    "aime2024) to read a file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("given", "command_line", "expected"), [
    (values(data={"name": "arith", "question_field": "q"}), [],
     "--data.question_field is ignored with --data.name arith; pass --data.name jsonl (or gsm8k, math500, aime2024) "
     "to read a file"),
    (values(data={"name": "gsm8k", "arith_steps": 2}), [],
     "--data.arith_steps is ignored with --data.name gsm8k; pass --data.name arith to solve the generated arithmetic "
     "problems"),
    (values(model={"n_samples": 8}), [], "--model.n_samples is ignored with --method latentseek; it applies to --method "
                                         "bon or sc"),
    (values("cot", model={"samples_per_step": 4}), [],
     "--model.samples_per_step is ignored with --method cot; it applies to --method latentseek, random or ltpo"),
    (values("bon", trainer={"max_steps": 3}), [],
     "--trainer.max_steps is ignored with --method bon; it applies to --method latentseek, random, gradcuit or ltpo"),
    (values("sc", model={"reward": "psrm"}), [],
     "--model.reward is ignored with --method sc; --method cot, sc and ltpo use no reward; it applies to --method "
     "latentseek, random, bon or gradcuit"),
    (values("random", model={"optimizer": "sgd"}), [],
     "--model.optimizer is ignored with --method random; it applies to --method latentseek or gradcuit (the random "
     "control's steps are Gaussian noise)"),
    (values("gradcuit", model={"rho": 0.5}), [],
     "--model.rho is ignored with --method gradcuit; it applies to --method latentseek or random"),
    (values(model={"latent_layer": 7}), [],
     "--model.latent_layer is ignored with --method latentseek; it applies to --method gradcuit"),
    (values("gradcuit", model={"step": "random"}), ["model.optimizer"],
     "--model.optimizer is ignored with --model.step random; --model.step random moves the offset by Gaussian noise, "
     "without a gradient"),
    (values("gradcuit", model={"reward": "psrm", "reward_server": "http://h:8000/v1"}), [],
     "--model.reward_server is ignored with --model.reward psrm; it applies to --model.reward self or "
     "single_verifier (an LLM judges the answers)"),
    (values("gradcuit", model={"reward": "single_verifier", "reward_server_timeout": 60.0}), [],
     "--model.reward_server_timeout is ignored without --model.reward_server; pass --model.reward_server URL"),
    (values(model={"reward_server": "http://h:8000/v1", "verifier_sampling": "model"}), [],
     "--model.verifier_sampling is ignored with --model.reward_server http://h:8000/v1; a --model.reward_server "
     "decodes greedily (temperature 0)"),
    (values("gradcuit", model={"reward": "single_verifier", "format_rule": True}), [],
     "--model.format_rule is ignored with --model.reward single_verifier; it applies to --model.reward self (the "
     "model judges its own answers)"),
    (values(model={"reward": "psrm", "verifier_sampling": "model"}), [],
     "--model.verifier_sampling is ignored with --model.reward psrm; it applies to --model.reward self (the model "
     "judges its own answers)"),
    (values(seed_everything=7), [],
     "--seed_everything 7 is ignored; each problem is seeded from --seed and its id: pass --seed N"),
    (values(data={"path": "rows.jsonl", "split": "train"}), [],
     "--data.split train is ignored with the local file --data.path rows.jsonl; a split chooses part of a hub dataset"),
    # on the command line, even at its default value
    (values("cot"), ["model.lr"],
     "--model.lr is ignored with --method cot; it applies to --method latentseek, random, gradcuit or ltpo"),
    (values(model={"reward": "constant"}), ["model.format_rule"],
     "--model.format_rule is ignored with --model.reward constant; it applies to --model.reward self (the model judges "
     "its own answers)"),
])
def test_each_rule_names_the_option_and_what_to_pass(given, command_line, expected):
    assert refused(given, command_line) == expected


def test_options_from_a_config_count_unless_the_command_line_changed_what_they_depend_on():
    run = values("cot", model={"lr": 0.05, "reward": "psrm"}, trainer={"max_steps": 5})  # gsm8k_json.yaml, --method cot
    check_ignored_options(run, {"method"})  # the config's LatentSeek settings, and a baseline chosen on the command line
    assert refused(run, set()).startswith("--model.lr is ignored with --method cot")  # one file saying both
    arith = values(data={"name": "jsonl", "path": "mine.jsonl", "arith_steps": 2})
    check_ignored_options(arith, {"data.name", "data.path"})  # demo.yaml --data.name jsonl --data.path mine.jsonl
    assert refused(arith, {"data.path"}).startswith("--data.arith_steps is ignored with --data.name jsonl")


def test_defaults_and_used_options_pass():
    for method in METHODS:
        check_ignored_options(values(method), set())
    check_ignored_options(values("random", model={"lr": 0.1, "samples_per_step": 2, "temperature": 0.5}),
                          {"method", "model.lr", "model.samples_per_step", "model.temperature"})
    check_ignored_options(values("bon", model={"reward": "psrm", "n_samples": 10}), {"model.reward", "model.n_samples"})
    check_ignored_options(values(model={"verifier_max_new_tokens": 48}), {"model.verifier_max_new_tokens"})
    check_ignored_options(values(data={"name": "arith", "arith_steps": 2, "limit": 5}), {"data.name", "data.arith_steps"})
    check_ignored_options(values(data={"name": "gsm8k", "split": "train"}), {"data.split"})  # a hub dataset's split
    check_ignored_options(values("gradcuit", model={"lr": 0.01, "latent_layer": 3, "optimizer": "muon",
                                                    "grad_clip": 1.0, "reward": "single_verifier",
                                                    "reward_server": "http://h:8000/v1", "reward_server_timeout": 9.0,
                                                    "verifier_max_new_tokens": 64}),
                          {"method", "model.lr", "model.latent_layer", "model.optimizer", "model.reward_server"})
    check_ignored_options(values("gradcuit", model={"step": "random", "lr": 0.01}), {"model.step", "model.lr"})


def test_every_option_is_classified():
    classified = set(ALWAYS_USED) | {option for rule in USED_ONLY for option in rule.options}
    for group, cls in (("model", SeekConfig), ("data", DataConfig)):
        for item in dataclasses.fields(cls):
            assert f"{group}.{item.name}" in classified, f"{group}.{item.name}: add it to USED_ONLY or ALWAYS_USED"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).name)
def test_every_shipped_config_runs_every_method(config):
    """The configs hold LatentSeek's settings and serve the baselines too (their comments say so)."""
    for method in METHODS:
        spec = LatentSeekCLI(args=["--config", config, "--method", method]).run_spec()
        assert spec.method == method


def test_command_line_keys():
    known = set(LatentSeekCLI(args=[]).config.keys())
    assert command_line_keys(["--config", "c.yaml", "--model.lr=0.1", "--data.path", "x", "--model.n_sam", "2",
                              "-c", "d.yaml", "--trainer.max_steps", "3", "--debug", "--seed", "1", "--trainer.max",
                              "4"], known) == {"config", "model.lr", "data.path", "model.n_samples", "trainer.max_steps",
                                               "debug", "seed", "trainer.max"}  # trainer.max: ambiguous, kept as given


def test_baseline_with_an_option_it_ignores(tiny_dir, tmp_path, capsys):
    data = write_problems(tmp_path / "p.jsonl", 1)
    line = user_error(capsys, cli_args(tiny_dir, data, tmp_path / "out", "--method", "cot"))
    assert line == "error: --model.rho is ignored with --method cot; it applies to --method latentseek or random"


def test_no_global_seeding_and_seed_everything_is_refused(tiny_dir, tmp_path, capsys):
    torch.manual_seed(1234)
    LatentSeekCLI(args=["--model.llm", tiny_dir]).run_spec()
    assert torch.initial_seed() == 1234  # LightningCLI's seed_everything did not run
    data = write_problems(tmp_path / "p.jsonl", 1)
    line = user_error(capsys, cli_args(tiny_dir, data, tmp_path / "out", "--seed_everything", "3"))
    assert line == "error: --seed_everything 3 is ignored; each problem is seeded from --seed and its id: pass --seed N"
