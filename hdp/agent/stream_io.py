"""The sockets of a stream's lanes, each sending probes with their stamps and reading what
arrives: a raw socket of any protocol, the kernel's UDP (a datagram socket), the kernel's
TCP (one established TCP_NODELAY connection, messages of one fixed length).

A send is stamped twice: by the process just before the call (`user`) and, where the OS
has SO_TIMESTAMPING, by the kernel as the packet leaves (hdp.timestamps); a read, by the
kernel as the packet arrived (else by the process). Which stamp a record holds is in its
flags, never guessed later.
"""

from __future__ import annotations

import collections
import errno
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hdp import rawsock
from hdp.timestamps import TransmitStamps, enable_receive_stamps, receive_stamp
from hdp.wire import hdp as hdp_wire

FLAG_KERNEL = 1  # the record's stamp is the kernel's
FLAG_INTACT = 2  # received: the tag's CRC held
FLAG_HOLD_KERNEL = 4  # received, reflected: its hold time is from kernel stamps
FLAG_REFUSED = 8  # sent: the OS refused it (the errno is in the stream's refusals)
ECHO = 1 << 31  # set in a tag's case (the lane) on a probe reflected back
MAX_READS = 256  # packets one readiness reads at most, so one socket cannot hold the loop
_ANCILLARY = 512


@dataclass(frozen=True)
class Arrival:
    """One tagged copy read from a lane's socket."""

    tag: hdp_wire.ProbeTag
    intact: bool
    ns: int
    kernel: bool  # `ns` is the kernel's arrival stamp
    src: str  # who sent it
    dst: str | None  # the address it was sent to (raw IPv4/IPv6), where the read tells


def sockaddr(family: int, host: str, port: int) -> Any:
    """The socket address of a numeric `host` (IPv6 with its %zone as the scope)."""
    kind = socket.AF_INET if family == 4 else socket.AF_INET6
    return socket.getaddrinfo(host, port, kind, socket.SOCK_DGRAM, 0,
                              socket.AI_NUMERICHOST)[0][4]


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "EIO")


def socket_drops(sock: socket.socket) -> int | None:
    """The kernel's drop count of any socket (SO_MEMINFO), as rawsock reads a raw one's."""
    return rawsock.socket_drops(sock)


def _tag(data: bytes) -> hdp_wire.TaggedPayload | None:
    found = hdp_wire.decode_tagged(data)
    return found if found.tag is not None else None


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, bool]:
    kernel = receive_stamp(ancillary)
    return (kernel, True) if kernel is not None else (time.time_ns(), False)


def _claimed(stamps: TransmitStamps, index_of: dict[int, int]) -> Iterator[tuple[int, int]]:
    """(record index, kernel stamp) for each stamp that came back under a key a send left
    in `index_of`; a stamp under no such key is dropped."""
    for key, stamp in stamps.collect():
        index = index_of.pop(key, None)
        if index is not None:
            yield index, stamp


class DatagramSender:
    """A socket that sends whole probes (raw, or UDP), and the kernel stamps of its sends,
    by the index of the record each belongs to."""

    def __init__(self, sock: socket.socket, address: Any, *, explicit_keys: bool = True
                 ) -> None:
        self.sock = sock
        self.address = address
        self.stamps = TransmitStamps(sock, explicit_keys=explicit_keys)
        if self.stamps.enabled:  # the error queue counts against the receive buffer
            rawsock.grow_receive_buffer(sock)
        self._index_of: dict[int, int] = {}  # stamp key -> record index

    def send(self, body: bytes, index: int, address: Any = None) -> tuple[int, str | None]:
        """(user stamp, errno name if refused); the kernel stamp comes later (`collect`)."""
        started, key, refused = self.stamps.send(body, address or self.address, index)
        if key is not None:
            self._index_of[key] = index
        return started, refused

    def collect(self) -> Iterator[tuple[int, int]]:
        """(record index, kernel stamp) for each stamp that came back."""
        return _claimed(self.stamps, self._index_of)

    @property
    def waiting(self) -> int:
        """Sends whose kernel stamp has not come back yet."""
        return len(self._index_of) if self.stamps.enabled and self.stamps.in_step else 0

    def close(self) -> None:
        self.sock.close()


