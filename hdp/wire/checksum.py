"""The Internet checksum (RFC 1071)."""

from __future__ import annotations


def ones_complement_sum(data: bytes, initial: int = 0) -> int:
    """16-bit one's complement sum of `data`, padded with a zero byte when odd."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    # Summing the whole buffer as one big integer's 16-bit digits is the fast path in
    # CPython: int.from_bytes + modular folding beats a Python-level loop by ~50x.
    total = initial
    if data:
        total += _fold_digits(int.from_bytes(data, "big"), len(data) // 2)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _fold_digits(value: int, count: int) -> int:
    # Sum of base-65536 digits == value mod 65535 (end-around carry), except that a
    # non-zero sum that is a multiple of 65535 must come out as 0xFFFF, not 0.
    if value == 0:
        return 0
    rem = value % 0xFFFF
    return rem if rem else 0xFFFF


def internet_checksum(data: bytes, initial: int = 0) -> int:
    """The checksum to put in a header: the complement of the one's complement sum."""
    return ~ones_complement_sum(data, initial) & 0xFFFF
