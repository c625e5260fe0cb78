"""Choices and ranges as types, and the one function that checks a value against its type.

A choice is ``Literal[...]``; a range is ``Annotated[float, Range(gt=0, le=1)]``. The command line's parser
(jsonargparse) reads these annotations: it checks a value's base type and a ``Literal``'s choices, and shows
both in ``--help``; `Range` is our own metadata, which it leaves to `check_value`. Every user-facing message
about a bad value comes from `check_value`, naming the option as it is typed (``--model.rho 2.0: must be in
(0, 1]``), never from the wording of the parser's messages: the command line runs a value the parser rejected
through `check_value` to name it (`cli.LatentSeekCLI.parse_arguments`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from lightning_latentseek.errors import UserError

NoneType = type(None)


class OptionError(UserError, ValueError):
    """An option's value outside its type: its range, its choices or its base type (``--model.rho 2``)."""


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``Annotated[float, Range(gt=0, le=1)]``. `reason` replaces "must be in ..." in
    the error message (``tau``: "rewards lie in [-1, 0]")."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    reason: str | None = None

    def __contains__(self, value) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __repr__(self) -> str:  # what --help shows: Annotated[float, (0, 1]]
        low, high = (self.ge, "[") if self.ge is not None else (self.gt, "("), (self.le, "]") if self.le is not None \
            else (self.lt, ")")
        if low[0] is not None and high[0] is not None:
            return f"{low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
        if low[0] is not None:
            return f"{'>=' if low[1] == '[' else '>'} {_number(low[0])}"
        return f"{'<=' if high[1] == ']' else '<'} {_number(high[0])}"

    def requirement(self) -> str:
        text = repr(self)
        return self.reason or (f"must be in {text}" if text[0] in "[(" else f"must be {text}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def choices_text(choices) -> str:
    """``adam or sgd``; ``one of a, b, c``."""
    names = [str(c) for c in choices]
    return " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)


_NAMES = {bool: "bool", int: "int", float: "float", str: "string", dict: "mapping", list: "list", NoneType: "null"}
_ARTICLES = {bool: "true or false", int: "an int", float: "a float", str: "a string", dict: "a mapping",
             list: "a list"}


class _Mismatch(Exception):
    """A value of the wrong base type (the message is built by the caller, which knows the whole type)."""


def check_value(option: str, value: Any, hint: Any) -> Any:
    """`value` checked against the type `hint` (and converted where lossless: an int to a float).

    Understood: ``Literal``, ``Annotated[..., Range]``, ``X | None`` and other unions, bool, int, float, str,
    dict and list; any other type is accepted as it is. Raises `OptionError` naming `option`.
    """
    try:
        return _check(option, value, hint)
    except _Mismatch:
        raise OptionError(f"{option} {_shown(value)}: expected {_expected(hint)}") from None


def _check(option: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        value = _check(option, value, base)
        for meta in metadata:
            if isinstance(meta, Range) and value not in meta:
                raise OptionError(f"{option} {_shown(value)}: {meta.requirement()}")
        return value
    if origin is Literal:
        choices = typing.get_args(hint)
        if not any(value == choice and type(value) is type(choice) for choice in choices):
            raise OptionError(f"{option} {value!r}: choose {choices_text(choices)}")
        return value
    if origin is Union or type(hint).__name__ == "UnionType":
        arms = typing.get_args(hint)
        if value is None and NoneType in arms:
            return None
        typed = [arm for arm in arms if arm is not NoneType]
        for arm in typed:
            try:
                return _check(option, value, arm)
            except _Mismatch:
                continue
            except OptionError:
                if len(typed) == 1:
                    raise  # the one type matched, its range or choices did not: say which
        raise _Mismatch
    base = origin or hint
    if not isinstance(base, type):  # Any, a TypeVar, a forward reference: not checked
        return value
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if base in (bool, str, dict, list):
        if isinstance(value, base):
            return value
        raise _Mismatch
    return value


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _expected(typing.get_args(hint)[0])
    if origin is Union or type(hint).__name__ == "UnionType":
        names = [_NAMES.get(typing.get_origin(_strip(a)) or _strip(a), str(a)) for a in typing.get_args(hint)]
        return " or ".join(names)
    base = origin or hint
    return _ARTICLES.get(base, getattr(base, "__name__", str(base)))


def _strip(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and (not value or value != value.strip()) else str(value)


@functools.lru_cache(maxsize=None)
def type_hints(owner) -> dict[str, Any]:
    """The resolved annotations (with their `Annotated` metadata) of a class or function; {} if unresolvable."""
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except Exception:  # noqa: BLE001 -- a user's class may annotate with names we cannot resolve: no checks then
        return {}


def check_fields(config: Any, prefix: str) -> None:
    """Check (and convert in place) every field of the dataclass instance `config` against its annotation;
    `prefix` names the option group as typed (``--model.``)."""
    hints = type_hints(type(config))
    for item in dataclasses.fields(config):
        if item.name in hints:
            setattr(config, item.name, check_value(f"{prefix}{item.name}", getattr(config, item.name),
                                                   hints[item.name]))


def check_arguments(callable_: Any, arguments: dict, prefix: str) -> dict:
    """`arguments` for `callable_` (a class: its ``__init__``) checked against its annotations; those without an
    annotation pass as they are."""
    hints = type_hints(callable_.__init__ if isinstance(callable_, type) else callable_)
    return {name: check_value(f"{prefix}{name}", value, hints[name]) if name in hints else value
            for name, value in arguments.items()}


def lenient(cls: type) -> type:
    """`cls` (a dataclass) as a parser that checks nothing sees it: the same fields, defaults and help, each
    field that the parser would type-check accepting any value (strings stay ``str``). The command line
    parses a rejected command line again with it, and `cls(**values)` then names the bad value."""
    hints = type_hints(cls)
    fields = []
    for item in dataclasses.fields(cls):
        hint = hints.get(item.name, Any)
        keep = hint in (str, dict, str | None) or _strip(hint) in (str, dict)
        default = {"default": item.default} if item.default is not dataclasses.MISSING else \
            {"default_factory": item.default_factory}
        fields.append((item.name, hint if keep else Any, dataclasses.field(**default)))
    view = dataclasses.make_dataclass(cls.__name__, fields)
    view.__doc__ = cls.__doc__
    return view
