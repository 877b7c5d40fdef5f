"""Raw IP sockets: the only module that opens them.

Every OS answer is data: opening a socket for a protocol number the OS refuses gives an
`OsRefusal` naming the errno, and a failed send is a `SendResult` with `ok=False`. What
differs between operating systems (option numbers, header byte order, buffer limits) is
read from hdp.osnet.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hdp.errors import PrivilegeError
from hdp.osnet import OsNet, current, unavailable

IPPROTO_RAW = 255
IPPROTO_ICMPV6 = 58

RECEIVE_BUFFER = 8 << 20
RECEIVE_FLOOR = 64 << 10  # halving on ENOBUFS stops here; below it the default stays
MAX_PACKET = 65535 + 40  # an IPv4 datagram, or an IPv6 payload plus slack
# include/uapi/linux/sock_diag.h: the u32 counters SO_MEMINFO answers, drops the ninth.
_SK_MEMINFO_VARS = 9
_SK_MEMINFO_DROPS = 8


@dataclass(frozen=True)
class OsRefusal:
    """What the OS said when it refused a call: `errno_name` such as "EINVAL"."""

    errno_name: str
    message: str

    @classmethod
    def from_errno(cls, number: int) -> OsRefusal:
        return cls(errno.errorcode.get(number, f"E{number}"), os.strerror(number))

    def __str__(self) -> str:
        return f"{self.errno_name} ({self.message})"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    sent_bytes: int
    time_ns: int  # wall clock just before the send call
    refusal: OsRefusal | None = None


@dataclass(frozen=True)
class Received:
    """One packet from a raw socket, with what the kernel told us about it."""

    family: int  # 4 or 6
    socket_protocol: int  # the protocol the socket was opened for
    data: bytes  # IPv4: the whole datagram, header included; IPv6: the payload only
    src: str
    dst: str | None  # IPv6: from IPV6_PKTINFO; IPv4: read it from the header
    hop_limit: int | None  # IPv6: from IPV6_HOPLIMIT; IPv4: read TTL from the header
    traffic_class: int | None  # IPv6: from IPV6_TCLASS
    kernel_time_ns: int | None  # the kernel's receive timestamp
    drops: int | None  # Linux SO_RXQ_OVFL: packets this socket dropped so far
    truncated: bool


def is_privilege_refusal(refusal: OsRefusal) -> bool:
    return refusal.errno_name in ("EPERM", "EACCES")


_libc: ctypes.CDLL | None = None


def _c_socket(domain: int, kind: int, protocol: int) -> int | OsRefusal:
    """socket(2) with the protocol passed through unchanged, even -1 or 300."""
    # Python's socket() treats protocol -1 as "default"; libc takes the number as it is.
    global _libc
    if _libc is None:
        # The C library this process already runs on (dlopen of the program itself, as
        # the loader resolves its symbols): ctypes.util.find_library("c") would run
        # ldconfig, 5 ms of every agent's start, to name the same library, and importing
        # ctypes.util loads tempfile and shutil.
        _libc = ctypes.CDLL(None, use_errno=True)
    if not -(1 << 31) <= protocol < 1 << 31:
        return OsRefusal.from_errno(errno.EINVAL)
    fd = _libc.socket(domain, kind, ctypes.c_int(protocol))
    if fd < 0:
        return OsRefusal.from_errno(ctypes.get_errno())
    return int(fd)


def _family_constant(family: int) -> int:
    if family == 4:
        return socket.AF_INET
    if family == 6:
        return socket.AF_INET6
    raise ValueError(f"family must be 4 or 6, got {family}")


class RawSocket:
    """A raw IP socket for one (family, protocol): send payloads, receive packets."""

    def __init__(self, sock: socket.socket, family: int, protocol: int,
                 header_included: bool = False) -> None:
        self.sock = sock
        self.family = family
        self.protocol = protocol
        self.header_included = header_included
        # IPv6: the offset into what we send where the kernel writes a checksum (and
        # which it verifies on receipt), None when it touches no byte: 58 always has one
        # (RFC 3542 3.1), other protocols only until IPV6_CHECKSUM is turned off.
        self.checksum_offset: int | None = None

    @classmethod
    def open(cls, family: int, protocol: int, *, listen: bool = True,
             header_included: bool = False) -> RawSocket | OsRefusal:
        """Open a socket; `listen=False` makes a send-only socket that queues nothing.

        `header_included` (protocol 255 only) sends caller-built IP headers, so no raw
        socket of the probed protocol exists to swallow the target's ICMP answer; where
        the OS cannot send caller-built IPv6 headers it is refused with ENOPROTOOPT.
        """
        if header_included and family == 6 and current().ipv6_hdrincl is None:
            return OsRefusal(errno.errorcode[errno.ENOPROTOOPT], unavailable("ipv6_hdrincl"))
        fd = _c_socket(_family_constant(family), socket.SOCK_RAW, protocol)
        if isinstance(fd, OsRefusal):
            return fd
        try:
            sock = socket.socket(_family_constant(family), socket.SOCK_RAW, fileno=fd)
        except OSError as exc:
            os.close(fd)
            return OsRefusal.from_errno(exc.errno or errno.EINVAL)
        raw = cls(sock, family, protocol, header_included and protocol == IPPROTO_RAW)
        try:
            raw._configure(listen)
        except OSError as exc:
            sock.close()
            return OsRefusal.from_errno(exc.errno or errno.EINVAL)
        return raw

    def _configure(self, listen: bool) -> None:
        sock = self.sock
        table = current()
        # Protocol 255 (IPPROTO_RAW) implies a caller-built IP header on Linux; the
        # original HDP client turns that off and lets the kernel build the header, and
        # so do we unless the caller builds it.
        if self.protocol == IPPROTO_RAW:
            if self.family == 4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL,
                                int(self.header_included))
            elif table.ipv6_hdrincl is not None:
                sock.setsockopt(table.ipv6_hdrincl.level, table.ipv6_hdrincl.name,
                                int(self.header_included))
        if self.family == 6:
            self.checksum_offset = _no_kernel_checksum(sock, self.protocol)
        if not listen:
            _drop_all_input(sock)
            return
        grow_receive_buffer(sock)
        if table.timestamp_ns is not None:
            sock.setsockopt(table.timestamp_ns.level, table.timestamp_ns.name, 1)
        elif table.timestamp is not None:
            sock.setsockopt(table.timestamp.level, table.timestamp.name, 1)
        if table.rxq_ovfl is not None:
            sock.setsockopt(table.rxq_ovfl.level, table.rxq_ovfl.name, 1)
        if self.family == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, payload: bytes, dst: str) -> SendResult:
        """Send `payload` (after a kernel-built IP header, or as a whole packet on a
        header-included socket); a refusal is data, not an error."""
        if self.header_included and self.family == 4 and current().hdrincl_host_order:
            payload = bsd_header_order(payload)
        started = time.time_ns()
        try:
            sent = self.sock.sendto(payload, sockaddr(self.family, dst))
        except OSError as exc:
            return SendResult(False, 0, started, OsRefusal.from_errno(exc.errno or errno.EIO))
        return SendResult(True, sent, started)

    def drops(self) -> int | None:
        """Packets the kernel dropped for this socket since it opened (a full queue, a
        filter), exactly; None where the OS does not say (SO_MEMINFO is Linux's)."""
        return socket_drops(self.sock)

    def receive(self) -> Received:
        """One packet; call when the socket is readable (it blocks otherwise)."""
        data, ancillary, flags, address = self.sock.recvmsg(MAX_PACKET, 512)
        return Received(self.family, self.protocol, data, address[0], *read_ancillary(ancillary),
                        truncated=bool(flags & _kinds_now().msg_trunc))

    def receive_into(self, buffer: bytearray) -> tuple[int, str, Ancillary, bool]:
        """One packet into `buffer` (at least MAX_PACKET bytes): its length, source, what
        the kernel said of it (as Received holds it), and whether it was cut short."""
        length, ancillary, flags, address = self.sock.recvmsg_into([buffer], 512)
        return length, address[0], read_ancillary(ancillary), \
            bool(flags & _kinds_now().msg_trunc)


# What the kernel says of a received packet, in Received's order: dst, hop_limit,
# traffic_class, kernel_time_ns, drops.
Ancillary = tuple[str | None, int | None, int | None, int | None, int | None]


class _Kinds:
    """The control-message numbers of one OS table, looked up once per packet at most."""

    def __init__(self, table: OsNet) -> None:
        self.table = table
        self.sol_socket = table.sol_socket
        self.stamp_ns = table.timestamp_ns.name if table.timestamp_ns is not None else None
        self.stamp = table.scm_timestamp
        self.overflow = table.rxq_ovfl.name if table.rxq_ovfl is not None else None
        # Linux sends the drop counter only once it is non-zero.
        self.no_drops: int | None = 0 if table.rxq_ovfl is not None else None
        self.msg_trunc = int(socket.MSG_TRUNC)  # an int: the IntFlag's & costs a microsecond


_kinds: _Kinds | None = None


def _kinds_now() -> _Kinds:
    global _kinds
    kinds = _kinds
    if kinds is None or kinds.table is not current():  # a test model may swap the table
        kinds = _kinds = _Kinds(current())
    return kinds


def read_ancillary(ancillary: list[tuple[int, int, bytes]]) -> Ancillary:
    """The destination, hop limit and traffic class (IPv6), the kernel's receive time and
    the socket's drop count, from the ancillary data of recvmsg."""
    kinds = _kinds_now()
    kernel_time: int | None = None
    drops = kinds.no_drops
    hop_limit: int | None = None
    tclass: int | None = None
    dst: str | None = None
    for level, kind, value in ancillary:
        if level == kinds.sol_socket:
            if kind == kinds.stamp_ns and len(value) >= 16:
                sec, nsec = _TIMESPEC.unpack_from(value)
                kernel_time = sec * 1_000_000_000 + nsec
            elif kind == kinds.stamp and len(value) >= 12:
                # struct timeval: a long, then microseconds (a long on Linux, an int
                # on macOS); either way the first four bytes of a little-endian one.
                sec, usec = struct.unpack_from("@qi", value)
                kernel_time = sec * 1_000_000_000 + usec * 1000
            elif kind == kinds.overflow and len(value) >= 4:
                (drops,) = struct.unpack_from("@I", value)
        elif level == socket.IPPROTO_IPV6:
            if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                (hop_limit,) = struct.unpack_from("@i", value)
            elif kind == socket.IPV6_TCLASS and len(value) >= 4:
                (tclass,) = struct.unpack_from("@i", value)
            elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
    return dst, hop_limit, tclass, kernel_time, drops


_TIMESPEC = struct.Struct("@qq")


def socket_drops(sock: socket.socket) -> int | None:
    """Packets the kernel dropped for any socket since it opened, exactly (SO_MEMINFO's
    drop counter); None where the OS does not say."""
    option = current().meminfo
    if option is None:
        return None
    try:
        info = sock.getsockopt(option.level, option.name, 4 * _SK_MEMINFO_VARS)
    except OSError:
        return None
    if len(info) < 4 * (_SK_MEMINFO_DROPS + 1):
        return None  # a kernel older than the drop counter (4.x)
    return int(struct.unpack_from("@I", info, 4 * _SK_MEMINFO_DROPS)[0])


def bsd_header_order(packet: bytes) -> bytes:
    """An IPv4 packet with Total Length and the flags/offset field in host byte order, as
    a BSD raw socket takes a caller-built header (xnu bsd/netinet/raw_ip.c:rip_output
    compares ip_len with the packet's length unconverted; a network-order length is
    EINVAL). The kernel converts both back and fills in the checksum."""
    if len(packet) < 8:
        return packet
    length, offset = struct.unpack_from("!H2xH", packet, 2)
    return packet[:2] + struct.pack("=H", length) + packet[4:6] + struct.pack("=H", offset) \
        + packet[8:]


def _no_kernel_checksum(sock: socket.socket, protocol: int) -> int | None:
    """Turn IPV6_CHECKSUM off where the OS lets us; the offset the kernel still writes.

    Linux gives protocol 135 (Mobility Header) a checksum at offset 4 by default
    (net/ipv6/raw.c:rawv6_init_sk), which rewrites our probe and makes listeners drop
    what does not verify; ICMPv6 always has one at offset 2 and refuses the option.
    """
    if protocol == IPPROTO_ICMPV6:
        return 2
    option = current().ipv6_checksum
    if option is None:
        return None
    with contextlib.suppress(OSError):  # refused: the offset read back says what remains
        sock.setsockopt(option.level, option.name, -1)
    try:
        offset = sock.getsockopt(option.level, option.name)
    except OSError:
        return None
    return offset if offset >= 0 else None


def sockaddr(family: int, dst: str) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == 4:
        return (dst, 0)
    # ADDRESS%ZONE: sendto() does not parse the zone; it goes in as the scope id.
    host, _, zone = dst.partition("%")
    scope = (int(zone) if zone.isdigit() else socket.if_nametoindex(zone)) if zone else 0
    return (host, 0, 0, scope)


def grow_receive_buffer(sock: socket.socket, wanted: int = RECEIVE_BUFFER) -> int | None:
    """Ask for a `wanted`-byte receive queue; the size granted, or None for the default.

    A sweep lands hundreds of probes at once; the default ~200 KiB queue would drop them.
    Linux clamps SO_RCVBUF to net.core.rmem_max (SO_RCVBUFFORCE passes it with
    CAP_NET_ADMIN); xnu refuses a size above its limit with ENOBUFS instead
    (uipc_socket2.c:sbreserve), so the size is halved until it is accepted.
    """
    table = current()
    if table.rcvbuf_force is not None:
        try:
            sock.setsockopt(table.rcvbuf_force.level, table.rcvbuf_force.name, wanted)
            return wanted
        except OSError:
            pass  # needs CAP_NET_ADMIN; fall back to the limit rmem_max allows
    size = wanted
    while True:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            return size
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            if size // 2 < RECEIVE_FLOOR:
                return None  # even the floor is refused: keep the default queue
            size //= 2


def _drop_all_input(sock: socket.socket) -> None:
    """Keep a send-only socket from queueing copies of packets of its protocol."""
    # On Linux every raw socket of protocol P gets a copy of every P packet, its own
    # loopback sends included; a BPF program that returns 0 discards them at once.
    # xnu has no socket filter: there the copies fill the 8 KiB queue (rip_recvspace)
    # and the rest are dropped, which costs nothing we measure.
    option = current().attach_filter
    if option is None:
        return
    program = (ctypes.c_uint16 * 4)(0x06, 0, 0, 0)  # BPF_RET|BPF_K with k = 0
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))
    sock.setsockopt(option.level, option.name, fprog)


