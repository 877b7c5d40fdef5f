"""Shared moves of the chapter tests: hand-built datagrams and whether they got through.

Whether a datagram was delivered is decided by a sentinel, not by waiting: a valid
datagram sent after it on the same path, to the same socket. When the sentinel arrives
and the datagram has not, the receiver dropped it.

No pytest here: the conformance suite imports it as a module of the installed package.
A path that cannot even carry the sentinel raises NotCarried: the check is inconclusive
there (a firewall that forwards only TCP/UDP/ICMP says nothing about UDP-Lite's coverage),
never a failure of the chapter's statement.

A test's datagrams go to a socket it opened, and start with a tag unique to this process
(`tag`), so what a receiver reads is matched by tag: another process's datagram that
reaches the port, or a stray one, is never taken for the test's own.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from hdp.checks.path import PathUnderTest
from hdp.endpoint import Datagram
from hdp.errors import DecodeError
from hdp.wire import ipv4, ipv6, udp

_PROCESS = secrets.token_hex(4).encode()


def tag(word: bytes) -> bytes:
    """`word` made unique to this process: WORD-1a2b3c4d:."""
    return word + b"-" + _PROCESS + b":"


MARK = tag(b"CHAPTER-TEST")
SENTINEL = tag(b"CHAPTER-SENTINEL")
WAIT = 2.0  # the longest a sentinel may take on any path we build
ENOUGH = 32  # datagrams a receive may read before the awaited one (strays included)


@dataclass
class Receiver:
    """A UDP (or UDP-Lite) socket on the receiving end, bound to the path's address."""

    path: PathUnderTest
    handle: int
    port: int
    protocol: int

    def close(self) -> None:
        self.path.receiver.close(self.handle)


def open_receiver(path: PathUnderTest, *, protocol: int = 17, **options: Any) -> Receiver:
    opened = path.receiver.open_udp(path.family, protocol=protocol, bind=path.dst, **options)
    if not opened.ok or opened.handle is None or opened.port is None:
        raise AssertionError(f"{path.id}: cannot bind a UDP socket to {path.dst} "
                             f"({opened.stage}: {opened.errno})")
    return Receiver(path, opened.handle, opened.port, protocol)


def receive_tagged(path: PathUnderTest, handles: int | list[int], mark: bytes = MARK, *,
                   timeout: float = WAIT, bufsize: int | None = None) -> list[Datagram]:
    """The datagrams starting with `mark` that reach `handles` within `timeout`; reading
    ends with the first of them (others at the port are read and set aside)."""
    got = path.receiver.receive(handles, count=ENOUGH, timeout=timeout, until=mark,
                                bufsize=bufsize)
    return [d for d in got if d.head.startswith(mark)]


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


class NotCarried(Exception):
    """Not even a valid datagram of the protocol under test crossed the path (a firewall
    that forwards only TCP/UDP/ICMP drops UDP-Lite): nothing can be said on this path
    about what a receiver does with the test's own datagram, so its check is
    inconclusive, never failed."""


def fate(path: PathUnderTest, receiver: Receiver, packets: list[bytes], *,
         sentinel: Callable[[], None] | None = None) -> tuple[str, list[Datagram]]:
    """Send `packets` (whole IP packets), then a valid sentinel datagram; 'delivered' if a
    datagram marked MARK arrived, 'dropped' if only the sentinel did; NotCarried if
    nothing did."""
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
    # The datagram, if delivered, comes before the sentinel sent after it on the same path.
    got = path.receiver.receive(receiver.handle, count=ENOUGH, timeout=WAIT, until=SENTINEL)
    if any(d.head.startswith(MARK) for d in got):
        return "delivered", got
    if not any(d.head.startswith(SENTINEL) for d in got):
        kind = "UDP-Lite" if receiver.protocol == udp.PROTO_UDPLITE else "UDP"
        raise NotCarried(
            f"{path.id}: not even a valid {kind} datagram (the sentinel) arrived within "
            f"{WAIT:g} s; the path does not carry {kind}, so nothing can be said about the "
            "datagram before it")
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
