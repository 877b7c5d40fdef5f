"""Typed, bounded messages: a frozen dataclass whose fields say what values they take.

A field's type is a plain annotation plus bounds, e.g. ``Annotated[int, Range(0, 65535)]``
or ``Annotated[tuple[int, ...], Items(512)]``; `Message.from_json` checks a decoded JSON
object against them and builds the dataclass, or raises `Invalid` naming the field and
the limit. Checkers are compiled once per class, so a request with thousands of probes
costs a few microseconds a probe. The model is h11's ``_events.py``: the message types
validate what they are made of, so nothing downstream sees an unchecked value.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from hdp.errors import HdpError

M = TypeVar("M", bound="Message")
Check = Callable[[Any, str], Any]  # (value, field path) -> the value to keep, or Invalid


class Invalid(HdpError, ValueError):
    """A message that does not match its definition; the text names the field and why."""


@dataclasses.dataclass(frozen=True)
class Range:
    """An int or float field's inclusive bounds; floats must also be finite."""

    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Text:
    """A string field's length limit and, optionally, the pattern it must match whole."""

    max_length: int
    pattern: str | None = None
    what: str = ""  # named in the error when the pattern does not match


@dataclasses.dataclass(frozen=True)
class Items:
    """A list field's length limit (it arrives as a JSON array, is kept as a tuple)."""

    max_items: int


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A field of a type defined elsewhere, read from JSON and written back by that type's
    own functions, so that what a valid value is stays defined in one place (the capture
    flow: hdp.flow.Flow.from_request). `read` raises ValueError for a value that is not
    one; `write` gives plain JSON."""

    read: Callable[[Any], Any]
    write: Callable[[Any], Any]


class Message:
    """Base of the request types: `from_json` validates, `to_json` writes plain JSON."""

    _checks: ClassVar[dict[str, tuple[Check, bool]]]

    @classmethod
    def from_json(cls: type[M], data: Any, where: str = "") -> M:
        if not isinstance(data, dict):
            raise Invalid(f"{where or cls.__name__}: expected an object, "
                          f"got {_json_type(data)}")
        checks = _compiled(cls)
        values = {}
        for key, value in data.items():
            entry = checks.get(key)
            if entry is None:
                raise Invalid(f"{where}{_key(key)}: unknown field (known: "
                              f"{', '.join(sorted(checks))})")
            values[key] = entry[0](value, f"{where}{key}")
        for key, (_, required) in checks.items():
            if required and key not in values:
                raise Invalid(f"{where}{key}: missing")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        writers = _writers(type(self))
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            writer = writers.get(item.name)
            out[item.name] = _plain(value) if writer is None or value is None \
                else writer(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _key(key: Any) -> str:
    return key[:40] if isinstance(key, str) else repr(key)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


_COMPILED: dict[type, dict[str, tuple[Check, bool]]] = {}


def _compiled(cls: type) -> dict[str, tuple[Check, bool]]:
    checks = _COMPILED.get(cls)
    if checks is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        checks = {}
        for item in dataclasses.fields(cls):
            required = (item.default is dataclasses.MISSING
                        and item.default_factory is dataclasses.MISSING)
            checks[item.name] = (_checker(hints[item.name]), required)
        _COMPILED[cls] = checks
    return checks


_WRITERS: dict[type, dict[str, Callable[[Any], Any]]] = {}


def _writers(cls: type) -> dict[str, Callable[[Any], Any]]:
    """The `Parsed.write` of each field that has one."""
    writers = _WRITERS.get(cls)
    if writers is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        writers = {}
        for item in dataclasses.fields(cls):
            parsed = _parsed(hints[item.name])
            if parsed is not None:
                writers[item.name] = parsed.write
        _WRITERS[cls] = writers
    return writers


def _parsed(hint: Any) -> Parsed | None:
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(o for o in get_args(hint) if o is not type(None))
    if get_origin(hint) is Annotated:
        return next((b for b in get_args(hint)[1:] if isinstance(b, Parsed)), None)
    return None


def _checker(hint: Any) -> Check:
    """A function checking one JSON value against an annotation (compiled once)."""
    bounds: tuple[Any, ...] = ()
    if get_origin(hint) is Annotated:
        hint, *extra = get_args(hint)
        bounds = tuple(extra)
    parsed = next((b for b in bounds if isinstance(b, Parsed)), None)
    if parsed is not None:
        return _read(parsed)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        # `Annotated[X, bound] | None`: the bounds go with X, inside the union.
        if bounds:
            raise TypeError(f"write Annotated[X, ...] | None, not {hint!r} with bounds")
        inner = _checker(next(o for o in get_args(hint) if o is not type(None)))
        return lambda v, path: None if v is None else inner(v, path)
    if origin is Literal:
        allowed = get_args(hint)
        return _choice(allowed)
    if origin is tuple:
        return _items(_checker(get_args(hint)[0]), _bound(bounds, Items))
    if isinstance(hint, type) and issubclass(hint, Message):
        return lambda v, path: hint.from_json(v, f"{path}.")
    if hint is bool:
        return _exact(bool)
    if hint is int:
        return _int(_bound(bounds, Range))
    if hint is float:
        return _float(_bound(bounds, Range))
    if hint is str:
        return _text(_bound(bounds, Text))
    raise TypeError(f"no checker for {hint!r}")


def _read(parsed: Parsed) -> Check:
    def check(value: Any, path: str) -> Any:
        try:
            return parsed.read(value)
        except ValueError as exc:
            raise Invalid(f"{path}: {exc}") from None
    return check


def _bound(bounds: tuple[Any, ...], kind: type) -> Any:
    for bound in bounds:
        if isinstance(bound, kind):
            return bound
    raise TypeError(f"a field of this type needs a {kind.__name__} bound")


def _choice(allowed: tuple[Any, ...]) -> Check:
    def check(value: Any, path: str) -> Any:
        # bool is an int in Python: True must not pass for 1.
        if type(value) not in (str, int) or value not in allowed:
            raise Invalid(f"{path}: give one of {', '.join(map(str, allowed))}")
        return value
    return check


def _exact(kind: type) -> Check:
    def check(value: Any, path: str) -> Any:
        if type(value) is not kind:
            raise Invalid(f"{path}: expected a {kind.__name__}, got {_json_type(value)}")
        return value
    return check


def _int(bound: Range) -> Check:
    def check(value: Any, path: str) -> Any:
        if type(value) is not int:
            raise Invalid(f"{path}: expected an integer, got {_json_type(value)}")
        return _within(value, value, bound, path)
    return check


def _float(bound: Range) -> Check:
    def check(value: Any, path: str) -> Any:
        if type(value) not in (int, float):
            raise Invalid(f"{path}: expected a number, got {_json_type(value)}")
        number = float(value) if type(value) is float or abs(value) < 1 << 53 else math.inf
        if not math.isfinite(number):
            raise Invalid(f"{path}: {_short(value)} is not a finite number")
        return _within(number, value, bound, path)
    return check


def _within(number: float, value: Any, bound: Range, path: str) -> Any:
    if not bound.low <= number <= bound.high:
        raise Invalid(f"{path}: {_short(value)} is out of range {bound.low:g}..{bound.high:g}")
    return number


def _text(bound: Text) -> Check:
    limit = bound.max_length
    pattern = re.compile(bound.pattern) if bound.pattern else None

    def check(value: Any, path: str) -> Any:
        if type(value) is not str:
            raise Invalid(f"{path}: expected a string, got {_json_type(value)}")
        if len(value) > limit:
            raise Invalid(f"{path}: a string of {len(value)} characters is over the "
                          f"limit of {limit}")
        if pattern is not None and not pattern.fullmatch(value):
            raise Invalid(f"{path}: {value[:60]!r} is not {bound.what or 'allowed here'}")
        return value
    return check


def _items(inner: Check, bound: Items) -> Check:
    limit = bound.max_items

    def check(value: Any, path: str) -> Any:
        if type(value) is not list:
            raise Invalid(f"{path}: expected an array, got {_json_type(value)}")
        if len(value) > limit:
            raise Invalid(f"{path}: {len(value)} items are over the limit of {limit}")
        return tuple(inner(item, f"{path}[{i}]") for i, item in enumerate(value))
    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"