def open_sender(family: int, protocol: int) -> RawSocket | OsRefusal:
    return RawSocket.open(family, protocol, listen=False)


def open_listener(family: int, protocol: int) -> RawSocket | OsRefusal:
    return RawSocket.open(family, protocol, listen=True)


def check_privilege(family: int = 4) -> None:
    """Raise PrivilegeError unless this process can open raw sockets."""
    probe = RawSocket.open(family, 253, listen=False)
    if isinstance(probe, OsRefusal):
        if is_privilege_refusal(probe):
            raise PrivilegeError(str(probe))
        return
    probe.close()


def receive_until(
    sockets: Sequence[RawSocket], deadline: float, *, stop: int | None = None
) -> Iterator[Received]:
    """Yield packets from any of `sockets` until `deadline` (monotonic) or `stop` packets."""
    count = 0
    with selectors.DefaultSelector() as selector:
        for raw in sockets:
            selector.register(raw.sock, selectors.EVENT_READ, raw)
        while stop is None or count < stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            for key, _ in selector.select(remaining):
                raw = key.data
                yield raw.receive()
                count += 1
                if stop is not None and count >= stop:
                    return


def source_address_for(dst: str, family: int) -> str:
    """The local address the kernel would send from to reach `dst` (no packet is sent)."""
    with socket.socket(_family_constant(family), socket.SOCK_DGRAM) as probe:
        probe.connect((dst, 9))
        return str(probe.getsockname()[0])
