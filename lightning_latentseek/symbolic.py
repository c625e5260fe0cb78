"""Symbolic answer checks (math-verify, sympy) in worker processes, each judgement bounded in time.

math-verify's own timeouts use ``signal.alarm``: they work only on a process's main thread, and not
even there while sympy is inside one long C operation (``9^{9^{9^{9}}}`` builds a huge integer). The
run grades in its problem threads (PSRM, records), so a pathological MATH answer could hang its
problem without bound. Here every symbolic check runs in a worker process (``python -m
lightning_latentseek.symbolic``), on the worker's main thread, so math-verify's timeouts work as in
the original code; a check that has not answered after `TIMEOUT` seconds is abandoned, its worker
killed, and the answer counts as not equal. Workers start on first use (about a second: sympy and
math-verify load), are reused, one per caller running at the same time, and end with this process.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

TIMEOUT = 10.0  # seconds one symbolic judgement may take (a worker's start is not counted)
START_TIMEOUT = 300.0  # seconds a worker may take to start (imports on a loaded machine)
READY = "ready"


def _checks():
    """The checks a worker runs, by name: (pred, truth) -> bool."""
    from lightning_latentseek.grading import math_verify_equal
    from lightning_latentseek.paper_grading import math_symbolic_checks

    return {"paper": math_symbolic_checks, "math_verify": math_verify_equal}


class WorkerFailed(RuntimeError):
    """A worker died or did not answer in time."""


class WorkerStartError(RuntimeError):
    """No worker could be started: the environment is broken (a bug, not an answer that counts as wrong)."""


class _Worker:
    def __init__(self):
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, "-m", "lightning_latentseek.symbolic"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env,
                                     start_new_session=True)  # Ctrl-C goes to the run, which ends its workers
        try:
            self._read(START_TIMEOUT)
        except WorkerFailed as err:
            raise WorkerStartError(f"the symbolic checks' worker did not start ({err}); run "
                                   f"`{sys.executable} -m lightning_latentseek.symbolic` to see why") from None

    def _read(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise WorkerFailed("timed out" if not ready else "died")
        return line

    def ask(self, check: str, pred: str, truth: str, timeout: float) -> bool:
        self.proc.stdin.write(json.dumps([check, pred, truth]) + "\n")
        self.proc.stdin.flush()
        return bool(json.loads(self._read(timeout)))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the worker ends at end of input
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


_idle: list[_Worker] = []
_all: set[_Worker] = set()
_lock = threading.Lock()


def check(name: str, pred: str, truth: str) -> bool:
    """Run the symbolic check `name` (``paper``: math-verify then Qwen's math_equal; ``math_verify``) on a
    worker. False when it raises, or has not answered after `TIMEOUT` seconds (its worker is killed);
    `WorkerStartError` when no worker can be started."""
    with _lock:
        worker = _idle.pop() if _idle else None
    try:
        if worker is None or worker.proc.poll() is not None:
            worker = _Worker()
            with _lock:
                _all.add(worker)
        result = worker.ask(name, pred, truth, TIMEOUT)
    except (WorkerFailed, OSError, ValueError):
        if worker is not None:
            worker.kill()
            with _lock:
                _all.discard(worker)
        return False
    with _lock:
        _idle.append(worker)
    return result


@atexit.register
def close_workers() -> None:
    with _lock:
        workers = list(_all)
        _all.clear()
        _idle.clear()
    for worker in workers:
        worker.close()


def _serve() -> None:
    """The worker: one JSON line ``[check, pred, truth]`` in, one JSON line ``true``/``false`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever the libraries print goes to stderr
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    checks = _checks()
    reply.write(json.dumps(READY) + "\n")
    reply.flush()
    for line in sys.stdin:
        name, pred, truth = json.loads(line)
        try:
            result = bool(checks[name](pred, truth))
        except Exception:  # noqa: BLE001 -- sympy/math-verify can raise on odd input: not equal
            result = False
        except BaseException as err:  # math-verify's TimeoutException escapes some paths
            if isinstance(err, (SystemExit, KeyboardInterrupt)):
                raise
            result = False
        reply.write(json.dumps(result) + "\n")
        reply.flush()


if __name__ == "__main__":
    _serve()
