"""Argument types of the `hdp` command line: each turns text into a value or says, in one
line, what is wrong with it (argparse prints it as the command's error)."""

from __future__ import annotations

import argparse

from hdp.errors import UsageError
from hdp.selection import parse_protocols

MAX_COUNT = 1_000_000


def protocol_numbers(text: str) -> list[int]:
    """A protocol SPEC: 253, 0-255, 1,6,17 or -1-300 (write --protocol=-1-300)."""
    try:
        return parse_protocols(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str, what: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: give a number") from None
    if not 0 < value <= limit:
        raise argparse.ArgumentTypeError(
            f"{what} {text} is out of range: give 0 < {what} <= {limit:g}")
    return value


def count_value(text: str) -> int:
    value = _positive(text, "count", MAX_COUNT)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number")
    return int(value)


def seconds_value(text: str) -> float:
    return _positive(text, "timeout", 24 * 3600)


def family_value(text: str) -> int:
    if text.lower() in ("4", "ipv4", "inet"):
        return 4
    if text.lower() in ("6", "ipv6", "inet6"):
        return 6
    raise argparse.ArgumentTypeError(f"invalid family {text!r}: give 4 or 6")


def outcome_list(text: str) -> tuple[str, ...]:
    """`--fail-on lost,prohibited`: outcome names, each one of the vocabulary."""
    from hdp.verdict import Outcome  # here, not at import: `hdp --help` needs no verdicts

    outcomes = tuple(outcome.value for outcome in Outcome)
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if name not in outcomes:
            raise argparse.ArgumentTypeError(
                f"invalid outcome {name!r}: give outcomes from {', '.join(outcomes)}")
    if not names:
        raise argparse.ArgumentTypeError("give one or more outcomes, e.g. lost,prohibited")
    return names


def family_list(text: str) -> list[int]:
    return list(dict.fromkeys(family_value(part) for part in text.split(",") if part.strip()))


def size_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give a number of bytes") from None
    if not 0 <= value <= 65000:
        raise argparse.ArgumentTypeError(f"size {value} is out of range: give 0..65000 bytes")
    return value
