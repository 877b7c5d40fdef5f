"""Protocol-number selections such as `0-255`, `1,6,17,253-255` or `-1-300`."""

from __future__ import annotations

import re

from hdp.errors import UsageError

PROTOCOL_MIN = -1
PROTOCOL_MAX = 65535
_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")


def parse_protocols(spec: str) -> list[int]:
    """The numbers a SPEC names, in the order given, without repeats."""
    numbers: dict[int, None] = {}
    for low, high in _ranges(spec):
        numbers.update(dict.fromkeys(range(low, high + 1)))
    return list(numbers)


def protocol_set(spec: str) -> frozenset[int]:
    """The numbers a SPEC names, as a set: what a profile rule holds (`263-65535` is
    65,273 of them, so they go into the set at C speed, without an ordered list first)."""
    return frozenset().union(*(range(low, high + 1) for low, high in _ranges(spec)))


def _ranges(spec: str) -> list[tuple[int, int]]:
    """Each item of a SPEC as (low, high); UsageError names the first bad one."""
    found = []
    for item in spec.split(","):
        match = _ITEM.match(item)
        if not match:
            raise UsageError(f"invalid protocol selection {spec!r}: use numbers and ranges "
                             "like 253, 0-255 or 1,6,17,253-255")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise UsageError(f"invalid protocol range {item.strip()!r}: the start exceeds the end")
        for bound in (low, high):
            if not PROTOCOL_MIN <= bound <= PROTOCOL_MAX:
                raise UsageError(
                    f"protocol number {bound} is out of range: give {PROTOCOL_MIN}..{PROTOCOL_MAX}"
                    " (0-255 are IP protocol numbers; the others test how the OS validates them)")
        found.append((low, high))
    return found


def fold_ranges(numbers: list[int]) -> str:
    """The shortest SPEC for `numbers`: [1, 2, 3, 6] -> "1-3,6"."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
