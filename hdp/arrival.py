"""What a listener saw: a received packet decoded as far as its bytes allow."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from hdp.errors import DecodeError
from hdp.rawsock import Received
from hdp.wire import hdp as hdp_wire
from hdp.wire import ipv4, udp
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag


@dataclass(frozen=True)
class Arrival:
    """A received packet: IP fields as the listener saw them, and its decoded payload."""

    received: Received
    wire_protocol: int | None  # the protocol byte it arrived with, where known
    src: str
    dst: str | None
    ttl: int | None  # TTL or hop limit
    dscp: int | None
    ecn: int | None
    ipv4: ipv4.IPv4Header | None  # the IPv4 header, quirks undone; None on IPv6
    ip_payload: bytes  # the bytes after the IP header
    carrier: Carrier | None  # how the payload was read; None when undecodable
    hdp: HDPHeader | None
    udp: udp.UDPHeader | None
    udp_checksum_ok: bool | None
    tag: ProbeTag | None
    data: bytes  # the payload after all headers and our tag
    intact: bool  # False when our tag's CRC (or the UDP checksum) says it was changed
    error: str | None  # why decoding stopped early; the bytes are kept above

    @property
    def byte_count(self) -> int:
        """Bytes after the IP header: what the sender's send() call reported."""
        return len(self.ip_payload)


def decode_arrival(received: Received, quirk: ipv4.RawQuirk | None = None) -> Arrival:
    """Decode a received packet; never raises, whatever its bytes."""
    if quirk is None:
        quirk = ipv4.raw_quirk_for(platform.system(), platform.release())
    header: ipv4.IPv4Header | None = None
    error: str | None = None
    dst: str | None
    wire: int | None
    ttl: int | None
    dscp: int | None
    ecn: int | None
    if received.family == 4:
        try:
            packet = ipv4.decode(received.data, quirk)
        except DecodeError as exc:
            return _undecodable(received, str(exc))
        header, ip_payload = packet.header, packet.payload
        src, dst = str(header.src), str(header.dst)
        wire, ttl, dscp, ecn = header.protocol, header.ttl, header.dscp, header.ecn
    else:
        ip_payload = received.data
        src, dst = received.src, received.dst
        proto = received.socket_protocol
        wire = proto if 0 <= proto <= 255 else None
        ttl = received.hop_limit
        tclass = received.traffic_class
        dscp, ecn = (None, None) if tclass is None else (tclass >> 2, tclass & 0b11)
    carrier, hdp_header, udp_header, checksum_ok = None, None, None, None
    tag, data, intact = None, ip_payload, True
    try:
        carrier, tagged = _carrier_of(ip_payload, received.socket_protocol)
        if carrier is Carrier.HDP:
            hdp_packet = hdp_wire.decode(ip_payload)
            hdp_header, rest = hdp_packet.header, hdp_packet.payload
            tag, data, intact = rest.tag, rest.data, rest.intact
            if tag is not None:
                # The tag's CRC covers tag and data; our probes always use the original
                # ports, so changed ports mean bytes of the HDP header were rewritten.
                intact = intact and (hdp_header.src_port, hdp_header.dst_port) == (
                    hdp_wire.ORIGINAL_PORT, hdp_wire.ORIGINAL_PORT)
        elif carrier is Carrier.UDP:
            # Our UDP-carried probes are plain UDP on any protocol number; only untagged
            # datagrams on 136 are read as UDP-Lite.
            lite = not tagged and udp.PROTO_UDPLITE in (received.socket_protocol, wire)
            datagram = (udp.decode_lite if lite else udp.decode)(ip_payload)
            udp_header = datagram.header
            if dst is not None:
                verify = udp.verify_lite if lite else udp.verify
                span = len(ip_payload) if lite else udp_header.length
                checksum_ok = verify(src, dst, ip_payload[:span])
            rest = hdp_wire.decode_tagged(datagram.payload)
            tag, data, intact = rest.tag, rest.data, rest.intact and checksum_ok is not False
        else:
            rest = hdp_wire.decode_tagged(ip_payload)
            tag, data, intact = rest.tag, rest.data, rest.intact
    except DecodeError as exc:
        error = str(exc)
    return Arrival(received, wire, src, dst, ttl, dscp, ecn, header, ip_payload, carrier,
                   hdp_header, udp_header, checksum_ok, tag, data, intact, error)


def _carrier_of(payload: bytes, socket_protocol: int) -> tuple[Carrier, bool]:
    """What carried the payload, and whether it bears our tag: where the tag sits says
    which carrier; untagged packets go by protocol."""
    found = hdp_wire.find_tag(payload)
    if found is not None:
        return found[0], True
    if socket_protocol in (udp.PROTO_UDP, udp.PROTO_UDPLITE):
        return Carrier.UDP, False
    return (Carrier.HDP if len(payload) >= hdp_wire.HEADER_LENGTH else Carrier.RAW), False


def _undecodable(received: Received, error: str) -> Arrival:
    return Arrival(received, None, received.src, received.dst, received.hop_limit, None, None,
                   None, received.data, None, None, None, None, None, received.data, False, error)
