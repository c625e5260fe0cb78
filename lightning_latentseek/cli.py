"""The command line: ``train_free.py`` / ``lightning-latentseek``, built on LightningCLI.

Options: ``--config FILE``, ``--model.*`` (method settings), ``--data.*`` (problems),
``--trainer.*`` (K = ``max_steps``, accelerator, devices, precision, callbacks), and
``--output_dir``, ``--method``, ``--seed``, ``--overwrite``. Tests call ``main([...])``.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_latentseek.config import METHODS, DataConfig, SeekConfig
from lightning_latentseek.solve import RunSpec, quiet_lightning, run

TRAINER_DEFAULTS = {"max_steps": 10, "devices": 1, "logger": False, "enable_checkpointing": False,
                    "enable_progress_bar": False, "enable_model_summary": False}


class LatentSeekCLI(LightningCLI):
    """LightningCLI without a fixed LightningModule: every problem gets its own module and Trainer."""

    def __init__(self, args=None):
        super().__init__(save_config_callback=None, seed_everything_default=False, run=False, args=args,
                         auto_configure_optimizers=False, load_from_checkpoint_support=False,
                         parser_kwargs={"description": "LatentSeek: test-time latent optimisation of a frozen LLM."})

    def _set_seed(self) -> None:
        """No global seed_everything: sampling baselines seed a generator per problem from --seed."""

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--output_dir", type=str, default="runs/latentseek",
                            help="where results.jsonl, summary.json and summary.md are written")
        parser.add_argument("--method", type=str, default="latentseek", choices=list(METHODS),
                            help="latentseek, or a baseline: cot (greedy), bon (Best-of-N), sc (self-consistency)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the sampling baselines (0 is a valid seed)")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="discard results in --output_dir made with another configuration")
        parser.add_argument("--progress", type=bool, default=True, help="show the progress display and final table")

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in TRAINER_DEFAULTS.items()})
        parser.add_class_arguments(SeekConfig, "model")
        parser.add_class_arguments(DataConfig, "data")

    def instantiate_classes(self) -> None:
        """Instantiate configs and callbacks only: Trainers are made per problem by the run."""
        self.config_init = self.parser.instantiate_classes(self.config)

    def run_spec(self) -> RunSpec:
        cfg = self.config_init
        resolved = self.config.clone()
        resolved.pop("seed_everything", None)  # LightningCLI adds it; this CLI seeds with --seed
        return RunSpec(model=cfg.model, data=cfg.data, trainer=dict(vars(cfg.trainer)), output_dir=cfg.output_dir,
                       method=cfg.method, seed=cfg.seed, overwrite=cfg.overwrite, progress=cfg.progress,
                       config_yaml=self.parser.dump(resolved, skip_none=False))


def main(args: list[str] | None = None) -> dict | None:
    """Parse `args` (sys.argv when None), run, and return the summary (None on ranks > 0).

    After Ctrl-C it raises ``SystemExit(130)`` once the finished records and their summary are written.
    """
    quiet_lightning()
    return run(LatentSeekCLI(args=args).run_spec())


if __name__ == "__main__":
    main()
