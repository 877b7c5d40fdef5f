"""The agent's per-packet path at packet rate, beside the general one it must equal.

Sending: a probe of the common kind (on its protocol's own socket, no TOS, TTL or DF of
its own, the agent's filler as data, an HDP or raw carrier) is filled into a template
(hdp.wire.fastprobe), and its `sent` event is a row of its frame. Receiving: a packet
of ours, intact, its tag where an HDP carrier puts it, becomes the row of its `arrival`
event straight from the buffer it was read into. Everything else goes the general way
(hdp.agent.server: ProbeSpec, hdp.probe.encode_probe; hdp.arrival.decode_arrival), and
each fast path gives exactly what the general one would, or declines:
tests/security/test_fastpath.py holds them to that for any bytes.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
import zlib
from typing import Any

from hdp import rawsock
from hdp.agent.messages import ProbeRow
from hdp.probe import probe_data
from hdp.wire.fastprobe import ProbeTemplate, read_tag
from hdp.wire.hdp import HEADER_LENGTH, ORIGINAL_PORT, TAG_LENGTH, Carrier

_CARRIERS = {"hdp": Carrier.HDP, "raw": Carrier.RAW}
_IPV4 = struct.Struct("!BBHHHBB2x4s4s")  # version/IHL, TOS ... protocol, src, dst
_HDP = struct.Struct("!HHQ")  # ports and timestamp
_SHORTEST = HEADER_LENGTH + TAG_LENGTH
_KEPT = 64  # templates (payload kinds x sizes) an agent keeps at once


def plain(row: ProbeRow) -> bool:
    """Whether `row` is a probe of the kind `Templates` sends."""
    return row.payload in _CARRIERS and not row.header_included and not row.tos \
        and row.df is None and row.ttl is None and row.data is None


class Templates:
    """Sends plain probes (see `plain`) from templates, giving the row of each `sent`
    event (messages.FRAMES["sents"]) as the general path would make that event."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, int], ProbeTemplate] = {}
        self._addresses: dict[tuple[int, str], Any] = {}

    def send(self, sender: rawsock.RawSocket, run: int, row: ProbeRow, src: str
             ) -> tuple[Any, ...]:
        key = (row.payload, row.size)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= _KEPT:
                self._templates.clear()
            template = self._templates[key] = ProbeTemplate(_CARRIERS[row.payload],
                                                            probe_data(row.size))
        stamp = time.time_ns() if row.payload == "hdp" else None
        body = template.fill(run, row.case, 0, stamp or 0)
        digest = zlib.crc32(body)
        address = self._addresses.get((row.family, row.dst))
        if address is None:
            if len(self._addresses) >= 1 << 16:
                self._addresses.clear()
            address = self._addresses[(row.family, row.dst)] = rawsock.sockaddr(row.family,
                                                                                row.dst)
        started = time.time_ns()
        try:
            sent = sender.sock.sendto(body, address)
        except OSError as exc:
            refused = rawsock.OsRefusal.from_errno(exc.errno or errno.EIO).errno_name
            return (run, row.case, False, "send", refused, None, started, src, True, digest,
                    stamp)
        return run, row.case, True, None, None, sent, started, src, True, digest, stamp


def arrival_row(buffer: bytearray | bytes | memoryview, length: int, family: int,
                socket_protocol: int, src: str, dst: str | None, hop_limit: int | None,
                traffic_class: int | None, kernel_time_ns: int | None, truncated: bool
                ) -> tuple[Any, ...] | None:
    """The row of the `arrival` event (messages.FRAMES["arrivals"]) of a packet read into
    `buffer` (its first `length` bytes; the rest as hdp.rawsock.Received holds it), or
    None: for any packet but an intact HDP-carried probe of ours, whole, and for IPv4
    any header laid out otherwise than as sent (a BSD raw socket's; see the caller)."""
    if truncated:
        return None
    if family == 4:
        if length < 20:
            return None
        ver_ihl, tos, total, _, frag, ttl, wire, src4, dst4 = _IPV4.unpack_from(buffer)
        start = (ver_ihl & 0x0F) * 4
        if ver_ihl >> 4 != 4 or start < 20 or not start <= total <= length:
            return None
        end = total
        src, dst = socket.inet_ntoa(src4), socket.inet_ntoa(dst4)
        hops, dscp, ecn = ttl, tos >> 2, tos & 3
        offset, more = frag & 0x1FFF, bool(frag & 0x2000)
    else:
        start, end = 0, length
        wire = socket_protocol if 0 <= socket_protocol <= 255 else None
        hops, offset, more = hop_limit, None, None
        dscp, ecn = (None, None) if traffic_class is None else \
            (traffic_class >> 2, traffic_class & 3)
    if end - start < _SHORTEST:
        return None
    tag = read_tag(buffer, start + HEADER_LENGTH, end)
    if tag is None or tag[0] != Carrier.HDP or not tag[4]:
        return None
    src_port, dst_port, stamp = _HDP.unpack_from(buffer, start)
    if src_port != ORIGINAL_PORT or dst_port != ORIGINAL_PORT:
        return None
    payload = memoryview(buffer)[start:end]
    return (tag[2], tag[3], tag[1], "hdp", family, socket_protocol, wire, src, dst, hops,
            dscp, ecn, end - start, True, kernel_time_ns, stamp, offset, more, False, None,
            zlib.crc32(payload), payload[:HEADER_LENGTH].hex())
