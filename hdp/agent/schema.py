"""Typed, bounded messages: a frozen dataclass whose fields say what values they take.

A field's type is a plain annotation plus bounds, e.g. ``Annotated[int, Range(0, 65535)]``
or ``Annotated[tuple[int, ...], Items(512)]``; `Message.from_json` checks a decoded JSON
object against them and builds the dataclass, or raises `Invalid` naming the field (as
``probes[3].size``) and the limit. Checkers are compiled once per class and build no text
unless they refuse, so a request with thousands of probes costs a few microseconds a
probe. The model is h11's ``_events.py``: the message types validate what they are made
of, so nothing downstream sees an unchecked value.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from hdp.errors import HdpError

M = TypeVar("M", bound="Message")
Check = Callable[[Any], Any]  # a JSON value -> the value to keep; Invalid if it is not one


class Invalid(HdpError, ValueError):
    """A message that does not match its definition; the text names the field and why."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path

    def within(self, segment: str) -> Invalid:
        """The same refusal, one level further out (`segment` is a field or `[index]`)."""
        inner = self.path if not self.path or self.path.startswith("[") else f".{self.path}"
        return Invalid(self.reason, segment + inner)


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


@dataclasses.dataclass(frozen=True)
class _Compiled:
    checks: dict[str, Check]
    required: frozenset[str]
    defaults: dict[str, Any]
    # fields holding messages, tuples or Parsed values: how to_json writes each one
    nested: dict[str, Callable[[Any], Any]]


class Message:
    """Base of the message types: `from_json` validates, `to_json` writes plain JSON."""

    @classmethod
    def from_json(cls: type[M], data: Any) -> M:
        if type(data) is not dict:
            raise Invalid(f"expected an object, got {_json_type(data)}")
        spec = _compiled(cls)
        if unknown := data.keys() - spec.checks.keys():
            raise Invalid(f"unknown field (known: {', '.join(sorted(spec.checks))})",
                          min(unknown)[:40])
        if missing := spec.required - data.keys():
            raise Invalid("missing", min(missing))
        values = dict(spec.defaults)
        checks = spec.checks
        for key, value in data.items():
            try:
                values[key] = checks[key](value)
            except Invalid as exc:
                raise exc.within(key) from None
        # Checked field by field above: skip the frozen dataclass's own __init__, which
        # would set them one by one again (this is the agent's hot path for `send`).
        message = object.__new__(cls)
        message.__dict__.update(values)
        message.validate()
        return message

    def validate(self) -> None:
        """Checks across fields, once each field has passed its own; Invalid if one fails."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; an optional field left at None is omitted, so a peer that predates
        the field (and refuses fields it does not know) still reads the message."""
        spec = _compiled(type(self))
        out = {k: v for k, v in self.__dict__.items()
               if v is not None or k not in spec.defaults or spec.defaults[k] is not None}
        for name, write in spec.nested.items():
            if out.get(name) is not None:
                out[name] = write(out[name])
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


_COMPILED: dict[type, _Compiled] = {}
_BOUNDS: dict[str, dict[str, Any]] = {}  # module -> its namespace when it was defined


def freeze_bounds(module: str, namespace: dict[str, Any]) -> None:
    """Read the bounds of `module`'s messages from `namespace` as it is now.

    A bound names a module constant (``Range(0, MAX_CAPTURE_PACKETS)``). Checks are
    compiled on a class's first use (compiling every class at import costs a start-up
    12 ms), yet each is checked against the bounds the module was defined with, not
    against whatever the constant holds when the first message of that kind comes."""
    _BOUNDS[module] = dict(namespace)


def compile_checks(*classes: type[Message]) -> None:
    """Compile the checks of `classes` (and of the messages they hold) now."""
    for cls in classes:
        _compiled(cls)


def _compiled(cls: type) -> _Compiled:
    spec = _COMPILED.get(cls)
    if spec is None:
        frozen = _BOUNDS.get(cls.__module__)
        # Names defined after the freeze (a later section of the module) come live.
        names = None if frozen is None else {**vars(sys.modules[cls.__module__]), **frozen}
        hints = typing.get_type_hints(cls, globalns=names, include_extras=True)
        fields = dataclasses.fields(cls)
        spec = _Compiled(
            checks={f.name: _checker(hints[f.name]) for f in fields},
            required=frozenset(f.name for f in fields
                               if f.default is dataclasses.MISSING),
            defaults={f.name: f.default for f in fields
                      if f.default is not dataclasses.MISSING},
            nested={f.name: _writer(hints[f.name]) for f in fields
                    if _parsed(hints[f.name]) or _holds_structure(hints[f.name])})
        _COMPILED[cls] = spec
    return spec


