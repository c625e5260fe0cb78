"""Tiny random LLMs built in-process (no downloads): a byte-level tokenizer with a ChatML
template and a random Llama or Qwen2 causal LM of a few thousand parameters."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lightning_latentseek.callbacks import ProblemCallback

from lightning_latentseek.engine import FrozenLM
from lightning_latentseek.engine.attention import GQA_SDPA

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def tiny_tokenizer():
    """Byte-level BPE without merges: every byte is a token, plus three ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(arch: str = "llama", seed: int = 0, vocab_size: int = 259, hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=256, eos_token_id=257, pad_token_id=258, attn_implementation=GQA_SDPA,
                  initializer_range=0.3)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False))
    raise ValueError(arch)


def tiny_llm(arch: str = "llama", seed: int = 0, **kwargs) -> FrozenLM:
    return FrozenLM(tiny_model(arch, seed, **kwargs), tiny_tokenizer(), name=f"tiny-{arch}")


def save_tiny_model(path: Path, arch: str = "llama", seed: int = 0) -> Path:
    """A tiny model directory usable as ``--model.llm DIR``."""
    tiny_model(arch, seed).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


class LengthReward:
    """A plug-in reward for CLI tests (``--model.reward tiny.LengthReward``): longer answers score higher."""

    def __init__(self, scale: float = 100.0):
        self.scale = scale

    def __call__(self, problem, answer):
        from lightning_latentseek.rewards import RewardResult

        return RewardResult(-max(0.0, 1.0 - len(answer) / self.scale), {"length": len(answer)})


class ExplodingReward(LengthReward):
    """Fails on the problem whose id is ``boom`` (a crash in the middle of a run)."""

    def __call__(self, problem, answer):
        if problem.id == "boom":
            raise RuntimeError("reward exploded")
        return super().__call__(problem, answer)


def write_problems(path: Path, n: int) -> Path:
    """A JSONL file of n problems q0..q{n-1} ("What is i + 1?")."""
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(n)))
    return path


def cli_args(model, data, out, *extra) -> list[str]:
    """A fast command line on a tiny model directory: PSRM, 8-token answers, K=2, CPU, no progress display."""
    return ["--model.llm", model, "--model.reward", "psrm", "--model.max_new_tokens", "8", "--model.rho", "0.5",
            "--data.path", str(data), "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
            "--output_dir", str(out), "--progress", "false", *extra]


def user_error(capsys, args: list[str]) -> str:
    """Run ``main(args)`` expecting a user error: exit status 2 and exactly one non-empty stderr line
    ``error: ...`` without a traceback; returns that line."""
    import pytest

    from lightning_latentseek.cli import main

    capsys.readouterr()  # drop what earlier runs printed
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert stop.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


class TextReward:
    """A reward that depends only on the problem and the answer text (so it is the same whatever the batch):
    R in {0, -0.25, -0.5, -0.75, -1} from a hash; R = 0 clears tau, so problems stop at different iterations."""

    def __call__(self, problem, answer):
        import hashlib

        from lightning_latentseek.rewards import RewardResult

        digest = hashlib.sha256(f"{problem.id}|{answer}".encode()).digest()
        return RewardResult(-(digest[0] % 5) / 4)


class ScheduleReward:
    """R = 0 from iteration `stop_at[problem.id]` on (counted per problem), else -1; never stops if absent."""

    def __init__(self, stop_at: dict):
        self.stop_at, self.calls = dict(stop_at), {}

    def __call__(self, problem, answer):
        from lightning_latentseek.rewards import RewardResult

        n = self.calls.get(problem.id, 0)
        self.calls[problem.id] = n + 1
        stop = self.stop_at.get(problem.id)
        return RewardResult(0.0 if stop is not None and n >= stop else -1.0)


class GateReward:
    """R = -1 (no problem stops before K); for the problems in `hold`, every call first waits until the file
    `gate` exists: a test keeps such a problem in flight until a point of its choosing."""

    def __init__(self, gate: str, hold: list):
        self.gate, self.hold = gate, set(hold)

    def __call__(self, problem, answer):
        import os
        import time

        from lightning_latentseek.rewards import RewardResult

        deadline = time.monotonic() + 300
        while problem.id in self.hold and not os.path.exists(self.gate):
            assert time.monotonic() < deadline, f"{self.gate} never appeared"
            time.sleep(0.01)
        return RewardResult(-1.0)


class EventRecorder(ProblemCallback):
    """A problem callback (``trainer.callbacks``) appending "start <id>" / "end <id> <iterations>" lines to a file."""

    def __init__(self, path: str):
        self.path = path

    def on_problem_start(self, problem):
        with open(self.path, "a") as f:
            f.write(f"start {problem.id}\n")

    def on_problem_end(self, problem, record):
        with open(self.path, "a") as f:
            f.write(f"end {problem.id} {record['iterations']}\n")


class HoldAfterFirstRecord(ProblemCallback):
    """A problem callback (``trainer.callbacks``, after the run's RecordWriter) that, once the first record is
    written, writes `path` (JSON: the problem that ended and those started and not ended) and then holds the
    run's main thread until the process is killed: no other record is written, the problems in flight stay so."""

    def __init__(self, path: str):
        self.path, self.started = path, []

    def on_problem_start(self, problem):
        self.started.append(problem.id)

    def on_problem_end(self, problem, record):
        import json
        import os
        import threading

        in_flight = [i for i in self.started if i != problem.id]
        with open(self.path + ".tmp", "w") as f:
            json.dump({"ended": problem.id, "in_flight": in_flight}, f)
        os.replace(self.path + ".tmp", self.path)
        threading.Event().wait()


class KillServerAfterFirstRecord(ProblemCallback):
    """A problem callback (``trainer.callbacks``) that SIGKILLs the verifier server (its process group `pid`) once the
    first record is written, and waits until its `port` refuses connections: the problems after it meet a dead
    server."""

    def __init__(self, pid: int, port: int):
        self.pid, self.port, self.done = pid, port, False

    def on_problem_end(self, problem, record):
        import os
        import signal
        import socket
        import time

        if self.done:
            return
        self.done = True
        os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.1)
        raise AssertionError(f"the server on port {self.port} still accepts connections")


class UnavailableReward(LengthReward):
    """Fails like a dead verifier server (`RewardUnavailable`) for the problem `fail_id` from its `after`-th call on,
    while the file `gate` does not exist (a resume creates it: the server is back)."""

    def __init__(self, fail_id: str, gate: str, after: int = 1):
        super().__init__()
        self.fail_id, self.gate, self.after, self.calls = fail_id, gate, after, 0

    def __call__(self, problem, answer):
        import os

        from lightning_latentseek.rewards import RewardUnavailable

        if problem.id == self.fail_id and not os.path.exists(self.gate):
            self.calls += 1
            if self.calls > self.after:
                raise RewardUnavailable("the verifier server failed 4 times: ConnectionRefusedError")
        return super().__call__(problem, answer)
