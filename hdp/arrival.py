"""What a listener saw: a received packet decoded as far as its bytes allow."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from hdp.errors import DecodeError
from hdp.rawsock import IPPROTO_ICMPV6, Received
from hdp.wire import hdp as hdp_wire
from hdp.wire import ipv4, udp
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag, TaggedPayload


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
    note: str | None = None  # why the payload was read as it was, where that was a choice

    @property
    def byte_count(self) -> int:
        """Bytes after the IP header: what the sender's send() call reported."""
        return len(self.ip_payload)


DECODE_CHOICES = ("auto", "hdp", "udp")
# Where every sender's kernel writes a checksum into a payload of this (family, protocol)
# whatever the sender gave it: ICMPv6 at 2 (RFC 3542 3.1; rawsock cannot turn it off).
KERNEL_CHECKSUM = {(6, IPPROTO_ICMPV6): 2}


def decode_arrival(received: Received, quirk: ipv4.RawQuirk | None = None, *,
                   decode: str = "auto") -> Arrival:
    """Decode a received packet; never raises, whatever its bytes.

    A tagged probe is read as its tag says. An untagged payload is read as `decode` says:
    `udp` or `hdp` always, `auto` as UDP (UDP-Lite on 136) on protocols 17 and 136 when its
    bytes are a consistent datagram, else as HDP (the original client sent HDP on any
    protocol number, 17 included)."""
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
    note: str | None = None
    try:
        carrier, found, note = _carrier_of(ip_payload, received.family, received.socket_protocol,
                                            wire, decode)
        tagged = found is not None
        if carrier is Carrier.HDP:
            # A tag found after the HDP header is that header's payload, read once.
            if found is None:
                hdp_packet = hdp_wire.decode(ip_payload)
                hdp_header, rest = hdp_packet.header, hdp_packet.payload
            else:
                hdp_header, rest = hdp_wire.decode_header(ip_payload), found
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
                # The IPv4 header's address objects spare parsing the text again.
                ends: tuple[udp.Address | str, udp.Address | str] = \
                    (header.src, header.dst) if header is not None else (src, dst)
                checksum_ok = verify(ends[0], ends[1], ip_payload[:span])
            # The tag found after 8 bytes was read from the datagram's payload exactly
            # when the UDP length spans the whole IP payload.
            rest = found if found is not None and udp_header.length == len(ip_payload) \
                else hdp_wire.decode_tagged(datagram.payload)
            tag, data, intact = rest.tag, rest.data, rest.intact and checksum_ok is not False
        else:
            rest = found if found is not None else hdp_wire.decode_tagged(ip_payload)
            tag, data, intact = rest.tag, rest.data, rest.intact
    except DecodeError as exc:
        error = str(exc)
    return Arrival(received, wire, src, dst, ttl, dscp, ecn, header, ip_payload, carrier,
                   hdp_header, udp_header, checksum_ok, tag, data, intact, error, note)


def _carrier_of(payload: bytes, family: int, socket_protocol: int, wire: int | None,
                decode: str) -> tuple[Carrier, TaggedPayload | None, str | None]:
    """What carried the payload, our tag with what follows it (None when untagged), and a
    note when the bytes made the choice: where the tag sits says which carrier; untagged
    packets go by `decode`."""
    found = hdp_wire.find_tag(payload, KERNEL_CHECKSUM.get((family, socket_protocol)))
    if found is not None:
        return found[0], found[1], None
    hdp_or_raw = Carrier.HDP if len(payload) >= hdp_wire.HEADER_LENGTH else Carrier.RAW
    if decode == "udp":
        return Carrier.UDP, None, None
    if decode == "hdp" or socket_protocol not in (udp.PROTO_UDP, udp.PROTO_UDPLITE):
        return hdp_or_raw, None, None
    lite = udp.PROTO_UDPLITE in (socket_protocol, wire)
    try:
        (udp.decode_lite if lite else udp.decode)(payload)
    except DecodeError as exc:
        kind = "UDP-Lite" if lite else "UDP"
        return hdp_or_raw, None, (f"read as {hdp_or_raw.name}: not a consistent {kind} "
                                  f"datagram ({exc.reason})")
    return Carrier.UDP, None, None


def _undecodable(received: Received, error: str) -> Arrival:
    return Arrival(received, None, received.src, received.dst, received.hop_limit, None, None,
                   None, received.data, None, None, None, None, None, received.data, False, error)
