"""Raw IP sockets: the only module that opens them.

Every OS answer is data: opening a socket for a protocol number the OS refuses gives an
`OsRefusal` naming the errno, and a failed send is a `SendResult` with `ok=False`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hdp.errors import PrivilegeError

LINUX = sys.platform.startswith("linux")
DARWIN = sys.platform == "darwin"

# Constants the socket module does not export everywhere (values from the kernel headers).
_SO_TIMESTAMPNS = 35 if LINUX else None  # SCM_TIMESTAMPNS has the same value
_SO_TIMESTAMP = 0x400 if DARWIN else 29  # SCM_TIMESTAMP: 2 on BSD, SO_TIMESTAMP on Linux
_SCM_TIMESTAMP = 2 if DARWIN else 29
_SO_RXQ_OVFL = 40 if LINUX else None
_SO_RCVBUFFORCE = 33 if LINUX else None
_SO_ATTACH_FILTER = 26 if LINUX else None
_IPV6_HDRINCL = 36 if LINUX else None
IPPROTO_RAW = 255

RECEIVE_BUFFER = 8 << 20
MAX_PACKET = 65535 + 40  # an IPv4 datagram, or an IPv6 payload plus slack


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
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
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

    def __init__(self, sock: socket.socket, family: int, protocol: int) -> None:
        self.sock = sock
        self.family = family
        self.protocol = protocol

    @classmethod
    def open(cls, family: int, protocol: int, *, listen: bool = True,
             header_included: bool = False) -> RawSocket | OsRefusal:
        """Open a socket; `listen=False` makes a send-only socket that queues nothing.

        `header_included` (protocol 255 only) sends caller-built IP headers, so no raw
        socket of the probed protocol exists to swallow the target's ICMP answer.
        """
        fd = _c_socket(_family_constant(family), socket.SOCK_RAW, protocol)
        if isinstance(fd, OsRefusal):
            return fd
        try:
            sock = socket.socket(_family_constant(family), socket.SOCK_RAW, fileno=fd)
        except OSError as exc:
            os.close(fd)
            return OsRefusal.from_errno(exc.errno or errno.EINVAL)
        raw = cls(sock, family, protocol)
        try:
            raw._configure(listen, header_included)
        except OSError as exc:
            sock.close()
            return OsRefusal.from_errno(exc.errno or errno.EINVAL)
        return raw

    def _configure(self, listen: bool, header_included: bool = False) -> None:
        sock = self.sock
        # Protocol 255 (IPPROTO_RAW) implies a caller-built IP header; the original HDP
        # client turns that off and lets the kernel build the header, and so do we.
        if self.protocol == IPPROTO_RAW:
            if self.family == 4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, int(header_included))
            elif _IPV6_HDRINCL is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_HDRINCL, int(header_included))
        if not listen:
            _drop_all_input(sock)
            return
        _grow_receive_buffer(sock)
        if _SO_TIMESTAMPNS is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        if _SO_RXQ_OVFL is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
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
        """Send `payload` after a kernel-built IP header; a refusal is data, not an error."""
        started = time.time_ns()
        try:
            sent = self.sock.sendto(payload, _sockaddr(self.family, dst))
        except OSError as exc:
            return SendResult(False, 0, started, OsRefusal.from_errno(exc.errno or errno.EIO))
        return SendResult(True, sent, started)

    def receive(self) -> Received:
        """One packet; call when the socket is readable (it blocks otherwise)."""
        data, ancillary, flags, address = self.sock.recvmsg(MAX_PACKET, 512)
        kernel_time: int | None = None
        # Linux sends the drop counter only once it is non-zero.
        drops: int | None = 0 if _SO_RXQ_OVFL is not None else None
        hop_limit: int | None = None
        tclass: int | None = None
        dst: str | None = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET:
                if kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack_from("@qq", value)
                    kernel_time = sec * 1_000_000_000 + nsec
                elif kind == _SCM_TIMESTAMP and len(value) >= 12:
                    sec, usec = struct.unpack_from("@qi", value)
                    kernel_time = sec * 1_000_000_000 + usec * 1000
                elif kind == _SO_RXQ_OVFL and len(value) >= 4:
                    (drops,) = struct.unpack_from("@I", value)
            elif level == socket.IPPROTO_IPV6:
                if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                    (hop_limit,) = struct.unpack_from("@i", value)
                elif kind == socket.IPV6_TCLASS and len(value) >= 4:
                    (tclass,) = struct.unpack_from("@i", value)
                elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                    dst = socket.inet_ntop(socket.AF_INET6, value[:16])
        return Received(
            family=self.family, socket_protocol=self.protocol, data=data, src=address[0],
            dst=dst, hop_limit=hop_limit, traffic_class=tclass, kernel_time_ns=kernel_time,
            drops=drops, truncated=bool(flags & socket.MSG_TRUNC),
        )


def _sockaddr(family: int, dst: str) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == 4:
        return (dst, 0)
    # ADDRESS%ZONE: sendto() does not parse the zone; it goes in as the scope id.
    host, _, zone = dst.partition("%")
    scope = (int(zone) if zone.isdigit() else socket.if_nametoindex(zone)) if zone else 0
    return (host, 0, 0, scope)


def _grow_receive_buffer(sock: socket.socket) -> None:
    # A sweep lands hundreds of probes at once; the default ~200 KiB queue would drop them.
    if _SO_RCVBUFFORCE is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
            return
        except OSError:
            pass  # needs CAP_NET_ADMIN; fall back to the limit rmem_max allows
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def _drop_all_input(sock: socket.socket) -> None:
    """Keep a send-only socket from queueing copies of packets of its protocol."""
    # On Linux every raw socket of protocol P gets a copy of every P packet, its own
    # loopback sends included; a BPF program that returns 0 discards them at once.
    if _SO_ATTACH_FILTER is None:
        return
    program = (ctypes.c_uint16 * 4)(0x06, 0, 0, 0)  # BPF_RET|BPF_K with k = 0
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


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
