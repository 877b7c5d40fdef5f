"""Any byte string is a valid input to a parser: it returns a value or raises DecodeError.

Every other exception (IndexError, struct.error, a plain ValueError, EncodeError from a
value's constructor, ...) fails these tests, as does a parse that takes too long.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError
from hdp.wire import fragment, hdp, ipv4, ipv6, udp
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag
from hdp.wire.ipv4 import IPv4Header, RawQuirk
from hdp.wire.ipv6 import FragmentHeader, IPv6Header

from .vectors import WRITEUP_PACKET

FUZZ = settings(max_examples=200, deadline=timedelta(milliseconds=500))
HANG_SECONDS = 5.0


class Hang(Exception):
    """A parser ran past HANG_SECONDS on one input."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt an endless loop (a Hypothesis deadline only judges calls that return)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def parse_or_decode_error(parse: Callable[[], Any], data: bytes, start: int = 0) -> Any:
    """The parser's value, or None after checking the DecodeError it raised."""
    try:
        with time_limit(HANG_SECONDS):
            return parse()
    except DecodeError as error:
        assert "offset" in str(error), str(error)
        assert isinstance(error.offset, int)
        assert 0 <= error.offset <= max(len(data), start), (error.offset, len(data))
        assert error.reason
        return None
    except Exception as error:  # the point: anything but DecodeError fails
        pytest.fail(f"parser raised {type(error).__name__}: {error!r} on {data!r}")


def assert_frozen_value(value: Any) -> None:
    assert dataclasses.is_dataclass(value)
    assert type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# The parsers and what must hold of anything they return.


def check_ipv4(data: bytes, quirk: RawQuirk) -> None:
    packet = parse_or_decode_error(lambda: ipv4.decode(data, quirk), data)
    if packet is None:
        return
    assert_frozen_value(packet)
    h = packet.header
    assert h.version == 4
    assert h.total_length is not None
    assert 20 <= h.header_length <= h.total_length <= len(data)
    assert len(packet.payload) == h.total_length - h.header_length
    assert packet.payload == data[h.header_length:h.total_length]
    assert isinstance(packet.checksum_ok, bool)


def check_ipv6(data: bytes) -> None:
    packet = parse_or_decode_error(lambda: ipv6.decode(data), data)
    if packet is None:
        return
    assert_frozen_value(packet)
    assert packet.header.payload_length is not None
    end = 40 + packet.header.payload_length
    assert end <= len(data)
    assert data[40:end].endswith(packet.payload)
    walked = sum(len(e.data) for e in packet.extensions)
    assert 40 + walked + len(packet.payload) == end
    assert 0 <= packet.upper_protocol <= 255


def check_udp(data: bytes) -> None:
    datagram = parse_or_decode_error(lambda: udp.decode(data), data)
    if datagram is None:
        return
    assert_frozen_value(datagram)
    assert 8 <= datagram.header.length <= len(data)
    assert datagram.payload == data[8:datagram.header.length]


def check_udp_lite(data: bytes) -> None:
    datagram = parse_or_decode_error(lambda: udp.decode_lite(data), data)
    if datagram is None:
        return
    assert_frozen_value(datagram)
    assert datagram.header.length == 0 or 8 <= datagram.header.length <= len(data)
    assert datagram.payload == data[8:]


def check_hdp(data: bytes) -> None:
    packet = parse_or_decode_error(lambda: hdp.decode(data), data)
    if packet is None:
        return
    assert_frozen_value(packet)
    assert hdp.encode_header(packet.header) == data[:12]
    check_tagged_value(data[12:], packet.payload)


def check_tagged(data: bytes) -> None:
    check_tagged_value(data, parse_or_decode_error(lambda: hdp.decode_tagged(data), data))


def check_tagged_value(data: bytes, tagged: Any) -> None:
    if tagged is None:
        return
    assert_frozen_value(tagged)
    assert isinstance(tagged.intact, bool)
    if tagged.tag is None:
        assert tagged.data == data
        assert tagged.intact
    else:
        assert tagged.data == data[20:]


def check_fragment_header(data: bytes, offset: int = 0) -> None:
    fragment = parse_or_decode_error(
        lambda: ipv6.decode_fragment_header(data, offset), data, offset
    )
    if fragment is None:
        return
    assert_frozen_value(fragment)
    # It re-encodes to the bytes it came from, less the reserved bits.
    expected = bytearray(data[offset:offset + 8])
    expected[1] = 0
    expected[2:4] = (int.from_bytes(expected[2:4], "big") & 0xFFF9).to_bytes(2, "big")
    assert fragment.encode() == bytes(expected)