def _parsed(hint: Any) -> Parsed | None:
    """The Parsed bound of a field (`Annotated[X, Parsed(..)]`, or that `| None`)."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(o for o in get_args(hint) if o is not type(None))
    if get_origin(hint) is Annotated:
        return next((b for b in get_args(hint)[1:] if isinstance(b, Parsed)), None)
    return None


def _writer(hint: Any) -> Callable[[Any], Any]:
    parsed = _parsed(hint)
    return _plain if parsed is None else parsed.write


def _holds_structure(hint: Any) -> bool:
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, types.UnionType):
        return any(_holds_structure(option) for option in get_args(hint))
    return get_origin(hint) is tuple or (isinstance(hint, type) and issubclass(hint, Message))


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
        return _optional(inner)
    if origin is Literal:
        allowed = get_args(hint)
        return _choice(allowed)
    if origin is tuple:
        return _items(_checker(get_args(hint)[0]), _bound(bounds, Items))
    if isinstance(hint, type) and issubclass(hint, Message):
        _compiled(hint)  # with its holder: its bounds are read at the same time
        return hint.from_json
    if hint is bool:
        return _exact(bool)
    if hint is int:
        return _int(_bound(bounds, Range))
    if hint is float:
        return _float(_bound(bounds, Range))
    if hint is str:
        return _text(_bound(bounds, Text))
    raise TypeError(f"no checker for {hint!r}")


def _optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    inner_many = _MANY.get(inner)
    if inner_many is not None:
        def many(values: list[Any]) -> tuple[Any, ...]:
            inner_many([v for v in values if v is not None])
            return tuple(values)
        _MANY[check] = many
    return check


def _read(parsed: Parsed) -> Check:
    def check(value: Any) -> Any:
        try:
            return parsed.read(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    return check


def _bound(bounds: tuple[Any, ...], kind: type) -> Any:
    for bound in bounds:
        if isinstance(bound, kind):
            return bound
    raise TypeError(f"a field of this type needs a {kind.__name__} bound")


# A check's twin for a whole array at C speed where it has one: the same answer as the
# check of every item (the array as a tuple, or Invalid, whose reason the item checks
# then give). Arrays of thousands of values (a `send`'s columns) cost microseconds.
_MANY: dict[Check, Callable[[list[Any]], tuple[Any, ...]]] = {}
_REFUSED = Invalid("an item is refused")  # _items finds which, with the item's check


def _choice(allowed: tuple[Any, ...]) -> Check:
    def check(value: Any) -> Any:
        # bool is an int in Python: True must not pass for 1.
        if type(value) not in (str, int) or value not in allowed:
            raise Invalid(f"give one of {', '.join(map(str, allowed))}")
        return value

    def many(values: list[Any]) -> tuple[Any, ...]:
        if not set(map(type, values)) <= {str, int} or not set(values) <= set(allowed):
            raise _REFUSED
        return tuple(values)
    _MANY[check] = many
    return check


def _exact(kind: type) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise Invalid(f"expected a {kind.__name__}, got {_json_type(value)}")
        return value

    def many(values: list[Any]) -> tuple[Any, ...]:
        if not set(map(type, values)) <= {kind}:
            raise _REFUSED
        return tuple(values)
    _MANY[check] = many
    return check


def _int(bound: Range) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not int:
            raise Invalid(f"expected an integer, got {_json_type(value)}")
        return _within(value, value, bound)

    def many(values: list[Any]) -> tuple[Any, ...]:
        if values and (not set(map(type, values)) <= {int} or min(values) < bound.low
                       or max(values) > bound.high):
            raise _REFUSED
        return tuple(values)
    _MANY[check] = many
    return check


def _float(bound: Range) -> Check:
    def check(value: Any) -> Any:
        if type(value) not in (int, float):
            raise Invalid(f"expected a number, got {_json_type(value)}")
        number = float(value) if type(value) is float or abs(value) < 1 << 53 else math.inf
        if not math.isfinite(number):
            raise Invalid(f"{_short(value)} is not a finite number")
        return _within(number, value, bound)
    return check


def _within(number: float, value: Any, bound: Range) -> Any:
    if not bound.low <= number <= bound.high:
        raise Invalid(f"{_short(value)} is out of range {bound.low:g}..{bound.high:g}")
    return number


def _text(bound: Text) -> Check:
    limit = bound.max_length
    pattern = re.compile(bound.pattern) if bound.pattern else None

    def check(value: Any) -> Any:
        if type(value) is not str:
            raise Invalid(f"expected a string, got {_json_type(value)}")
        if len(value) > limit:
            raise Invalid(f"a string of {len(value)} characters is over the limit of {limit}")
        if pattern is not None and not pattern.fullmatch(value):
            raise Invalid(f"{value[:60]!r} is not {bound.what or 'allowed here'}")
        return value

    def many(values: list[Any]) -> tuple[Any, ...]:
        if not set(map(type, values)) <= {str}:
            raise _REFUSED
        for text in set(values):  # a column repeats few values: each checked once
            check(text)
        return tuple(values)
    _MANY[check] = many
    return check


def _items(inner: Check, bound: Items) -> Check:
    limit = bound.max_items
    many = _MANY.get(inner)

    def check(value: Any) -> Any:
        if type(value) is not list:
            raise Invalid(f"expected an array, got {_json_type(value)}")
        if len(value) > limit:
            raise Invalid(f"{len(value)} items are over the limit of {limit}")
        try:
            return many(value) if many is not None else tuple(map(inner, value))
        except Invalid:
            for index, item in enumerate(value):  # the refusal path only: say which
                try:
                    inner(item)
                except Invalid as exc:
                    raise exc.within(f"[{index}]") from None
            raise
    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"
