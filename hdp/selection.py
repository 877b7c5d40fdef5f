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
        numbers.update(dict.fromkeys(range(low, high + 1)))
    return list(numbers)


def fold_ranges(numbers: list[int]) -> str:
    """The shortest SPEC for `numbers`: [1, 2, 3, 6] -> "1-3,6"."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = prev = None
    for n in [*ordered, None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ",".join(parts)
