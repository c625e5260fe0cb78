"""Lightning callbacks of lightning-latentseek: stopping at tau, writing records, progress, logging the run."""

from lightning_latentseek.callbacks.problem_callback import ProblemCallback
from lightning_latentseek.callbacks.progress import RichProblemProgress
from lightning_latentseek.callbacks.record_writer import RecordWriter
from lightning_latentseek.callbacks.reward_threshold import RewardThreshold
from lightning_latentseek.callbacks.run_logger import RunLogger

__all__ = ["ProblemCallback", "RecordWriter", "RewardThreshold", "RichProblemProgress", "RunLogger"]
