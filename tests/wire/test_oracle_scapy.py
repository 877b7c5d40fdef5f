"""scapy as an independent implementation: our bytes parse the same in scapy, and back."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdp.wire import ipv4, ipv6, udp
from hdp.wire.ipv4 import IPv4Header
from hdp.wire.ipv6 import IPv6Header

scapy = pytest.importorskip(
    "scapy", reason="scapy is the oracle for these tests: pip install scapy (or .[test])"
)

from scapy.layers.inet import (  # noqa: E402
    IP,
    UDP,
    IPOption,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    in4_chksum,
)
from scapy.layers.inet6 import (  # noqa: E402
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
    in6_chksum,
)
from scapy.packet import Raw  # noqa: E402
from scapy.utils import checksum as scapy_checksum  # noqa: E402

ORACLE = settings(max_examples=200, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------
# Strategies

v4_addresses = st.integers(0, 2**32 - 1).map(lambda n: str(IPv4Address(n)))
v6_addresses = st.integers(0, 2**128 - 1).map(lambda n: str(IPv6Address(n)))
ports = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=120)

# Well-formed IPv4 options (scapy re-serialises what it parsed, so give it sense).
_option = st.one_of(
    st.just(b"\x01"),  # NOP
    st.just(b"\x94\x04\x00\x00"),  # router alert
    st.integers(1, 9).map(lambda k: bytes([7, 3 + 4 * k, 4]) + bytes(4 * k)),  # record route
    st.binary(min_size=0, max_size=6).map(lambda d: bytes([0x1E, 2 + len(d)]) + d),  # unknown
)


def _pad_options(parts: list[bytes]) -> bytes:
    """As many of `parts` as fit in 40 bytes, padded with EOL to a multiple of 4."""
    raw = b""
    for part in parts:
        if len(raw) + len(part) > 40:
            break
        raw += part
    return raw + b"\x00" * (-len(raw) % 4)


ipv4_options = st.lists(_option, max_size=6).map(_pad_options)
# Protocols scapy leaves as Raw payload, so re-serialising the IP layer is byte-exact.
raw_protocols = st.sampled_from(
    [p for p in range(256) if p not in (1, 2, 4, 6, 17, 41, 47, 50, 51, 58, 103, 112, 132)]
)
# ... and for IPv6, also not an extension header (those have their own tests below).
raw_next_headers = st.sampled_from(
    [p for p in range(256) if p not in (0, 4, 6, 17, 41, 43, 44, 47, 50, 51, 58, 60, 103, 112,
                                        132, 135, 139, 140)]
)


def _scapy_ipv4_fields(pkt: Any) -> dict[str, Any]:
    return {
        "version": pkt.version, "ihl": pkt.ihl, "tos": pkt.tos, "total_length": pkt.len,
        "identification": pkt.id, "flags": int(pkt.flags), "fragment_offset": pkt.frag,
        "ttl": pkt.ttl, "protocol": pkt.proto, "checksum": pkt.chksum,
        "src": IPv4Address(pkt.src), "dst": IPv4Address(pkt.dst),
    }


def _our_ipv4_fields(h: IPv4Header) -> dict[str, Any]:
    return {
        "version": h.version, "ihl": h.ihl, "tos": h.tos, "total_length": h.total_length,
        "identification": h.identification, "flags": h.flags,
        "fragment_offset": h.fragment_offset, "ttl": h.ttl, "protocol": h.protocol,
        "checksum": h.checksum, "src": h.src, "dst": h.dst,
    }


def _scapy_ipv6_fields(pkt: Any) -> dict[str, Any]:
    return {"version": pkt.version, "traffic_class": pkt.tc, "flow_label": pkt.fl,
            "payload_length": pkt.plen, "next_header": pkt.nh, "hop_limit": pkt.hlim,
            "src": IPv6Address(pkt.src), "dst": IPv6Address(pkt.dst)}


def _our_ipv6_fields(h: IPv6Header) -> dict[str, Any]:
    return {"version": h.version, "traffic_class": h.traffic_class, "flow_label": h.flow_label,
            "payload_length": h.payload_length, "next_header": h.next_header,
            "hop_limit": h.hop_limit, "src": h.src, "dst": h.dst}


# ---------------------------------------------------------------------------------------
# (a) Our encodings, read by scapy.


@ORACLE
@given(
    src=v4_addresses, dst=v4_addresses, protocol=raw_protocols, ttl=st.integers(0, 255),
    dscp=st.integers(0, 63), ecn=st.integers(0, 3), identification=st.integers(0, 0xFFFF),
    flags=st.integers(0, 7), fragment_offset=st.integers(0, 0x1FFF), options=ipv4_options,
    payload=payloads,
)
def test_our_ipv4_reads_the_same_in_scapy(payload: bytes, **fields: Any) -> None:
    header = IPv4Header(**fields)
    wire = ipv4.encode(header, payload)
    ours = ipv4.decode(wire).header
    theirs = IP(wire)
    assert _scapy_ipv4_fields(theirs) == _our_ipv4_fields(ours)
    assert bytes(theirs.payload) == payload
    # scapy's own checksum of our header bytes, two ways.
    assert scapy_checksum(wire[:10] + b"\x00\x00" + wire[12:header.header_length]) == ours.checksum
    rebuilt = IP(wire)
    del rebuilt.chksum
    assert bytes(rebuilt) == wire


@ORACLE
@given(src=v4_addresses, dst=v4_addresses, sport=ports, dport=ports, payload=payloads)
def test_our_udp_over_ipv4_reads_the_same_in_scapy(src: str, dst: str, sport: int, dport: int,
                                                   payload: bytes) -> None:
    datagram = udp.encode(sport, dport, payload, src, dst)
    wire = ipv4.encode(IPv4Header(src=src, dst=dst, protocol=17), datagram)
    theirs = IP(wire)
    assert UDP in theirs
    u = theirs[UDP]
    assert (u.sport, u.dport, u.len) == (sport, dport, 8 + len(payload))
    assert u.chksum == int.from_bytes(datagram[6:8], "big")
    assert bytes(u.payload) == payload
    zeroed = datagram[:6] + b"\x00\x00" + datagram[8:]
    assert (in4_chksum(17, theirs, zeroed) or 0xFFFF) == u.chksum
    del theirs[UDP].chksum
    assert bytes(theirs) == wire


@ORACLE
@given(src=v6_addresses, dst=v6_addresses, sport=ports, dport=ports, payload=payloads,
       tc=st.integers(0, 255), flow=st.integers(0, 0xFFFFF), hops=st.integers(0, 255))
def test_our_udp_over_ipv6_reads_the_same_in_scapy(src: str, dst: str, sport: int, dport: int,
                                                   payload: bytes, tc: int, flow: int,
                                                   hops: int) -> None:
    datagram = udp.encode(sport, dport, payload, src, dst)
    header = IPv6Header(src=src, dst=dst, next_header=17, hop_limit=hops, dscp=tc >> 2,
                        ecn=tc & 3, flow_label=flow)
    wire = ipv6.encode(header, datagram)
    theirs = IPv6(wire)
    assert _scapy_ipv6_fields(theirs) == _our_ipv6_fields(ipv6.decode(wire).header)
    u = theirs[UDP]
    assert (u.sport, u.dport, u.len) == (sport, dport, 8 + len(payload))
    assert u.chksum == int.from_bytes(datagram[6:8], "big")
    zeroed = datagram[:6] + b"\x00\x00" + datagram[8:]
    assert (in6_chksum(17, theirs, zeroed) or 0xFFFF) == u.chksum
    del theirs[UDP].chksum
    assert bytes(theirs) == wire


@ORACLE
@given(src=v6_addresses, dst=v6_addresses, next_header=raw_next_headers, payload=payloads)
def test_our_ipv6_reads_the_same_in_scapy(src: str, dst: str, next_header: int,
                                          payload: bytes) -> None:
    wire = ipv6.encode(IPv6Header(src=src, dst=dst, next_header=next_header), payload)
    theirs = IPv6(wire)
    assert _scapy_ipv6_fields(theirs) == _our_ipv6_fields(ipv6.decode(wire).header)
    assert bytes(theirs) == wire


@pytest.mark.parametrize("payload", [b"", b"x", b"hdp", bytes(range(256))])
def test_our_udp_lite_checksum_matches_scapy_pseudo_header(payload: bytes) -> None:
    # scapy has no UDP-Lite layer; its pseudo-header checksum with protocol 136 is the oracle.
    src, dst = "192.0.2.1", "198.51.100.2"
    datagram = udp.encode_lite(1, 2, payload, src, dst)
    zeroed = datagram[:6] + b"\x00\x00" + datagram[8:]
    pkt = IP(src=src, dst=dst, proto=136)
    assert (in4_chksum(136, pkt, zeroed) or 0xFFFF) == int.from_bytes(datagram[6:8], "big")
    src6, dst6 = "2001:db8::1", "2001:db8::2"
    datagram = udp.encode_lite(1, 2, payload, src6, dst6)
    zeroed = datagram[:6] + b"\x00\x00" + datagram[8:]
    pkt6 = IPv6(src=src6, dst=dst6, nh=136)
    assert (in6_chksum(136, pkt6, zeroed) or 0xFFFF) == int.from_bytes(datagram[6:8], "big")


# ---------------------------------------------------------------------------------------
# (b) scapy's packets, read by us.


@ORACLE
@given(
    src=v4_addresses, dst=v4_addresses, tos=st.integers(0, 255), ident=st.integers(0, 0xFFFF),
    flags=st.integers(0, 7), frag=st.integers(0, 0x1FFF), ttl=st.integers(0, 255),
    proto=raw_protocols, payload=payloads,
)
def test_scapy_ipv4_reads_the_same_in_ours(src: str, dst: str, tos: int, ident: int, flags: int,
                                           frag: int, ttl: int, proto: int,
                                           payload: bytes) -> None:
    built = IP(src=src, dst=dst, tos=tos, id=ident, flags=flags, frag=frag, ttl=ttl,
               proto=proto) / Raw(payload)
    wire = bytes(built)
    packet = ipv4.decode(wire)
    assert _our_ipv4_fields(packet.header) == _scapy_ipv4_fields(IP(wire))
    assert packet.payload == payload
    assert packet.checksum_ok


@ORACLE
@given(src=v4_addresses, dst=v4_addresses, sport=ports, dport=ports, payload=payloads)
def test_scapy_udp_over_ipv4_reads_the_same_in_ours(src: str, dst: str, sport: int, dport: int,
                                                    payload: bytes) -> None:
    wire = bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))
    packet = ipv4.decode(wire)
    assert packet.header.protocol == 17
    assert packet.checksum_ok
    datagram = udp.decode(packet.payload)
    theirs = IP(wire)[UDP]
    assert (datagram.header.src_port, datagram.header.dst_port) == (sport, dport)
    assert datagram.header.length == theirs.len == 8 + len(payload)
    assert datagram.header.checksum == theirs.chksum
    assert datagram.payload == payload
    assert udp.verify(src, dst, packet.payload)
    assert udp.encode(sport, dport, payload, src, dst) == packet.payload


@ORACLE
@given(src=v6_addresses, dst=v6_addresses, sport=ports, dport=ports, payload=payloads,
       tc=st.integers(0, 255), fl=st.integers(0, 0xFFFFF), hlim=st.integers(0, 255))
def test_scapy_udp_over_ipv6_reads_the_same_in_ours(src: str, dst: str, sport: int, dport: int,
                                                    payload: bytes, tc: int, fl: int,
                                                    hlim: int) -> None:
    wire = bytes(IPv6(src=src, dst=dst, tc=tc, fl=fl, hlim=hlim)
                 / UDP(sport=sport, dport=dport) / Raw(payload))
    packet = ipv6.decode(wire)
    assert _our_ipv6_fields(packet.header) == _scapy_ipv6_fields(IPv6(wire))
    assert packet.upper_protocol == 17
    assert udp.verify(src, dst, packet.payload)
    assert udp.encode(sport, dport, payload, src, dst) == packet.payload


@pytest.mark.parametrize(
    "options",
    [
        [IPOption_RR()],
        [IPOption_RR(routers=["192.0.2.9", "192.0.2.10"])],
        [IPOption_Router_Alert()],
        [IPOption_NOP(), IPOption_NOP(), IPOption_Router_Alert()],
        IPOption(b"\x01\x01\x01\x00"),
        IPOption(b"\x1e\x06abcd\x01\x00"),
        IPOption(bytes([7, 39, 4]) + bytes(36) + b"\x00"),  # the longest record route
    ],
    ids=["rr", "rr-2", "router-alert", "nop-nop-ra", "raw-nops", "raw-unknown", "rr-max"],
)
@pytest.mark.parametrize("proto", [17, 253])
def test_scapy_ipv4_with_options(options: Any, proto: int) -> None:
    pkt = IP(src="192.0.2.1", dst="192.0.2.2", proto=proto, options=options)
    if proto == 17:
        pkt = pkt / UDP(sport=420, dport=420) / Raw(b"with options")
    else:
        pkt = pkt / Raw(b"with options")
    wire = bytes(pkt)
    theirs = IP(wire)
    packet = ipv4.decode(wire)
    assert _our_ipv4_fields(packet.header) == _scapy_ipv4_fields(theirs)
    assert packet.header.options == wire[20:theirs.ihl * 4]
    assert len(packet.header.options) > 0
    assert packet.checksum_ok
    if proto == 17:
        assert udp.verify("192.0.2.1", "192.0.2.2", packet.payload)
        assert udp.decode(packet.payload).payload == b"with options"
    else:
        assert packet.payload == b"with options"


@pytest.mark.parametrize("payload", [b"", b"hdp", bytes(range(256)) * 4])
def test_scapy_ipv4_protocol_253(payload: bytes) -> None:
    wire = bytes(IP(src="10.1.2.3", dst="10.3.2.1", proto=253, ttl=9) / Raw(payload))
    packet = ipv4.decode(wire)
    assert packet.header.protocol == 253
    assert packet.header.ttl == 9
    assert packet.header.total_length == 20 + len(payload)
    assert packet.payload == payload
    assert packet.checksum_ok


SRC6, DST6, VIA6 = "2001:db8::1", "2001:db8::2", "2001:db8::5"
UDP_PART = UDP(sport=420, dport=420) / Raw(b"through extension headers")


@pytest.mark.parametrize(
    ("layers", "kinds"),
    [
        ([IPv6ExtHdrHopByHop()], [0]),
        ([IPv6ExtHdrHopByHop(options=[RouterAlert()])], [0]),
        ([IPv6ExtHdrDestOpt()], [60]),
        ([IPv6ExtHdrFragment(m=0, offset=0, id=0x1234)], [44]),
        ([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(m=1, id=99)],
         [0, 60, 44]),
        ([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(), IPv6ExtHdrDestOpt()],
         [0, 60, 44, 60]),
    ],
    ids=["hbh", "hbh-router-alert", "dest", "atomic-fragment", "hbh-dest-frag",
         "hbh-dest-frag-dest"],
)
def test_scapy_ipv6_extension_chains(layers: list[Any], kinds: list[int]) -> None:
    pkt = IPv6(src=SRC6, dst=DST6)
    for layer in layers:
        pkt = pkt / layer
    wire = bytes(pkt / UDP_PART)
    theirs = IPv6(wire)
    packet = ipv6.decode(wire)
    assert _our_ipv6_fields(packet.header) == _scapy_ipv6_fields(theirs)
    assert [e.kind for e in packet.extensions] == kinds
    assert packet.upper_protocol == 17
    assert packet.payload == bytes(theirs[UDP])
    assert udp.verify(SRC6, DST6, packet.payload)
    assert udp.decode(packet.payload).payload == b"through extension headers"
    if 44 in kinds:
        fragment = theirs[IPv6ExtHdrFragment]
        assert packet.fragment == ipv6.FragmentHeader(fragment.nh, fragment.offset,
                                                      bool(fragment.m), fragment.id)


def test_scapy_routing_header_checksum_uses_the_final_destination() -> None:
    # RFC 8200 section 8.1: with a routing header, the pseudo-header has the final address.
    wire = bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrRouting(addresses=[VIA6]) / UDP_PART)
    packet = ipv6.decode(wire)
    assert [e.kind for e in packet.extensions] == [43]
    assert packet.upper_protocol == 17
    assert udp.verify(SRC6, VIA6, packet.payload)
    assert not udp.verify(SRC6, DST6, packet.payload)


@pytest.mark.parametrize("offset", [1, 185, 0x1FFF])
def test_scapy_non_first_fragment(offset: int) -> None:
    middle = bytes([60, 200]) + b"middle of a datagram"
    wire = bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrHopByHop()
                 / IPv6ExtHdrFragment(nh=60, offset=offset, m=1, id=7) / Raw(middle))
    packet = ipv6.decode(wire)
    assert [e.kind for e in packet.extensions] == [0, 44]
    assert packet.upper_protocol == 60
    assert packet.payload == middle
    assert packet.fragment == ipv6.FragmentHeader(60, offset, True, 7)


@pytest.mark.parametrize("nh", [253, 59, 51])
def test_scapy_ipv6_unknown_upper_protocol(nh: int) -> None:
    body = b"\x3c\x00" + bytes(14)
    wire = bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt(nh=nh) / Raw(body))
    packet = ipv6.decode(wire)
    assert [e.kind for e in packet.extensions] == [60]
    assert packet.upper_protocol == nh
    assert packet.payload == body
