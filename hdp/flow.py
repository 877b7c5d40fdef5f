"""One test's own packets: the flow a capture keeps, and how a packet is shown to be in it.

Addresses and a protocol do not tell one test's packets from another's: on loopback every
local packet has the same two addresses, and a host runs many exchanges of one protocol at
once. A `Flow` names one exchange the way its sockets do: the protocol, both addresses and
both ports, plus the IP identifications of packets the test built by hand.

A packet belongs to the flow when its protocol and addresses match and

- its ports match (the first two 16-bit words of the transport header, where UDP,
  UDP-Lite, TCP, SCTP, DCCP and HDP keep them); or
- it is a later fragment (no ports) of a datagram whose first fragment matched: the first
  fragment's (src, dst, protocol, identification) admits the rest. A later fragment that
  arrives before its first is held aside and admitted, in its place in arrival order, when
  the first shows up; one whose first never does is someone else's; or
- its identification (IPv4 ID, IPv6 fragment identification) is one the test chose for a
  packet it built itself, whatever its ports say (a test may mangle them on purpose); or
- it is an ICMP/ICMPv6 error whose quoted packet belongs to the flow by the rules above.

An identification is 16 bits on IPv4: another datagram between the same hosts with the
same protocol and ID is, to the receiving kernel too, a piece of the same datagram.

Malformed packets: a packet is kept, marked malformed, when what attributes it (addresses,
protocol, ports or identification) is readable and matches, whatever is broken after it (a
wrong total length, a cut-short payload): a mangled packet of the test's own is what a
conformance test looks for. A packet too broken to show whose it is (no readable IP
header, an extension chain that does not parse, a transport header cut before its ports)
is not kept, since on a shared host it is as likely anyone's; the capture counts it as
`unattributed`, so it is not lost without a trace.

Everything here is pure: no sockets, no clocks.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Generic, TypeVar

from hdp.errors import DecodeError
from hdp.wire import icmp, ipv4, ipv6

Address = IPv4Address | IPv6Address
# (src, dst, protocol, identification): what ties the fragments of one datagram together;
# an address the flow leaves open is None here too.
FragmentKey = tuple[Address | None, Address | None, int, int]
ICMP_PROTOCOLS = {4: 1, 6: 58}
MAX_IDENTIFICATIONS = 4096
_FIELDS = ("protocol", "src", "dst", "sport", "dport", "identifications")

T = TypeVar("T")


@dataclass(frozen=True)
class Flow:
    """The packets of one exchange, as the capturing host sees them; None means any.

    `src`/`sport` are the sending end, `dst`/`dport` the receiving end. Give everything the
    sockets tell: a flow with only a protocol is no narrower than a protocol filter. Where a
    router rewrites the source (NAT), give the address it rewrites to and leave `sport`
    open, since the router chooses it.
    """

    protocol: int
    src: Address | None = None
    dst: Address | None = None
    sport: int | None = None
    dport: int | None = None
    identifications: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _check_int("protocol", self.protocol, 0xFF)
        for name in ("sport", "dport"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, 0xFFFF)
        for name in ("src", "dst"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, IPv4Address | IPv6Address):
                object.__setattr__(self, name, _address(name, value))
        if self.src is not None and self.dst is not None \
                and self.src.version != self.dst.version:
            raise ValueError(f"flow: src {self.src} and dst {self.dst} are of different "
                             "address families")
        idents = self.identifications
        if isinstance(idents, str | bytes) or not isinstance(idents, Iterable):
            raise ValueError("flow: identifications must be a list of integers")
        idents = frozenset(idents)
        if len(idents) > MAX_IDENTIFICATIONS:
            raise ValueError(f"flow: at most {MAX_IDENTIFICATIONS} identifications, "
                             f"got {len(idents)}")
        for ident in idents:
            _check_int("identification", ident, 0xFFFFFFFF)
        object.__setattr__(self, "identifications", idents)

    @classmethod
    def from_request(cls, value: object) -> Flow:
        """The `flow` field of a capture-start request; ValueError names what is wrong."""
        if not isinstance(value, Mapping):
            raise ValueError(f"flow must be an object with keys {', '.join(_FIELDS)}")
        unknown = sorted(str(key)[:20] for key in value if key not in _FIELDS)
        if unknown:
            raise ValueError(f"flow: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(_FIELDS)}")
        if "protocol" not in value:
            raise ValueError("flow: needs a protocol (0..255)")
        idents = value.get("identifications") or []
        if not isinstance(idents, list):
            raise ValueError("flow: identifications must be a list of integers")
        idents = idents[:MAX_IDENTIFICATIONS + 1]
        for ident in idents:  # before hashing: a list in the list is no identification
            _check_int("identification", ident, 0xFFFFFFFF)
        for name in ("src", "dst"):  # text, as JSON carries an address (not a number)
            if value.get(name) is not None and not isinstance(value[name], str):
                raise ValueError(f"flow: {name} must be an IP address as text or null")
        return cls(value["protocol"], value.get("src"), value.get("dst"), value.get("sport"),
                   value.get("dport"), frozenset(idents))

    def to_request(self) -> dict[str, Any]:
        """The plain-JSON form `from_request` reads."""
        return {"protocol": self.protocol,
                "src": None if self.src is None else str(self.src),
                "dst": None if self.dst is None else str(self.dst),
                "sport": self.sport, "dport": self.dport,
                "identifications": sorted(self.identifications)}

    def __str__(self) -> str:
        def end(address: Address | None, port: int | None) -> str:
            return f"{address or '*'}:{'*' if port is None else port}"
        ids = f" ids {sorted(self.identifications)}" if self.identifications else ""
        return (f"protocol {self.protocol} {end(self.src, self.sport)} -> "
                f"{end(self.dst, self.dport)}{ids}")


def _check_int(name: str, value: object, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"flow: {name} must be an integer 0..{top}, got {str(value)[:40]!r}")


def _address(name: str, value: object) -> Address:
    try:
        return ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"flow: {name} is not an IP address: {str(value)[:60]!r}") from None


@dataclass(frozen=True)
class Verdict:
    """What the filter says of one packet.

    `keep`: it is the flow's. `hold`: a later fragment that may be the flow's once the first
    fragment of `key` shows up. `admits`: the key this packet (a first fragment) makes the
    flow's. `unattributed`: too broken to tell whose it is. `malformed`: why the packet
    does not decode in full, for one that is kept.
    """

    keep: bool = False
    hold: bool = False
    key: FragmentKey | None = None
    admits: FragmentKey | None = None
    unattributed: bool = False
    malformed: str | None = None


FOREIGN = Verdict()
UNATTRIBUTED = Verdict(unattributed=True)


@dataclass(frozen=True)
class _Readable:
    """The fields of a packet that attribute it, read as far as the bytes allow."""

    src: Address
    dst: Address
    protocol: int
    identification: int | None  # None: an IPv6 packet without a fragment header
    offset: int  # fragment offset in 8-byte units
    more: bool
    transport: bytes  # what follows the IP header(s), possibly cut short
    malformed: str | None

    @property
    def first(self) -> bool:
        return self.offset == 0


def read_packet(data: bytes) -> _Readable:
    """The attributing fields of an IPv4 or IPv6 packet; DecodeError when even its
    addresses and protocol cannot be read."""
    version = data[0] >> 4 if data else 0
    if version == 4:
        return _read_v4(bytes(data))
    if version == 6:
        return _read_v6(bytes(data))
    raise DecodeError("IP packet", 0, f"version {version} is neither 4 nor 6")


def _read_v4(data: bytes) -> _Readable:
    h = ipv4.decode_header(data)
    malformed = None
    try:
        ipv4.decode(data)
    except DecodeError as error:
        malformed = str(error)
    total = h.total_length or 0
    end = min(total, len(data)) if total >= h.header_length else len(data)
    return _Readable(h.src, h.dst, h.protocol, h.identification, h.fragment_offset, h.mf,
                     data[h.header_length:end], malformed)


def _read_v6(data: bytes) -> _Readable:
    if len(data) < ipv6.HEADER_LENGTH:
        raise DecodeError("IPv6 header", len(data),
                          f"need {ipv6.HEADER_LENGTH} bytes, have {len(data)}")
    malformed = None
    try:
        ipv6.decode(data)
    except DecodeError as error:
        malformed = str(error)
    src, dst = IPv6Address(data[8:24]), IPv6Address(data[24:40])
    end = min(ipv6.HEADER_LENGTH + int.from_bytes(data[4:6], "big"), len(data))
    _, protocol, offset, fragment = ipv6.walk_extensions(data[:end], data[6],
                                                         ipv6.HEADER_LENGTH)
    if fragment is None:
        return _Readable(src, dst, protocol, None, 0, False, data[offset:end], malformed)
    return _Readable(src, dst, protocol, fragment.identification, fragment.fragment_offset,
                     fragment.more_fragments, data[offset:end], malformed)


def transport_ports(transport: bytes) -> tuple[int, int] | None:
    """(source port, destination port): the first two 16-bit words of the transport header,
    where UDP, UDP-Lite, TCP, SCTP, DCCP and HDP keep them; None when cut before them."""
    if len(transport) < 4:
        return None
    return int.from_bytes(transport[:2], "big"), int.from_bytes(transport[2:4], "big")


class FlowFilter:
    """Judges packets against one flow, remembering which datagrams' fragments are in."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.admitted: set[FragmentKey] = set()

    def judge(self, data: bytes) -> Verdict:
        try:
            packet = read_packet(data)
        except DecodeError:
            return UNATTRIBUTED
        if packet.protocol == ICMP_PROTOCOLS[packet.src.version] \
                and self.flow.protocol != packet.protocol:
            return self._judge_icmp(packet)
        return self._judge(packet)

    def _ends_match(self, src: Address, dst: Address, protocol: int) -> bool:
        flow = self.flow
        return (protocol == flow.protocol and (flow.src is None or flow.src == src)
                and (flow.dst is None or flow.dst == dst))

    def _ports(self, transport: bytes) -> bool | None:
        """Whether the ports match; None when the header is cut before them."""
        flow = self.flow
        if flow.sport is None and flow.dport is None:
            return True
        ports = transport_ports(transport)
        if ports is None:
            return None
        sport, dport = ports
        return (flow.sport in (None, sport)) and (flow.dport in (None, dport))

    def _key(self, src: Address, dst: Address, protocol: int,
             ident: int | None) -> FragmentKey | None:
        if ident is None:
            return None
        return (None if self.flow.src is None else src,
                None if self.flow.dst is None else dst, protocol, ident)

    def _judge(self, packet: _Readable) -> Verdict:
        if not self._ends_match(packet.src, packet.dst, packet.protocol):
            return FOREIGN
        key = self._key(packet.src, packet.dst, packet.protocol, packet.identification)
        if packet.identification is not None \
                and packet.identification in self.flow.identifications:
            return Verdict(keep=True, key=key, admits=self._admit(packet, key),
                           malformed=packet.malformed)
        if not packet.first:  # a later fragment: no ports to read
            if key in self.admitted:
                return Verdict(keep=True, key=key, malformed=packet.malformed)
            return Verdict(hold=True, key=key, malformed=packet.malformed)
        ports = self._ports(packet.transport)
        if ports is None:
            return UNATTRIBUTED
        if not ports:
            return FOREIGN
        return Verdict(keep=True, key=key, admits=self._admit(packet, key),
                       malformed=packet.malformed)

    def _admit(self, packet: _Readable, key: FragmentKey | None) -> FragmentKey | None:
        if key is None or not (packet.more or not packet.first):
            return None  # a whole datagram: nothing else to admit
        self.admitted.add(key)
        return key

    def _judge_icmp(self, packet: _Readable) -> Verdict:
        """An ICMP error is the flow's when the packet it quotes is."""
        try:
            message = icmp.decode(packet.transport, packet.src.version)
            quoted = icmp.quoted_probe(message)
        except DecodeError:
            return FOREIGN  # not an error, or one that quotes no IP header we can read
        if not self._ends_match(quoted.src, quoted.dst, quoted.protocol):
            return FOREIGN
        ident, first = quoted.identification, True
        if quoted.header is not None and isinstance(quoted.header, ipv4.IPv4Header):
            first = quoted.header.fragment_offset == 0
        for extension in quoted.extensions:
            if extension.kind == ipv6.FRAGMENT:
                fragment = ipv6.decode_fragment_header(extension.data)
                ident, first = fragment.identification, fragment.fragment_offset == 0
        if ident is not None and (ident in self.flow.identifications or (
                self._key(quoted.src, quoted.dst, quoted.protocol, ident) in self.admitted)):
            return Verdict(keep=True, malformed=packet.malformed)
        if not first:
            return FOREIGN
        ports = self._ports(quoted.payload)
        if not ports:  # cut before the ports (None) or another flow's (False)
            return FOREIGN
        return Verdict(keep=True, malformed=packet.malformed)


