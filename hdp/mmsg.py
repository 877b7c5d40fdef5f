"""Many datagrams a system call: Linux's sendmmsg(2) and recvmmsg(2) through ctypes.

A flood (hdp.agent.flood) sends and reads hundreds of thousands of packets a second; at
that rate the system call, not the packet, is what a pure-Python loop pays for, and these
two calls move up to BATCH packets each (measured in benchmarks/prototypes/lean.py: +5-20%
sent/s, +10-20% matched/s). No extension is built: where the C library lacks them (macOS,
other BSDs, a libc without the symbols) `available()` is False and the caller keeps its
one-packet-a-call loop. The buffers are fixed slots of one ctypes block, reused for every
call; nothing here allocates per packet.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
from functools import cache
from typing import Any

BATCH = 64  # packets a call
MSG_WAITFORONE = 0x10000  # recvmmsg: block for the first packet only (Linux)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_IoVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


@cache
def _libc() -> Any:
    try:  # the C library the process runs on (hdp.rawsock._c_socket)
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def available() -> bool:
    """Whether this OS and C library have sendmmsg and recvmmsg (asked at each use: a
    test may stand another OS's socket layer in for Linux's)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    return libc is not None and hasattr(libc, "sendmmsg") and hasattr(libc, "recvmmsg")


def _slots(block: Any, size: int, count: int, name: Any = None) -> tuple[Any, Any]:
    """`count` mmsghdrs over consecutive `size`-byte slots of `block`."""
    vectors = (_IoVec * count)()
    messages = (_MMsgHdr * count)()
    base = ctypes.addressof(block)
    for i in range(count):
        vectors[i].base, vectors[i].len = base + i * size, size
        hdr = messages[i].hdr
        hdr.iov, hdr.iovlen = ctypes.pointer(vectors[i]), 1
        if name is not None:
            hdr.name, hdr.namelen = ctypes.addressof(name), ctypes.sizeof(name)
    return messages, vectors


def _sockaddr(family: int, address: Any) -> Any:
    """A C struct sockaddr for a numeric (host, port[, flow, scope]) address."""
    if family == 4:
        packed = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(address[1]),
                             socket.inet_pton(socket.AF_INET, address[0]))
    else:
        scope = address[3] if len(address) > 3 else 0
        packed = struct.pack("=HHI16sI", socket.AF_INET6, socket.htons(address[1]), 0,
                             socket.inet_pton(socket.AF_INET6, address[0].split("%")[0]),
                             scope)
    return ctypes.create_string_buffer(packed, len(packed))


class BatchSender:
    """Up to BATCH packets of one `size` to one address a call: fill `view` slot by slot
    (slot i at i * size), then `send(n)`."""

    def __init__(self, sock: socket.socket, family: int, address: Any, size: int) -> None:
        self.fd = sock.fileno()
        self.size = size
        self.block = ctypes.create_string_buffer(size * BATCH)
        self.view = memoryview(self.block).cast("B")
        self._name = _sockaddr(family, address)
        self._messages, self._vectors = _slots(self.block, size, BATCH, self._name)
        self._send = _libc().sendmmsg
        self._stride = ctypes.sizeof(_MMsgHdr)

    def send(self, count: int, start: int = 0) -> tuple[int, int]:
        """Send slots `start`..`count - 1`: (packets the kernel took, the errno of the
        call that stopped short, or 0 when all were taken)."""
        done = start
        while done < count:
            got = self._send(self.fd, ctypes.byref(self._messages, done * self._stride),
                             count - done, 0)
            if got <= 0:
                return done - start, (ctypes.get_errno() or 5) if got < 0 else 5  # EIO
            done += got
        return done - start, 0


class BatchReceiver:
    """Up to BATCH packets a call into slots of `size` bytes: `receive()` gives how many,
    then `length(i)` is packet i's, at `view[i * size:]`."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        self.fd = sock.fileno()
        self.size = size
        self.block = ctypes.create_string_buffer(size * BATCH)
        self.view = memoryview(self.block).cast("B")
        self._messages, self._vectors = _slots(self.block, size, BATCH)
        self._receive = _libc().recvmmsg

    def receive(self) -> int:
        """Packets read without blocking (0 when none wait); OSError on a failed call."""
        got = self._receive(self.fd, self._messages, BATCH, socket.MSG_DONTWAIT, None)
        if got < 0:
            number = ctypes.get_errno()
            if number in (11, 35, 4):  # EAGAIN (Linux, BSD), EINTR: nothing now
                return 0
            raise OSError(number, "recvmmsg")
        return int(got)

    def length(self, index: int) -> int:
        return int(self._messages[index].len)
