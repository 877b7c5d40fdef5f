"""Packet capture where a path ends: what reached the interface, before the IP stack.

A raw IP socket sees datagrams after reassembly; an AF_PACKET socket (Linux only) sees each
packet as the interface got it, so fragments arrive one by one, in wire order. SOCK_DGRAM
strips the link header, so every packet starts with its IPv4 or IPv6 header, which is what
a LINKTYPE_RAW pcap file holds. Where there is no AF_PACKET (macOS) opening a capture is
refused with EAFNOSUPPORT and the reason: a BPF (/dev/bpf*) backend is not written yet,
because how lo0's BPF tap shows locally sent packets cannot be checked without a Mac.

Filtering is done here, not in the kernel: only IPv4/IPv6 packets are kept, and only those
matching `protocol` and `hosts`, and, when a `flow` is given, the packets of that one
exchange (hdp.flow: both addresses, both ports, later fragments by the identification of
their first, ICMP errors by what they quote). A test always gives its flow: on a shared
host, protocol and addresses alone let every other exchange in. Without a flow, a packet
whose header does not decode is kept, marked `malformed`, because a mangled packet is what
a conformance test is looking for and a protocol filter cannot prove it is someone else's;
with a flow, the flow's rules (hdp.flow) decide whose it is.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from hdp import pcap
from hdp.errors import DecodeError
from hdp.flow import Flow, FlowFilter, Sieve, Verdict
from hdp.osnet import current, unavailable
from hdp.rawsock import OsRefusal, grow_receive_buffer
from hdp.wire import ipv4, ipv6
from hdp.wire.fragment import decode_fragment

# From the kernel headers (linux/if_ether.h, linux/if_packet.h, asm/socket.h).
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS has the same value

DEFAULT_MAX_PACKETS = 10_000
DEFAULT_MAX_BYTES = 64 << 20
PACKET_TYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing",
                5: "loopback", 6: "user", 7: "kernel"}
PRIVILEGE_FIX = "packet capture needs CAP_NET_RAW: run as root or grant CAP_NET_RAW"
_FAMILIES = {ETH_P_IP: 4, ETH_P_IPV6: 6}
_KEEP = Verdict(keep=True)

Host = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Captured:
    """One packet as the interface saw it, starting with its IP header."""

    time_ns: int  # the kernel's receive time, or our clock when it gave none
    kernel_time: bool  # whether `time_ns` came from the kernel
    interface: str
    interface_index: int  # 0 when the interface went away before we looked it up
    pkttype: int  # PACKET_HOST, PACKET_OUTGOING, ... (linux/if_packet.h)
    family: int  # 4 or 6, from the link layer's protocol field
    data: bytes  # at most pcap.SNAPLEN bytes
    original_length: int
    malformed: str | None = None  # why the header did not decode, if it did not

    @property
    def direction(self) -> str:
        return PACKET_TYPES.get(self.pkttype, str(self.pkttype))

    @property
    def truncated(self) -> bool:
        return len(self.data) < self.original_length

    def to_pcap_record(self) -> pcap.PcapRecord:
        return pcap.PcapRecord(self.time_ns, self.data, self.original_length)


@dataclass(frozen=True)
class FragmentView:
    """The fragmentation fields of one packet; `offset` in 8-byte units as on the wire.

    `more` is MF (IPv4) or M (IPv6); `df` is always False for IPv6, which has no such
    flag; `length` is the IPv4 total length or the IPv6 payload length.
    """

    family: int
    src: str
    dst: str
    protocol: int  # IPv4 protocol field; IPv6: next header named by the fragment header
    identification: int
    offset: int
    more: bool
    df: bool
    length: int

    @property
    def offset_bytes(self) -> int:
        return self.offset * 8


def fragments_of(packets: Iterable[Captured | bytes]) -> list[FragmentView]:
    """One view per IPv4 packet and per IPv6 packet with a fragment header; others skipped."""
    views: list[FragmentView] = []
    for packet in packets:
        data = packet.data if isinstance(packet, Captured) else bytes(packet)
        try:
            view = _fragment_view(data)
        except DecodeError:
            continue  # not a packet whose fragment fields can be read
        if view is not None:
            views.append(view)
    return views


def _fragment_view(data: bytes) -> FragmentView | None:
    version = data[0] >> 4 if data else 0
    if version == 4:
        h = decode_fragment(data).header
        return FragmentView(4, str(h.src), str(h.dst), h.protocol, h.identification,
                            h.fragment_offset, h.mf, h.df, h.total_length or 0)
    if version == 6:
        packet = ipv6.decode(data)
        f = packet.fragment
        if f is None:
            return None
        h6 = packet.header
        return FragmentView(6, str(h6.src), str(h6.dst), f.next_header, f.identification,
                            f.fragment_offset, f.more_fragments, False, h6.payload_length or 0)
    return None


def pcap_records(packets: Iterable[Captured]) -> list[pcap.PcapRecord]:
    return [packet.to_pcap_record() for packet in packets]


class Capture:
    """An AF_PACKET socket and the packets read from it so far (at most `max_packets`,
    and at most `max_bytes` of packet data)."""

    def __init__(self, sock: socket.socket, *, protocol: int | None, hosts: tuple[Host, ...],
                 incoming_only: bool, max_packets: int, flow: Flow | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.sock = sock
        self.protocol = protocol
        self.hosts = hosts
        self.incoming_only = incoming_only
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.flow = flow
        self._filter = None if flow is None else FlowFilter(flow)
        # Bytes bound memory too: held fragments count, so a flood of them cannot grow it.
        self._kept: Sieve[Captured] = Sieve(max_packets, max_weight=max_bytes,
                                            weight=_size)
        self._kernel_drops = 0
        self._buffer = bytearray(pcap.SNAPLEN)
        self._indexes: dict[str, int] = {}

    @classmethod
    def open(cls, *, interface: str | None = None, protocol: int | None = None,
             hosts: tuple[str, ...] = (), incoming_only: bool = True,
             max_packets: int = DEFAULT_MAX_PACKETS,
             flow: Flow | None = None,
             max_bytes: int = DEFAULT_MAX_BYTES) -> Capture | OsRefusal:
        """Start capturing on `interface` (all when None); a refusal is data, not an error.

        `flow` narrows the capture to one exchange (see hdp.flow). Raises ValueError for a
        protocol outside 0..255, a host that is not an IP address, or a negative
        `max_packets`.
        """
        if protocol is not None and not 0 <= protocol <= 0xFF:
            raise ValueError(f"protocol must be 0..255, got {protocol}")
        if max_packets < 0:
            raise ValueError(f"max_packets must not be negative, got {max_packets}")
        wanted = tuple(ip_address(host) for host in hosts)
        if not current().packet_capture:
            return OsRefusal("EAFNOSUPPORT", unavailable("packet_capture"))
        try:
            # Protocol 0 until bind(): a socket hooked to ETH_P_ALL from the start would
            # queue packets from every interface before it is bound to one.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                                 0 if interface else socket.htons(ETH_P_ALL))
        except OSError as exc:
            return _refusal(exc, interface)
        try:
            _configure(sock, interface, incoming_only)
        except OSError as exc:
            sock.close()
            return _refusal(exc, interface)
        return cls(sock, protocol=protocol, hosts=wanted, incoming_only=incoming_only,
                   max_packets=max_packets, flow=flow, max_bytes=max_bytes)

    @property
    def packets(self) -> list[Captured]:
        """The packets kept so far, in the order they were read."""
        return self._kept.items()

    @property
    def dropped(self) -> int:
        """Matching packets read after `max_packets` or `max_bytes` were reached."""
        return self._kept.dropped

    @property
    def unattributed(self) -> int:
        """Packets too broken to show they are the flow's, not kept (see hdp.flow)."""
        return self._kept.unattributed

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_available(self, max_reads: int = 100_000) -> int:
        """Read what is queued (at most `max_reads` packets); the number of packets kept."""
        # The bound keeps a flood from holding the caller here for ever.
        kept = 0
        for _ in range(max_reads):
            try:
                length, ancillary, _flags, address = self.sock.recvmsg_into(
                    [self._buffer], 64, socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            judged = self._packet(length, ancillary, address)
            if judged is not None:
                kept += self._kept.offer(*judged)
        return kept

    def read_until(self, deadline: float, count: int | None = None) -> int:
        """Read until `count` packets are kept in all or `deadline` (monotonic) passes."""
        while count is None or len(self._kept) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if readable:
                self.read_available()
        return len(self._kept)

    def kernel_drops(self) -> int:
        """Packets the kernel dropped for a full receive queue since the capture opened."""
        # PACKET_STATISTICS resets the kernel's counters on each read, so we add them up.
        try:
            _received, drops = struct.unpack(
                "@II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return self._kernel_drops
        self._kernel_drops += drops
        return self._kernel_drops

    def to_pcap_records(self) -> list[pcap.PcapRecord]:
        return pcap_records(self._kept.items())

    def clear(self) -> None:
        """Forget the packets kept so far (the drop counters stay)."""
        self._kept.clear()

    def _packet(self, length: int, ancillary: list[tuple[int, int, bytes]],
                address: tuple[str, int, int, int, bytes]) -> tuple[Verdict, Captured] | None:
        """The packet just read and what the filters say of it; None when it is not kept."""
        interface, ethertype, pkttype = address[0], address[1], address[2]
        family = _FAMILIES.get(ethertype)
        if family is None or (self.incoming_only and pkttype == PACKET_OUTGOING):
            return None
        data = bytes(self._buffer[:min(length, len(self._buffer))])
        try:
            if not self._matches(family, data):
                return None
            malformed = None
        except DecodeError as error:
            malformed = str(error)
        verdict = _KEEP if self._filter is None else self._filter.judge(data)
        if not (verdict.keep or verdict.hold or verdict.unattributed):
            return None  # someone else's: not even counted
        kernel_ns = _timestamp(ancillary)
        return verdict, Captured(
            time_ns=time.time_ns() if kernel_ns is None else kernel_ns,
            kernel_time=kernel_ns is not None, interface=interface,
            interface_index=self._index(interface), pkttype=pkttype, family=family, data=data,
            original_length=max(length, len(data)),
            malformed=malformed if self._filter is None else verdict.malformed,
        )

    def _matches(self, family: int, data: bytes) -> bool:
        """Whether the packet passes the filter; DecodeError when its header cannot be read."""
        if family == 4:
            h = ipv4.decode_header(data)
            protocols: tuple[int, ...] = (h.protocol,)
            ends: tuple[Host, Host] = (h.src, h.dst)
        else:
            packet = ipv6.decode(data)
            # A filter for 44 (fragment) or 0 (hop-by-hop) matches the headers walked too.
            protocols = (packet.upper_protocol, *(e.kind for e in packet.extensions))
            ends = (packet.header.src, packet.header.dst)
        if self.protocol is not None and self.protocol not in protocols:
            return False
        return not self.hosts or any(end in self.hosts for end in ends)

    def _index(self, interface: str) -> int:
        if interface not in self._indexes:
            try:
                self._indexes[interface] = socket.if_nametoindex(interface)
            except OSError:
                return 0
        return self._indexes[interface]


def _configure(sock: socket.socket, interface: str | None, incoming_only: bool) -> None:
    # Fragments of a sweep land together; the default ~200 KiB queue would drop some.
    grow_receive_buffer(sock)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if incoming_only:
        # Saves the kernel queueing what we would discard; older kernels lack it, and the
        # direction is checked on every packet anyway.
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    if interface:
        sock.bind((interface, ETH_P_ALL))
    sock.setblocking(False)


def _size(packet: Captured) -> int:
    return len(packet.data)


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanoseconds = struct.unpack_from("@qq", value)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def _refusal(exc: OSError, interface: str | None) -> OsRefusal:
    number = exc.errno or errno.EIO
    refusal = OsRefusal.from_errno(number)
    if number in (errno.EPERM, errno.EACCES):
        return OsRefusal(refusal.errno_name, f"{refusal.message}; {PRIVILEGE_FIX}")
    if number == errno.ENODEV:
        return OsRefusal(refusal.errno_name, f"{refusal.message}: no interface {interface!r}")
    return refusal
