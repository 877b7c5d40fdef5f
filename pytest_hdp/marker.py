"""`@pytest.mark.hdp(...)`: which cases a test gets, and how they are probed.

The marker's keys are the fields of `HdpMark`, one line each: the name, the type, the
parser that validates a value, and the help (`pytest --markers` and the README show it).
A key that is not a field is a usage error naming the closest one; a value a parser
refuses is a usage error naming the key and what it takes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import Field, dataclass, field, fields
from typing import TypeVar

import pytest

from hdp.errors import UsageError
from hdp.selection import parse_protocols
from pytest_hdp.settings import HdpUsageError, listener_problem

T = TypeVar("T")
PAYLOADS = ("hdp", "udp", "raw")
MAX_DATA = 65000  # the data after the headers and tag of one probe
MAX_COUNT = 1 << 16  # probes of a case: the probe tag numbers them in 16 bits
MAX_RATE = 100_000.0
# Probe knobs a stream of probes does not take (each probe is as `size` makes it).
_NOT_WITH_COUNT = ("data", "dscp", "ecn", "df", "ttl")
MARKER = "hdp"
CHECK_MARKER = "hdp_check"


# -- value parsers: each takes what the user wrote, returns the value or raises ValueError --

def _protocols(value: object) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple | set | frozenset | range) else [value]
    numbers: dict[int, None] = {}
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError("give a number, a 'SPEC' such as '250-255' or '1,6,17', or a "
                             f"list of them, not {item!r}")
        try:
            numbers.update(dict.fromkeys(parse_protocols(str(item))))
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return tuple(numbers)


def _families(value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else \
        value if isinstance(value, list | tuple | set | frozenset) else [value]
    found: dict[int, None] = {}
    for item in items:
        text = str(item).strip().lower().removeprefix("ipv")
        if isinstance(item, bool) or text not in ("4", "6"):
            raise ValueError(f"give 4, 6 or [4, 6], not {value!r}")
        found[int(text)] = None
    return tuple(found)


def _payloads(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else \
        value if isinstance(value, list | tuple | set | frozenset) else [value]
    kinds = tuple(dict.fromkeys(str(item).strip() for item in items))
    for kind in kinds:
        if kind not in PAYLOADS:
            raise ValueError(f"unknown payload {kind!r}: give {', '.join(PAYLOADS)} or a "
                             "list; put bytes of your own in data=")
    return kinds


def _names(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset) or \
            not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"give a name or a list of names, not {value!r}")
    return tuple(items)


def _int_in(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"give a whole number {low}..{high}, not {value!r}")
        return value

    return parse


def _data(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ValueError(f"give bytes, e.g. b'hello', not {type(value).__name__}")
    if len(value) > MAX_DATA:
        raise ValueError(f"at most {MAX_DATA} bytes, not {len(value)}")
    return bytes(value)


def _df(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"give True (set DF) or False (clear it), not {value!r}")
    return value


def _listener(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"give 'auto', 'none' or an agent such as 'child', not {value!r}")
    problem = listener_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or not 1 <= value <= MAX_RATE:
        raise ValueError(f"give probes a second, 1..{MAX_RATE:g}, not {value!r}")
    return float(value)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or not 0 < value <= 3600:
        raise ValueError(f"give seconds, 0 < s <= 3600, not {value!r}")
    return float(value)


def key(parse: Callable[[object], T], help: str) -> T | None:
    """A marker key: `parse` validates what the user wrote, `help` says what it takes."""
    return field(default=None, metadata={"parse": parse, "help": help})


@dataclass(frozen=True)
class HdpMark:
    """A test's `@pytest.mark.hdp(...)`, validated. None: the session's choice."""

    protocols: tuple[int, ...] | None = key(
        _protocols, "protocol numbers: 253, '250-255', '1,6,17' or [1, 6, 17]")
    families: tuple[int, ...] | None = key(_families, "address families: 4, 6 or [4, 6]")
    payloads: tuple[str, ...] | None = key(
        _payloads, "what follows the IP header: 'hdp', 'udp', 'raw' or a list")
    targets: tuple[str, ...] | None = key(
        _names, "only these of the session's targets: '127.0.0.1', 'routed/server', ...")
    paths: tuple[str, ...] | None = key(
        _names, "only targets on these paths: 'loopback', 'network', 'netns' or a lab name")
    data: bytes | None = key(_data, "the probe's own bytes after its headers and tag")
    size: int | None = key(_int_in(0, MAX_DATA),
                           "bytes of filler after the headers and tag (default 64)")
    dscp: int | None = key(_int_in(0, 63), "the DSCP the probe is marked with, 0..63")
    ecn: int | None = key(_int_in(0, 3), "the ECN bits the probe is marked with, 0..3")
    df: bool | None = key(_df, "don't-fragment: True sets it, False clears it")
    ttl: int | None = key(_int_in(1, 255), "the TTL / hop limit the probe leaves with")
    listener: str | None = key(_listener, "who listens at the target, as --hdp-listener")
    timeout: float | None = key(_seconds, "seconds to wait for late evidence, as "
                                          "--hdp-timeout")
    count: int | None = key(_int_in(1, MAX_COUNT),
                            "probes of each case, paced (hdp_result.stats: their loss, "
                            "reordering and latency); absent: one probe")
    rate: float | None = key(_rate, "probes a second of a case with count= (default 1000)")

    @classmethod
    def parse(cls, mark: pytest.Mark | None, where: str) -> HdpMark:
        """The marker of the test at `where` (a node id); HdpUsageError names what is wrong."""
        if mark is None:
            return cls()
        if mark.args:
            raise HdpUsageError(f"{where}: @pytest.mark.hdp takes keywords only, e.g. "
                            "@pytest.mark.hdp(protocols=253)")
        known = {f.name: f for f in fields(cls)}
        parsed: dict[str, object] = {}
        for name, value in mark.kwargs.items():
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else \
                    f"give one of {', '.join(known)}"
                raise HdpUsageError(f"{where}: @pytest.mark.hdp has no key {name!r}: {hint}")
            try:
                parsed[name] = known[name].metadata["parse"](value)
            except ValueError as exc:
                raise HdpUsageError(f"{where}: @pytest.mark.hdp({name}=...): {exc}") from None
        # Each value is what its own field's parser returned: of the field's type.
        found = cls(**parsed)  # type: ignore[arg-type]
        if found.data is not None and found.size is not None and found.size != len(found.data):
            raise HdpUsageError(f"{where}: @pytest.mark.hdp: size={found.size} but data= is "
                            f"{len(found.data)} bytes: give one of them")
        if found.rate is not None and found.count is None:
            raise HdpUsageError(f"{where}: @pytest.mark.hdp: rate= paces the probes of "
                                "count=: give count= too")
        knobs = [name for name in _NOT_WITH_COUNT if getattr(found, name) is not None]
        if found.count is not None and knobs:
            raise HdpUsageError(f"{where}: @pytest.mark.hdp: count= sends probes of `size` "
                                f"filler, not with {'= or '.join(knobs)}=: leave that out")
        if found.count is not None and found.listener == "none":
            raise HdpUsageError(f"{where}: @pytest.mark.hdp: count= needs a listener at the "
                                "target to count what arrived: leave out listener='none'")
        return found

    @property
    def tos(self) -> int | None:
        """DSCP << 2 | ECN, where either is given."""
        if self.dscp is None and self.ecn is None:
            return None
        return (self.dscp or 0) << 2 | (self.ecn or 0)


def keys() -> list[Field[object]]:
    """The marker's keys, in the order the README and `pytest --markers` list them."""
    return list(fields(HdpMark))