PARSERS: dict[str, Callable[[bytes], None]] = {
    "ipv4.decode": lambda d: check_ipv4(d, RawQuirk.NONE),
    "ipv4.decode[bsd]": lambda d: check_ipv4(d, RawQuirk.BSD),
    "ipv6.decode": check_ipv6,
    "ipv6.walk_extensions@40": lambda d: check_walk(d, d[6] if len(d) > 6 else 0, 40),
    "ipv6.decode_fragment_header": check_fragment_header,
    "udp.decode": check_udp,
    "udp.decode_lite": check_udp_lite,
    "hdp.decode": check_hdp,
    "hdp.decode_tagged": check_tagged,
    "fragment.Reassembler.add": lambda d: parse_or_decode_error(
        lambda: fragment.Reassembler().add(d), d),
}


def check_walk(data: bytes, next_header: int, offset: int) -> None:
    result = parse_or_decode_error(
        lambda: ipv6.walk_extensions(data, next_header, offset), data, offset
    )
    if result is None:
        return
    walked, upper, end, fragment = result
    assert isinstance(walked, tuple)
    assert 0 <= upper <= 255 or upper == next_header
    position = offset
    for extension in walked:
        assert_frozen_value(extension)
        assert extension.offset == position
        assert extension.data == data[position:position + len(extension.data)]
        assert len(extension.data) >= 8
        position += len(extension.data)
    assert end == position <= max(len(data), offset)
    assert fragment is None or any(e.kind == ipv6.FRAGMENT for e in walked)


# ---------------------------------------------------------------------------------------
# Valid packets from our own encoders, to mutate.

V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")
_TAGGED = hdp.encode_tagged(ProbeTag(run_id=1, case=253, probe=2, carrier=Carrier.HDP), b"probe")
_HDP = hdp.encode(HDPHeader(420, 420, 1739640243546134000), _TAGGED)
_UDP4 = udp.encode(420, 420, b"udp over ipv4", *V4)
_UDP6 = udp.encode(420, 420, b"udp over ipv6", *V6)
_LITE = udp.encode_lite(420, 420, b"udp-lite, partly covered", *V4, coverage=12)
_HBH = bytes([60, 0, 1, 4, 0, 0, 0, 0])
_DEST = bytes([44, 1, 1, 12]) + bytes(12)
_FRAG_FIRST = FragmentHeader(17, 0, True, 0xABCDEF).encode()
_FRAG_LATER = FragmentHeader(60, 185, False, 0xABCDEF).encode()

SEEDS: dict[str, bytes] = {
    "ipv4-hdp-tagged": ipv4.encode(IPv4Header(*V4, protocol=253), _HDP),
    "ipv4-options-udp": ipv4.encode(
        IPv4Header(*V4, protocol=17, options=bytes([7, 7, 4, 0, 0, 0, 0, 0])), _UDP4
    ),
    "ipv4-fragment": ipv4.encode(
        IPv4Header(*V4, protocol=17, flags=ipv4.FLAG_MF, fragment_offset=185), b"\x00" * 32
    ),
    "ipv4-udplite": ipv4.encode(IPv4Header(*V4, protocol=136), _LITE),
    "writeup-bsd": WRITEUP_PACKET,
    "ipv6-chain-udp": ipv6.encode(IPv6Header(*V6, next_header=0),
                                  _HBH + _DEST + _FRAG_FIRST + _UDP6),
    "ipv6-later-fragment": ipv6.encode(IPv6Header(*V6, next_header=44),
                                       _FRAG_LATER + bytes([17, 255]) + b"middle"),
    "ipv6-hdp": ipv6.encode(IPv6Header(*V6, next_header=253), _HDP),
    "udp": _UDP4,
    "udp-lite": _LITE,
    "hdp": _HDP,
    "tagged": _TAGGED,
}


