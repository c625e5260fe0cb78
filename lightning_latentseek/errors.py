"""User errors, and the one line that reports them.

The command line (``cli.main``) prints a :class:`UserError` or a command-line parse error as one line
``error: <message>`` and exits with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

DEBUG_ENV = "LATENTSEEK_DEBUG"  # LATENTSEEK_DEBUG=1: tracebacks for user errors too (like --debug)


class UserError(Exception):
    """Something the user gave the run is wrong, and the message says what and where.

    User errors are bad input, not bugs: a malformed data row or a missing field (file, line, field),
    a data file, model or hub dataset that cannot be found or loaded, an option value outside its
    range (``--model.rho 2``), an unknown reward, or ``--output_dir`` holding results of another
    configuration. Subclasses keep their other bases (``ValueError``, ``RuntimeError``) so callers
    catching those still work. The message is one line, without the ``error:`` prefix.
    """


_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)', re.DOTALL)
_EXPECTED = re.compile(r"Expected a (.+?)\. Got value: (.*)", re.DOTALL)
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def one_line(text: object, limit: int | None = None) -> str:
    """``str(text)`` with its lines stripped and joined by ``"; "`` (empty lines dropped), cut to
    ``limit`` characters with ``...`` when longer."""
    joined = "; ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return joined if limit is None or len(joined) <= limit else joined[: limit - 3].rstrip() + "..."


def _type_names(text: str) -> str:
    """``<class 'float'>`` -> ``float``, ``NoneType`` -> ``null``, ``typing.Literal`` -> ``one of``."""
    text = _CLASS.sub(lambda m: "null" if m.group(1) == "NoneType" else m.group(1), text)
    return text.replace("typing.Literal", "one of ")


def parse_error_message(message: str) -> str:
    """One line for a jsonargparse parse error, naming the option as it is typed.

    ``Parser key "model.rho":\\n  Expected a <class 'float'>. Got value: abc`` becomes
    ``--model.rho abc: expected a float``; a value matching none of a Union's types becomes
    ``--data.limit x: expected int or null``; other messages are joined into one line.
    """
    found = _PARSER_KEY.fullmatch(message.strip())
    if found is None:
        text = one_line(message)
        return f"{text} (see --help)" if text.startswith("unrecognized arguments") else text
    key, body = found.groups()
    expected = _EXPECTED.fullmatch(body.strip())
    if expected is not None:
        return f"--{key} {expected.group(2).strip()}: expected a {_type_names(expected.group(1))}"
    given = re.search(r"Given value: (.*)$", body)
    subtypes = re.search(r"Subtypes: \[(.*)\]", body)
    if given is not None and subtypes is not None:
        kinds = [_type_names(kind.strip()) for kind in re.split(r",\s*(?![^\[]*\])", subtypes.group(1))]
        return f"--{key} {given.group(1).strip()}: expected {' or '.join(kinds)}"
    return f"--{key}: {one_line(body)}"
