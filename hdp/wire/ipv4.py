"""IPv4 header (RFC 791): build, parse, checksum; and how raw sockets hand it over."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from hdp.errors import DecodeError, EncodeError
from hdp.wire.checksum import internet_checksum
from hdp.wire.fields import check_bits

MIN_HEADER = 20
MAX_HEADER = 60
_FIXED = struct.Struct("!BBHHHBBH4s4s")

FLAG_RESERVED = 0b100
FLAG_DF = 0b010
FLAG_MF = 0b001


class RawQuirk(enum.Enum):
    """How the kernel lays out an IPv4 header it hands to a raw socket listener."""

    NONE = "none"
    # macOS (and FreeBSD before 10.0) give Total Length in host byte order with the
    # header length already subtracted, and the flags/offset field in host byte order.
    BSD = "bsd"


def raw_quirk_for(system: str, release: str = "") -> RawQuirk:
    """The quirk of `platform.system()`/`release()` for received raw IPv4 headers."""
    system = system.lower()
    if system == "darwin":
        return RawQuirk.BSD
    if system == "freebsd":
        major = release.split(".", 1)[0]
        if major.isdigit() and int(major) < 10:
            return RawQuirk.BSD
    return RawQuirk.NONE


@dataclass(frozen=True)
class IPv4Header:
    """An IPv4 header; `total_length`/`checksum` of None are computed on encode."""

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    ttl: int = 64
    dscp: int = 0
    ecn: int = 0
    identification: int = 0
    flags: int = 0
    fragment_offset: int = 0  # in 8-byte units, as on the wire
    total_length: int | None = None
    checksum: int | None = None
    options: bytes = field(default=b"")
    version: int = 4

    def __post_init__(self) -> None:
        # An address object is kept as it is: IPv4Address() of one goes through its text.
        if type(self.src) is not IPv4Address:
            object.__setattr__(self, "src", IPv4Address(self.src))
        if type(self.dst) is not IPv4Address:
            object.__setattr__(self, "dst", IPv4Address(self.dst))
        check_bits("IPv4", self, (("protocol", 8), ("ttl", 8), ("dscp", 6), ("ecn", 2),
                                  ("identification", 16), ("flags", 3), ("fragment_offset", 13),
                                  ("version", 4), ("total_length", 16), ("checksum", 16)))
        if len(self.options) % 4 or len(self.options) > MAX_HEADER - MIN_HEADER:
            raise EncodeError(
                "IPv4 options must be a multiple of 4 bytes and at most 40, "
                f"got {len(self.options)}"
            )

    @property
    def ihl(self) -> int:
        """Header length in 32-bit words."""
        return (MIN_HEADER + len(self.options)) // 4

    @property
    def header_length(self) -> int:
        return MIN_HEADER + len(self.options)

    @property
    def df(self) -> bool:
        return bool(self.flags & FLAG_DF)

    @property
    def mf(self) -> bool:
        return bool(self.flags & FLAG_MF)

    @property
    def tos(self) -> int:
        return self.dscp << 2 | self.ecn


@dataclass(frozen=True)
class IPv4Packet:
    header: IPv4Header
    payload: bytes

    @property
    def checksum_ok(self) -> bool:
        """Whether the header checksum verifies (False for the zero a BSD raw socket shows)."""
        return verify_header_checksum(encode_header(self.header, len(self.payload)))


def encode_header(header: IPv4Header, payload_length: int) -> bytes:
    """The header bytes; fills in total length and checksum where they are None."""
    total = header.total_length
    if total is None:
        total = header.header_length + payload_length
        if total > 0xFFFF:
            raise EncodeError(f"IPv4 datagram of {total} bytes exceeds 65535")
    raw = _FIXED.pack(
        header.version << 4 | header.ihl,
        header.tos,
        total,
        header.identification,
        header.flags << 13 | header.fragment_offset,
        header.ttl,
        header.protocol,
        0,
        header.src.packed,
        header.dst.packed,
    ) + header.options
    checksum = internet_checksum(raw) if header.checksum is None else header.checksum
    return raw[:10] + checksum.to_bytes(2, "big") + raw[12:]


def encode(header: IPv4Header, payload: bytes) -> bytes:
    return encode_header(header, len(payload)) + payload


def verify_header_checksum(header_bytes: bytes) -> bool:
    return internet_checksum(header_bytes) == 0


def decode_header(data: bytes, quirk: RawQuirk = RawQuirk.NONE,
                  what: str = "IPv4 header") -> IPv4Header:
    """Parse the header alone, whatever follows it (an ICMP error quotes only a part)."""
    data = bytes(data)
    if len(data) < MIN_HEADER:
        raise DecodeError(what, len(data), f"need {MIN_HEADER} bytes, have {len(data)}")
    (ver_ihl, tos, length_field, ident, frag_field, ttl, proto, checksum,
     src, dst) = _FIXED.unpack_from(data)
    version, ihl = ver_ihl >> 4, ver_ihl & 0x0F
    if version != 4:
        raise DecodeError(what, 0, f"version is {version}, not 4")
    header_length = ihl * 4
    if header_length < MIN_HEADER:
        raise DecodeError(what, 0, f"IHL {ihl} is below the minimum of 5")
    if header_length > len(data):
        raise DecodeError(what, MIN_HEADER,
                          f"IHL {ihl} says {header_length} bytes of header, have {len(data)}")
    if quirk is RawQuirk.BSD:
        # Host byte order is little-endian on every CPU macOS runs on.
        length_field = int.from_bytes(length_field.to_bytes(2, "big"), "little") + header_length
        frag_field = int.from_bytes(frag_field.to_bytes(2, "big"), "little")
        if length_field > 0xFFFF:
            raise DecodeError(what, 2,
                              f"host-order total length {length_field - header_length} plus the "
                              f"{header_length}-byte header exceeds 65535")
    return IPv4Header(
        src=IPv4Address(src), dst=IPv4Address(dst), protocol=proto, ttl=ttl,
        dscp=tos >> 2, ecn=tos & 0b11, identification=ident,
        flags=frag_field >> 13, fragment_offset=frag_field & 0x1FFF,
        total_length=length_field, checksum=checksum,
        options=data[MIN_HEADER:header_length], version=version,
    )


def decode(data: bytes, quirk: RawQuirk = RawQuirk.NONE) -> IPv4Packet:
    """Parse an IPv4 datagram; `quirk` undoes a raw socket's rewriting of the header."""
    data = bytes(data)
    header = decode_header(data, quirk)
    total, header_length = header.total_length or 0, header.header_length
    if total < header_length:
        raise DecodeError("IPv4 header", 2,
                          f"total length {total} is shorter than the header "
                          f"({header_length})")
    if total > len(data):
        raise DecodeError("IPv4 datagram", len(data),
                          f"total length says {total} bytes, have {len(data)}")
    return IPv4Packet(header, data[header_length:total])