def marker_help() -> str:
    """The line `pytest --markers` shows."""
    names = ", ".join(f"{f.name}=..." for f in keys())
    return (f"{MARKER}({names}): the hdp cases a test is parametrised with and how they "
            "are probed; see the README's 'Writing path tests'")


@dataclass(frozen=True)
class CheckMark:
    """A chapter test's `@pytest.mark.hdp_check(NAME, families=[4, 6])`, validated."""

    name: str | None
    families: tuple[int, ...] = (4, 6)

    @classmethod
    def parse(cls, mark: pytest.Mark | None, where: str,
              statements: Iterable[str]) -> CheckMark:
        """HdpUsageError for a name that is none of `statements` or a key it lacks."""
        if mark is None:
            return cls(None)
        known = list(statements)
        if len(mark.args) != 1 or not isinstance(mark.args[0], str):
            raise HdpUsageError(f'{where}: give @pytest.mark.hdp_check("NAME"), NAME one of '
                                "the statements of hdp/checks/chapter.py")
        name = mark.args[0]
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                "see hdp/checks/chapter.py"
            raise HdpUsageError(f"{where}: hdp_check names no chapter statement {name!r}: "
                                f"{hint}")
        extra = set(mark.kwargs) - {"families"}
        if extra:
            raise HdpUsageError(f"{where}: @pytest.mark.hdp_check has no key "
                                f"{sorted(extra)[0]!r}: give families=")
        try:
            families = _families(mark.kwargs.get("families", (4, 6)))
        except ValueError as exc:
            raise HdpUsageError(f"{where}: @pytest.mark.hdp_check(families=...): {exc}"
                                ) from None
        return cls(name, families)
