"""Verifier prompts answered by an OpenAI-compatible chat-completions server (`--model.reward_server URL`): vLLM,
SGLang, ``transformers serve``... This puts the verifier on other GPUs or another node, as GradCuit runs its own
(a vLLM server, `src/rewards/single_verifier_reward.py:121-131`).

Every request is one conversation, ``temperature: 0`` (greedy) and ``max_tokens`` the verifier's cap. Requests of
all problems in flight go out concurrently, at most `concurrency` at once (one pool for the whole run). A request
that fails (connection refused or reset, a timeout, a 5xx or 429 answer) is retried `RETRIES` times with
exponential backoff; then `RewardUnavailable` ends that problem (stop_reason ``reward_unavailable``; a resume
solves it again), and the run goes on. A server that cannot be reached when the run starts is a user error
(`ChatServer.connect`). Plain ``urllib``: no client library is needed.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from lightning_latentseek.errors import UserError, one_line
from lightning_latentseek.rewards.base import RewardUnavailable

RETRIES = 3  # after the first try: 4 tries in all
BACKOFF = 0.5  # seconds before the first retry, doubled before each next one (0.5, 1, 2)
CONNECT_TIMEOUT = 10.0  # seconds for the start-up check's model list


class ServerUnreachable(UserError, ConnectionError):
    """`--model.reward_server` cannot be reached (or does not answer a chat completion) when the run starts."""


class _Retryable(Exception):
    """A failure worth another try (the server may come back)."""


@dataclass
class Reply:
    """A verifier's response: its text and how many tokens it generated (the server's count); `ids`, the token ids
    (the in-process engine's replies only)."""

    text: str
    tokens: int
    ids: tuple[int, ...] | None = None


class ChatServer:
    """A client of ``{url}/chat/completions`` shared by every problem of the run.

    Args:
        url: the API's base URL, as OpenAI clients take it (``http://127.0.0.1:8000/v1``).
        model: the model name sent with each request (None: the first one ``{url}/models`` lists; `connect`).
        timeout: seconds to wait for one response.
        concurrency: requests in flight at most (all problems together).
    """

    def __init__(self, url: str, model: str | None = None, timeout: float = 300.0, concurrency: int = 16):
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = float(timeout)
        self._pool = ThreadPoolExecutor(max_workers=int(concurrency), thread_name_prefix="reward-server")
        self.requests = 0  # sent, retries included
        self.failures = 0  # tries that failed

    @classmethod
    def connect(cls, url: str, model: str | None = None, timeout: float = 300.0,
                concurrency: int = 16) -> "ChatServer":
        """A client after a start-up check: the model list answers (and names the model when `model` is None) and a
        one-token chat completion comes back. `ServerUnreachable` (one line) otherwise."""
        server = cls(url, model, timeout, concurrency)
        option = f"--model.reward_server {server.url}"
        try:
            listing = server._request("GET", "/models", None, min(CONNECT_TIMEOUT, server.timeout))
        except (_Retryable, RewardUnavailable) as err:
            server.close()
            raise ServerUnreachable(f"{option}: cannot reach the server ({one_line(err)}); start it, or fix the URL "
                                    f"(OpenAI clients' base URL, e.g. http://127.0.0.1:8000/v1)") from None
        names = [str(item.get("id")) for item in (listing.get("data") or []) if isinstance(item, dict)]
        if server.model is None:
            if not names:
                server.close()
                raise ServerUnreachable(f"{option}: the server lists no model at {server.url}/models; name it with "
                                        f"--model.reward_server_model")
            server.model = names[0]
        try:
            server._request("POST", "/chat/completions", server._body([{"role": "user", "content": "Hi"}], 1),
                            server.timeout)
        except (_Retryable, RewardUnavailable) as err:
            server.close()
            raise ServerUnreachable(f"{option}: no chat completion from model {server.model!r} ({one_line(err)}); "
                                    f"the server lists: {', '.join(names) or 'nothing'}") from None
        return server

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def answer(self, conversations: Sequence[list[dict]], max_new_tokens: int, samplers: Sequence | None = None,
               stop=None) -> list[Reply]:
        """The `rewards.verifier.Verifier` interface: greedy replies to the cap. A server takes no per-row samplers
        (the run refuses --model.verifier_sampling with a server) and no stop rule (it decodes to EOS or the cap)."""
        if samplers is not None and any(s is not None for s in samplers):
            raise ValueError("a verifier server decodes greedily: it takes no samplers")
        return self.complete_many(conversations, max_new_tokens)

    def complete_many(self, conversations: Sequence[list[dict]], max_tokens: int) -> list[Reply]:
        """Every conversation's greedy reply (at most `max_tokens` new tokens), requested concurrently."""
        futures = [self._pool.submit(self.complete, messages, max_tokens) for messages in conversations]
        return [future.result() for future in futures]

    def complete(self, messages: list[dict], max_tokens: int) -> Reply:
        """One greedy reply, with retries; `RewardUnavailable` once they are spent."""
        error: Exception | None = None
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                return self._reply(self._request("POST", "/chat/completions", self._body(messages, max_tokens),
                                                 self.timeout))
            except _Retryable as err:
                error = err
        raise RewardUnavailable(f"the verifier server {self.url} failed {RETRIES + 1} times: {one_line(error)}")

    def _body(self, messages: list[dict], max_tokens: int) -> dict:
        return {"model": self.model, "messages": list(messages), "temperature": 0, "max_tokens": int(max_tokens)}

    @staticmethod
    def _reply(response: dict) -> Reply:
        try:
            choice = response["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _Retryable(f"a response without choices: {one_line(json.dumps(response), 200)}") from None
        if isinstance(content, list):  # content parts
            content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
        usage = response.get("usage") or {}
        return Reply("" if content is None else str(content), int(usage.get("completion_tokens") or 0))

    def _request(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        """One HTTP request; `_Retryable` for failures that may pass, `RewardUnavailable` for a refusal (4xx)."""
        self.requests += 1
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer EMPTY"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            self.failures += 1
            detail = one_line(err.read().decode("utf-8", "replace"), 300)
            if err.code >= 500 or err.code == 429:
                raise _Retryable(f"HTTP {err.code} {detail}") from None
            raise RewardUnavailable(f"the verifier server {self.url} refused the request: HTTP {err.code} {detail}") \
                from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError,
                json.JSONDecodeError, OSError) as err:
            self.failures += 1
            raise _Retryable(f"{type(err).__name__}: {err}") from None
