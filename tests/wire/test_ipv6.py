"""IPv6 fixed header codec and the extension-header walk."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError
from hdp.wire import ipv6
from hdp.wire.ipv6 import FragmentHeader, IPv6Header

SRC, DST = "2001:db8::1", "2001:db8:0:1::2"


def make_header(**kwargs: Any) -> IPv6Header:
    kwargs.setdefault("src", SRC)
    kwargs.setdefault("dst", DST)
    return IPv6Header(**kwargs)


# ---------------------------------------------------------------------------------------
# Extension headers, built by hand (not with the codec under test).

Ext = Callable[[int], bytes]  # next header -> the extension header's bytes


def padding(n: int) -> bytes:
    """`n` bytes of Pad1/PadN options (RFC 8200 section 4.2)."""
    out = b""
    while n:
        if n == 1:
            return out + b"\x00"  # Pad1
        size = min(n, 257)
        if n - size == 1:
            size -= 1
        out += bytes([1, size - 2]) + bytes(size - 2)  # PadN
        n -= size
    return out


def options_header(units: int = 0) -> Ext:
    """Hop-by-hop or destination options: (units + 1) * 8 bytes, all padding."""
    def build(nxt: int) -> bytes:
        return bytes([nxt, units]) + padding((units + 1) * 8 - 2)
    return build


def routing_header() -> Ext:
    """A type-2-like routing header with one address: 24 bytes, segments left 0."""
    def build(nxt: int) -> bytes:
        return bytes([nxt, 2, 2, 0]) + bytes(4) + IPv6Address("2001:db8::99").packed
    return build


def fragment_header(offset: int = 0, more: bool = False, ident: int = 0xDEADBEEF) -> Ext:
    def build(nxt: int) -> bytes:
        return bytes([nxt, 0]) + (offset << 3 | more).to_bytes(2, "big") + ident.to_bytes(4, "big")
    return build


def chain(kinds: list[tuple[int, Ext]], upper: int) -> tuple[int, bytes, list[int]]:
    """First next-header value, the chain's bytes, and each header's offset from 0."""
    blob, offsets = b"", []
    for i, (_kind, build) in enumerate(kinds):
        nxt = kinds[i + 1][0] if i + 1 < len(kinds) else upper
        offsets.append(len(blob))
        blob += build(nxt)
    first = kinds[0][0] if kinds else upper
    return first, blob, offsets


HBH, RT, FRAG, DEST = 0, 43, 44, 60
AH_LOOKALIKE = bytes([DEST, 1]) + bytes(14)  # an AH that would parse as an options header

# id -> (chain, upper protocol, payload after the chain)
WALKS: dict[str, tuple[list[tuple[int, Ext]], int, bytes]] = {
    "none-udp": ([], 17, b"\x01\xa4\x01\xa4\x00\x08\x00\x00"),
    "none-253": ([], 253, bytes([HBH, 0]) + bytes(6)),  # looks like HBH, but is not walked
    "hbh-udp": ([(HBH, options_header())], 17, b"udp-ish!"),
    "hbh-dest-253": ([(HBH, options_header()), (DEST, options_header(1))], 253, b"hdp"),
    "hbh-routing-dest-none": (
        [(HBH, options_header()), (RT, routing_header()), (DEST, options_header())], 59, b""
    ),
    "no-next-header-with-junk": ([(DEST, options_header())], 59, b"\x00\x05ignored"),
    "atomic-fragment": ([(FRAG, fragment_header())], 17, b"whole"),
    "first-fragment-walks-on": (
        [(HBH, options_header()), (FRAG, fragment_header(0, True)), (DEST, options_header())],
        17, b"first fragment",
    ),
    "stops-at-ah": ([(HBH, options_header())], 51, AH_LOOKALIKE + b"esp"),
    "stops-at-253": ([(DEST, options_header())], 253, AH_LOOKALIKE),
    "stops-at-255": ([(RT, routing_header())], 255, b"\x00"),
    "big-dest-options": ([(DEST, options_header(255))], 6, b"tcp"),
    "long-chain": (
        [(HBH, options_header(3)), (DEST, options_header()), (RT, routing_header()),
         (DEST, options_header(1)), (FRAG, fragment_header()), (DEST, options_header())],
        58, b"icmpv6",
    ),
}


@pytest.mark.parametrize(("kinds", "upper", "payload"), WALKS.values(), ids=WALKS.keys())
def test_extension_walk(kinds: list[tuple[int, Ext]], upper: int, payload: bytes) -> None:
    first, blob, offsets = chain(kinds, upper)
    wire = ipv6.encode(make_header(next_header=first), blob + payload)
    packet = ipv6.decode(wire)

    assert packet.header.next_header == first
    assert packet.header.payload_length == len(blob) + len(payload)
    assert [e.kind for e in packet.extensions] == [k for k, _ in kinds]
    assert [e.offset for e in packet.extensions] == [40 + o for o in offsets]
    ends = [*offsets[1:], len(blob)] if offsets else []
    assert [e.data for e in packet.extensions] == [
        blob[a:b] for a, b in zip(offsets, ends, strict=True)
    ]
    nexts = [k for k, _ in kinds[1:]] + [upper]
    assert [e.next_header for e in packet.extensions] == (nexts if kinds else [])
    assert packet.upper_protocol == upper
    assert packet.payload == payload

    fragments = [build for kind, build in kinds if kind == FRAG]
    if fragments:
        assert packet.fragment is not None
        assert packet.fragment.fragment_offset == 0
        assert packet.fragment.identification == 0xDEADBEEF
    else:
        assert packet.fragment is None


@pytest.mark.parametrize(("kinds", "upper", "payload"), WALKS.values(), ids=WALKS.keys())
def test_walk_extensions_directly(kinds: list[tuple[int, Ext]], upper: int,
                                  payload: bytes) -> None:
    first, blob, offsets = chain(kinds, upper)
    prefix = b"\xee" * 12  # the walk starts wherever it is told to
    walked, nxt, end, _fragment = ipv6.walk_extensions(prefix + blob + payload, first, 12)
    assert [e.offset for e in walked] == [12 + o for o in offsets]
    assert nxt == upper
    assert end == 12 + len(blob)


@pytest.mark.parametrize(("after", "upper"), [(17, 17), (DEST, DEST), (HBH, HBH)])
def test_non_first_fragment_ends_the_walk(after: int, upper: int) -> None:
    # Bytes after a non-first fragment are the middle of something: here they look like an
    # options header claiming 2048 bytes, which would be a DecodeError if walked.
    rest = bytes([17, 255]) + b"middle of a datagram"
    first, blob, _ = chain(
        [(HBH, options_header()), (FRAG, fragment_header(185, True, 7))], after
    )
    packet = ipv6.decode(ipv6.encode(make_header(next_header=first), blob + rest))
    assert [e.kind for e in packet.extensions] == [HBH, FRAG]
    assert packet.upper_protocol == upper
    assert packet.payload == rest
    assert packet.fragment == FragmentHeader(after, 185, True, 7)


def test_last_fragment_ends_the_walk_too() -> None:
    first, blob, _ = chain([(FRAG, fragment_header(370, False, 1))], DEST)
    packet = ipv6.decode(ipv6.encode(make_header(next_header=first), blob + b"\x11\x09tail"))
    assert packet.upper_protocol == DEST
    assert packet.payload == b"\x11\x09tail"
    assert packet.fragment == FragmentHeader(DEST, 370, False, 1)


def _truncated(kinds: list[tuple[int, Ext]], upper: int, keep: int) -> bytes:
    first, blob, _ = chain(kinds, upper)
    return ipv6.encode(make_header(next_header=first), blob[:keep])


# id -> (packet, offset of the header that does not fit)
TRUNCATED: dict[str, tuple[bytes, int]] = {
    "hbh-empty": (_truncated([(HBH, options_header())], 17, 0), 40),
    "hbh-7-bytes": (_truncated([(HBH, options_header())], 17, 7), 40),
    "hbh-says-16-has-12": (_truncated([(HBH, options_header(1))], 17, 12), 40),
    "dest-says-2048-has-8": (_truncated([(DEST, options_header(255))], 17, 8), 40),
    "routing-says-24-has-23": (_truncated([(RT, routing_header())], 17, 23), 40),
    "fragment-7-bytes": (_truncated([(FRAG, fragment_header())], 17, 7), 40),
    "second-header-5-bytes": (
        _truncated([(HBH, options_header()), (DEST, options_header())], 17, 13), 48
    ),
    "fragment-after-routing": (
        _truncated([(RT, routing_header()), (FRAG, fragment_header())], 17, 28), 64
    ),
    "third-header-short": (
        _truncated([(HBH, options_header()), (FRAG, fragment_header()),
                    (DEST, options_header(1))], 17, 16 + 9), 56
    ),
}


@pytest.mark.parametrize(("data", "offset"), TRUNCATED.values(), ids=TRUNCATED.keys())
def test_truncated_extension_header(data: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        ipv6.decode(data)
    assert caught.value.offset == offset
    assert f"offset {offset}" in str(caught.value)
    assert "extension header" in caught.value.what or "fragment" in caught.value.what


def test_payload_length_bounds_the_walk() -> None:
    # The options header is all there, but payload length says only 8 bytes belong to us.
    first, blob, _ = chain([(HBH, options_header(1))], 17)
    wire = ipv6.encode(make_header(next_header=first, payload_length=8), blob + b"tail")
    with pytest.raises(DecodeError) as caught:
        ipv6.decode(wire)
    assert caught.value.offset == 40


@pytest.mark.parametrize("extra", [1, 2, 100])
def test_payload_length_longer_than_data(extra: int) -> None:
    wire = ipv6.encode(make_header(next_header=17, payload_length=10 + extra), b"0123456789")
    with pytest.raises(DecodeError) as caught:
        ipv6.decode(wire)
    assert caught.value.offset == len(wire) == 50
    assert str(10 + extra) in caught.value.reason


def test_payload_length_shorter_than_data_drops_the_tail() -> None:
    wire = ipv6.encode(make_header(next_header=253, payload_length=4), b"0123456789")
    packet = ipv6.decode(wire)
    assert packet.payload == b"0123"
    assert packet.header.payload_length == 4


# ---------------------------------------------------------------------------------------
# The fixed header.

ROUND_TRIPS: dict[str, tuple[dict[str, Any], bytes]] = {
    "minimal": ({"next_header": 253}, b"hdp"),
    "empty": ({"next_header": 59}, b""),
    "udp": ({"next_header": 17}, b"\x00" * 8),
    "protocol-0-no-walk-needed": ({"next_header": 255}, b"\xff" * 33),
    "hop-limit-0": ({"next_header": 253, "hop_limit": 0}, b"x"),
    "hop-limit-255": ({"next_header": 253, "hop_limit": 255}, b"x"),
    "dscp-ecn": ({"next_header": 253, "dscp": 46, "ecn": 1}, b"x"),
    "tclass-all-ones": ({"next_header": 253, "dscp": 63, "ecn": 3}, b"x"),
    "flow-label-max": ({"next_header": 253, "flow_label": 0xFFFFF}, b"x"),
    "everything": (
        {"next_header": 254, "hop_limit": 1, "dscp": 10, "ecn": 2, "flow_label": 0xABCDE,
         "src": "::", "dst": "ff02::1"},
        bytes(range(256)) * 5,
    ),
    "explicit-payload-length": ({"next_header": 253, "payload_length": 3}, b"abc"),
    "largest-payload": ({"next_header": 253}, b"\x5a" * 0xFFFF),
}


@pytest.mark.parametrize(("kwargs", "payload"), ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(kwargs: dict[str, Any], payload: bytes) -> None:
    header = make_header(**kwargs)
    wire = ipv6.encode(header, payload)
    assert len(wire) == 40 + len(payload)
    packet = ipv6.decode(wire)
    assert packet.header == dataclasses.replace(header, payload_length=len(payload))
    assert packet.extensions == ()
    assert packet.upper_protocol == header.next_header
    assert packet.payload == payload
    assert packet.fragment is None
    assert ipv6.encode(packet.header, packet.payload) == wire


def test_fixed_header_layout() -> None:
    header = make_header(next_header=253, hop_limit=7, dscp=46, ecn=1, flow_label=0x12345)
    assert header.traffic_class == 0xB9
    wire = ipv6.encode(header, b"ab")
    assert wire == (bytes.fromhex("6b912345" "0002" "fd" "07")
                    + IPv6Address(SRC).packed + IPv6Address(DST).packed + b"ab")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"next_header": 256},
        {"next_header": -1},
        {"next_header": 17, "hop_limit": 256},
        {"next_header": 17, "dscp": 64},
        {"next_header": 17, "ecn": 4},
        {"next_header": 17, "flow_label": 1 << 20},
        {"next_header": 17, "flow_label": -1},
        {"next_header": 17, "version": 16},
        {"next_header": 17, "payload_length": 0x10000},
        {"next_header": 17, "payload_length": -1},
    ],
    ids=str,
)
def test_header_encode_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        make_header(**kwargs)


def test_encode_error_on_jumbo_payload() -> None:
    with pytest.raises(EncodeError):
        ipv6.encode(make_header(next_header=253), bytes(0x10000))


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"", 0, "need 40"),
        (b"\x60", 1, "need 40"),
        (b"\x60" + bytes(38), 39, "need 40"),
        (b"\x40" + bytes(39), 0, "version is 4"),
        (b"\x00" + bytes(39), 0, "version is 0"),
        (b"\xf0" + bytes(39), 0, "version is 15"),
    ],
    ids=["empty", "one-byte", "39-bytes", "version-4", "version-0", "version-15"],
)
def test_decode_error(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as caught:
        ipv6.decode(data)
    assert caught.value.offset == offset
    assert words in caught.value.reason
    assert f"offset {offset}" in str(caught.value)


# ---------------------------------------------------------------------------------------
# The fragment header on its own.


@pytest.mark.parametrize(
    ("fragment", "raw"),
    [
        (FragmentHeader(17, 0, False, 0), "1100" "0000" "00000000"),
        (FragmentHeader(17, 0, True, 1), "1100" "0001" "00000001"),
        (FragmentHeader(17, 185, True, 0xDEADBEEF), "1100" "05c9" "deadbeef"),
        (FragmentHeader(59, 0x1FFF, False, 0xFFFFFFFF), "3b00" "fff8" "ffffffff"),
        (FragmentHeader(255, 1, True, 0x01020304), "ff00" "0009" "01020304"),
    ],
)
def test_fragment_header_layout_and_round_trip(fragment: FragmentHeader, raw: str) -> None:
    assert fragment.encode() == bytes.fromhex(raw)
    assert ipv6.decode_fragment_header(bytes.fromhex(raw)) == fragment
    assert ipv6.decode_fragment_header(b"junk" + bytes.fromhex(raw) + b"more", 4) == fragment


def test_fragment_header_ignores_reserved_bits() -> None:
    raw = bytes.fromhex("11ff" "05cf" "deadbeef")  # reserved byte and the two res bits set
    assert ipv6.decode_fragment_header(raw) == FragmentHeader(17, 185, True, 0xDEADBEEF)


@pytest.mark.parametrize(("data", "offset"), [(b"", 0), (bytes(7), 0), (bytes(12), 5),
                                              (bytes(8), 9)])
def test_fragment_header_decode_error(data: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        ipv6.decode_fragment_header(data, offset)
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    "fragment",
    [
        FragmentHeader(17, 0x2000, False, 0),
        FragmentHeader(17, -1, False, 0),
        FragmentHeader(256, 0, False, 0),
        FragmentHeader(-1, 0, False, 0),
        FragmentHeader(17, 0, False, 1 << 32),
        FragmentHeader(17, 0, False, -1),
    ],
    ids=str,
)
def test_fragment_header_encode_error(fragment: FragmentHeader) -> None:
    with pytest.raises(EncodeError):
        fragment.encode()


# ---------------------------------------------------------------------------------------
# Property: any header the constructor accepts round-trips.

headers = st.builds(
    IPv6Header,
    src=st.integers(0, 2**128 - 1).map(IPv6Address),
    dst=st.integers(0, 2**128 - 1).map(IPv6Address),
    next_header=st.integers(0, 255).filter(lambda n: n not in (0, 43, 44, 60)),
    hop_limit=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ecn=st.integers(0, 3),
    flow_label=st.integers(0, 0xFFFFF),
)


@settings(max_examples=200)
@given(headers, st.binary(max_size=300))
def test_round_trip_property(header: IPv6Header, payload: bytes) -> None:
    packet = ipv6.decode(ipv6.encode(header, payload))
    assert dataclasses.replace(packet.header, payload_length=None) == header
    assert packet.upper_protocol == header.next_header
    assert packet.payload == payload
