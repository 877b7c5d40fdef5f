"""IPv6 fixed header (RFC 8200) and a walk over its extension-header chain."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from hdp.errors import DecodeError, EncodeError
from hdp.wire.fields import check_bits

HEADER_LENGTH = 40
MIN_MTU = 1280
_FIXED = struct.Struct("!IHBB16s16s")

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
NO_NEXT_HEADER = 59
DESTINATION_OPTIONS = 60
# Extension headers whose length is (hdr_ext_len + 1) * 8; the fragment header is 8 fixed.
_LENGTHED = frozenset({HOP_BY_HOP, ROUTING, DESTINATION_OPTIONS})


@dataclass(frozen=True)
class IPv6Header:
    """The 40-byte fixed header; `payload_length` of None is computed on encode."""

    src: IPv6Address
    dst: IPv6Address
    next_header: int
    hop_limit: int = 64
    dscp: int = 0
    ecn: int = 0
    flow_label: int = 0
    payload_length: int | None = None
    version: int = 6

    def __post_init__(self) -> None:
        # An address object is kept as it is: IPv6Address() of one goes through its text.
        if type(self.src) is not IPv6Address:
            object.__setattr__(self, "src", IPv6Address(self.src))
        if type(self.dst) is not IPv6Address:
            object.__setattr__(self, "dst", IPv6Address(self.dst))
        check_bits("IPv6", self, (("next_header", 8), ("hop_limit", 8), ("dscp", 6), ("ecn", 2),
                                  ("flow_label", 20), ("version", 4), ("payload_length", 16)))

    @property
    def traffic_class(self) -> int:
        return self.dscp << 2 | self.ecn


@dataclass(frozen=True)
class ExtensionHeader:
    """One extension header of the chain: its type, where it starts, and its bytes."""

    kind: int
    offset: int
    data: bytes

    @property
    def next_header(self) -> int:
        return self.data[0]


@dataclass(frozen=True)
class FragmentHeader:
    next_header: int
    fragment_offset: int  # in 8-byte units
    more_fragments: bool
    identification: int

    def encode(self) -> bytes:
        if not 0 <= self.fragment_offset < 1 << 13:
            raise EncodeError(
                f"IPv6 fragment offset must fit in 13 bits, got {self.fragment_offset}"
            )
        if not 0 <= self.next_header <= 0xFF:
            raise EncodeError(
                f"IPv6 fragment next_header must fit in 8 bits, got {self.next_header}"
            )
        if not 0 <= self.identification <= 0xFFFFFFFF:
            raise EncodeError(
                f"IPv6 fragment identification must fit in 32 bits, got {self.identification}"
            )
        return struct.pack("!BBHI", self.next_header, 0,
                           self.fragment_offset << 3 | int(self.more_fragments),
                           self.identification)


@dataclass(frozen=True)
class IPv6Packet:
    header: IPv6Header
    extensions: tuple[ExtensionHeader, ...]
    upper_protocol: int  # the first next-header value the walk did not step over
    payload: bytes  # the bytes after the last extension header walked
    fragment: FragmentHeader | None = None


def encode(header: IPv6Header, payload: bytes) -> bytes:
    length = len(payload) if header.payload_length is None else header.payload_length
    if length > 0xFFFF:
        raise EncodeError(
            f"IPv6 payload of {length} bytes needs a jumbogram, which we do not build"
        )
    first = header.version << 28 | header.traffic_class << 20 | header.flow_label
    return _FIXED.pack(first, length, header.next_header, header.hop_limit,
                       header.src.packed, header.dst.packed) + payload


def decode_fragment_header(data: bytes, offset: int = 0) -> FragmentHeader:
    if len(data) - offset < 8:
        raise DecodeError("IPv6 fragment header", offset,
                          f"need 8 bytes, have {len(data) - offset}")
    nxt, _reserved, off_flags, ident = struct.unpack_from("!BBHI", data, offset)
    return FragmentHeader(nxt, off_flags >> 3, bool(off_flags & 1), ident)


def decode(data: bytes) -> IPv6Packet:
    """Parse an IPv6 packet, stepping over extension headers 0, 43, 44 and 60."""
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise DecodeError("IPv6 header", len(data), f"need {HEADER_LENGTH} bytes, have {len(data)}")
    first, length, nxt, hops, src, dst = _FIXED.unpack_from(data)
    version = first >> 28
    if version != 6:
        raise DecodeError("IPv6 header", 0, f"version is {version}, not 6")
    end = HEADER_LENGTH + length
    if end > len(data):
        raise DecodeError("IPv6 packet", len(data),
                          f"payload length says {length} bytes, have {len(data) - HEADER_LENGTH}")
    tclass = first >> 20 & 0xFF
    header = IPv6Header(src=IPv6Address(src), dst=IPv6Address(dst), next_header=nxt,
                        hop_limit=hops, dscp=tclass >> 2, ecn=tclass & 0b11,
                        flow_label=first & 0xFFFFF, payload_length=length, version=version)
    extensions, upper, offset, fragment = walk_extensions(data[:end], nxt, HEADER_LENGTH)
    return IPv6Packet(header, extensions, upper, data[offset:end], fragment)


def walk_extensions(
    data: bytes, next_header: int, offset: int
) -> tuple[tuple[ExtensionHeader, ...], int, int, FragmentHeader | None]:
    """Step over known extension headers from `offset`; stop at anything else.

    Returns the headers walked, the protocol that follows them, the offset of that
    protocol's bytes, and the fragment header if one was seen. A non-first fragment
    ends the walk: what follows it is the middle of some other header's bytes.
    """
    walked: list[ExtensionHeader] = []
    fragment: FragmentHeader | None = None
    # Each step consumes at least 8 bytes, so the loop ends with the data.
    while next_header in _LENGTHED or next_header == FRAGMENT:
        if len(data) - offset < 8:
            raise DecodeError("IPv6 extension header", offset,
                              f"header {next_header} needs 8 bytes, have {len(data) - offset}")
        if next_header == FRAGMENT:
            fragment = decode_fragment_header(data, offset)
            size = 8
        else:
            size = (data[offset + 1] + 1) * 8
            if offset + size > len(data):
                raise DecodeError("IPv6 extension header", offset,
                                  f"header {next_header} says {size} bytes, "
                                  f"have {len(data) - offset}")
        walked.append(ExtensionHeader(next_header, offset, data[offset:offset + size]))
        next_header = data[offset]
        offset += size
        if fragment is not None and fragment.fragment_offset != 0:
            break
    return tuple(walked), next_header, offset, fragment
