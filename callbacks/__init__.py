"""Lightning callbacks of lightning-latentseek: stopping at tau, writing records, progress, logging the run."""

from callbacks.problem_callback import ProblemCallback
from callbacks.progress import RichProblemProgress
from callbacks.record_writer import RecordWriter
from callbacks.reward_threshold import RewardThreshold
from callbacks.run_logger import RunLogger

__all__ = ["ProblemCallback", "RecordWriter", "RewardThreshold", "RichProblemProgress", "RunLogger"]
