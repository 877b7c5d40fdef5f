"""ICMP / ICMPv6 error codec: round trips, checksums, quoted probes, scapy, malformed input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError
from hdp.wire import hdp, icmp, ipv4, ipv6
from hdp.wire.checksum import internet_checksum
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag
from hdp.wire.icmp import (
    Icmp4ParamProblem,
    Icmp4TimeExceeded,
    Icmp4Type,
    Icmp4Unreach,
    Icmp6ParamProblem,
    Icmp6TimeExceeded,
    Icmp6Type,
    Icmp6Unreach,
    IcmpMessage,
)
from hdp.wire.ipv4 import IPv4Header
from hdp.wire.ipv6 import FragmentHeader, IPv6Header
from hdp.wire.udp import pseudo_header

from .test_malformed import (
    FUZZ,
    HANG_SECONDS,
    assert_frozen_value,
    mutate,
    parse_or_decode_error,
    time_limit,
)

# The error's sender and receiver (the prober), per family.
ROUTER = {4: "198.51.100.1", 6: "2001:db8:ff::1"}
PROBER = {4: "192.0.2.7", 6: "2001:db8::7"}
TARGET = {4: "203.0.113.9", 6: "2001:db8:1::9"}
ADDRS = {4: {}, 6: {"src": ROUTER[6], "dst": PROBER[6]}}

TAG = ProbeTag(run_id=0xC0FFEE, case=253, probe=3, carrier=Carrier.HDP)
HDP_PAYLOAD = hdp.encode(HDPHeader(420, 420, 1739640243546134000),
                         hdp.encode_tagged(TAG, b"probe data " * 8))
PROBE4 = ipv4.encode(IPv4Header(src=PROBER[4], dst=TARGET[4], protocol=253, ttl=1,
                                identification=0xBEEF), HDP_PAYLOAD)
PROBE6 = ipv6.encode(IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=253, hop_limit=1,
                                flow_label=0x12345), HDP_PAYLOAD)
PROBE = {4: PROBE4, 6: PROBE6}


def build(family: int, msg_type: int, code: int, quoted: bytes | None = None,
          **kwargs: Any) -> bytes:
    quote = PROBE[family] if quoted is None else quoted
    return icmp.encode(msg_type, code, quote, family=family, **ADDRS[family], **kwargs)


def checksum_by_hand(family: int, message: bytes) -> int:
    """The checksum a message should carry, from checksum.py alone, not the codec."""
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    if family == 4:
        return internet_checksum(zeroed)
    return internet_checksum(pseudo_header(ROUTER[6], PROBER[6], 58, len(message)) + zeroed)


# ---------------------------------------------------------------------------------------
# Round trips: id -> (family, type, code, encode keywords, mtu, pointer, is_error)

T4, U4, T6, U6 = Icmp4Type, Icmp4Unreach, Icmp6Type, Icmp6Unreach
ROUND_TRIPS: dict[str, tuple[int, int, int, dict[str, Any], int | None, int | None, bool]] = {
    "v4-net-unreachable": (4, T4.DEST_UNREACH, U4.NET, {}, None, None, True),
    "v4-host-unreachable": (4, T4.DEST_UNREACH, U4.HOST, {}, None, None, True),
    "v4-protocol-unreachable": (4, T4.DEST_UNREACH, U4.PROTOCOL, {}, None, None, True),
    "v4-port-unreachable": (4, T4.DEST_UNREACH, U4.PORT, {}, None, None, True),
    "v4-frag-needed-1280": (4, T4.DEST_UNREACH, U4.FRAG_NEEDED, {"mtu": 1280}, 1280, None, True),
    "v4-frag-needed-1500": (4, T4.DEST_UNREACH, U4.FRAG_NEEDED, {"mtu": 1500}, 1500, None, True),
    "v4-frag-needed-max": (4, T4.DEST_UNREACH, U4.FRAG_NEEDED, {"mtu": 0xFFFF}, 0xFFFF, None,
                           True),
    "v4-frag-needed-pre-1191": (4, T4.DEST_UNREACH, U4.FRAG_NEEDED, {}, 0, None, True),
    "v4-net-prohibited": (4, T4.DEST_UNREACH, U4.NET_PROHIBITED, {}, None, None, True),
    "v4-host-prohibited": (4, T4.DEST_UNREACH, U4.HOST_PROHIBITED, {}, None, None, True),
    "v4-admin-prohibited": (4, T4.DEST_UNREACH, U4.ADMIN_PROHIBITED, {}, None, None, True),
    "v4-precedence-cutoff": (4, T4.DEST_UNREACH, U4.PRECEDENCE_CUTOFF, {}, None, None, True),
    "v4-ttl-exceeded": (4, T4.TIME_EXCEEDED, Icmp4TimeExceeded.TTL, {}, None, None, True),
    "v4-reassembly-exceeded": (4, T4.TIME_EXCEEDED, Icmp4TimeExceeded.REASSEMBLY, {}, None,
                               None, True),
    "v4-param-problem-pointer-9": (4, T4.PARAM_PROBLEM, Icmp4ParamProblem.POINTER,
                                   {"pointer": 9}, None, 9, True),
    "v4-param-problem-pointer-255": (4, T4.PARAM_PROBLEM, Icmp4ParamProblem.POINTER,
                                     {"pointer": 255}, None, 255, True),
    "v4-param-problem-missing-option": (4, T4.PARAM_PROBLEM, Icmp4ParamProblem.MISSING_OPTION,
                                        {}, None, 0, True),
    "v4-source-quench": (4, T4.SOURCE_QUENCH, 0, {}, None, None, True),
    "v4-redirect": (4, T4.REDIRECT, 1, {}, None, None, True),
    "v4-echo-request": (4, T4.ECHO_REQUEST, 0, {}, None, None, False),
    "v4-echo-reply": (4, T4.ECHO_REPLY, 0, {}, None, None, False),
    "v4-unknown-type": (4, 200, 99, {}, None, None, False),
    "v6-no-route": (6, T6.DEST_UNREACH, U6.NO_ROUTE, {}, None, None, True),
    "v6-admin-prohibited": (6, T6.DEST_UNREACH, U6.ADMIN_PROHIBITED, {}, None, None, True),
    "v6-beyond-scope": (6, T6.DEST_UNREACH, U6.BEYOND_SCOPE, {}, None, None, True),
    "v6-address-unreachable": (6, T6.DEST_UNREACH, U6.ADDRESS, {}, None, None, True),
    "v6-port-unreachable": (6, T6.DEST_UNREACH, U6.PORT, {}, None, None, True),
    "v6-source-policy": (6, T6.DEST_UNREACH, U6.SOURCE_POLICY, {}, None, None, True),
    "v6-reject-route": (6, T6.DEST_UNREACH, U6.REJECT_ROUTE, {}, None, None, True),
    "v6-source-routing-header": (6, T6.DEST_UNREACH, U6.SOURCE_ROUTING_HEADER, {}, None, None,
                                 True),
    "v6-packet-too-big-1280": (6, T6.PACKET_TOO_BIG, 0, {"mtu": 1280}, 1280, None, True),
    "v6-packet-too-big-9000": (6, T6.PACKET_TOO_BIG, 0, {"mtu": 9000}, 9000, None, True),
    "v6-packet-too-big-max": (6, T6.PACKET_TOO_BIG, 0, {"mtu": 0xFFFFFFFF}, 0xFFFFFFFF, None,
                              True),
    "v6-hop-limit-exceeded": (6, T6.TIME_EXCEEDED, Icmp6TimeExceeded.HOP_LIMIT, {}, None, None,
                              True),
    "v6-reassembly-exceeded": (6, T6.TIME_EXCEEDED, Icmp6TimeExceeded.REASSEMBLY, {}, None,
                               None, True),
    "v6-header-field": (6, T6.PARAM_PROBLEM, Icmp6ParamProblem.HEADER_FIELD, {"pointer": 4},
                        None, 4, True),
    "v6-unrecognized-next-header": (6, T6.PARAM_PROBLEM,
                                    Icmp6ParamProblem.UNRECOGNIZED_NEXT_HEADER, {"pointer": 6},
                                    None, 6, True),
    "v6-unrecognized-option": (6, T6.PARAM_PROBLEM, Icmp6ParamProblem.UNRECOGNIZED_OPTION,
                               {"pointer": 0xFFFFFFFF}, None, 0xFFFFFFFF, True),
    "v6-incomplete-chain": (6, T6.PARAM_PROBLEM, Icmp6ParamProblem.INCOMPLETE_CHAIN, {}, None,
                            0, True),
    "v6-error-type-127": (6, 127, 0, {}, None, None, True),
    "v6-echo-request": (6, T6.ECHO_REQUEST, 0, {}, None, None, False),
    "v6-echo-reply": (6, T6.ECHO_REPLY, 0, {}, None, None, False),
}

QUOTES: dict[str, Callable[[int], bytes]] = {
    "whole": lambda family: PROBE[family],
    "header+8": lambda family: PROBE[family][:(20 if family == 4 else 40) + 8],
    "odd": lambda family: PROBE[family][:61],
    "empty": lambda family: b"",
}


@pytest.mark.parametrize("quote", QUOTES.values(), ids=QUOTES.keys())
@pytest.mark.parametrize(("family", "msg_type", "code", "kwargs", "mtu", "pointer", "is_error"),
                         ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(family: int, msg_type: int, code: int, kwargs: dict[str, Any],
                    mtu: int | None, pointer: int | None, is_error: bool,
                    quote: Callable[[int], bytes]) -> None:
    quoted = quote(family)
    wire = build(family, msg_type, code, quoted, **kwargs)
    assert len(wire) == 8 + len(quoted)
    assert wire[:2] == bytes([msg_type, code])
    assert wire[8:] == quoted
    checksum = int.from_bytes(wire[2:4], "big")
    assert checksum == checksum_by_hand(family, wire)
    assert icmp.verify(wire, family, **ADDRS[family])

    msg = icmp.decode(wire, family)
    assert msg == IcmpMessage(family, msg_type, code, checksum, mtu, pointer, quoted)
    assert msg.is_error is is_error
    assert_frozen_value(msg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.code = 0  # type: ignore[misc]
    # The rest of the header carries nothing but the MTU or pointer.
    if family == 4:
        expected = bytes([pointer or 0, 0]) + (mtu or 0).to_bytes(2, "big")
    else:
        expected = ((mtu or 0) | (pointer or 0)).to_bytes(4, "big")
    assert wire[4:8] == expected


@pytest.mark.parametrize("family", [4, 6])
@FUZZ
@given(data=st.data())
def test_round_trip_any_fields(family: int, data: st.DataObject) -> None:
    msg_type = data.draw(st.integers(0, 255))
    code = data.draw(st.integers(0, 255))
    quoted = data.draw(st.binary(max_size=300))
    kwargs: dict[str, Any] = {}
    if (family == 4 and (msg_type, code) == (3, 4)) or (family == 6 and msg_type == 2):
        kwargs["mtu"] = data.draw(st.integers(0, 0xFFFF if family == 4 else 0xFFFFFFFF))
    if (family == 4 and msg_type == 12) or (family == 6 and msg_type == 4):
        kwargs["pointer"] = data.draw(st.integers(0, 0xFF if family == 4 else 0xFFFFFFFF))
    wire = build(family, msg_type, code, quoted, **kwargs)
    msg = icmp.decode(wire, family)
    assert (msg.type, msg.code, msg.mtu, msg.pointer) == (
        msg_type, code, kwargs.get("mtu"), kwargs.get("pointer"))
    assert msg.quoted == quoted and msg.extensions == b""
    assert icmp.verify(wire, family, **ADDRS[family])


# ---------------------------------------------------------------------------------------
# Checksums and verify


@pytest.mark.parametrize("family", [4, 6])
def test_verify_rejects_any_changed_byte(family: int) -> None:
    wire = build(family, 3 if family == 4 else 1, 1, PROBE[family][:100])
    for at in range(len(wire)):
        changed = bytearray(wire)
        changed[at] ^= 0x10
        assert not icmp.verify(bytes(changed), family, **ADDRS[family]), at


def test_icmpv6_checksum_covers_the_pseudo_header() -> None:
    wire = build(6, 2, 0, mtu=1280)
    assert icmp.verify(wire, 6, ROUTER[6], PROBER[6])
    assert icmp.verify(wire, 6, IPv6Address(ROUTER[6]), IPv6Address(PROBER[6]))
    assert not icmp.verify(wire, 6, PROBER[6], "2001:db8::8")
    assert not icmp.verify(wire, 6)  # no addresses: cannot be checked
    assert not icmp.verify(wire, 6, ROUTER[6])
    assert not icmp.verify(wire, 6, "192.0.2.1", "192.0.2.2")
    assert not icmp.verify(wire, 4)  # the same bytes lack the pseudo-header's part


def test_icmpv4_checksum_ignores_addresses() -> None:
    wire = build(4, 3, 2)
    assert icmp.encode(3, 2, PROBE4, family=4, src="10.0.0.1", dst="10.0.0.2") == wire
    assert icmp.verify(wire, 4, "10.0.0.1", "10.0.0.2")
    assert icmp.verify(wire, 4)


@pytest.mark.parametrize(
    ("data", "family", "addresses"),
    [
        (b"", 4, ()), (b"\x03\x02\xfc\xfd", 4, ()), (bytes(7), 6, (ROUTER[6], PROBER[6])),
        (bytes(8), 5, ()), (bytes(8), 0, ()), (bytes(8), 6, ("not an address", PROBER[6])),
        (bytes(8), 6, (ROUTER[6], 12345678901234567890123456789012345678901234567890)),
        (bytes(8), 6, (ROUTER[6], None)), (bytes(8), 6, (None, PROBER[6])),
    ],
)
def test_verify_is_false_for_what_cannot_be_checked(data: bytes, family: int,
                                                   addresses: tuple[Any, ...]) -> None:
    assert icmp.verify(data, family, *addresses) is False


def test_all_zero_message_sums_to_ffff() -> None:
    # A computed checksum is never stored as 0 by accident: all zeros sum to 0 -> 0xFFFF.
    wire = icmp.encode(0, 0, b"", family=4)
    assert wire == b"\x00\x00\xff\xff\x00\x00\x00\x00"
    assert icmp.verify(wire, 4)


# ---------------------------------------------------------------------------------------
# Encode and decode errors


@pytest.mark.parametrize(
    ("family", "msg_type", "code", "kwargs", "words"),
    [
        (4, 3, 2, {"mtu": 1280}, "no mtu"),
        (4, 11, 0, {"mtu": 1280}, "no mtu"),
        (4, 3, 4, {"pointer": 1}, "no pointer"),
        (4, 3, 4, {"mtu": 0x10000}, "16 bits"),
        (4, 3, 4, {"mtu": -1}, "16 bits"),
        (4, 12, 0, {"pointer": 256}, "8 bits"),
        (6, 1, 0, {"mtu": 1280}, "no mtu"),
        (6, 4, 1, {"mtu": 1280}, "no mtu"),
        (6, 2, 0, {"pointer": 6}, "no pointer"),
        (6, 2, 0, {"mtu": 1 << 32}, "32 bits"),
        (6, 4, 0, {"pointer": 1 << 32}, "32 bits"),
        (4, 256, 0, {}, "type must fit"),
        (4, -1, 0, {}, "type must fit"),
        (6, 1, 256, {}, "code must fit"),
        (5, 3, 2, {}, "family must be 4 or 6"),
        (4, 3, 2, {"quoted": bytes(65516)}, "does not fit"),
        (6, 1, 0, {"quoted": bytes(65528)}, "does not fit"),
        (4, 0, 0, {"extensions": b"ext!"}, "need ICMP type 3 or 11 or 12"),
        (6, 2, 0, {"extensions": b"ext!"}, "need ICMPv6 type 1 or 3"),
        (6, 4, 0, {"extensions": b"ext!"}, "need ICMPv6 type 1 or 3"),
        (4, 11, 0, {"extensions": b"ext!", "quoted": bytes(1021)}, "too long"),
        (6, 3, 0, {"extensions": b"ext!", "quoted": bytes(2041)}, "too long"),
    ],
)
def test_encode_errors(family: int, msg_type: int, code: int, kwargs: dict[str, Any],
                       words: str) -> None:
    quoted = kwargs.pop("quoted", b"quote")
    with pytest.raises(EncodeError, match=words):
        icmp.encode(msg_type, code, quoted, family=family, src=ROUTER[6], dst=PROBER[6],
                    **kwargs)


def test_encode_largest_messages() -> None:
    assert len(icmp.encode(3, 2, bytes(65515 - 8), family=4)) == 65515
    assert len(build(6, 1, 0, bytes(65535 - 8))) == 65535


@pytest.mark.parametrize(
    ("src", "dst"),
    [(None, None), (ROUTER[6], None), (None, PROBER[6]), ("192.0.2.1", "192.0.2.2"),
     (ROUTER[6], "192.0.2.2")],
)
def test_icmpv6_encode_needs_two_ipv6_addresses(src: Any, dst: Any) -> None:
    with pytest.raises(EncodeError):
        icmp.encode(1, 0, b"quote", family=6, src=src, dst=dst)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", range(8))
def test_decode_needs_the_8_byte_header(family: int, length: int) -> None:
    data = build(family, 3 if family == 4 else 1, 0)[:length]
    with pytest.raises(DecodeError) as caught:
        icmp.decode(data, family)
    assert caught.value.offset == length
    assert f"need 8 bytes, have {length}" in caught.value.reason
    assert ("ICMPv6 header" if family == 6 else "ICMP header") in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_decode_rejects_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="family must be 4 or 6"):
        icmp.decode(bytes(8), 5)


def test_decode_reads_the_rest_of_header_only_where_it_means_something() -> None:
    # Bytes 4..7 of a port unreachable or a time exceeded are unused: no MTU, no pointer.
    for family, msg_type, code in [(4, 3, 3), (4, 11, 0), (6, 1, 4), (6, 3, 0), (6, 128, 0)]:
        msg = icmp.decode(bytes([msg_type, code, 0, 0, 0xAA, 0, 0x05, 0xDC]) + PROBE4, family)
        assert (msg.mtu, msg.pointer) == (None, None)
    v4_param = icmp.decode(bytes([12, 0, 0, 0, 20, 0, 0xFF, 0xFF]), 4)
    assert (v4_param.pointer, v4_param.mtu) == (20, None)
    v6_big = icmp.decode(bytes([2, 0, 0, 0, 0, 0, 0x05, 0x00]), 6)
    assert (v6_big.mtu, v6_big.pointer) == (1280, None)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    wire = build(4, 3, 2)
    assert icmp.decode(bytearray(wire), 4) == icmp.decode(memoryview(wire), 4)
    assert type(icmp.decode(bytearray(wire), 4).quoted) is bytes
    assert icmp.verify(bytearray(wire), 4)


# ---------------------------------------------------------------------------------------
# RFC 4884: a length byte and an extension structure after the quote

EXTENSION = bytes.fromhex("2000ddfb00040200")  # version 2 header + empty interface info


@pytest.mark.parametrize(
    ("family", "msg_type", "quote_length", "padded"),
    [(4, 3, 60, 128), (4, 11, 28, 128), (4, 12, 129, 132), (4, 11, 1020, 1020),
     (6, 1, 48, 128), (6, 3, 129, 136), (6, 3, 2040, 2040)],
)
def test_rfc4884_extensions(family: int, msg_type: int, quote_length: int,
                            padded: int) -> None:
    quote = (PROBE[family] * 30)[:quote_length]
    wire = build(family, msg_type, 0, quote, extensions=EXTENSION)
    unit = 4 if family == 4 else 8
    assert wire[5 if family == 4 else 4] == padded // unit
    assert len(wire) == 8 + padded + len(EXTENSION)
    assert icmp.verify(wire, family, **ADDRS[family])
    msg = icmp.decode(wire, family)
    assert msg.quoted == quote + bytes(padded - quote_length)
    assert msg.extensions == EXTENSION
    probe = icmp.quoted_probe(msg)
    assert probe.src == ip_address(PROBER[family])
    assert EXTENSION not in probe.payload


def test_rfc4884_length_in_a_parameter_problem_leaves_the_pointer_alone() -> None:
    wire = icmp.encode(12, 0, PROBE4[:100], family=4, pointer=9, extensions=EXTENSION)
    assert wire[4:6] == bytes([9, 32])
    msg = icmp.decode(wire, 4)
    assert (msg.pointer, msg.extensions) == (9, EXTENSION)


@pytest.mark.parametrize(
    ("family", "length_byte", "honoured"),
    [(4, 0, False), (4, 31, False), (4, 32, True), (4, 33, True), (4, 34, False),
     (6, 15, False), (6, 16, True), (6, 17, False), (6, 0, False)],
    ids=["v4-zero-legacy", "v4-below-128", "v4-128", "v4-132-all", "v4-past-the-end",
         "v6-below-128", "v6-128", "v6-past-the-end", "v6-zero-legacy"],
)
def test_rfc4884_length_is_honoured_only_when_valid(family: int, length_byte: int,
                                                   honoured: bool) -> None:
    body = (PROBE[family] * 2)[:132]
    wire = bytearray(build(family, 3 if family == 4 else 1, 0, body))
    wire[5 if family == 4 else 4] = length_byte
    msg = icmp.decode(bytes(wire), family)
    if honoured:
        size = length_byte * (4 if family == 4 else 8)
        assert (msg.quoted, msg.extensions) == (body[:size], body[size:])
    else:
        assert (msg.quoted, msg.extensions) == (body, b"")


def test_rfc4884_byte_is_no_length_in_other_types() -> None:
    # ICMPv4 type 3 code 4 keeps its MTU; ICMPv6 packet too big's byte 4 is the MTU's.
    wire = icmp.encode(2, 0, bytes(200), family=6, mtu=0x20000000, **ADDRS[6])
    assert wire[4] == 32
    assert icmp.decode(wire, 6).quoted == bytes(200)
    wire4 = bytearray(icmp.encode(5, 1, bytes(200), family=4))
    wire4[5] = 32
    assert icmp.decode(bytes(wire4), 4).quoted == bytes(200)


# ---------------------------------------------------------------------------------------
# The quoted probe


@pytest.mark.parametrize("family", [4, 6])
def test_quoted_probe_whole(family: int) -> None:
    probe = icmp.quoted_probe(icmp.decode(build(family, 3 if family == 4 else 1, 0), family))
    assert_frozen_value(probe)
    assert probe.family == family
    assert (probe.src, probe.dst) == (ip_address(PROBER[family]), ip_address(TARGET[family]))
    assert probe.protocol == 253
    assert probe.total_length == len(PROBE[family])
    assert probe.payload == HDP_PAYLOAD
    if family == 4:
        assert (probe.identification, probe.flow_label) == (0xBEEF, None)
        assert probe.header == ipv4.decode(PROBE4).header
    else:
        assert (probe.identification, probe.flow_label) == (None, 0x12345)
        assert probe.header == ipv6.decode(PROBE6).header
        assert probe.extensions == ()
    found = hdp.find_tag(probe.payload)
    assert found is not None and found[1].tag == TAG and found[1].intact


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("extra", [8, 0, 1, 7, 12, 31])
def test_quoted_probe_truncated(family: int, extra: int) -> None:
    # RFC 792 promises only the header and 8 bytes; the header's lengths still say more.
    header_length = 20 if family == 4 else 40
    quote = PROBE[family][:header_length + extra]
    probe = icmp.quoted_probe(icmp.decode(build(family, 3 if family == 4 else 1, 0, quote),
                                          family))
    assert probe.protocol == 253
    assert (probe.src, probe.dst) == (ip_address(PROBER[family]), ip_address(TARGET[family]))
    assert probe.identification == (0xBEEF if family == 4 else None)
    assert probe.flow_label == (None if family == 4 else 0x12345)
    assert probe.total_length == len(PROBE[family])
    assert probe.payload == HDP_PAYLOAD[:extra]
    with pytest.raises(DecodeError):
        (ipv4.decode if family == 4 else ipv6.decode)(quote)  # what the plain codecs say


@pytest.mark.parametrize("family", [4, 6])
def test_quoted_probe_cuts_zero_padding_at_the_stated_length(family: int) -> None:
    short = (ipv4.encode(IPv4Header(src=PROBER[4], dst=TARGET[4], protocol=17), b"abc")
             if family == 4 else
             ipv6.encode(IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=17), b"abc"))
    msg = icmp.decode(build(family, 3 if family == 4 else 1, 0, short, extensions=EXTENSION),
                      family)
    assert len(msg.quoted) == 128
    probe = icmp.quoted_probe(msg)
    assert (probe.protocol, probe.payload, probe.total_length) == (17, b"abc", len(short))


@pytest.mark.parametrize(
    ("total_length", "payload_end"),
    [(0, 48), (19, 48), (20, 20), (21, 21), (48, 48), (49, 48), (0xFFFF, 48), (0xE501, 48)],
)
def test_quoted_ipv4_total_length_as_carried(total_length: int, payload_end: int) -> None:
    quote = bytearray(PROBE4[:48])
    quote[2:4] = total_length.to_bytes(2, "big")
    probe = icmp.quoted_probe(icmp.decode(build(4, 3, 2, bytes(quote)), 4))
    assert probe.total_length == total_length
    assert probe.payload == PROBE4[20:payload_end]
    assert probe.protocol == 253


def test_quoted_ipv4_with_options() -> None:
    options = bytes([7, 7, 4, 0, 0, 0, 0, 0])  # record route, one slot, EOL
    packet = ipv4.encode(IPv4Header(src=PROBER[4], dst=TARGET[4], protocol=253,
                                    identification=7, options=options), HDP_PAYLOAD)
    probe = icmp.quoted_probe(icmp.decode(build(4, 11, 0, packet[:36]), 4))
    assert isinstance(probe.header, IPv4Header)
    assert probe.header.options == options
    assert (probe.identification, probe.payload) == (7, HDP_PAYLOAD[:8])


def test_quoted_ipv4_fragment_header_fields() -> None:
    packet = ipv4.encode(IPv4Header(src=PROBER[4], dst=TARGET[4], protocol=17,
                                    flags=ipv4.FLAG_MF, fragment_offset=185,
                                    identification=0xABCD), bytes(64))
    probe = icmp.quoted_probe(icmp.decode(build(4, 11, 1, packet), 4))
    assert isinstance(probe.header, IPv4Header)
    assert (probe.header.mf, probe.header.fragment_offset) == (True, 185)
    assert probe.identification == 0xABCD


HBH = bytes([60, 0, 1, 4, 0, 0, 0, 0])  # -> destination options, PadN
DEST = bytes([44, 1, 1, 12]) + bytes(12)  # 16 bytes -> fragment


@pytest.mark.parametrize(
    ("cut", "protocol", "kinds"),
    [(None, 253, [0, 60, 44]), (40 + 8 + 16 + 8 + 3, 253, [0, 60, 44]),
     (40 + 8 + 16 + 8, 253, [0, 60, 44]), (40 + 8 + 16 + 7, 44, [0, 60]),
     (40 + 8 + 15, 60, [0]), (40 + 8, 60, [0]), (40 + 7, 0, []), (40, 0, [])],
    ids=["whole", "into-payload", "chain-end", "in-fragment", "in-dest-opts", "after-hbh",
         "in-hbh", "bare-header"],
)
def test_quoted_ipv6_walks_extension_headers_as_far_as_quoted(cut: int | None, protocol: int,
                                                              kinds: list[int]) -> None:
    chain = HBH + DEST + FragmentHeader(253, 0, True, 0xABCDEF).encode()
    packet = ipv6.encode(IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=0,
                                    flow_label=0xFEDCB), chain + HDP_PAYLOAD)
    quote = packet if cut is None else packet[:cut]
    probe = icmp.quoted_probe(icmp.decode(build(6, 4, 1, quote, pointer=6), 6))
    assert probe.protocol == protocol
    assert [e.kind for e in probe.extensions] == kinds
    walked = sum(len(e.data) for e in probe.extensions)
    assert probe.payload == quote[40 + walked:]
    assert probe.flow_label == 0xFEDCB
    assert probe.total_length == len(packet)


def test_quoted_ipv6_later_fragment_ends_the_walk() -> None:
    packet = ipv6.encode(IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=44),
                         FragmentHeader(60, 185, False, 9).encode() + DEST + b"middle")
    probe = icmp.quoted_probe(icmp.decode(build(6, 3, 1, packet), 6))
    assert [e.kind for e in probe.extensions] == [44]
    assert probe.protocol == 60
    assert probe.payload == DEST + b"middle"


def test_quoted_ipv6_payload_length_shorter_than_the_quote() -> None:
    packet = ipv6.encode(IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=0), HBH + b"x")
    probe = icmp.quoted_probe(icmp.decode(build(6, 1, 0, packet + bytes(100)), 6))
    assert (probe.protocol, probe.payload, probe.total_length) == (60, b"x", 49)


@pytest.mark.parametrize(
    ("family", "quote", "offset", "words"),
    [
        (4, b"", 0, "need 20 bytes, have 0"),
        (4, PROBE4[:19], 19, "need 20 bytes, have 19"),
        (4, bytes([0x65]) + PROBE4[1:28], 0, "version is 6, not 4"),
        (4, PROBE6[:60], 0, "version is 6, not 4"),
        (4, bytes([0x44]) + PROBE4[1:28], 0, "IHL 4 is below the minimum of 5"),
        (4, bytes([0x46]) + PROBE4[1:23], 20, "IHL 6 says 24 bytes of header, have 23"),
        (4, bytes([0x4F]) + PROBE4[1:59], 20, "IHL 15 says 60 bytes of header, have 59"),
        (6, b"", 0, "need 40 bytes, have 0"),
        (6, PROBE6[:39], 39, "need 40 bytes, have 39"),
        (6, PROBE4, 0, "version is 4, not 6"),
    ],
    ids=["v4-empty", "v4-19", "v4-version-6", "v4-quoting-ipv6", "v4-ihl-4", "v4-options-cut",
         "v4-ihl-15-cut", "v6-empty", "v6-39", "v6-quoting-ipv4"],
)
def test_quoted_probe_errors(family: int, quote: bytes, offset: int, words: str) -> None:
    msg = icmp.decode(build(family, 3 if family == 4 else 1, 0, quote), family)
    with pytest.raises(DecodeError) as caught:
        icmp.quoted_probe(msg)
    assert caught.value.offset == offset
    assert words in caught.value.reason
    assert f"quoted IPv{family} header" in str(caught.value)


@pytest.mark.parametrize(("family", "msg_type"), [(4, 0), (4, 8), (4, 13), (6, 128), (6, 129)])
def test_quoted_probe_of_an_informational_message(family: int, msg_type: int) -> None:
    msg = icmp.decode(build(family, msg_type, 0), family)
    assert not msg.is_error
    with pytest.raises(DecodeError, match="not an error") as caught:
        icmp.quoted_probe(msg)
    assert caught.value.offset == 0


# ---------------------------------------------------------------------------------------
# Realistic: our probe on loopback, and what the kernel sends back


def test_protocol_unreachable_from_loopback() -> None:
    # ipv4.encode of our HDP probe with protocol 253, identification 0x1234, as a Linux host
    # without a listener answers: protocol unreachable from 127.0.0.1, quoting up to 576.
    payload = hdp.encode(HDPHeader(420, 420, 1739640243546134000),
                         hdp.encode_tagged(TAG, b"x" * 1000))
    probe = ipv4.encode(IPv4Header(src="127.0.0.1", dst="127.0.0.1", protocol=253,
                                   identification=0x1234, flags=ipv4.FLAG_DF), payload)
    quote = probe[:576 - 20 - 8]
    message = icmp.encode(Icmp4Type.DEST_UNREACH, Icmp4Unreach.PROTOCOL, quote, family=4)
    received = ipv4.encode(IPv4Header(src="127.0.0.1", dst="127.0.0.1", protocol=1,
                                      ttl=64, dscp=48), message)
    assert len(received) == 576

    outer = ipv4.decode(received)
    assert outer.header.protocol == icmp.PROTO_ICMP
    assert icmp.verify(outer.payload, 4)
    msg = icmp.decode(outer.payload, 4)
    assert (msg.type, msg.code, msg.mtu) == (3, 2, None)
    assert msg.is_error
    quoted = icmp.quoted_probe(msg)
    assert quoted.protocol == 253
    assert quoted.identification == 0x1234
    assert quoted.src == quoted.dst == IPv4Address("127.0.0.1")
    assert quoted.total_length == len(probe) > len(quote)
    assert quoted.payload == payload[:548 - 20]
    found = hdp.find_tag(quoted.payload)
    assert found is not None
    carrier, tagged = found
    assert carrier is Carrier.HDP and tagged.tag == TAG
    assert not tagged.intact  # the quote cut the data short


def test_unrecognized_next_header_from_ipv6_loopback() -> None:
    # Linux answers an IPv6 probe with an unknown next header by a parameter problem,
    # code 1, pointing at the fixed header's next-header field (offset 6).
    probe = ipv6.encode(IPv6Header(src="::1", dst="::1", next_header=253, flow_label=0xABCDE),
                        HDP_PAYLOAD)
    message = icmp.encode(Icmp6Type.PARAM_PROBLEM, Icmp6ParamProblem.UNRECOGNIZED_NEXT_HEADER,
                          probe, family=6, pointer=6, src="::1", dst="::1")
    assert icmp.verify(message, 6, "::1", "::1")
    msg = icmp.decode(message, 6)
    assert (msg.type, msg.code, msg.pointer) == (4, 1, 6)
    quoted = icmp.quoted_probe(msg)
    assert msg.quoted[msg.pointer or 0] == quoted.protocol == 253
    assert quoted.flow_label == 0xABCDE
    assert (quoted.src, quoted.dst) == (IPv6Address("::1"), IPv6Address("::1"))


def test_constants() -> None:
    assert (T4.DEST_UNREACH, U4.PROTOCOL, U4.FRAG_NEEDED) == (3, 2, 4)
    assert {9, 10, 13} == icmp.ICMP4_PROHIBITED_CODES
    assert (T6.DEST_UNREACH, U6.ADMIN_PROHIBITED, T6.PACKET_TOO_BIG, T6.TIME_EXCEEDED,
            T6.PARAM_PROBLEM, Icmp6ParamProblem.UNRECOGNIZED_NEXT_HEADER) == (1, 1, 2, 3, 4, 1)
    assert U6.ADMIN_PROHIBITED in icmp.ICMP6_PROHIBITED_CODES
    assert (icmp.PROTO_ICMP, icmp.PROTO_ICMPV6) == (1, 58)


# ---------------------------------------------------------------------------------------
# scapy as the independent oracle

SCAPY_FIX = "scapy is the oracle for these tests: pip install scapy (or .[test])"
ORACLE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def sc() -> SimpleNamespace:
    pytest.importorskip("scapy", reason=SCAPY_FIX)
    from scapy.layers import inet, inet6
    from scapy.packet import Raw
    from scapy.utils import checksum
    return SimpleNamespace(inet=inet, inet6=inet6, Raw=Raw, checksum=checksum)


v4_addresses = st.integers(0, 2**32 - 1).map(lambda n: str(IPv4Address(n)))
v6_addresses = st.integers(0, 2**128 - 1).map(lambda n: str(IPv6Address(n)))
# Protocols scapy's IPerror/IPerror6 hand to Raw (no TCPerror/UDPerror/ICMPerror/headers).
raw_protocols = st.sampled_from([p for p in range(256)
                                 if p not in (0, 1, 4, 6, 17, 41, 43, 44, 47, 50, 51, 58, 60,
                                              103, 112, 132, 135, 139, 140)])
V4_CASES = [(t, c, kw) for (f, t, c, kw, *_rest) in ROUND_TRIPS.values() if f == 4 and
            t in (3, 11, 12)]
V6_CASES = [(t, c, kw) for (f, t, c, kw, *_rest) in ROUND_TRIPS.values() if f == 6 and
            t in (1, 2, 3, 4)]


@pytest.mark.parametrize(("msg_type", "code", "kwargs"), V4_CASES)
@pytest.mark.parametrize("cut", [128, 28], ids=["128-bytes", "header+8"])
def test_our_icmpv4_reads_the_same_in_scapy(sc: SimpleNamespace, msg_type: int, code: int,
                                            kwargs: dict[str, Any], cut: int | None) -> None:
    quote = PROBE4[:cut]
    message = icmp.encode(msg_type, code, quote, family=4, **kwargs)
    wire = ipv4.encode(IPv4Header(src=ROUTER[4], dst=PROBER[4], protocol=1), message)
    theirs = sc.inet.IP(wire)
    layer = theirs[sc.inet.ICMP]
    assert (layer.type, layer.code, layer.chksum) == (msg_type, code,
                                                     int.from_bytes(message[2:4], "big"))
    if (msg_type, code) == (3, 4):
        assert layer.nexthopmtu == kwargs.get("mtu", 0)
    if msg_type == 12:
        assert layer.ptr == kwargs.get("pointer", 0)
    quoted = theirs[sc.inet.IPerror]
    probe = icmp.quoted_probe(icmp.decode(message, 4))
    assert (quoted.proto, quoted.id, quoted.len) == (probe.protocol, probe.identification,
                                                     probe.total_length)
    assert (IPv4Address(quoted.src), IPv4Address(quoted.dst)) == (probe.src, probe.dst)
    assert bytes(quoted.payload) == probe.payload
    # scapy's checksum of our message, computed two ways.
    assert sc.checksum(message[:2] + b"\x00\x00" + message[4:]) == layer.chksum
    del theirs[sc.inet.ICMP].chksum
    assert bytes(theirs) == wire


_V6_LAYER = {1: "ICMPv6DestUnreach", 2: "ICMPv6PacketTooBig", 3: "ICMPv6TimeExceeded",
             4: "ICMPv6ParamProblem"}


@pytest.mark.parametrize(("msg_type", "code", "kwargs"), V6_CASES)
@pytest.mark.parametrize("cut", [128, 48], ids=["128-bytes", "header+8"])
def test_our_icmpv6_reads_the_same_in_scapy(sc: SimpleNamespace, msg_type: int, code: int,
                                            kwargs: dict[str, Any], cut: int | None) -> None:
    quote = PROBE6[:cut]
    message = build(6, msg_type, code, quote, **kwargs)
    wire = ipv6.encode(IPv6Header(src=ROUTER[6], dst=PROBER[6], next_header=58), message)
    theirs = sc.inet6.IPv6(wire)
    layer = theirs[getattr(sc.inet6, _V6_LAYER[msg_type])]
    assert (layer.type, layer.code, layer.cksum) == (msg_type, code,
                                                    int.from_bytes(message[2:4], "big"))
    if msg_type == 2:
        assert layer.mtu == kwargs.get("mtu", 0)
    if msg_type == 4:
        assert layer.ptr == kwargs.get("pointer", 0)
    quoted = theirs[sc.inet6.IPerror6]
    probe = icmp.quoted_probe(icmp.decode(message, 6))
    assert (quoted.nh, quoted.fl, quoted.plen + 40) == (probe.protocol, probe.flow_label,
                                                         probe.total_length)
    assert (IPv6Address(quoted.src), IPv6Address(quoted.dst)) == (probe.src, probe.dst)
    assert bytes(quoted.payload) == probe.payload
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    assert sc.inet6.in6_chksum(58, theirs, zeroed) == layer.cksum
    del layer.cksum
    assert bytes(theirs) == wire


@pytest.mark.parametrize("family", [4, 6])
def test_scapy_guesses_extensions_without_a_length(sc: SimpleNamespace, family: int) -> None:
    # A quote of over 128 bytes with no RFC 4884 length: scapy takes the bytes after 128 for
    # an extension structure (RFC 4884 section 5.5's guess for legacy MPLS routers) without
    # checking its version or checksum; we keep them in the quote, where they belong here.
    message = build(family, 3 if family == 4 else 1, 0)
    assert len(message) > 8 + 128
    layer = (sc.inet.ICMP if family == 4 else sc.inet6.ICMPv6DestUnreach)(message)
    assert bytes(layer.ext) == PROBE[family][128:]
    msg = icmp.decode(message, family)
    assert (msg.quoted, msg.extensions) == (PROBE[family], b"")
    assert icmp.quoted_probe(msg).payload == HDP_PAYLOAD


@pytest.mark.parametrize("family", [4, 6])
def test_our_rfc4884_extensions_read_the_same_in_scapy(sc: SimpleNamespace, family: int) -> None:
    if family == 4:
        message = icmp.encode(11, 0, PROBE4[:60], family=4, extensions=EXTENSION)
        layer = sc.inet.ICMP(message)
    else:
        message = build(6, 3, 0, PROBE6[:60], extensions=EXTENSION)
        layer = sc.inet6.ICMPv6TimeExceeded(message)
    assert layer.length * (4 if family == 4 else 8) == len(icmp.decode(message, family).quoted)
    assert bytes(layer.ext) == EXTENSION
    assert layer.ext.version == 2


@ORACLE
@given(src=v4_addresses, dst=v4_addresses, proto=raw_protocols, ident=st.integers(0, 0xFFFF),
       data=st.binary(max_size=64), cut=st.integers(28, 120),
       kind=st.sampled_from([(3, 2), (3, 4), (3, 10), (3, 13), (11, 0), (12, 0)]),
       value=st.integers(0, 0xFF))
def test_scapy_icmpv4_errors_read_the_same_in_ours(sc: SimpleNamespace, src: str, dst: str,
                                                   proto: int, ident: int, data: bytes,
                                                   cut: int, kind: tuple[int, int],
                                                   value: int) -> None:
    msg_type, code = kind
    extra: dict[str, int] = {}
    if kind == (3, 4):
        extra["nexthopmtu"] = value * 256
    if msg_type == 12:
        extra["ptr"] = value
    original = bytes(sc.inet.IPerror(src=src, dst=dst, proto=proto, id=ident) / sc.Raw(data))
    built = (sc.inet.IP(src=ROUTER[4], dst=PROBER[4]) / sc.inet.ICMP(type=msg_type, code=code,
                                                                     **extra)
             / sc.Raw(original[:cut]))
    wire = bytes(built)
    outer = ipv4.decode(wire)
    assert outer.header.protocol == 1
    assert icmp.verify(outer.payload, 4)
    msg = icmp.decode(outer.payload, 4)
    theirs = sc.inet.IP(wire)[sc.inet.ICMP]
    assert (msg.type, msg.code, msg.checksum) == (theirs.type, theirs.code, theirs.chksum)
    assert msg.mtu == (value * 256 if kind == (3, 4) else None)
    assert msg.pointer == (value if msg_type == 12 else None)
    assert msg.quoted == original[:cut]
    probe = icmp.quoted_probe(msg)
    assert (probe.protocol, probe.identification, probe.flow_label) == (proto, ident, None)
    assert (probe.src, probe.dst) == (IPv4Address(src), IPv4Address(dst))
    assert probe.total_length == len(original)
    assert probe.payload == data[:cut - 20]


@ORACLE
@given(src=v6_addresses, dst=v6_addresses, nh=raw_protocols, fl=st.integers(0, 0xFFFFF),
       data=st.binary(max_size=64), cut=st.integers(48, 120),
       kind=st.sampled_from(["too-big", "prohibited", "no-route", "hop-limit",
                             "next-header"]),
       value=st.integers(0, 0xFFFFFFFF))
def test_scapy_icmpv6_errors_read_the_same_in_ours(sc: SimpleNamespace, src: str, dst: str,
                                                   nh: int, fl: int, data: bytes, cut: int,
                                                   kind: str, value: int) -> None:
    i6 = sc.inet6
    layer, msg_type, code, mtu, pointer = {
        "too-big": (i6.ICMPv6PacketTooBig(mtu=value), 2, 0, value, None),
        "prohibited": (i6.ICMPv6DestUnreach(code=1), 1, 1, None, None),
        "no-route": (i6.ICMPv6DestUnreach(code=0), 1, 0, None, None),
        "hop-limit": (i6.ICMPv6TimeExceeded(code=0), 3, 0, None, None),
        "next-header": (i6.ICMPv6ParamProblem(code=1, ptr=value), 4, 1, None, value),
    }[kind]
    original = bytes(i6.IPerror6(src=src, dst=dst, nh=nh, fl=fl) / sc.Raw(data))
    wire = bytes(i6.IPv6(src=ROUTER[6], dst=PROBER[6]) / layer / sc.Raw(original[:cut]))
    outer = ipv6.decode(wire)
    assert outer.upper_protocol == 58
    assert icmp.verify(outer.payload, 6, ROUTER[6], PROBER[6])
    msg = icmp.decode(outer.payload, 6)
    assert (msg.type, msg.code, msg.mtu, msg.pointer) == (msg_type, code, mtu, pointer)
    assert msg.checksum == i6.IPv6(wire).payload.cksum
    assert msg.quoted == original[:cut]
    probe = icmp.quoted_probe(msg)
    assert (probe.protocol, probe.identification, probe.flow_label) == (nh, None, fl)
    assert (probe.src, probe.dst) == (IPv6Address(src), IPv6Address(dst))
    assert probe.total_length == len(original)
    assert probe.payload == data[:cut - 40]


def test_scapy_examples(sc: SimpleNamespace) -> None:
    inet, i6 = sc.inet, sc.inet6
    # Protocol unreachable quoting protocol 253, id 4242.
    wire = bytes(inet.IP(src="127.0.0.1", dst="127.0.0.1") / inet.ICMP(type=3, code=2)
                 / inet.IPerror(proto=253, id=4242) / sc.Raw(b"hdp probe"))
    msg = icmp.decode(ipv4.decode(wire).payload, 4)
    probe = icmp.quoted_probe(msg)
    assert (msg.type, msg.code, probe.protocol, probe.identification) == (3, 2, 253, 4242)
    assert probe.payload == b"hdp probe"
    # Fragmentation needed with the next-hop MTU.
    wire = bytes(inet.IP() / inet.ICMP(type=3, code=4, nexthopmtu=1280)
                 / inet.IPerror(proto=17, id=1, flags="DF") / sc.Raw(bytes(8)))
    msg = icmp.decode(ipv4.decode(wire).payload, 4)
    assert (msg.mtu, icmp.quoted_probe(msg).protocol) == (1280, 17)
    # IPv6 packet too big.
    wire = bytes(i6.IPv6(src="fe80::1", dst="fe80::2") / i6.ICMPv6PacketTooBig(mtu=1280)
                 / i6.IPerror6(src="fe80::2", dst="2001:db8::9", nh=253, fl=0xBEEF)
                 / sc.Raw(b"big" * 500))
    message = ipv6.decode(wire).payload
    assert icmp.verify(message, 6, "fe80::1", "fe80::2")
    msg = icmp.decode(message, 6)
    probe = icmp.quoted_probe(msg)
    assert (msg.mtu, probe.protocol, probe.flow_label) == (1280, 253, 0xBEEF)
    assert probe.dst == IPv6Address("2001:db8::9")
    assert probe.total_length == 40 + 1500


@pytest.mark.parametrize("family", [4, 6])
def test_scapy_rfc4884_errors_read_the_same_in_ours(sc: SimpleNamespace, family: int) -> None:
    inet, i6 = sc.inet, sc.inet6
    ext = inet.ICMPExtension_Header() / inet.ICMPExtension_InterfaceInformation()
    if family == 4:
        pkt = (inet.IP(src=ROUTER[4], dst=PROBER[4]) / inet.ICMP(type=11, length=32, ext=ext)
               / inet.IPerror(src=PROBER[4], dst=TARGET[4], proto=253, id=77)
               / sc.Raw(b"payload"))
        message = ipv4.decode(bytes(pkt)).payload
    else:
        pkt = (i6.IPv6(src=ROUTER[6], dst=PROBER[6]) / i6.ICMPv6TimeExceeded(length=16, ext=ext)
               / i6.IPerror6(src=PROBER[6], dst=TARGET[6], nh=253, fl=77) / sc.Raw(b"payload"))
        message = ipv6.decode(bytes(pkt)).payload
    assert icmp.verify(message, family, **ADDRS[family])
    msg = icmp.decode(message, family)
    assert len(msg.quoted) == 128
    assert msg.extensions == bytes(ext)
    probe = icmp.quoted_probe(msg)
    assert (probe.protocol, probe.payload) == (253, b"payload")
    assert 77 in (probe.identification, probe.flow_label)


def test_scapy_ipv6_quote_with_extension_headers(sc: SimpleNamespace) -> None:
    i6 = sc.inet6
    original = bytes(i6.IPv6(src=PROBER[6], dst=TARGET[6], fl=3) / i6.IPv6ExtHdrHopByHop()
                     / i6.IPv6ExtHdrDestOpt() / i6.IPv6ExtHdrFragment(nh=253, m=1, id=5)
                     / sc.Raw(HDP_PAYLOAD))
    wire = bytes(i6.IPv6(src=ROUTER[6], dst=PROBER[6]) / i6.ICMPv6ParamProblem(code=1, ptr=56)
                 / sc.Raw(original))
    msg = icmp.decode(ipv6.decode(wire).payload, 6)
    probe = icmp.quoted_probe(msg)
    assert [e.kind for e in probe.extensions] == [0, 60, 44]
    assert probe.protocol == msg.quoted[msg.pointer or 0] == 253
    assert probe.payload == HDP_PAYLOAD


# ---------------------------------------------------------------------------------------
# Malformed input: a value or DecodeError, never anything else; verify is a predicate.

SEEDS: dict[str, tuple[int, bytes]] = {
    "v4-protocol-unreachable": (4, build(4, 3, 2)),
    "v4-frag-needed-header+8": (4, build(4, 3, 4, PROBE4[:28], mtu=1400)),
    "v4-param-problem": (4, build(4, 12, 0, PROBE4[:40], pointer=9)),
    "v4-rfc4884": (4, build(4, 11, 0, PROBE4[:60], extensions=EXTENSION)),
    "v4-options-quote": (4, build(4, 3, 13, ipv4.encode(
        IPv4Header(src=PROBER[4], dst=TARGET[4], protocol=253, options=bytes([1] * 8)),
        b"x" * 20))),
    "v4-echo": (4, build(4, 8, 0, b"ping")),
    "v6-packet-too-big": (6, build(6, 2, 0, PROBE6[:200], mtu=1280)),
    "v6-prohibited-header+8": (6, build(6, 1, 1, PROBE6[:48])),
    "v6-param-problem-chain": (6, build(6, 4, 1, ipv6.encode(
        IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=0),
        HBH + DEST + FragmentHeader(253, 0, True, 1).encode() + HDP_PAYLOAD), pointer=6)),
    "v6-later-fragment": (6, build(6, 3, 1, ipv6.encode(
        IPv6Header(src=PROBER[6], dst=TARGET[6], next_header=44),
        FragmentHeader(60, 185, False, 9).encode() + DEST + b"middle"))),
    "v6-rfc4884": (6, build(6, 3, 0, PROBE6[:60], extensions=EXTENSION)),
}


def check(data: bytes, family: int) -> None:
    msg = parse_or_decode_error(lambda: icmp.decode(data, family), data)
    with time_limit(HANG_SECONDS):
        for addresses in ((), (ROUTER[6], PROBER[6]), (ROUTER[4], PROBER[4])):
            assert icmp.verify(data, family, *addresses) in (True, False)
    if msg is None:
        return
    assert_frozen_value(msg)
    assert msg.family == family
    assert bytes([msg.type, msg.code]) + msg.checksum.to_bytes(2, "big") == data[:4]
    assert data[8:] == msg.quoted + msg.extensions
    assert isinstance(msg.is_error, bool)
    probe = parse_or_decode_error(lambda: icmp.quoted_probe(msg), msg.quoted)
    if probe is None:
        return
    assert_frozen_value(probe)
    assert probe.family == family
    assert 0 <= probe.protocol <= 255
    quote = msg.quoted
    if family == 4:
        assert isinstance(probe.header, IPv4Header)
        start = probe.header.header_length
        assert (probe.identification, probe.flow_label) == (probe.header.identification, None)
    else:
        assert isinstance(probe.header, IPv6Header)
        start = 40 + sum(len(e.data) for e in probe.extensions)
        assert (probe.identification, probe.flow_label) == (None, probe.header.flow_label)
    assert probe.payload == quote[start:start + len(probe.payload)]
    assert (probe.src, probe.dst) == (probe.header.src, probe.header.dst)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    family, seed = draw(st.sampled_from(list(SEEDS.values())))
    return family, mutate(draw, bytearray(seed), near_start=40)  # headers decide


@pytest.mark.parametrize("family", [4, 6])
@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(family: int, data: bytes) -> None:
    check(data, family)


@pytest.mark.parametrize("family", [4, 6])
@FUZZ
@given(head=st.sampled_from([bytes([3, 2, 0, 0, 0, 0, 0, 0]), bytes([1, 1, 0, 0, 0, 0, 0, 0]),
                             bytes([11, 0, 0, 0, 0, 33, 0, 0]), bytes([3, 0, 0, 0, 16, 0, 0, 0])]),
       quote=st.binary(max_size=200))
def test_random_quotes(family: int, head: bytes, quote: bytes) -> None:
    check(head + quote, family)


@FUZZ
@given(case=mutated())
def test_mutated_messages(case: tuple[int, bytes]) -> None:
    family, data = case
    check(data, family)


@pytest.mark.parametrize(("family", "seed"), SEEDS.values(), ids=SEEDS.keys())
def test_every_truncation_of_every_seed(family: int, seed: bytes) -> None:
    assert icmp.verify(seed, family, **ADDRS[family])
    msg = icmp.decode(seed, family)
    if msg.is_error:
        assert icmp.quoted_probe(msg).protocol in (253, 60)
    for n in range(len(seed) + 1):
        check(seed[:n], family)
        check(seed[:8] + seed[8 + n:], family)  # the quote losing its start


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", [0xFFFF, 0x10000, 70000])
def test_huge_input(family: int, length: int) -> None:
    for fill in (b"\x00", b"\xff", b"\x45", b"\x60"):
        check(bytes([3, 2, 0, 0, 0, 0, 0, 0]) + fill * length, family)
    check(build(family, 3 if family == 4 else 1, 0)[:8] + PROBE[family][:20] + bytes(length),
          family)
