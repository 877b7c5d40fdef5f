"""IP fragmentation (RFC 791, RFC 8200 section 4.5) and reassembly (RFC 791, 815, 5722, 8200).

Pure codecs plus one stateful value, `Reassembler`, that answers "what would a receiving
stack make of these packets?". Nothing here does I/O; the reassembler's clock is injected.

The numbers to keep in mind (TCP/IP Illustrated vol. 1, section 10.7.1): a UDP datagram
of 2992 payload bytes + 8 header bytes is an IPv4 datagram whose Total Length is 3020.
Over a 1500-byte MTU it leaves as 3 fragments of 1500, 1500 and 60 bytes (1480 + 1480 + 40
data bytes) at offsets 0, 185, 370 in 8-byte units, MF on the first two: 3060 bytes in all,
the 3020 plus one more 20-byte IPv4 header for each of the two extra packets. IPv4 may be
fragmented by the source and by any router (`refragment_ipv4`), IPv6 by the source only
(`fragment_ipv6`), whose links all carry at least 1280 bytes.

Overlapping fragments (see `Reassembler` for the details): there is no one answer, so the
reassembler takes a policy per family.

- ``"linux"`` (the IPv4 default): what Linux has done since 4.19 (2018). A fragment lying
  wholly inside a run of fragments it already holds is a duplicate and is ignored, so the
  first copy's bytes win; any other overlap discards the whole datagram. Before 4.19 Linux
  trimmed overlaps instead (earlier-starting data won, later-starting data was overwritten),
  which is neither first-wins nor last-wins.
- ``"rfc5722"`` (the IPv6 default): RFC 5722 / RFC 8200 section 4.5. Exact duplicates
  (same offset, same bytes) are ignored; any other overlap discards the whole datagram.
- ``"first"``: overlaps are kept and the bytes that arrived first win.
- ``"last"``: overlaps are kept and the bytes that arrived last win, as in the reassembly
  procedure RFC 791 sketches (each fragment's data is copied into the buffer as it comes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, NamedTuple

from hdp.errors import DecodeError, EncodeError
from hdp.wire import ipv4, ipv6
from hdp.wire.ipv4 import FLAG_MF, MIN_HEADER, IPv4Header
from hdp.wire.ipv6 import FragmentHeader, IPv6Header

IPV4_MIN_MTU = 68  # RFC 791: a 60-byte header plus one 8-byte block of data
IPV6_MIN_MTU = ipv6.MIN_MTU  # 1280, RFC 8200 section 5
MAX_DATAGRAM = 0xFFFF  # IPv4 total length / IPv6 payload length
FRAGMENT_HEADER_LENGTH = 8
OPTION_COPIED = 0x80  # the copied flag in an IPv4 option type (RFC 791 section 3.1)
DEFAULT_TIMEOUT = 30.0  # Linux net.ipv4.ipfrag_time; RFC 8200 and Linux IPv6 use 60

# Extension headers that may make up the unfragmentable part of an IPv6 packet.
_UNFRAGMENTABLE = frozenset({ipv6.HOP_BY_HOP, ipv6.ROUTING, ipv6.DESTINATION_OPTIONS})

Overlap = Literal["linux", "rfc5722", "first", "last"]
OVERLAP_POLICIES: tuple[Overlap, ...] = ("linux", "rfc5722", "first", "last")

V4Key = tuple[IPv4Address, IPv4Address, int, int]  # (src, dst, protocol, identification)
V6Key = tuple[IPv6Address, IPv6Address, int]  # (src, dst, identification)
Key = V4Key | V6Key


# ---------------------------------------------------------------------------------------
# IPv4 fragments as values


@dataclass(frozen=True)
class Fragment:
    """One IPv4 packet seen as a piece of a datagram."""

    header: IPv4Header
    payload: bytes

    @property
    def offset_bytes(self) -> int:
        """Where the payload starts in the original datagram's data."""
        return self.header.fragment_offset * 8

    @property
    def more(self) -> bool:
        """The MF flag: more fragments follow this one."""
        return self.header.mf

    @property
    def end(self) -> int:
        """Where the payload ends in the original datagram's data."""
        return self.offset_bytes + len(self.payload)

    @property
    def is_fragment(self) -> bool:
        """False for a whole datagram (MF clear and offset 0)."""
        return self.more or self.header.fragment_offset != 0


