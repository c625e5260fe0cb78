"""The command line: ``train_free.py`` / ``lightning-latentseek``, built on LightningCLI.

Options: ``--config FILE``, ``--model.*`` (method settings), ``--data.*`` (problems),
``--trainer.*`` (K = ``max_steps``, accelerator, devices, precision, callbacks), and
``--output_dir``, ``--method``, ``--seed``, ``--overwrite``, ``--debug``. Tests call ``main([...])``.

User errors (:class:`~lightning_latentseek.errors.UserError`, and parse errors such as an unknown
option or a value of the wrong type) print one line ``error: <message>`` on stderr and exit with
status 2; ``--debug`` or ``LATENTSEEK_DEBUG=1`` shows their traceback instead. Other exceptions are
bugs and keep their traceback.

Bad values: the options' types live in `config` (`Literal` choices, `typed.Range` bounds). The parser checks
base types and choices, and the dataclasses check their fields when they are made (`typed.check_fields`), so
every message about a value comes from our own typed check, naming the option: when the parser rejects a
command line, `parse_arguments` parses it again with a parser that checks nothing of ours (`typed.lenient`)
and builds the typed options from that, which names the bad value. Anything else the parser rejects (an
unknown option, a ``--trainer.*`` value) is its own message on one line.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError
from dataclasses import fields
from typing import Union

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_latentseek.config import (DEFAULT_MAX_STEPS, DataConfig, RunOptions, SeekConfig, apply_method_defaults,
                                         check_ignored_options, resolved_options)
from lightning_latentseek.errors import DEBUG_ENV, UserError, one_line
from lightning_latentseek.solve import RunSpec, quiet_lightning, rank_command, run
from lightning_latentseek.typed import lenient

TRAINER_DEFAULTS = {"max_steps": DEFAULT_MAX_STEPS, "devices": 1, "logger": False, "enable_checkpointing": False,
                    "enable_progress_bar": False, "enable_model_summary": False}
PARSER_KWARGS = {"description": "LatentSeek: test-time latent optimisation of a frozen LLM.",
                 "exit_on_error": False}  # parse errors raise: `main` reports them
# Not settings of the run: how errors are shown, and LightningCLI's global seeding (off: problems are seeded
# from --seed and their id; a value other than false is refused as an option the run ignores)
NOT_SAVED = ("debug", "seed_everything")


class LatentSeekCLI(LightningCLI):
    """LightningCLI without a fixed LightningModule: every problem gets its own module and Trainer."""

    def __init__(self, args: list[str] | None = None):
        self.args = args
        self.lenient = False  # True while `name_rejected_value` builds its parser
        super().__init__(save_config_callback=None, seed_everything_default=False, run=False, args=args,
                         auto_configure_optimizers=False, load_from_checkpoint_support=False,
                         parser_kwargs=dict(PARSER_KWARGS))

    def option_class(self, cls: type) -> type:
        return lenient(cls) if self.lenient else cls

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # LightningCLI's own option, with our help: false (the constructor's seed_everything_default) means that
        # LightningCLI seeds nothing globally (tests/test_ignored.py checks it); another value is refused
        parser.add_argument("--seed_everything", type=Union[bool, int], default=self.seed_everything_default,
                            help="LightningCLI's global seeding: off. Each problem is seeded from --seed and its id; "
                                 "any other value is refused (an option the run would ignore)")
        parser.add_class_arguments(self.option_class(RunOptions))
        parser.add_argument("--debug", action="store_true",
                            help=f"on the command line: show the traceback of user errors (also {DEBUG_ENV}=1)")

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in TRAINER_DEFAULTS.items()})
        parser.add_class_arguments(self.option_class(SeekConfig), "model")
        parser.add_class_arguments(self.option_class(DataConfig), "data")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError:
            self.name_rejected_value(args)  # raises an OptionError when the rejected value is one of ours
            raise

    def name_rejected_value(self, args) -> None:
        """The parser rejected the command line: parse it again with our options accepting any value, and make
        the typed options from it, whose checks name the bad value (``--model.rho abc: expected a float``).
        Returns when that parse fails too or finds nothing wrong with our options."""
        self.lenient = True
        try:
            parser = self.init_parser(**PARSER_KWARGS)
            self.add_default_arguments_to_parser(parser)
            self.add_core_arguments_to_parser(parser)
            try:
                config = parser.parse_args(args)
            except ArgumentError:
                return
        finally:
            self.lenient = False
        RunOptions(**{item.name: config[item.name] for item in fields(RunOptions)})
        SeekConfig(**config.model.as_dict())
        DataConfig(**config.data.as_dict())

    def instantiate_classes(self) -> None:
        """Instantiate configs and callbacks only: Trainers are made per problem by the run."""
        self.config_init = self.parser.instantiate(self.config)

    def run_spec(self) -> RunSpec:
        """The run, once its options are checked: one `RunSpec` with the method's own defaults applied (an option
        the run would ignore is an error)."""
        cfg = self.config_init
        options = RunOptions(**{item.name: cfg[item.name] for item in fields(RunOptions)})
        trainer = dict(vars(cfg.trainer))
        given = command_line_keys(sys.argv[1:] if self.args is None else self.args, set(self.config.keys()))
        model = apply_method_defaults(options.method, cfg.model, given)
        check_ignored_options(resolved_options(options, model, cfg.data, trainer, cfg.seed_everything), given)
        resolved = self.config.clone()
        for key in NOT_SAVED:
            resolved.pop(key, None)
        for item in fields(SeekConfig):  # config.yaml: what runs, the method's own defaults included
            resolved[f"model.{item.name}"] = getattr(model, item.name)
        return RunSpec(model=model, data=cfg.data, trainer=trainer, output_dir=options.output_dir,
                       method=options.method, seed=options.seed, overwrite=options.overwrite,
                       progress=options.progress, config_yaml=self.parser.dump(resolved, skip_unset=False),
                       command=rank_command(self.args))


def command_line_keys(args: list[str], known: set[str]) -> set[str]:
    """The option keys given on the command line (``--model.lr 0.1`` and ``--model.lr=0.1`` give ``model.lr``;
    an abbreviation the parser accepts, ``--model.n_sam``, gives the one key of `known`, the parser's keys, that
    it begins)."""
    keys = set()
    for token in args:
        if not token.startswith("--") or token == "--":
            continue
        key = token[2:].split("=", 1)[0]
        if key not in known:
            matches = [k for k in known if k.startswith(key)]
            key = matches[0] if len(matches) == 1 else key
        keys.add(key)
    return keys


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
    """The one-line message of a user error, or of a parse error (the parser's own words, and a pointer to
    --help)."""
    if isinstance(err, ArgumentError):
        return f"{one_line(str(err))} (see --help)"
    return one_line(str(err)) or type(err).__name__


if __name__ == "__main__":
    main()
