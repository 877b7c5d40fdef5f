"""UDP (RFC 768) and UDP-Lite (RFC 3828) with their pseudo-header checksums."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from hdp.errors import DecodeError, EncodeError
from hdp.wire.checksum import internet_checksum

PROTO_UDP = 17
PROTO_UDPLITE = 136
HEADER_LENGTH = 8
MAX_PAYLOAD_V4 = 65535 - 20 - HEADER_LENGTH  # 65507
MAX_PAYLOAD_V6 = 65535 - HEADER_LENGTH  # 65527: IPv6 payload length excludes its header
_HEADER = struct.Struct("!HHHH")

Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class UDPHeader:
    """For UDP `length` is the datagram length; for UDP-Lite it is the checksum coverage."""

    src_port: int
    dst_port: int
    length: int
    checksum: int

    def __post_init__(self) -> None:
        for name in ("src_port", "dst_port", "length", "checksum"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                raise EncodeError(f"UDP {name} must fit in 16 bits, got {value}")


@dataclass(frozen=True)
class UDPDatagram:
    header: UDPHeader
    payload: bytes


def _address(value: Address | str) -> Address:
    """An address object as it is (ip_address() of one goes through its text), else parsed."""
    if type(value) is IPv4Address or type(value) is IPv6Address:
        return value
    return ip_address(value)


def pseudo_header(src: Address | str, dst: Address | str, protocol: int, length: int) -> bytes:
    """The IPv4 (RFC 768) or IPv6 (RFC 8200 §8.1) pseudo-header for a checksum."""
    s, d = _address(src), _address(dst)
    if s.version != d.version:
        raise EncodeError(f"source {s} and destination {d} are of different families")
    if not 0 <= protocol <= 0xFF:
        raise EncodeError(f"pseudo-header protocol must fit in 8 bits, got {protocol}")
    if not 0 <= length <= _max_pseudo_length(s.version):
        raise EncodeError(
            f"pseudo-header length {length} does not fit an IPv{s.version} pseudo-header"
        )
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, protocol, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, protocol)


def _max_pseudo_length(version: int) -> int:
    # The IPv4 pseudo-header carries a 16-bit length, the IPv6 one a 32-bit length.
    return 0xFFFF if version == 4 else 0xFFFFFFFF


def udp_checksum(src: Address | str, dst: Address | str, datagram: bytes,
                 protocol: int = PROTO_UDP) -> int:
    """The checksum to carry; a computed 0 is sent as 0xFFFF (0 means "none")."""
    value = internet_checksum(pseudo_header(src, dst, protocol, len(datagram)) + datagram)
    return value or 0xFFFF


def encode(src_port: int, dst_port: int, payload: bytes, src: Address | str,
           dst: Address | str, *, checksum: int | None = None) -> bytes:
    """A UDP datagram; its checksum is computed unless one is given.

    A given checksum of 0 means "none", valid on IPv4 only; it is allowed on IPv6 too so
    tests can check that receivers drop it.
    """
    limit = MAX_PAYLOAD_V4 if _address(src).version == 4 else MAX_PAYLOAD_V6
    if len(payload) > limit:
        raise EncodeError(f"UDP payload of {len(payload)} bytes exceeds {limit}")
    unchecked = _pack(UDPHeader(src_port, dst_port, HEADER_LENGTH + len(payload), 0), payload)
    if checksum is None:
        checksum = udp_checksum(src, dst, unchecked)
    return _with_checksum(unchecked, checksum)


def _pack(header: UDPHeader, payload: bytes) -> bytes:
    return _HEADER.pack(header.src_port, header.dst_port, header.length, header.checksum) + payload


def _with_checksum(datagram: bytes, checksum: int) -> bytes:
    if not 0 <= checksum <= 0xFFFF:
        raise EncodeError(f"UDP checksum must fit in 16 bits, got {checksum}")
    return datagram[:6] + checksum.to_bytes(2, "big") + datagram[8:]


def decode(data: bytes) -> UDPDatagram:
    """Parse a UDP datagram; bytes beyond its length field (link padding) are ignored."""
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise DecodeError("UDP header", len(data), f"need {HEADER_LENGTH} bytes, have {len(data)}")
    src_port, dst_port, length, checksum = _HEADER.unpack_from(data)
    if length < HEADER_LENGTH:
        raise DecodeError("UDP header", 4, f"length {length} is below the header's 8 bytes")
    if length > len(data):
        raise DecodeError("UDP datagram", len(data),
                          f"length says {length} bytes, have {len(data)}")
    return UDPDatagram(UDPHeader(src_port, dst_port, length, checksum), data[HEADER_LENGTH:length])


def verify(src: Address | str, dst: Address | str, datagram: bytes) -> bool:
    """Whether a received UDP datagram's checksum holds; 0 ("none") passes only on IPv4."""
    if len(datagram) < HEADER_LENGTH:
        return False
    version = _address(src).version
    if datagram[6:8] == b"\x00\x00":
        return version == 4
    if len(datagram) > _max_pseudo_length(version):
        return False
    return internet_checksum(pseudo_header(src, dst, PROTO_UDP, len(datagram)) + datagram) == 0