def decode_fragment(data: bytes) -> Fragment:
    """Parse an IPv4 packet as a `Fragment`; raises DecodeError like `ipv4.decode`."""
    packet = ipv4.decode(data)
    return Fragment(packet.header, packet.payload)


def copied_options(options: bytes, offset: int = MIN_HEADER) -> bytes:
    """The options a non-first fragment carries: those with the copied flag, padded to 4.

    `offset` is where `options` start in the packet, for the DecodeError raised when an
    option's length byte is missing or wrong. NOPs are not copied; EOL ends the list.
    """
    options = bytes(options)
    kept = bytearray()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of option list
            break
        if kind == 1:  # no-operation: one byte, copied flag clear
            i += 1
            continue
        if i + 1 >= len(options):
            raise DecodeError("IPv4 options", offset + i, f"option {kind} has no length byte")
        length = options[i + 1]
        if length < 2:
            raise DecodeError("IPv4 options", offset + i + 1,
                              f"option {kind} has length {length}, below 2")
        if i + length > len(options):
            raise DecodeError("IPv4 options", offset + i + 1,
                              f"option {kind} says {length} bytes, {len(options) - i} left")
        if kind & OPTION_COPIED:
            kept += options[i:i + length]
        i += length
    return bytes(kept) + b"\x00" * (-len(kept) % 4)


# ---------------------------------------------------------------------------------------
# IPv4 fragmentation: at the source, and again at a router


def _check_ipv4_mtu(mtu: int) -> None:
    if mtu < IPV4_MIN_MTU:
        raise EncodeError(
            f"MTU {mtu} is below {IPV4_MIN_MTU}, the least every IPv4 link must carry (RFC 791)"
        )


def _df_message(size: int, mtu: int) -> str:
    return f"DF set and the datagram of {size} bytes exceeds MTU {mtu}"


def _cut(header: IPv4Header, data: bytes, mtu: int, later_options: bytes) -> list[bytes]:
    """RFC 791's fragmentation procedure, applied to a datagram or to a fragment of one.

    Offsets stay relative to the original datagram; the piece at its very start keeps all
    options, every other piece only `later_options`; the last piece keeps the MF flag of
    `header` (set when `header` is itself a non-last fragment), the others all have MF.
    """
    base = header.fragment_offset * 8
    pieces: list[bytes] = []
    pos = 0
    while True:
        absolute = base + pos
        options = header.options if absolute == 0 else later_options
        room = mtu - MIN_HEADER - len(options)  # >= 8 because mtu >= 68 and options <= 40
        last = len(data) - pos <= room
        size = len(data) - pos if last else room // 8 * 8
        more = header.mf if last else True
        piece = replace(
            header,
            options=options,
            flags=header.flags & ~FLAG_MF | (FLAG_MF if more else 0),
            fragment_offset=absolute // 8,
            total_length=None,
            checksum=None,
        )
        pieces.append(ipv4.encode(piece, data[pos:pos + size]))
        pos += size
        if last:
            return pieces


def fragment_ipv4(header: IPv4Header, payload: bytes, mtu: int) -> list[bytes]:
    """Split a datagram into packets of at most `mtu` bytes each (RFC 791).

    Every fragment shares the identification, carries an offset in 8-byte units, and has
    MF set except the last; all fragments but the last carry a multiple of 8 data bytes.
    The first fragment keeps every option, the others only those with the copied flag
    (padded with EOL to a multiple of 4). A datagram that fits is returned as one packet,
    encoded as `ipv4.encode` would (explicit total length and checksum honoured); when it
    is cut, each piece's total length and checksum are computed. A `header` that is itself
    a fragment (MF or an offset) is cut as a router would, as `refragment_ipv4` does.

    Raises EncodeError for an MTU below 68, a datagram over 65535 bytes, a datagram with
    DF set that does not fit, or options that cannot be walked to find the copied ones.
    """
    _check_ipv4_mtu(mtu)
    payload = bytes(payload)
    size = header.header_length + len(payload)
    if size > MAX_DATAGRAM:
        raise EncodeError(f"IPv4 datagram of {size} bytes exceeds {MAX_DATAGRAM}")
    if size <= mtu:
        return [ipv4.encode(header, payload)]
    if header.df:
        raise EncodeError(_df_message(size, mtu))
    end = header.fragment_offset * 8 + len(payload)
    if MIN_HEADER + end > MAX_DATAGRAM:
        raise EncodeError(
            f"fragment data ends at byte {end} of its datagram, which with a 20-byte header "
            f"exceeds {MAX_DATAGRAM}"
        )
    try:
        later = copied_options(header.options)
    except DecodeError as error:
        raise EncodeError(f"cannot fragment: {error}") from error
    return _cut(header, payload, mtu, later)


