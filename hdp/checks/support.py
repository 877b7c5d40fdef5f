"""Shared moves of the chapter tests: hand-built datagrams and whether they got through.

Whether a datagram was delivered is decided by a sentinel, not by waiting: a valid
datagram sent after it on the same path, to the same socket. When the sentinel arrives
and the datagram has not, the receiver dropped it.

No pytest here: the conformance suite imports it as a module of the installed package.
A path that cannot even carry the sentinel raises AssertionError (a failed test to pytest)
explicitly, so the check holds under `python -O` too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from hdp.errors import DecodeError
from hdp.wire import ipv4, ipv6, udp

MARK = b"CHAPTER-TEST:"
SENTINEL = b"CHAPTER-SENTINEL:"
WAIT = 2.0  # the longest a sentinel may take on any path we build


@dataclass
class Receiver:
    """A UDP (or UDP-Lite) socket on the receiving end, bound to the path's address."""

    path: Any  # pytest_hdp.chapter.PathUnderTest
    handle: int
    port: int
    protocol: int

    def close(self) -> None:
        self.path.receiver.close(self.handle)


def open_receiver(path: Any, *, protocol: int = 17, **options: Any) -> Receiver:
    opened = path.receiver.open_udp(path.family, protocol=protocol, bind=path.dst, **options)
    if not opened.ok:
        raise AssertionError(f"{path.id}: cannot bind a UDP socket to {path.dst} "
                             f"({opened.stage}: {opened.errno})")
    return Receiver(path, opened.handle, opened.port, protocol)


def ip_packet(src: str, dst: str, protocol: int, body: bytes, *,
              identification: int | None = None) -> bytes:
    """`body` behind an IPv4 or IPv6 header, as a raw header-included send takes it."""
    if ip_address(src).version == 4:
        ident = random.getrandbits(16) if identification is None else identification
        return ipv4.encode(ipv4.IPv4Header(src=IPv4Address(src), dst=IPv4Address(dst),
                                           protocol=protocol, identification=ident), body)
    return ipv6.encode(ipv6.IPv6Header(src=IPv6Address(src), dst=IPv6Address(dst),
                                       next_header=protocol), body)


def payload(size: int, mark: bytes = MARK) -> bytes:
    filler = bytes(range(32, 127)) * (size // 95 + 1)
    return (mark + filler)[:size] if size >= len(mark) else filler[:size]


def fate(path: Any, receiver: Receiver, packets: list[bytes], *,
         sentinel: Callable[[], None] | None = None) -> tuple[str, list[Any]]:
    """Send `packets` (whole IP packets), then a valid sentinel datagram; 'delivered' if a
    datagram marked MARK arrived, 'dropped' if only the sentinel did."""
    path.sender.send_packets(path.family, path.dst, packets)
    if sentinel is None:
        src = path.src()
        body = (udp.encode_lite(40000, receiver.port, payload(32, SENTINEL), src, path.dst)
                if receiver.protocol == udp.PROTO_UDPLITE else
                udp.encode(40000, receiver.port, payload(32, SENTINEL), src, path.dst))
        path.sender.send_packets(path.family, path.dst,
                                 [ip_packet(src, path.dst, receiver.protocol, body)])
    else:
        sentinel()
    got = path.receiver.receive(receiver.handle, count=2, timeout=WAIT, until=SENTINEL)
    if any(d.head.startswith(MARK) for d in got):
        return "delivered", got
    if not any(d.head.startswith(SENTINEL) for d in got):
        raise AssertionError(
            f"{path.id}: not even the valid sentinel datagram arrived within {WAIT:g} s; the "
            "path does not carry UDP, so nothing can be said about the datagram before it")
    return "dropped", got


def counter(counters: dict[str, int], family: int, name: str) -> int | None:
    """A UDP counter by its IPv4 name (InCsumErrors); the IPv6 twin is Udp6InCsumErrors."""
    key = f"Udp.{name}" if family == 4 else f"6.Udp6{name}"
    return counters.get(key)



def transport_of(packet: bytes) -> bytes | None:
    """The bytes after the IP header (and IPv6 extension headers) of a captured packet."""
    try:
        if packet[:1] and packet[0] >> 4 == 4:
            return ipv4.decode(packet).payload
        return ipv6.decode(packet).payload
    except DecodeError:
        return None


def src_of(packet: bytes) -> str:
    """The source address of an IPv4 or IPv6 packet."""
    if packet[0] >> 4 == 4:
        return str(ipv4.decode_header(packet).src)
    return str(ipv6.decode(packet).header.src)