class Sieve(Generic[T]):
    """What a filtered capture keeps, in arrival order: items kept at once, and later
    fragments held under their datagram's key until its first fragment admits them.

    At most `max_items` are kept (more count as `dropped`) and `max_held` held (more count
    as `unattributed`, like any packet whose owner cannot be shown). With a `weight` (an
    item's size in bytes, say), what is kept and held together weighs at most
    `max_weight`: an item kept past it is dropped, one held past it unattributed.
    """

    def __init__(self, max_items: int, max_held: int | None = None, *,
                 max_weight: int | None = None,
                 weight: Callable[[T], int] | None = None) -> None:
        self.max_items = max_items
        self.max_held = max_items if max_held is None else max_held
        self.max_weight = max_weight
        self.dropped = 0
        self.unattributed = 0
        self._weigh = weight if weight is not None else _weightless
        self._weight = 0  # of the items kept and held
        self._items: list[tuple[int, T]] = []  # (arrival number, item), in that order
        self._held: dict[Any, list[tuple[int, T]]] = {}
        self._held_count = 0
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[T]:
        return [item for _, item in self._items]

    def offer(self, verdict: Verdict, item: T) -> int:
        """Place `item` as `verdict` says; the number of items newly kept."""
        self._arrivals += 1
        if verdict.unattributed:
            self.unattributed += 1
            return 0
        if verdict.hold:
            weight = self._weigh(item)
            if self._held_count >= self.max_held or not self._fits(weight):
                self.unattributed += 1
            else:
                self._held.setdefault(verdict.key, []).append((self._arrivals, item))
                self._held_count += 1
                self._weight += weight
            return 0
        if not verdict.keep:
            return 0
        kept = self._keep(self._arrivals, item)
        if verdict.admits is not None:
            for number, held in self._held.pop(verdict.admits, []):
                self._held_count -= 1
                self._weight -= self._weigh(held)
                kept += self._keep(number, held)
        return kept

    def _fits(self, weight: int) -> bool:
        return self.max_weight is None or self._weight + weight <= self.max_weight

    def _keep(self, number: int, item: T) -> int:
        weight = self._weigh(item)
        if len(self._items) >= self.max_items or not self._fits(weight):
            self.dropped += 1
            return 0
        bisect.insort(self._items, (number, item), key=lambda entry: entry[0])
        self._weight += weight
        return 1

    def clear(self) -> None:
        """Forget what was kept (held fragments and the counters stay)."""
        self._weight -= sum(self._weigh(item) for _, item in self._items)
        self._items.clear()


def _weightless(item: object) -> int:
    return 0