def encode_lite(src_port: int, dst_port: int, payload: bytes, src: Address | str,
                dst: Address | str, *, coverage: int = 0, checksum: int | None = None) -> bytes:
    """A UDP-Lite datagram covering `coverage` bytes (0 = all) with its checksum."""
    limit = MAX_PAYLOAD_V4 if _address(src).version == 4 else MAX_PAYLOAD_V6
    if len(payload) > limit:
        raise EncodeError(f"UDP-Lite payload of {len(payload)} bytes exceeds {limit}")
    total = HEADER_LENGTH + len(payload)
    if coverage != 0 and not HEADER_LENGTH <= coverage <= total:
        raise EncodeError(
            f"UDP-Lite coverage must be 0 or {HEADER_LENGTH}..{total}, got {coverage}"
        )
    unchecked = _pack(UDPHeader(src_port, dst_port, coverage, 0), payload)
    if checksum is None:
        covered = unchecked[:coverage or total]
        pseudo = pseudo_header(src, dst, PROTO_UDPLITE, total)
        checksum = internet_checksum(pseudo + covered) or 0xFFFF
    return _with_checksum(unchecked, checksum)


def decode_lite(data: bytes) -> UDPDatagram:
    """Parse UDP-Lite: the length field is the coverage, the datagram is all bytes given."""
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise DecodeError("UDP-Lite header", len(data),
                          f"need {HEADER_LENGTH} bytes, have {len(data)}")
    src_port, dst_port, coverage, checksum = _HEADER.unpack_from(data)
    if coverage != 0 and not HEADER_LENGTH <= coverage <= len(data):
        raise DecodeError("UDP-Lite header", 4,
                          f"coverage {coverage} must be 0 or {HEADER_LENGTH}..{len(data)}")
    return UDPDatagram(UDPHeader(src_port, dst_port, coverage, checksum), data[HEADER_LENGTH:])


def verify_lite(src: Address | str, dst: Address | str, datagram: bytes) -> bool:
    """Whether a UDP-Lite checksum holds over its coverage; 0 is never valid (RFC 3828 §3.1)."""
    if len(datagram) < HEADER_LENGTH or datagram[6:8] == b"\x00\x00":
        return False
    if len(datagram) > _max_pseudo_length(_address(src).version):
        return False
    coverage = int.from_bytes(datagram[4:6], "big")
    if coverage == 0:
        coverage = len(datagram)
    if not HEADER_LENGTH <= coverage <= len(datagram):
        return False
    covered = datagram[:coverage]
    return internet_checksum(pseudo_header(src, dst, PROTO_UDPLITE, len(datagram)) + covered) == 0