def refragment_ipv4(fragment_bytes: bytes, mtu: int) -> list[bytes]:
    """What a router does to an IPv4 packet (often itself a fragment) too big for its next hop.

    Offsets stay relative to the original datagram and the last piece keeps the input's MF
    flag, so the pieces reassemble with the datagram's other fragments. Only the
    fragmentation step: TTL is not decremented. A packet that fits is returned unchanged
    (trimmed to its total length). The input's header checksum is not checked; the pieces'
    are computed.

    Raises DecodeError for bytes that are not an IPv4 packet (including options that cannot
    be walked, or data that would end past byte 65535 of the datagram), EncodeError for an
    MTU below 68 or DF set on a packet that does not fit.
    """
    _check_ipv4_mtu(mtu)
    packet = ipv4.decode(fragment_bytes)
    header = packet.header
    size = header.header_length + len(packet.payload)
    if size <= mtu:
        return [bytes(fragment_bytes[:size])]
    if header.df:
        raise EncodeError(_df_message(size, mtu))
    end = header.fragment_offset * 8 + len(packet.payload)
    if MIN_HEADER + end > MAX_DATAGRAM:
        raise DecodeError("IPv4 fragment", 6,
                          f"data ends at byte {end} of its datagram, which with a 20-byte "
                          f"header exceeds {MAX_DATAGRAM}")
    later = copied_options(header.options)
    return _cut(header, packet.payload, mtu, later)


# ---------------------------------------------------------------------------------------
# IPv6 fragmentation: at the source only


def _unfragmentable_tail(first: int, unfragmentable: bytes) -> int | None:
    """Where, in `unfragmentable`, the last header starts (None when it is empty).

    Checks that it is a chain of hop-by-hop (first only), routing and destination-options
    headers, `first` being the type of the first, and that their lengths add up exactly.
    """
    pos, kind, last = 0, first, None
    while pos < len(unfragmentable):
        if kind not in _UNFRAGMENTABLE or (kind == ipv6.HOP_BY_HOP and pos):
            raise EncodeError(
                f"the unfragmentable part may hold only hop-by-hop (first), routing and "
                f"destination options headers; header {kind} at byte {pos}"
            )
        if len(unfragmentable) - pos < 8:
            raise EncodeError(
                f"unfragmentable header {kind} at byte {pos} needs 8 bytes, "
                f"have {len(unfragmentable) - pos}"
            )
        size = (unfragmentable[pos + 1] + 1) * 8
        if pos + size > len(unfragmentable):
            raise EncodeError(
                f"unfragmentable header {kind} at byte {pos} says {size} bytes, "
                f"have {len(unfragmentable) - pos}"
            )
        last, kind = pos, unfragmentable[pos]
        pos += size
    return last


