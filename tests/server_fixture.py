"""A real OpenAI-compatible chat-completions server for tests: ``transformers serve`` (``transformers[serving]``) on
127.0.0.1, serving the embedded SmolLM2-135M-Instruct, offline.

`transformers serve` cannot serve the GGUF file itself (its config has no ``architectures``), and a GGUF-loaded
model refuses ``save_pretrained``. So `build_served_dir` loads the GGUF as the project does (dequantised, fp32),
builds a plain ``LlamaForCausalLM`` from its config (without ``quantization_config``, with ``architectures``),
copies the weights in, and saves it with the tokenizer and a generation config that decodes greedily.
`VerifierServer` starts ``transformers serve DIR --host 127.0.0.1 --port PORT`` in a subprocess (its own process
group, ``HF_HUB_OFFLINE=1``, no update check), waits on ``GET /health``, and stops it by its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SERVE = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))


def serving_available() -> bool:
    """Whether ``transformers serve`` can run here (the ``transformers[serving]`` extra is installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn", "openai")) and Path(SERVE).exists()


def build_served_dir(dest: Path, spec: str = "smollm2") -> Path:
    """A transformers model directory with the weights of `spec` (as `load_llm` loads them) that `transformers
    serve` can load; written once (a `dest` that holds a model already is returned as it is)."""
    dest = Path(dest)
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    from transformers import GenerationConfig

    from lightning_latentseek.engine import load_llm

    lm = load_llm(spec)
    values = lm.model.config.to_dict()
    values.pop("quantization_config", None)
    values["architectures"] = [type(lm.model).__name__]
    config = type(lm.model.config).from_dict(values)
    model = type(lm.model)(config)
    model.load_state_dict(lm.model.state_dict(), strict=True)
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id, do_sample=False)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    lm.tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VerifierServer:
    """``transformers serve`` in a subprocess on 127.0.0.1. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, model_dir: Path, port: int | None = None, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.model_dir = str(model_dir)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else Path(self.model_dir).with_name(f"serve-{self.port}.log")
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self.model_dir

    def start(self, timeout: float = 120.0) -> "VerifierServer":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [SERVE, "serve", self.model_dir, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
             "--log-level", "warning", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy(timeout=1.0):
                self.start_seconds = time.perf_counter() - started
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"transformers serve did not answer /health within {timeout:.0f} s:\n{self.log_tail()}")

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def chat(self, messages: list[dict], timeout: float = 120.0, **body) -> dict:
        """POST /v1/chat/completions (greedy: temperature 0) and return the parsed JSON response."""
        payload = {"model": self.model_name, "messages": messages, "temperature": 0, **body}
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """SIGKILL the server (its process group: the server and nothing else), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM by pid (its own process group), SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> "VerifierServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
