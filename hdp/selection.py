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
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