def fragment_ipv6(header: IPv6Header, payload_after_fragment_header: bytes, next_header: int,
                  mtu: int, identification: int, unfragmentable: bytes = b"", *,
                  atomic: bool = False) -> list[bytes]:
    """Split an IPv6 packet at its source into packets of at most `mtu` bytes (RFC 8200 4.5).

    `unfragmentable` is the extension headers every fragment repeats (hop-by-hop, routing,
    destination options before routing); `header.next_header` names the first of them and
    is ignored when there are none. `next_header` is the type of the first header of the
    fragmentable part, `payload_after_fragment_header`. Each fragment is the fixed header,
    the unfragmentable part with its last next-header set to 44, a fragment header (offset
    in 8-byte units, M on all but the last, `identification`), and data, a multiple of 8
    bytes in all but the last. A packet that fits is returned whole, without a fragment
    header, unless `atomic` asks for an atomic fragment (offset 0, M clear; RFC 6946).

    Raises EncodeError for an MTU below 1280, a payload over 65535 bytes (a jumbogram), an
    unfragmentable part that is malformed or leaves no room for 8 data bytes, or fields
    out of range.
    """
    if mtu < IPV6_MIN_MTU:
        raise EncodeError(
            f"MTU {mtu} is below {IPV6_MIN_MTU}, the least every IPv6 link must carry "
            f"(RFC 8200 section 5)"
        )
    if not 0 <= next_header <= 0xFF:
        raise EncodeError(f"IPv6 next header must fit in 8 bits, got {next_header}")
    if not 0 <= identification <= 0xFFFFFFFF:
        raise EncodeError(
            f"IPv6 fragment identification must fit in 32 bits, got {identification}"
        )
    data = bytes(payload_after_fragment_header)
    unfragmentable = bytes(unfragmentable)
    tail = _unfragmentable_tail(header.next_header, unfragmentable)
    length = len(unfragmentable) + len(data)
    if length > MAX_DATAGRAM:
        raise EncodeError(
            f"IPv6 payload of {length} bytes needs a jumbogram, which we do not build"
        )

    def chained(kind: int) -> tuple[IPv6Header, bytes]:
        """The fixed header and unfragmentable part with `kind` following the latter."""
        if tail is None:
            return replace(header, next_header=kind, payload_length=None), b""
        patched = bytearray(unfragmentable)
        patched[tail] = kind
        return replace(header, payload_length=None), bytes(patched)

    if ipv6.HEADER_LENGTH + length <= mtu and not atomic:
        fixed, unfrag = chained(next_header)
        return [ipv6.encode(fixed, unfrag + data)]
    fixed, unfrag = chained(ipv6.FRAGMENT)
    room = mtu - ipv6.HEADER_LENGTH - len(unfrag) - FRAGMENT_HEADER_LENGTH
    if room < 8:
        raise EncodeError(
            f"an unfragmentable part of {len(unfrag)} bytes leaves no room for 8 data bytes "
            f"in MTU {mtu}"
        )
    packets: list[bytes] = []
    pos = 0
    while True:
        last = len(data) - pos <= room
        size = len(data) - pos if last else room // 8 * 8
        fragment = FragmentHeader(next_header, pos // 8, not last, identification)
        packets.append(ipv6.encode(fixed, unfrag + fragment.encode() + data[pos:pos + size]))
        pos += size
        if last:
            return packets


# ---------------------------------------------------------------------------------------
# Reassembly


class Drop(NamedTuple):
    """A decision of the reassembler to discard a fragment or a whole datagram."""

    key: Key
    reason: str


@dataclass(frozen=True)
class _V6Head:
    """What an IPv6 fragment at offset 0 contributes to the reassembled packet."""

    prefix: bytes  # the fixed header and the unfragmentable part
    chain_at: int  # index in `prefix` of the next-header byte to point at the payload
    next_header: int  # from the fragment header: the type of the fragmentable part


@dataclass(frozen=True)
class _Piece:
    """One fragment, parsed: where its data goes and what it brings along."""

    key: Key
    offset: int  # bytes
    more: bool
    data: bytes
    head_length: int  # header bytes the reassembled datagram will carry, at least
    head: IPv4Header | _V6Head | None  # set for the fragment at offset 0

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass
class _Queue:
    """A datagram being reassembled (Linux: struct inet_frag_queue)."""

    first_seen: float
    length: int = 0  # the highest end seen; the datagram's length once `last_in`
    last_in: bool = False  # the fragment without MF has arrived
    pieces: list[tuple[int, bytes]] = field(default_factory=list)  # in arrival order
    runs: list[list[int]] = field(default_factory=list)  # "linux": [start, end], sorted
    head: IPv4Header | _V6Head | None = None


def _rebuild_v4(header: IPv4Header, data: bytes) -> bytes:
    whole = replace(header, flags=header.flags & ~FLAG_MF, fragment_offset=0,
                    total_length=None, checksum=None)
    return ipv4.encode(whole, data)


def _rebuild_v6(head: _V6Head, data: bytes) -> bytes:
    prefix = bytearray(head.prefix)
    prefix[4:6] = (len(prefix) - ipv6.HEADER_LENGTH + len(data)).to_bytes(2, "big")
    prefix[head.chain_at] = head.next_header
    return bytes(prefix) + data


def _head_length(head: IPv4Header | _V6Head) -> int:
    """Bytes the reassembled datagram's length field counts besides the data."""
    if isinstance(head, IPv4Header):
        return head.header_length
    return len(head.prefix) - ipv6.HEADER_LENGTH


class Reassembler:
    """Reassembles IPv4 fragments and IPv6 fragments as a receiving stack would.

    `add` takes one packet off the wire. A packet that is not a fragment comes straight
    back; a fragment is queued under (src, dst, protocol, identification) for IPv4 and
    (src, dst, identification) for IPv6, in any order, and the packet that completes a
    datagram returns it whole: for IPv4 the header of the fragment at offset 0 (options,
    TTL and all) with MF clear and total length and checksum recomputed; for IPv6 the fixed
    header and unfragmentable part of the fragment at offset 0, the fragment header removed
    and the payload length recomputed. No ICMP error is modelled.

    Every fragment or datagram discarded is recorded in `dropped` as (key, reason):

    - a fragment whose data would end past the 65535-byte limit (the ping of death) is
      dropped; a completed datagram too long once its offset-0 headers are counted is
      discarded;
    - as in Linux (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c) for every policy: a last
      fragment (MF/M clear) that ends before data already received or at a different end
      than an earlier last fragment, a fragment with data past the end a last fragment
      set, and a fragment without data each discard the whole datagram;
    - IPv4 data in a fragment with MF set that is not a multiple of 8 bytes is trimmed to
      one, as Linux does; an IPv6 fragment like that is dropped (RFC 8200 section 4.5);
    - with `verify_checksum`, an IPv4 packet whose header checksum fails is dropped;
    - overlaps follow `ipv4_overlap` / `ipv6_overlap` (see the module docstring). Under
      "linux" a run is a series of fragments that each arrived right after the previous
      one's end at the top of the datagram so far, as in inet_frag_queue_insert(): a
      fragment inside one run is a duplicate, one spanning two runs an overlap, so the
      verdict can depend on arrival order. Duplicates are counted in `duplicates`.

    A datagram whose first fragment arrived more than `timeout` seconds ago is discarded
    with reason "reassembly timeout", by `expire()` or at the start of the next `add`;
    later fragments do not restart the timer. A fragment with the key of a discarded
    datagram starts a new one. IPv6 extension headers after the fragment header are data.
    Bytes that are not an IPv4 or IPv6 packet raise DecodeError.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic, *,
                 ipv4_overlap: Overlap = "linux", ipv6_overlap: Overlap = "rfc5722",
                 verify_checksum: bool = True) -> None:
        for name, policy in (("ipv4_overlap", ipv4_overlap), ("ipv6_overlap", ipv6_overlap)):
            if policy not in OVERLAP_POLICIES:
                raise ValueError(f"{name} must be one of {', '.join(OVERLAP_POLICIES)}, "
                                 f"got {policy!r}")
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, got {timeout}")
        self.timeout = timeout
        self.ipv4_overlap: Overlap = ipv4_overlap
        self.ipv6_overlap: Overlap = ipv6_overlap
        self.verify_checksum = verify_checksum
        self.dropped: list[Drop] = []
        self.duplicates = 0
        self._clock = clock
        self._queues: dict[Key, _Queue] = {}

    @property
    def pending(self) -> int:
        """The number of datagrams still incomplete."""
        return len(self._queues)

    def expire(self) -> list[Drop]:
        """Discard datagrams whose first fragment arrived more than `timeout` ago."""
        return self._expire(self._clock())

    def add(self, packet: bytes) -> bytes | None:
        """The whole datagram if `packet` completes one (or is not a fragment), else None."""
        data = bytes(packet)
        now = self._clock()
        self._expire(now)
        if not data:
            raise DecodeError("IP packet", 0, "empty, no version to read")
        version = data[0] >> 4
        if version == 4:
            parsed = self._parse_v4(data)
        elif version == 6:
            parsed = self._parse_v6(data)
        else:
            raise DecodeError("IP packet", 0, f"version is {version}, neither 4 nor 6")
        if parsed is None or isinstance(parsed, bytes):
            return parsed
        return self._queue(parsed, now)

    # -- parsing -------------------------------------------------------------------------

    def _parse_v4(self, data: bytes) -> _Piece | bytes | None:
        packet = ipv4.decode(data)
        h = packet.header
        key: V4Key = (h.src, h.dst, h.protocol, h.identification)
        if self.verify_checksum and not ipv4.verify_header_checksum(data[:h.header_length]):
            self._record(key, f"IPv4 header checksum 0x{h.checksum or 0:04x} does not verify: "
                              "packet dropped")
            return None
        if not h.mf and h.fragment_offset == 0:
            return data[:h.header_length + len(packet.payload)]
        payload = packet.payload
        if h.mf:
            payload = payload[:len(payload) // 8 * 8]
        offset = h.fragment_offset * 8
        return _Piece(key, offset, h.mf, payload, MIN_HEADER, h if offset == 0 else None)

    def _parse_v6(self, data: bytes) -> _Piece | bytes | None:
        if len(data) < ipv6.HEADER_LENGTH:
            raise DecodeError("IPv6 header", len(data),
                              f"need {ipv6.HEADER_LENGTH} bytes, have {len(data)}")
        end = ipv6.HEADER_LENGTH + int.from_bytes(data[4:6], "big")
        if end > len(data):
            raise DecodeError("IPv6 packet", len(data),
                              f"payload length says {end - ipv6.HEADER_LENGTH} bytes, "
                              f"have {len(data) - ipv6.HEADER_LENGTH}")
        data = data[:end]
        kind, pos, chain_at = data[6], ipv6.HEADER_LENGTH, 6
        while kind in _UNFRAGMENTABLE:
            if end - pos < 8:
                raise DecodeError("IPv6 extension header", pos,
                                  f"header {kind} needs 8 bytes, have {end - pos}")
            size = (data[pos + 1] + 1) * 8
            if pos + size > end:
                raise DecodeError("IPv6 extension header", pos,
                                  f"header {kind} says {size} bytes, have {end - pos}")
            kind, chain_at = data[pos], pos
            pos += size
        if kind != ipv6.FRAGMENT:
            return data
        fragment = ipv6.decode_fragment_header(data, pos)
        key: V6Key = (IPv6Address(data[8:24]), IPv6Address(data[24:40]),
                      fragment.identification)
        head = _V6Head(data[:pos], chain_at, fragment.next_header)
        payload = data[pos + FRAGMENT_HEADER_LENGTH:]
        offset = fragment.fragment_offset * 8
        if offset == 0 and not fragment.more_fragments:
            # An atomic fragment (RFC 6946): processed on its own, whatever else is queued.
            return _rebuild_v6(head, payload)
        if fragment.more_fragments and len(payload) % 8:
            self._record(key, f"fragment with M set carries {len(payload)} bytes, not a "
                              "multiple of 8: fragment dropped (RFC 8200 section 4.5)")
            return None
        return _Piece(key, offset, fragment.more_fragments, payload,
                      pos - ipv6.HEADER_LENGTH, head if offset == 0 else None)

    # -- queueing ------------------------------------------------------------------------

    def _queue(self, piece: _Piece, now: float) -> bytes | None:
        key, offset, end = piece.key, piece.offset, piece.end
        if piece.head_length + end > MAX_DATAGRAM:
            self._record(key, f"fragment data ends at byte {end}: with {piece.head_length} "
                              f"header bytes the datagram would exceed {MAX_DATAGRAM} bytes: "
                              "fragment dropped")
            return None
        queue = self._queues.setdefault(key, _Queue(first_seen=now))
        # The order of these checks is Linux's (ip_frag_queue / ip6_frag_queue).
        if not piece.more:
            if queue.last_in and end != queue.length:
                self._discard(key, f"last fragment ends at byte {end} but an earlier last "
                                   f"fragment ended at byte {queue.length}")
                return None
            if end < queue.length:
                self._discard(key, f"last fragment ends at byte {end} but data already "
                                   f"reaches byte {queue.length}")
                return None
            queue.last_in, queue.length = True, end
        elif end > queue.length:
            if queue.last_in:
                self._discard(key, f"fragment data reaches byte {end}, past the end "
                                   f"(byte {queue.length}) set by the last fragment")
                return None
            queue.length = end
        if end == offset:
            self._discard(key, f"fragment at byte {offset} carries no data")
            return None
        policy = self.ipv4_overlap if isinstance(key[0], IPv4Address) else self.ipv6_overlap
        verdict = self._place(queue, piece, policy)
        if verdict == "duplicate":
            self.duplicates += 1
            return None
        if verdict != "ok":
            self._discard(key, verdict)
            return None
        if piece.head is not None and (queue.head is None or policy == "last"):
            queue.head = piece.head
        if not queue.last_in or not _covers(queue.pieces, queue.length):
            return None
        del self._queues[key]
        head = queue.head
        assert head is not None  # data covering byte 0 came with a fragment at offset 0
        size = _head_length(head) + queue.length
        if size > MAX_DATAGRAM:
            self._record(key, f"reassembled datagram of {size} bytes exceeds {MAX_DATAGRAM}: "
                              "datagram discarded")
            return None
        buffer = bytearray(queue.length)
        order = reversed(queue.pieces) if policy == "first" else iter(queue.pieces)
        for start, data in order:
            buffer[start:start + len(data)] = data
        if isinstance(head, IPv4Header):
            return _rebuild_v4(head, bytes(buffer))
        return _rebuild_v6(head, bytes(buffer))

    @staticmethod
    def _place(queue: _Queue, piece: _Piece, policy: Overlap) -> str:
        """Store the piece: "ok", "duplicate", or the reason the datagram is discarded."""
        offset, end, data = piece.offset, piece.end, piece.data
        if policy == "linux":
            verdict = _place_in_runs(queue.runs, offset, end)
            if verdict == "ok":
                queue.pieces.append((offset, data))
            return verdict
        for start, held in queue.pieces:
            if start == offset and held == data:
                return "duplicate"
        if policy == "rfc5722":
            for start, held in queue.pieces:
                if offset < start + len(held) and start < end:
                    return (f"overlap: fragment at bytes {offset}..{end} overlaps bytes "
                            f"{start}..{start + len(held)} already received (RFC 5722)")
        queue.pieces.append((offset, data))
        return "ok"

    def _discard(self, key: Key, reason: str) -> None:
        self._queues.pop(key, None)
        self._record(key, f"{reason}: datagram discarded")

    def _record(self, key: Key, reason: str) -> None:
        self.dropped.append(Drop(key, reason))

    def _expire(self, now: float) -> list[Drop]:
        stale = [key for key, queue in self._queues.items()
                 if now - queue.first_seen > self.timeout]
        drops = [Drop(key, "reassembly timeout") for key in stale]
        for key in stale:
            del self._queues[key]
        self.dropped.extend(drops)
        return drops


def _place_in_runs(runs: list[list[int]], offset: int, end: int) -> str:
    """Linux's inet_frag_queue_insert() over runs of adjacent fragments.

    A fragment past the top of what is held extends the top run when it starts exactly at
    its end, else it starts a new run; below the top it is a duplicate when it lies inside
    one run, an overlap when it touches any, and otherwise a run of its own.
    """
    if runs and runs[-1][1] < end:
        top = runs[-1]
        if offset < top[1]:
            return (f"overlap: fragment at bytes {offset}..{end} overlaps the run "
                    f"{top[0]}..{top[1]} already received")
        if offset == top[1]:
            top[1] = end
        else:
            runs.append([offset, end])
        return "ok"
    for i, (start, stop) in enumerate(runs):
        if end <= start:
            runs.insert(i, [offset, end])
            return "ok"
        if offset < stop:
            if start <= offset and end <= stop:
                return "duplicate"
            return (f"overlap: fragment at bytes {offset}..{end} overlaps the run "
                    f"{start}..{stop} already received")
    runs.append([offset, end])  # the first fragment of the datagram
    return "ok"


def _covers(pieces: list[tuple[int, bytes]], length: int) -> bool:
    """Whether the pieces leave no hole in bytes 0..length (RFC 815's hole list, emptied)."""
    reach = 0
    for start, data in sorted(pieces, key=lambda p: p[0]):
        if start > reach:
            return False
        reach = max(reach, start + len(data))
    return reach >= length
