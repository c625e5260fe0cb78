"""Lightning callbacks of lightning-latentseek: stopping at tau, writing records, progress."""

from callbacks.problem_callback import ProblemCallback
from callbacks.progress import RichProblemProgress
from callbacks.record_writer import RecordWriter
from callbacks.reward_threshold import RewardThreshold

__all__ = ["ProblemCallback", "RecordWriter", "RewardThreshold", "RichProblemProgress"]
