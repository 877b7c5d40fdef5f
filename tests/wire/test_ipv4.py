"""IPv4 header codec: round trips, checksum, errors, and the BSD raw-socket quirk."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError
from hdp.wire import hdp, ipv4
from hdp.wire.checksum import internet_checksum
from hdp.wire.ipv4 import FLAG_DF, FLAG_MF, FLAG_RESERVED, IPv4Header, RawQuirk

from .vectors import COWSAY, WRITEUP_PACKET, WRITEUP_TIMESTAMP

SRC, DST = "192.0.2.1", "198.51.100.7"
RR_OPTION = bytes.fromhex("070704" "00000000") + b"\x00"  # record route, 1 slot, then EOL

# id -> (header keyword arguments, payload)
ROUND_TRIPS: dict[str, tuple[dict[str, Any], bytes]] = {
    "minimal-253": ({"protocol": 253}, b"hdp"),
    "protocol-0": ({"protocol": 0}, b"x"),
    "protocol-17": ({"protocol": 17}, b"\x01\xa4\x01\xa4\x00\x08\x00\x00"),
    "protocol-255": ({"protocol": 255}, COWSAY),
    "empty-payload": ({"protocol": 254}, b""),
    "odd-payload": ({"protocol": 253}, b"abcde"),
    "df": ({"protocol": 253, "flags": FLAG_DF}, b"payload"),
    "mf-offset-185": ({"protocol": 17, "flags": FLAG_MF, "fragment_offset": 185}, b"\x00" * 1480),
    "last-fragment-370": ({"protocol": 17, "fragment_offset": 370}, b"\xaa" * 60),
    "all-flags-max-offset": ({"protocol": 253, "flags": 0b111, "fragment_offset": 0x1FFF}, b"z"),
    "reserved-flag": ({"protocol": 253, "flags": FLAG_RESERVED}, b"evil"),
    "dscp-ef": ({"protocol": 253, "dscp": 46}, b"voice"),
    "ecn-ce": ({"protocol": 253, "ecn": 3}, b"congested"),
    "tos-all-ones": ({"protocol": 253, "dscp": 63, "ecn": 3}, b"tos"),
    "ttl-0": ({"protocol": 253, "ttl": 0}, b"t"),
    "ttl-1": ({"protocol": 253, "ttl": 1}, b"t"),
    "ttl-255": ({"protocol": 253, "ttl": 255}, b"t"),
    "ident-max": ({"protocol": 253, "identification": 0xFFFF}, b"id"),
    "options-nop": ({"protocol": 253, "options": b"\x01\x01\x01\x00"}, b"opt"),
    "options-rr": ({"protocol": 17, "options": RR_OPTION}, b"rr"),
    "options-max-40": ({"protocol": 253, "options": bytes([1] * 39 + [0])}, b"max"),
    "explicit-total-length": ({"protocol": 253, "total_length": 23}, b"abc"),
    "explicit-checksum": ({"protocol": 253, "checksum": 0x1234}, b"abc"),
    "explicit-checksum-0": ({"protocol": 255, "checksum": 0}, b"abc"),
    "everything": (
        {"protocol": 255, "ttl": 3, "dscp": 10, "ecn": 1, "identification": 36455,
         "flags": FLAG_DF | FLAG_MF, "fragment_offset": 1234, "options": b"\x01" * 8,
         "src": "10.0.0.1", "dst": "255.255.255.255"},
        bytes(range(256)),
    ),
    "largest-payload": ({"protocol": 253}, b"\x5a" * (65535 - 20)),
}


def make_header(**kwargs: Any) -> IPv4Header:
    kwargs.setdefault("src", SRC)
    kwargs.setdefault("dst", DST)
    return IPv4Header(**kwargs)


@pytest.mark.parametrize(("kwargs", "payload"), ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(kwargs: dict[str, Any], payload: bytes) -> None:
    header = make_header(**kwargs)
    wire = ipv4.encode(header, payload)
    hl = header.header_length
    assert len(wire) == hl + len(payload)
    assert wire[0] == 0x40 | hl // 4

    packet = ipv4.decode(wire)
    total = hl + len(payload) if header.total_length is None else header.total_length
    checksum = int.from_bytes(wire[10:12], "big")
    if header.checksum is None:
        assert internet_checksum(wire[:hl]) == 0
    else:
        assert checksum == header.checksum
    assert packet.header == dataclasses.replace(header, total_length=total, checksum=checksum)
    assert packet.payload == payload
    assert packet.checksum_ok == (header.checksum is None)
    # A decoded header re-encodes to exactly the bytes it came from.
    assert ipv4.encode(packet.header, packet.payload) == wire


def test_wikipedia_header_vector() -> None:
    # https://en.wikipedia.org/wiki/Internet_checksum#Calculating_the_IPv4_header_checksum
    expected = bytes.fromhex("450000730000400040 11b861c0a80001c0a800c7".replace(" ", ""))
    header = IPv4Header(src="192.168.0.1", dst="192.168.0.199", protocol=17, flags=FLAG_DF)
    assert ipv4.encode_header(header, 0x73 - 20) == expected
    assert ipv4.verify_header_checksum(expected)
    packet = ipv4.decode(expected + bytes(0x73 - 20))
    assert packet.header.checksum == 0xB861
    assert packet.checksum_ok


@pytest.mark.parametrize(
    ("flags", "offset", "field"),
    [
        (0, 0, b"\x00\x00"),
        (FLAG_DF, 0, b"\x40\x00"),
        (FLAG_MF, 185, b"\x20\xb9"),
        (0, 370, b"\x01\x72"),
        (FLAG_RESERVED, 0, b"\x80\x00"),
        (0b111, 0x1FFF, b"\xff\xff"),
    ],
)
def test_flags_and_offset_layout(flags: int, offset: int, field: bytes) -> None:
    header = make_header(protocol=17, flags=flags, fragment_offset=offset)
    wire = ipv4.encode_header(header, 0)
    assert wire[6:8] == field
    decoded = ipv4.decode(wire).header
    assert (decoded.flags, decoded.fragment_offset) == (flags, offset)
    assert decoded.df == bool(flags & FLAG_DF)
    assert decoded.mf == bool(flags & FLAG_MF)


@pytest.mark.parametrize(
    ("dscp", "ecn", "tos"), [(0, 0, 0), (46, 0, 0xB8), (0, 3, 3), (63, 3, 0xFF), (10, 2, 0x2A)]
)
def test_tos_layout(dscp: int, ecn: int, tos: int) -> None:
    header = make_header(protocol=253, dscp=dscp, ecn=ecn)
    assert header.tos == tos
    assert ipv4.encode_header(header, 0)[1] == tos


@pytest.mark.parametrize(("options", "ihl"), [(b"", 5), (b"\x01" * 4, 6), (b"\x01" * 40, 15)])
def test_ihl_and_header_length(options: bytes, ihl: int) -> None:
    header = make_header(protocol=253, options=options)
    assert header.ihl == ihl
    assert header.header_length == ihl * 4
    wire = ipv4.encode(header, b"p")
    assert wire[0] & 0x0F == ihl
    assert int.from_bytes(wire[2:4], "big") == ihl * 4 + 1
    assert ipv4.decode(wire).header.options == options


def test_checksum_ok_detects_a_changed_header_byte() -> None:
    wire = bytearray(ipv4.encode(make_header(protocol=253, ttl=64), b"hello"))
    assert ipv4.decode(bytes(wire)).checksum_ok
    wire[8] -= 1  # a router decrementing TTL without fixing the checksum
    packet = ipv4.decode(bytes(wire))
    assert packet.header.ttl == 63
    assert not packet.checksum_ok


def test_checksum_ok_ignores_the_payload() -> None:
    wire = bytearray(ipv4.encode(make_header(protocol=253), b"hello"))
    wire[-1] ^= 0xFF
    assert ipv4.decode(bytes(wire)).checksum_ok


@pytest.mark.parametrize("explicit", [0, 0x1234, 0xFFFF])
def test_checksum_ok_with_explicit_wrong_checksum(explicit: int) -> None:
    correct = ipv4.decode(ipv4.encode(make_header(protocol=253), b"x")).header.checksum
    assert explicit != correct
    packet = ipv4.decode(ipv4.encode(make_header(protocol=253, checksum=explicit), b"x"))
    assert packet.header.checksum == explicit
    assert not packet.checksum_ok


def test_checksum_ok_with_explicit_correct_checksum() -> None:
    correct = ipv4.decode(ipv4.encode(make_header(protocol=253), b"x")).header.checksum
    assert correct is not None
    packet = ipv4.decode(ipv4.encode(make_header(protocol=253, checksum=correct), b"x"))
    assert packet.checksum_ok


def test_verify_header_checksum() -> None:
    raw = ipv4.encode_header(make_header(protocol=17, options=b"\x01" * 4), 100)
    assert ipv4.verify_header_checksum(raw)
    assert not ipv4.verify_header_checksum(raw[:10] + b"\x00\x00" + raw[12:])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"protocol": 256},
        {"protocol": -1},
        {"protocol": 253, "ttl": 256},
        {"protocol": 253, "ttl": -1},
        {"protocol": 253, "dscp": 64},
        {"protocol": 253, "ecn": 4},
        {"protocol": 253, "identification": 0x10000},
        {"protocol": 253, "flags": 8},
        {"protocol": 253, "fragment_offset": 0x2000},
        {"protocol": 253, "fragment_offset": -1},
        {"protocol": 253, "version": 16},
        {"protocol": 253, "total_length": 0x10000},
        {"protocol": 253, "total_length": -1},
        {"protocol": 253, "checksum": 0x10000},
        {"protocol": 253, "checksum": -1},
        {"protocol": 253, "options": b"\x01"},
        {"protocol": 253, "options": b"\x01" * 6},
        {"protocol": 253, "options": b"\x01" * 44},
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}"[:24] for k, v in kw.items() if k != "protocol") or
    f"protocol={kw['protocol']}",
)
def test_encode_error_on_out_of_range_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        make_header(**kwargs)


@pytest.mark.parametrize(("options", "largest"), [(b"", 65515), (b"\x01" * 40, 65475)])
def test_encode_error_on_oversized_datagram(options: bytes, largest: int) -> None:
    header = make_header(protocol=253, options=options)
    assert len(ipv4.encode(header, bytes(largest))) == 65535
    with pytest.raises(EncodeError):
        ipv4.encode(header, bytes(largest + 1))


GOOD = ipv4.encode(IPv4Header(src=SRC, dst=DST, protocol=253), b"0123456789")  # 30 bytes


def _with(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


# id -> (data, offset, words expected in the message)
DECODE_ERRORS: dict[str, tuple[bytes, int, str]] = {
    "empty": (b"", 0, "need 20"),
    "one-byte": (b"\x45", 1, "need 20"),
    "19-bytes": (GOOD[:19], 19, "need 20"),
    "version-6": (_with(GOOD, 0, b"\x65"), 0, "version is 6"),
    "version-0": (_with(GOOD, 0, b"\x05"), 0, "version is 0"),
    "version-15": (_with(GOOD, 0, b"\xf5"), 0, "version is 15"),
    "ihl-0": (_with(GOOD, 0, b"\x40"), 0, "IHL 0"),
    "ihl-4": (_with(GOOD, 0, b"\x44"), 0, "IHL 4"),
    "ihl-6-header-only": (_with(GOOD[:20], 0, b"\x46"), 20, "IHL 6"),
    "ihl-15-30-bytes": (_with(GOOD, 0, b"\x4f"), 20, "IHL 15"),
    "total-length-0": (_with(GOOD, 2, b"\x00\x00"), 2, "total length 0"),
    "total-length-19": (_with(GOOD, 2, b"\x00\x13"), 2, "total length 19"),
    "total-length-below-options": (_with(GOOD, 0, b"\x46\x00\x00\x17"), 2, "total length 23"),
    "total-length-one-more": (_with(GOOD, 2, b"\x00\x1f"), 30, "31"),
    "total-length-65535": (_with(GOOD, 2, b"\xff\xff"), 30, "65535"),
    "truncated-payload": (GOOD[:25], 25, "30"),
}


@pytest.mark.parametrize(("data", "offset", "words"), DECODE_ERRORS.values(),
                         ids=DECODE_ERRORS.keys())
def test_decode_error(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as caught:
        ipv4.decode(data)
    assert caught.value.offset == offset
    assert words in caught.value.reason
    assert f"offset {offset}" in str(caught.value)
    assert isinstance(caught.value, ValueError)  # callers may catch either


def test_trailing_bytes_after_total_length_are_not_payload() -> None:
    # Ethernet pads short frames: bytes past Total Length are link-layer padding.
    packet = ipv4.decode(GOOD + b"\x00" * 16)
    assert packet.payload == b"0123456789"
    assert packet.header.total_length == 30


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert ipv4.decode(bytearray(GOOD)) == ipv4.decode(GOOD)
    assert ipv4.decode(memoryview(GOOD)) == ipv4.decode(GOOD)


def test_decode_gives_addresses() -> None:
    header = ipv4.decode(GOOD).header
    assert header.src == IPv4Address(SRC)
    assert header.dst == IPv4Address(DST)


# ---------------------------------------------------------------------------------------
# The write-up's macOS listener dump, and the BSD raw-socket quirk.


def test_writeup_vector_as_read_by_the_original_listener() -> None:
    # What the write-up's listener printed is the plain big-endian reading of these bytes.
    fields = WRITEUP_PACKET[:20]
    assert int.from_bytes(fields[2:4], "big") == 58625
    assert int.from_bytes((505 - 20).to_bytes(2, "little"), "big") == 58625
    assert int.from_bytes(fields[4:6], "big") == 36455


def test_writeup_vector_without_the_quirk_is_rejected() -> None:
    # Read in network order the length field says 58625 bytes, and only 505 are there.
    with pytest.raises(DecodeError) as caught:
        ipv4.decode(WRITEUP_PACKET)
    assert caught.value.offset == 505
    assert "58625" in str(caught.value)


def test_writeup_vector_with_the_bsd_quirk() -> None:
    packet = ipv4.decode(WRITEUP_PACKET, RawQuirk.BSD)
    h = packet.header
    assert h.version == 4
    assert h.ihl == 5
    assert (h.dscp, h.ecn) == (0, 0)
    assert h.total_length == 505
    assert h.identification == 36455
    assert (h.flags, h.fragment_offset) == (0, 0)
    assert h.ttl == 64
    assert h.protocol == 255
    assert h.checksum == 0
    assert h.src == IPv4Address("127.0.0.1")
    assert h.dst == IPv4Address("127.0.0.1")
    assert h.options == b""
    assert len(packet.payload) == 485
    assert not packet.checksum_ok  # a BSD raw socket shows a zero checksum

    hdp_packet = hdp.decode(packet.payload)
    assert hdp_packet.header == hdp.HDPHeader(420, 420, WRITEUP_TIMESTAMP)
    assert hdp_packet.payload == hdp.TaggedPayload(None, COWSAY, True)


def _bsd_header(total: int, frag_field: int, options: bytes = b"") -> bytes:
    """An IPv4 header as a BSD raw socket shows it: ip_len/ip_off in little-endian host order."""
    hl = 20 + len(options)
    return (bytes([0x40 | hl // 4, 0]) + (total - hl).to_bytes(2, "little")
            + (36455).to_bytes(2, "big") + frag_field.to_bytes(2, "little")
            + bytes([64, 253]) + b"\x00\x00" + bytes([127, 0, 0, 1, 127, 0, 0, 1]) + options)


def test_bsd_header_helper_matches_the_writeup_bytes() -> None:
    assert _bsd_header(505, 0)[:9] + b"\xff" + _bsd_header(505, 0)[10:] == WRITEUP_PACKET[:20]


@pytest.mark.parametrize(
    ("frag_field", "flags", "offset", "raw"),
    [
        (0x4000, FLAG_DF, 0, b"\x00\x40"),
        (0x2000 | 185, FLAG_MF, 185, b"\xb9\x20"),
        (370, 0, 370, b"\x72\x01"),
        (0x6000 | 0x1FFF, FLAG_DF | FLAG_MF, 0x1FFF, b"\xff\x7f"),
    ],
)
def test_bsd_quirk_fragment_field_in_host_order(frag_field: int, flags: int, offset: int,
                                                raw: bytes) -> None:
    data = _bsd_header(28, frag_field) + b"8 bytes!"
    assert data[6:8] == raw
    packet = ipv4.decode(data, RawQuirk.BSD)
    assert (packet.header.flags, packet.header.fragment_offset) == (flags, offset)
    assert packet.header.df == bool(flags & FLAG_DF)
    assert packet.header.total_length == 28
    assert packet.payload == b"8 bytes!"


def test_bsd_quirk_with_options_subtracts_the_whole_header() -> None:
    options = b"\x01\x01\x01\x00"
    data = _bsd_header(24 + 485, 0x4000, options) + bytes(485)
    assert data[2:4] == b"\xe5\x01"  # 485 again: the options are not counted
    packet = ipv4.decode(data, RawQuirk.BSD)
    assert packet.header.total_length == 509
    assert packet.header.options == options
    assert len(packet.payload) == 485


def test_bsd_quirk_ignores_trailing_bytes() -> None:
    packet = ipv4.decode(_bsd_header(28, 0) + b"8 bytes!" + b"\x00" * 4, RawQuirk.BSD)
    assert packet.payload == b"8 bytes!"


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (_bsd_header(28, 0) + b"7 bytes", 27),  # host-order length says one byte more
        (_with(_bsd_header(28, 0) + b"8 bytes!", 2, b"\xff\xff"), 2),  # 65535 + 20 overflows
        (_bsd_header(20, 0)[:19], 19),
    ],
    ids=["short", "overflow", "truncated-header"],
)
def test_bsd_quirk_decode_errors(data: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        ipv4.decode(data, RawQuirk.BSD)
    assert caught.value.offset == offset


def test_bsd_quirk_overflow_reports_the_real_length() -> None:
    data = _with(_bsd_header(28, 0) + b"8 bytes!", 2, b"\xff\xff")
    with pytest.raises(DecodeError, match="65535"):
        ipv4.decode(data, RawQuirk.BSD)


def test_bsd_quirk_on_a_network_order_header_fails() -> None:
    # Our encoder writes network order; reading it with the quirk swaps 505 into nonsense.
    wire = ipv4.encode(make_header(protocol=255), bytes(485))
    with pytest.raises(DecodeError):
        ipv4.decode(wire, RawQuirk.BSD)


@pytest.mark.parametrize(
    ("system", "release", "quirk"),
    [
        ("Darwin", "24.3.0", RawQuirk.BSD),
        ("Darwin", "", RawQuirk.BSD),
        ("darwin", "23.0.0", RawQuirk.BSD),
        ("Linux", "6.18.44", RawQuirk.NONE),
        ("Linux", "", RawQuirk.NONE),
        ("FreeBSD", "9.3-RELEASE", RawQuirk.BSD),
        ("FreeBSD", "8.4-RELEASE-p36", RawQuirk.BSD),
        ("FreeBSD", "10.0-RELEASE", RawQuirk.NONE),
        ("FreeBSD", "14.1-RELEASE", RawQuirk.NONE),
        ("FreeBSD", "", RawQuirk.NONE),
        ("OpenBSD", "7.5", RawQuirk.NONE),
        ("Windows", "10", RawQuirk.NONE),
    ],
)
def test_raw_quirk_for(system: str, release: str, quirk: RawQuirk) -> None:
    assert ipv4.raw_quirk_for(system, release) is quirk


def test_raw_quirk_for_release_is_optional() -> None:
    assert ipv4.raw_quirk_for("Darwin") is RawQuirk.BSD
    assert ipv4.raw_quirk_for("Linux") is RawQuirk.NONE


# ---------------------------------------------------------------------------------------
# Property: any header the constructor accepts round-trips.

headers = st.builds(
    IPv4Header,
    src=st.integers(0, 2**32 - 1).map(IPv4Address),
    dst=st.integers(0, 2**32 - 1).map(IPv4Address),
    protocol=st.integers(0, 255),
    ttl=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ecn=st.integers(0, 3),
    identification=st.integers(0, 0xFFFF),
    flags=st.integers(0, 7),
    fragment_offset=st.integers(0, 0x1FFF),
    options=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


@settings(max_examples=200)
@given(headers, st.binary(max_size=300))
def test_round_trip_property(header: IPv4Header, payload: bytes) -> None:
    wire = ipv4.encode(header, payload)
    packet = ipv4.decode(wire)
    assert packet.payload == payload
    assert packet.checksum_ok
    assert dataclasses.replace(packet.header, total_length=None, checksum=None) == header
    assert ipv4.encode(packet.header, packet.payload) == wire
