"""RFC 1071 Internet checksum: vectors, padding, and a reference implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.wire.checksum import internet_checksum, ones_complement_sum


def reference_sum(data: bytes, initial: int = 0) -> int:
    """The one's complement sum the slow, obvious way: word by word, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = initial
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def reference_checksum(data: bytes, initial: int = 0) -> int:
    return ~reference_sum(data, initial) & 0xFFFF


# (data, one's complement sum, checksum)
VECTORS: list[tuple[bytes, int, int]] = [
    # RFC 1071 section 3, the worked example.
    (bytes.fromhex("0001f203f4f5f6f7"), 0xDDF2, 0x220D),
    (b"", 0x0000, 0xFFFF),
    (b"\x00", 0x0000, 0xFFFF),
    (b"\x00\x00", 0x0000, 0xFFFF),
    (b"\xff\xff", 0xFFFF, 0x0000),
    (b"\xff" * 64, 0xFFFF, 0x0000),
    (b"\xff", 0xFF00, 0x00FF),
    (b"\xff\xff\xff", 0xFF00, 0x00FF),
    (b"\x01", 0x0100, 0xFEFF),
    # An end-around carry: 0xFFFF + 0x0001 = 0x1_0000 -> 0x0001.
    (b"\xff\xff\x00\x01", 0x0001, 0xFFFE),
    # A non-zero sum that is a multiple of 0xFFFF is 0xFFFF ("negative zero"), not 0.
    (b"\x80\x00\x7f\xff", 0xFFFF, 0x0000),
    (b"\xff\xfe\x00\x01" * 3, 0xFFFF, 0x0000),
    # The IPv4 header of Wikipedia's example, checksum field zeroed: 0xB861.
    (bytes.fromhex("45000073000040004011" "0000" "c0a80001c0a800c7"), 0x479E, 0xB861),
]


@pytest.mark.parametrize(("data", "expected_sum", "expected_checksum"), VECTORS,
                         ids=[v[0].hex() or "empty" for v in VECTORS])
def test_known_vectors(data: bytes, expected_sum: int, expected_checksum: int) -> None:
    assert ones_complement_sum(data) == expected_sum
    assert internet_checksum(data) == expected_checksum
    assert reference_sum(data) == expected_sum  # the reference agrees with the table too


@pytest.mark.parametrize("data", [b"\x01", b"\xab\xcd\xef", b"\x12" * 7, bytes(range(255))])
def test_odd_length_is_padded_with_a_zero_byte(data: bytes) -> None:
    assert len(data) % 2 == 1
    assert internet_checksum(data) == internet_checksum(data + b"\x00")
    assert ones_complement_sum(data) == ones_complement_sum(data + b"\x00")


def test_odd_length_pads_at_the_end_not_the_start() -> None:
    # b"\x01" is the word 0x0100, not 0x0001.
    assert internet_checksum(b"\x01") == 0xFEFF
    assert internet_checksum(b"\x01") != internet_checksum(b"\x00\x01")


def test_empty_input() -> None:
    assert ones_complement_sum(b"") == 0
    assert internet_checksum(b"") == 0xFFFF
    assert ones_complement_sum(b"", 0x1234) == 0x1234


@pytest.mark.parametrize("length", [2, 4, 20, 1500, 65536])
def test_all_ones_input(length: int) -> None:
    assert ones_complement_sum(b"\xff" * length) == 0xFFFF
    assert internet_checksum(b"\xff" * length) == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind: type) -> None:
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert internet_checksum(kind(data)) == 0x220D
    assert internet_checksum(kind(data[:-1])) == reference_checksum(data[:-1])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (bytes.fromhex("45000073000040004011" "0000" "c0a80001c0a800c7"), 10),
        (bytes.fromhex("0001f203f4f5f6f7") + b"\x00\x00", 8),
        (b"\x00\x00", 0),
        (b"\x00\x00" + b"\xff" * 10, 0),
        (b"\x00" * 10, 4),
    ],
)
def test_buffer_with_its_own_checksum_verifies_to_zero(data: bytes, field: int) -> None:
    assert data[field:field + 2] == b"\x00\x00"
    value = internet_checksum(data)
    filled = data[:field] + value.to_bytes(2, "big") + data[field + 2:]
    assert internet_checksum(filled) == 0
    assert ones_complement_sum(filled) == 0xFFFF


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=150))
def test_own_checksum_verifies_to_zero_property(data: bytes, word: int) -> None:
    # Put a zeroed 16-bit field at an even offset inside (or just after) the data.
    field = min(word * 2, len(data) - len(data) % 2)
    buffer = data[:field] + b"\x00\x00" + data[field:]
    value = internet_checksum(buffer)
    filled = buffer[:field] + value.to_bytes(2, "big") + buffer[field + 2:]
    assert internet_checksum(filled) == 0


@settings(max_examples=500)
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=0xFFFF))
def test_matches_reference_loop(data: bytes, initial: int) -> None:
    assert ones_complement_sum(data) == reference_sum(data)
    assert internet_checksum(data) == reference_checksum(data)
    assert ones_complement_sum(data, initial) == reference_sum(data, initial)
    assert internet_checksum(data, initial) == reference_checksum(data, initial)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]), max_size=80))
def test_matches_reference_on_carry_heavy_words(words: list[int]) -> None:
    # Extreme words hit the multiple-of-0xFFFF corner far more often than random bytes do.
    data = b"".join(w.to_bytes(2, "big") for w in words)
    assert ones_complement_sum(data) == reference_sum(data)
    assert internet_checksum(data) == reference_checksum(data)


@settings(max_examples=200)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=0xFFFF))
def test_initial_is_one_more_word(data: bytes, initial: int) -> None:
    # Chaining: the sum with `initial` is the sum over a buffer that starts with that word.
    assert ones_complement_sum(data, initial) == ones_complement_sum(
        initial.to_bytes(2, "big") + data
    )


@settings(max_examples=200)
@given(st.binary(max_size=400).map(lambda b: b[: len(b) // 2 * 2]))
def test_byte_order_independence(data: bytes) -> None:
    # RFC 1071 section 2(B): summing byte-swapped words gives the byte-swapped sum.
    swapped = b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
    total = ones_complement_sum(data)
    assert ones_complement_sum(swapped) == ((total & 0xFF) << 8 | total >> 8)