def read_raw(raw: rawsock.RawSocket) -> Iterator[Arrival | None]:
    """What a raw listener holds: each tagged copy, or None for a packet not ours."""
    for _ in range(MAX_READS):
        try:
            received = raw.receive()
        except (BlockingIOError, InterruptedError):
            return
        data = received.data
        dst = received.dst
        if received.family == 4:
            if len(data) < 20:
                yield None
                continue
            dst = socket.inet_ntop(socket.AF_INET, data[16:20])
            data = data[(data[0] & 0x0F) * 4:]
        found = hdp_wire.find_tag(data)
        if found is None or found[1].tag is None:
            yield None
            continue
        kernel = received.kernel_time_ns is not None
        yield Arrival(found[1].tag, found[1].intact,
                      received.kernel_time_ns if kernel else time.time_ns(),  # type: ignore[arg-type]
                      kernel, received.src.split("%")[0], dst)


def read_datagrams(sock: socket.socket) -> Iterator[tuple[Arrival | None, Any]]:
    """What a UDP socket holds: (each tagged copy or None, the sender's address)."""
    for _ in range(MAX_READS):
        try:
            data, ancillary, _, address = sock.recvmsg(65535, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        found = _tag(data)
        if found is None or found.tag is None:
            yield None, address
            continue
        ns, kernel = _stamp(ancillary)
        yield Arrival(found.tag, found.intact, ns, kernel, str(address[0]).split("%")[0],
                      None), address


class TcpConnection:
    """One TCP connection carrying messages of `length` bytes each way: what is queued to
    send, what has been read of the message in flight, and the stamps of both."""

    def __init__(self, sock: socket.socket, length: int) -> None:
        self.sock = sock
        self.length = length
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_receive_stamps(sock)
        rawsock.grow_receive_buffer(sock)
        self.stamps = TransmitStamps(sock, stream=True)
        self.outbox = bytearray()
        self._ends: collections.deque[tuple[int, int]] = collections.deque()  # (end, index)
        self._index_of: dict[int, int] = {}  # offset of a send's last byte -> record index
        self._queued = 0  # bytes ever queued
        self._partial = bytearray()
        self.closed = False

    def queue(self, body: bytes, index: int) -> list[tuple[int, int]]:
        """Queue one message (record `index`) and send what the connection takes now;
        (index, user stamp) of each message whose last byte the kernel took."""
        self.outbox += body
        self._queued += len(body)
        self._ends.append((self._queued - 1, index))
        return self.flush()

    def flush(self) -> list[tuple[int, int]]:
        """Send what is queued, as far as the connection takes it; (index, user stamp)."""
        if not self.outbox or self.closed:
            return []
        started, taken, refused = self.stamps.send_stream(bytes(self.outbox))
        if refused is not None:
            self.closed = True
            return []
        del self.outbox[:taken]
        done = []
        last = self.stamps.sent_bytes - 1
        while self._ends and self._ends[0][0] <= last:
            end, index = self._ends.popleft()
            done.append((index, started))
            if end == last and self.stamps.enabled:
                # The kernel stamps the last byte of each send: this message's.
                self._index_of[end] = index
        return done

    def unsent(self) -> list[int]:
        """Record indexes of messages the connection never took (they stay refused)."""
        return [index for _, index in self._ends]

    def collect(self) -> Iterator[tuple[int, int]]:
        return _claimed(self.stamps, self._index_of)

    @property
    def waiting(self) -> int:
        return len(self._index_of) + len(self._ends)

    def read(self) -> Iterator[Arrival | None]:
        """Each message completed by what the connection holds. Each read asks for no
        more than the rest of the message in flight, so the kernel's stamp is that of the
        segment that completed it (tcp_recvmsg reports the last segment it read from).
        A segment that arrives while an earlier one still waits to be read is merged
        into it, which takes the newer stamp (net/ipv4/tcp_input.c:tcp_try_coalesce):
        messages that share a stamp with the next one have no stamp of their own: the
        stream keeps the shared one (an upper bound, and in order) without the kernel
        flag, so that hdp.stats leaves it out of the kernel percentiles and counts it."""
        for _ in range(MAX_READS):
            need = self.length - len(self._partial)
            try:
                data, ancillary, _, _ = self.sock.recvmsg(need, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            self._partial += data
            if len(self._partial) < self.length:
                continue
            message, self._partial = bytes(self._partial), bytearray()
            found = _tag(message)
            if found is None or found.tag is None:
                yield None
                continue
            ns, kernel = _stamp(ancillary)
            peer = self.sock.getpeername()
            yield Arrival(found.tag, found.intact, ns, kernel, str(peer[0]).split("%")[0],
                          None)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
