"""User errors, and the one line that reports them.

The command line (``cli.main``) prints a :class:`UserError` or a command-line parse error as one line
``error: <message>`` and exits with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

DEBUG_ENV = "LATENTSEEK_DEBUG"  # LATENTSEEK_DEBUG=1: tracebacks for user errors too (like --debug)


class UserError(Exception):
    """Something the user gave the run is wrong, and the message says what and where.

    User errors are bad input, not bugs: a malformed data row or a missing field (file, line, field),
    a data file, model or hub dataset that cannot be found or loaded, an option value outside its
    range (``--model.rho 2``), an option the run would ignore (``--data.path`` with ``--data.name arith``),
    an unknown reward, or ``--output_dir`` holding results of another configuration. Subclasses keep their other bases (``ValueError``, ``RuntimeError``) so callers
    catching those still work. The message is one line, without the ``error:`` prefix.
    """


def one_line(text: object, limit: int | None = None) -> str:
    """``str(text)`` with its lines stripped and joined by ``"; "`` (empty lines dropped), cut to
    ``limit`` characters with ``...`` when longer."""
    joined = "; ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return joined if limit is None or len(joined) <= limit else joined[: limit - 3].rstrip() + "..."
