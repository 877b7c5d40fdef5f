"""ICMP (RFC 792, 1191) and ICMPv6 (RFC 4443) messages, and the probe an error quotes.

Every message starts with the same 8 bytes; the last four depend on the type::

    0      1      2          4                                   8
    | type | code | checksum | rest of header                    | body ...

    ICMPv4 type 3:   | unused | length | next-hop MTU (code 4)  |   RFC 792, 1191, 4884
    ICMPv4 type 11:  | unused | length | unused                 |
    ICMPv4 type 12:  | pointer | length | unused                |
    ICMPv6 type 1/3: | length | unused (3 bytes)              |   RFC 4443, 4884
    ICMPv6 type 2:   | MTU (u32)                             |
    ICMPv6 type 4:   | pointer (u32)                         |

The body of an error message is the start of the packet that caused it (the "quote"):
RFC 792 promises only its IP header and 8 bytes, Linux quotes up to 576 bytes of ICMPv4
in all and fills a 1280-byte ICMPv6 message. `quoted_probe` reads that packet tolerantly,
since the quoted header's length fields nearly always describe more than the quote holds.

RFC 4884 lets the types marked "length" carry an extension structure after the quote; the
length byte then gives the quote's size (in 32-bit words for ICMPv4, 64-bit for ICMPv6).
`decode` honours it when it is valid (at least 128 bytes, within the message) and leaves
the extension bytes in `IcmpMessage.extensions`; a zero or invalid length (as legacy MPLS
routers send) leaves the whole body in `quoted`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from hdp.errors import DecodeError, EncodeError
from hdp.wire import ipv4, ipv6
from hdp.wire.checksum import internet_checksum
from hdp.wire.ipv4 import IPv4Header
from hdp.wire.ipv6 import ExtensionHeader, FragmentHeader, IPv6Header
from hdp.wire.udp import pseudo_header

Address = IPv4Address | IPv6Address

PROTO_ICMP = 1
PROTO_ICMPV6 = 58
HEADER_LENGTH = 8
# RFC 4884 section 5.1: with extensions, the quote is padded to at least this many bytes.
RFC4884_MIN_QUOTE = 128
_HEAD = struct.Struct("!BBH")
_IPV6_FIXED = struct.Struct("!IHBB16s16s")


class Icmp4Type(enum.IntEnum):
    ECHO_REPLY = 0
    DEST_UNREACH = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAM_PROBLEM = 12


class Icmp4Unreach(enum.IntEnum):
    """Codes of ICMPv4 destination unreachable (RFC 792, 1122, 1812)."""

    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAG_NEEDED = 4  # with the next-hop MTU (RFC 1191)
    SOURCE_ROUTE_FAILED = 5
    NET_UNKNOWN = 6
    HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_TOS = 11
    HOST_TOS = 12
    ADMIN_PROHIBITED = 13
    HOST_PRECEDENCE = 14
    PRECEDENCE_CUTOFF = 15


class Icmp4TimeExceeded(enum.IntEnum):
    TTL = 0
    REASSEMBLY = 1


class Icmp4ParamProblem(enum.IntEnum):
    POINTER = 0
    MISSING_OPTION = 1
    BAD_LENGTH = 2


class Icmp6Type(enum.IntEnum):
    DEST_UNREACH = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAM_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129


class Icmp6Unreach(enum.IntEnum):
    """Codes of ICMPv6 destination unreachable (RFC 4443 section 3.1)."""

    NO_ROUTE = 0
    ADMIN_PROHIBITED = 1
    BEYOND_SCOPE = 2
    ADDRESS = 3
    PORT = 4
    SOURCE_POLICY = 5  # source address failed ingress/egress policy
    REJECT_ROUTE = 6
    SOURCE_ROUTING_HEADER = 7


class Icmp6TimeExceeded(enum.IntEnum):
    HOP_LIMIT = 0
    REASSEMBLY = 1


class Icmp6ParamProblem(enum.IntEnum):
    HEADER_FIELD = 0
    UNRECOGNIZED_NEXT_HEADER = 1
    UNRECOGNIZED_OPTION = 2
    INCOMPLETE_CHAIN = 3  # RFC 7112


#: ICMPv4 destination-unreachable codes that mean "a policy said no" (RFC 1122, 1812).
ICMP4_PROHIBITED_CODES = frozenset({Icmp4Unreach.NET_PROHIBITED, Icmp4Unreach.HOST_PROHIBITED,
                                    Icmp4Unreach.ADMIN_PROHIBITED})
#: ICMPv6 destination-unreachable codes that mean the same; RFC 4443 section 3.1 calls 5
#: and 6 "more informative subsets of code 1".
ICMP6_PROHIBITED_CODES = frozenset({Icmp6Unreach.ADMIN_PROHIBITED, Icmp6Unreach.SOURCE_POLICY,
                                    Icmp6Unreach.REJECT_ROUTE})

# RFC 1122 section 3.2.2: the ICMPv4 error messages, the ones that quote a datagram.
_ERRORS_V4 = frozenset({3, 4, 5, 11, 12})
# Types with an RFC 4884 length byte: family -> (types, its offset, its unit in bytes).
_RFC4884: dict[int, tuple[frozenset[int], int, int]] = {
    4: (frozenset({3, 11, 12}), 5, 4),
    6: (frozenset({1, 3}), 4, 8),
}
_EXTENSION_HEADERS = frozenset({ipv6.HOP_BY_HOP, ipv6.ROUTING, ipv6.DESTINATION_OPTIONS})


@dataclass(frozen=True)
class IcmpMessage:
    """An ICMP (family 4) or ICMPv6 (family 6) message.

    `mtu` is the next-hop MTU of ICMPv4 type 3 code 4 (0 from a pre-RFC 1191 router) or the
    MTU of ICMPv6 packet too big, else None; `pointer` that of a parameter problem, else
    None. `quoted` is the message body: for an error, the invoking packet as carried (cut
    short, and possibly zero-padded); for other types, their data. `extensions` holds an
    RFC 4884 extension structure when the length field announced one.
    """

    family: int
    type: int
    code: int
    checksum: int
    mtu: int | None
    pointer: int | None
    quoted: bytes
    extensions: bytes = b""

    @property
    def is_error(self) -> bool:
        """Whether this is an error message, one that quotes the packet that caused it."""
        if self.family == 4:
            return self.type in _ERRORS_V4
        return self.type < 128  # RFC 4443 section 2.1


@dataclass(frozen=True)
class QuotedProbe:
    """What a quote tells of the packet that caused an error.

    `protocol` is the IPv4 protocol, or for IPv6 the first next-header value the walk over
    extension headers (0, 43, 44, 60) did not step over: normally the upper layer, but an
    extension header's own number when the quote ends inside it. `total_length` is the
    original packet's length as its header states it (IPv6: 40 + payload length), which
    is usually more than the quote holds. `payload` is what follows the IP header (IPv6:
    the extension headers walked) in the quote, cut at `total_length` when that is shorter
    (zero padding), so possibly a truncated prefix of the original payload.
    """

    family: int
    src: Address
    dst: Address
    protocol: int
    identification: int | None  # IPv4 only
    flow_label: int | None  # IPv6 only
    total_length: int
    payload: bytes
    header: IPv4Header | IPv6Header | None = None
    extensions: tuple[ExtensionHeader, ...] = ()  # IPv6: the extension headers walked


def _check_family(family: int, error: type[ValueError]) -> None:
    if family not in (4, 6):
        raise error(f"ICMP family must be 4 or 6, got {family!r}")


def _name(family: int) -> str:
    return "ICMP" if family == 4 else "ICMPv6"


def decode(data: bytes, family: int) -> IcmpMessage:
    """Parse an ICMP (family 4) or ICMPv6 (family 6) message: the bytes after the IP header.

    The checksum is reported, not checked (see `verify`). Raises DecodeError when fewer
    than the 8 header bytes are there; any type and code are accepted.
    """
    _check_family(family, ValueError)
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise DecodeError(f"{_name(family)} header", len(data),
                          f"need {HEADER_LENGTH} bytes, have {len(data)}")
    msg_type, code, checksum = _HEAD.unpack_from(data)
    mtu: int | None = None
    pointer: int | None = None
    if family == 4:
        if msg_type == Icmp4Type.DEST_UNREACH and code == Icmp4Unreach.FRAG_NEEDED:
            mtu = int.from_bytes(data[6:8], "big")
        elif msg_type == Icmp4Type.PARAM_PROBLEM:
            pointer = data[4]
    elif msg_type == Icmp6Type.PACKET_TOO_BIG:
        mtu = int.from_bytes(data[4:8], "big")
    elif msg_type == Icmp6Type.PARAM_PROBLEM:
        pointer = int.from_bytes(data[4:8], "big")
    quoted, extensions = _split_extensions(data, family, msg_type)
    return IcmpMessage(family, msg_type, code, checksum, mtu, pointer, quoted, extensions)


def _split_extensions(data: bytes, family: int, msg_type: int) -> tuple[bytes, bytes]:
    body = data[HEADER_LENGTH:]
    types, at, unit = _RFC4884[family]
    if msg_type not in types:
        return body, b""
    length = data[at] * unit
    # RFC 4884 section 5.1: a quote before extensions has at least 128 bytes. Anything
    # else in the length byte (zero, legacy garbage, past the end) is not a valid length.
    if RFC4884_MIN_QUOTE <= length <= len(body):
        return body[:length], body[length:]
    return body, b""


def encode(msg_type: int, code: int, quoted: bytes, *, family: int, mtu: int | None = None,
           pointer: int | None = None, src: Address | str | None = None,
           dst: Address | str | None = None, extensions: bytes = b"") -> bytes:
    """An ICMP or ICMPv6 message with its checksum.

    `mtu` goes into ICMPv4 type 3 code 4 (16 bits) or ICMPv6 type 2 (32 bits), `pointer`
    into ICMPv4 type 12 (8 bits) or ICMPv6 type 4 (32 bits); either is 0 when omitted
    there and an EncodeError anywhere else. ICMPv6 needs `src` and `dst` for its
    pseudo-header; ICMPv4's checksum covers the message alone and ignores them.
    `extensions` appends an RFC 4884 extension structure (given whole, as bytes): the
    quote is zero-padded to at least 128 bytes and a whole number of length units, and
    the length byte is set.
    """
    _check_family(family, EncodeError)
    for name, value in (("type", msg_type), ("code", code)):
        if not 0 <= value <= 0xFF:
            raise EncodeError(f"{_name(family)} {name} must fit in 8 bits, got {value}")
    rest = bytearray(_rest_of_header(family, msg_type, code, mtu, pointer))
    body = bytes(quoted)
    if extensions:
        types, at, unit = _RFC4884[family]
        if msg_type not in types:
            raise EncodeError(f"RFC 4884 extensions need {_name(family)} type "
                              f"{' or '.join(map(str, sorted(types)))}, got {msg_type}")
        size = max(RFC4884_MIN_QUOTE, -(-len(body) // unit) * unit)
        if size // unit > 0xFF:
            raise EncodeError(f"a {len(body)}-byte quote is too long for an RFC 4884 "
                              f"length ({0xFF * unit} bytes at most)")
        rest[at - 4] = size // unit
        body = body.ljust(size, b"\x00") + bytes(extensions)
    message = _HEAD.pack(msg_type, code, 0) + bytes(rest) + body
    if len(message) > 0xFFFF - (ipv4.MIN_HEADER if family == 4 else 0):
        raise EncodeError(f"{_name(family)} message of {len(message)} bytes does not fit "
                          f"in an IPv{family} packet")
    if family == 4:
        checksum = internet_checksum(message)
    else:
        if src is None or dst is None:
            raise EncodeError("ICMPv6 needs src and dst for its checksum's pseudo-header")
        checksum = internet_checksum(_pseudo_header_v6(src, dst, len(message)) + message)
    return message[:2] + checksum.to_bytes(2, "big") + message[4:]


def _rest_of_header(family: int, msg_type: int, code: int, mtu: int | None,
                    pointer: int | None) -> bytes:
    if family == 4:
        mtu_ok = msg_type == Icmp4Type.DEST_UNREACH and code == Icmp4Unreach.FRAG_NEEDED
        pointer_ok = msg_type == Icmp4Type.PARAM_PROBLEM
        mtu_bits, pointer_bits = 16, 8
    else:
        mtu_ok = msg_type == Icmp6Type.PACKET_TOO_BIG
        pointer_ok = msg_type == Icmp6Type.PARAM_PROBLEM
        mtu_bits = pointer_bits = 32
    for name, value, ok, bits in (("mtu", mtu, mtu_ok, mtu_bits),
                                  ("pointer", pointer, pointer_ok, pointer_bits)):
        if value is None:
            continue
        if not ok:
            raise EncodeError(f"{_name(family)} type {msg_type} code {code} has no {name}")
        if not 0 <= value < 1 << bits:
            raise EncodeError(f"{_name(family)} {name} must fit in {bits} bits, got {value}")
    if family == 4:
        return bytes([pointer or 0, 0]) + (mtu or 0).to_bytes(2, "big")
    return (mtu or pointer or 0).to_bytes(4, "big")


def _pseudo_header_v6(src: Address | str, dst: Address | str, length: int) -> bytes:
    s, d = ip_address(src), ip_address(dst)
    if s.version != 6 or d.version != 6:
        raise EncodeError(f"ICMPv6 pseudo-header needs IPv6 addresses, got {s} and {d}")
    return pseudo_header(s, d, PROTO_ICMPV6, length)


def verify(data: bytes, family: int, src: Address | str | None = None,
           dst: Address | str | None = None) -> bool:
    """Whether a message's checksum holds (ICMPv6: over the pseudo-header). Never raises.

    False for anything that cannot be checked: under 8 bytes, an unknown family, or
    ICMPv6 without two IPv6 addresses.
    """
    try:
        data = bytes(data)
        if len(data) < HEADER_LENGTH:
            return False
        if family == 4:
            return internet_checksum(data) == 0
        if family != 6 or src is None or dst is None:
            return False
        return internet_checksum(_pseudo_header_v6(src, dst, len(data)) + data) == 0
    except (ValueError, TypeError):  # addresses that do not parse (EncodeError included)
        return False


def quoted_probe(msg: IcmpMessage) -> QuotedProbe:
    """The invoking packet of an error message, read from however much of it is quoted.

    Raises DecodeError, with an offset into `msg.quoted`, when the message is not an error
    or its quote does not hold a whole IP header of the message's family.
    """
    if not msg.is_error:
        raise DecodeError(f"{_name(msg.family)} message", 0,
                          f"type {msg.type} is not an error and quotes no packet")
    if msg.family == 4:
        return _quoted_v4(bytes(msg.quoted))
    return _quoted_v6(bytes(msg.quoted))


def _quoted_v4(quote: bytes) -> QuotedProbe:
    header = ipv4.decode_header(quote, what="quoted IPv4 header")
    total, header_length = header.total_length or 0, header.header_length
    # A total length below the header's own is nonsense (a byte-swapped field, say) and
    # says nothing about where the payload ends: keep all that is quoted then.
    end = min(total, len(quote)) if total >= header_length else len(quote)
    return QuotedProbe(4, header.src, header.dst, header.protocol, header.identification,
                       None, total,
                       quote[header_length:end], header)


def _quoted_v6(quote: bytes) -> QuotedProbe:
    what = "quoted IPv6 header"
    if len(quote) < ipv6.HEADER_LENGTH:
        raise DecodeError(what, len(quote),
                          f"need {ipv6.HEADER_LENGTH} bytes, have {len(quote)}")
    first, length, nxt, hops, src, dst = _IPV6_FIXED.unpack_from(quote)
    version = first >> 28
    if version != 6:
        raise DecodeError(what, 0, f"version is {version}, not 6")
    tclass = first >> 20 & 0xFF
    header = IPv6Header(src=IPv6Address(src), dst=IPv6Address(dst), next_header=nxt,
                        hop_limit=hops, dscp=tclass >> 2, ecn=tclass & 0b11,
                        flow_label=first & 0xFFFFF, payload_length=length, version=version)
    end = min(ipv6.HEADER_LENGTH + length, len(quote))
    walked, protocol, offset = _walk_quoted(quote[:end], nxt, ipv6.HEADER_LENGTH)
    return QuotedProbe(6, header.src, header.dst, protocol, None, header.flow_label,
                       ipv6.HEADER_LENGTH + length, quote[offset:end], header, walked)


def _walk_quoted(data: bytes, next_header: int,
                 offset: int) -> tuple[tuple[ExtensionHeader, ...], int, int]:
    """ipv6.walk_extensions, but stopping (not failing) at a header the quote cuts short."""
    walked: list[ExtensionHeader] = []
    fragment: FragmentHeader | None = None
    # Each step consumes at least 8 bytes, so the loop ends with the data.
    while next_header in _EXTENSION_HEADERS or next_header == ipv6.FRAGMENT:
        if len(data) - offset < 8:
            break
        if next_header == ipv6.FRAGMENT:
            fragment = ipv6.decode_fragment_header(data, offset)
            size = 8
        else:
            size = (data[offset + 1] + 1) * 8
            if offset + size > len(data):
                break
        walked.append(ExtensionHeader(next_header, offset, data[offset:offset + size]))
        next_header = data[offset]
        offset += size
        if fragment is not None and fragment.fragment_offset != 0:
            break  # a later fragment: what follows is the middle of the datagram
    return tuple(walked), next_header, offset