def mutate(draw: st.DrawFn, data: bytearray, near_start: int = 0) -> bytes:
    """One to four random edits (flip, set, insert, delete, truncate) of `data`; with
    `near_start`, edits favour the first `near_start` bytes, where headers decide."""
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.one_of(st.integers(0, near_start), st.integers(0, len(data)))
                  if near_start else st.integers(0, len(data)))
        at = min(at, len(data))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif op == "set" and data:
            data[min(at, len(data) - 1)] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    return mutate(draw, bytearray(draw(st.sampled_from(list(SEEDS.values())))))


@pytest.mark.parametrize("check", PARSERS.values(), ids=PARSERS.keys())
@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(check: Callable[[bytes], None], data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("check", PARSERS.values(), ids=PARSERS.keys())
@FUZZ
@given(data=mutated())
def test_mutated_packets(check: Callable[[bytes], None], data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("seed", SEEDS.values(), ids=SEEDS.keys())
@pytest.mark.parametrize("check", PARSERS.values(), ids=PARSERS.keys())
def test_every_truncation_of_every_seed(check: Callable[[bytes], None], seed: bytes) -> None:
    for n in range(len(seed) + 1):
        check(seed[:n])


next_headers = st.one_of(st.sampled_from([0, 43, 44, 60]), st.integers(0, 255))


@FUZZ
@given(data=st.binary(max_size=200), next_header=next_headers, offset=st.integers(0, 220))
def test_walk_extensions_random(data: bytes, next_header: int, offset: int) -> None:
    check_walk(data, next_header, offset)


@FUZZ
@given(data=mutated(), next_header=next_headers, offset=st.integers(0, 64))
def test_walk_extensions_mutated(data: bytes, next_header: int, offset: int) -> None:
    check_walk(data, next_header, offset)


@FUZZ
@given(data=st.binary(max_size=40), offset=st.integers(0, 48))
def test_decode_fragment_header_at_any_offset(data: bytes, offset: int) -> None:
    check_fragment_header(data, offset)


def test_the_seeds_are_valid() -> None:
    # Mutating garbage would prove little: every seed parses with the parser it is for.
    assert ipv4.decode(SEEDS["ipv4-hdp-tagged"]).payload == _HDP
    assert ipv4.decode(SEEDS["writeup-bsd"], RawQuirk.BSD).header.total_length == 505
    assert ipv6.decode(SEEDS["ipv6-chain-udp"]).payload == _UDP6
    assert ipv6.decode(SEEDS["ipv6-later-fragment"]).fragment is not None
    assert udp.verify(*V4, SEEDS["udp"])
    assert udp.verify_lite(*V4, SEEDS["udp-lite"])
    assert hdp.decode(SEEDS["hdp"]).payload.intact
    assert hdp.decode_tagged(SEEDS["tagged"]).tag is not None


# ---------------------------------------------------------------------------------------
# Checksum verification is a predicate: a bool for any input, never an exception.

ADDRESSES = pytest.mark.parametrize(("src", "dst"), [V4, V6], ids=["v4", "v6"])


@ADDRESSES
@FUZZ
@given(data=st.one_of(st.binary(max_size=200), mutated()))
def test_verify_is_a_predicate(src: str, dst: str, data: bytes) -> None:
    with time_limit(HANG_SECONDS):
        assert udp.verify(src, dst, data) in (True, False)
        assert udp.verify_lite(src, dst, data) in (True, False)
    assert isinstance(udp.verify(src, dst, data), bool)
    assert isinstance(udp.verify_lite(src, dst, data), bool)


@ADDRESSES
@pytest.mark.parametrize("length", [0xFFFF, 0x10000, 70000])
@pytest.mark.parametrize("checksum", [b"\x00\x00", b"\x12\x34"])
def test_verify_on_huge_input(src: str, dst: str, length: int, checksum: bytes) -> None:
    data = b"\x00\x01\x00\x02\x00\x00" + checksum + bytes(length - 8)
    assert isinstance(udp.verify(src, dst, data), bool)
    assert isinstance(udp.verify_lite(src, dst, data), bool)
    if src == V4[0] and length > 0xFFFF and checksum != b"\x00\x00":
        assert udp.verify(src, dst, data) is False


@pytest.mark.parametrize("check", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("length", [0xFFFF, 0x10000, 70000])
def test_huge_input(check: Callable[[bytes], None], length: int) -> None:
    for fill in (b"\x00", b"\xff", b"\x45", b"\x60"):
        check(fill * length)
    check(WRITEUP_PACKET[:2] + b"\xff\xff" + WRITEUP_PACKET[4:] + bytes(length))
