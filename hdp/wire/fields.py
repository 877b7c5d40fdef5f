"""Validation shared by the header dataclasses."""

from __future__ import annotations

from hdp.errors import EncodeError


def check_bits(what: str, owner: object, fields: tuple[tuple[str, int], ...]) -> None:
    """Raise EncodeError unless each named field of `owner` fits in its number of bits."""
    for name, bits in fields:
        value = getattr(owner, name)
        if value is not None and not 0 <= value < 1 << bits:
            raise EncodeError(f"{what} {name} must fit in {bits} bits, got {value}")
