"""The command line: ``train_free.py`` / ``lightning-latentseek``, built on LightningCLI.

Options: ``--config FILE``, ``--model.*`` (method settings), ``--data.*`` (problems),
``--trainer.*`` (K = ``max_steps``, accelerator, devices, precision, callbacks), and
``--output_dir``, ``--method``, ``--seed``, ``--overwrite``, ``--debug``. Tests call ``main([...])``.

User errors (:class:`~lightning_latentseek.errors.UserError`, and parse errors such as an unknown
option or a value of the wrong type) print one line ``error: <message>`` on stderr and exit with
status 2; ``--debug`` or ``LATENTSEEK_DEBUG=1`` shows their traceback instead. Other exceptions are
bugs and keep their traceback.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_latentseek.config import METHODS, DataConfig, SeekConfig
from lightning_latentseek.errors import DEBUG_ENV, UserError, one_line, parse_error_message
from lightning_latentseek.solve import RunSpec, quiet_lightning, run

TRAINER_DEFAULTS = {"max_steps": 10, "devices": 1, "logger": False, "enable_checkpointing": False,
                    "enable_progress_bar": False, "enable_model_summary": False}


class LatentSeekCLI(LightningCLI):
    """LightningCLI without a fixed LightningModule: every problem gets its own module and Trainer."""

    def __init__(self, args=None):
        super().__init__(save_config_callback=None, seed_everything_default=False, run=False, args=args,
                         auto_configure_optimizers=False, load_from_checkpoint_support=False,
                         parser_kwargs={"description": "LatentSeek: test-time latent optimisation of a frozen LLM.",
                                        "exit_on_error": False})  # parse errors raise: `main` reports them

    def _set_seed(self) -> None:
        """No global seed_everything: sampling baselines seed a generator per problem from --seed."""

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--output_dir", type=str, default="runs/latentseek",
                            help="where results.jsonl, summary.json and summary.md are written")
        parser.add_argument("--method", type=str, default="latentseek", choices=list(METHODS),
                            help="latentseek; random (the control: random latent steps); or a baseline: cot (greedy), "
                                 "bon (Best-of-N; with --model.reward psrm the oracle pass@N), sc (self-consistency)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the sampling baselines (0 is a valid seed)")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="discard results in --output_dir made with another configuration")
        parser.add_argument("--progress", type=bool, default=True, help="show the progress display and final table")
        parser.add_argument("--debug", action="store_true",
                            help=f"on the command line: show the traceback of user errors (also {DEBUG_ENV}=1)")

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in TRAINER_DEFAULTS.items()})
        parser.add_class_arguments(SeekConfig, "model")
        parser.add_class_arguments(DataConfig, "data")

    def instantiate_classes(self) -> None:
        """Instantiate configs and callbacks only: Trainers are made per problem by the run."""
        self.config_init = self.parser.instantiate(self.config)

    def run_spec(self) -> RunSpec:
        cfg = self.config_init
        resolved = self.config.clone()
        resolved.pop("seed_everything", None)  # LightningCLI adds it; this CLI seeds with --seed
        resolved.pop("debug", None)  # how errors are shown, not a setting of the run
        return RunSpec(model=cfg.model, data=cfg.data, trainer=dict(vars(cfg.trainer)), output_dir=cfg.output_dir,
                       method=cfg.method, seed=cfg.seed, overwrite=cfg.overwrite, progress=cfg.progress,
                       config_yaml=self.parser.dump(resolved, skip_unset=False))


def main(args: list[str] | None = None) -> dict | None:
    """Parse `args` (sys.argv when None), run, and return the summary (None on ranks > 0).

    A user error prints ``error: <message>`` (one line) on stderr and raises ``SystemExit(2)``; with
    ``--debug`` among the arguments or ``LATENTSEEK_DEBUG=1`` it propagates with its traceback.
    After Ctrl-C it raises ``SystemExit(130)`` once the finished records and their summary are written.
    """
    try:
        quiet_lightning()
        return run(LatentSeekCLI(args=args).run_spec())
    except (UserError, ArgumentError) as err:
        if debug_requested(sys.argv[1:] if args is None else args):
            raise
        print(f"error: {user_message(err)}", file=sys.stderr)
        raise SystemExit(2) from None


def debug_requested(args: list[str]) -> bool:
    """``--debug`` on the command line, or ``LATENTSEEK_DEBUG`` set to anything but empty/0/false."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in args or env not in ("", "0", "false", "no")


def user_message(err: Exception) -> str:
    """The one-line message of a user error or a parse error."""
    if isinstance(err, ArgumentError):
        return parse_error_message(err.message)
    return one_line(str(err)) or type(err).__name__


if __name__ == "__main__":
    main()
