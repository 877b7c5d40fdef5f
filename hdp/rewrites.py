"""What changed in a probe on its way: the bytes as sent against the bytes as arrived (pure).

The sender's agent reports a CRC-32 of every byte it put after the IP header (and the HDP
timestamp among them); the listener's agent reports a CRC-32 of what arrived, the
carrier's header bytes as they came, and every byte only when its own checks (the tag's
CRC over tag and data, HDP's ports, the UDP checksum) already show a change. Equal digests
settle the common case with one comparison. Where they differ, the probe as sent is
rebuilt here (the agent builds it deterministically from the case, the run, the source and
the timestamp) and the changed bytes are named by offset after the IP header, e.g. "2-3"
for the checksum Linux writes into an IPv6 protocol-58 probe. Where the listener sent no
bytes, its checks vouch for the tag and data, so the change lies in the carrier's header,
which it did send.

A UDP source port and checksum that a NAT rewrote with the source address are part of that
translation (change `src`), not a rewrite of the payload: a datagram that arrived from
another source with a valid checksum, or that matches the one rebuilt for the addresses it
arrived with, is unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.wire import hdp as hdp_wire
from hdp.wire.hdp import ProbeTag

MAX_RANGES = 8  # ranges named one by one; more are counted
# Where the HDP timestamp sits after the IP header.
STAMP_BYTES = range(4, hdp_wire.HEADER_LENGTH)


@dataclass(frozen=True)
class Comparison:
    """The probe as arrived against the probe as sent."""

    changed: bool
    ranges: str | None = None  # "2-3", "4-11,40": offsets after the IP header, inclusive
    stamp_changed: bool = False  # the HDP timestamp is among the changed bytes

    @property
    def unchanged(self) -> bool:
        return not self.changed


UNCHANGED = Comparison(False)

# (source, destination) -> the bytes the sender built, as it would for those addresses.
Rebuild = Callable[[str, str], bytes]


def rebuilder(payload: str, size: int, run: int, case: int,
              stamp_ns: int | None, data: bytes | None = None) -> Rebuild:
    """How the agent built the probe of `case` (hdp.agent.server: _send_one): `data`
    after the tag, or `size` bytes of filler; nothing is built until a comparison needs
    it."""

    def build(src: str, dst: str) -> bytes:
        body = probe_data(size) if data is None else data
        probe = Probe(PayloadKind(payload), body, ProbeTag(run, case))
        return encode_probe(probe, src, dst, stamp_ns)

    return build


def compare(sent: Mapping[str, Any], arrival: Mapping[str, Any], rebuild: Rebuild,
            dst: str) -> Comparison:
    """Compare a `sent` event with an `arrival` event of the same probe sent to `dst`."""
    sent_digest, arrived_digest = sent.get("digest"), arrival.get("digest")
    if not isinstance(sent_digest, int) or not isinstance(arrived_digest, int):
        # An agent that reports no digest: its own checks are all there is.
        return UNCHANGED if arrival.get("intact") else Comparison(True)
    if sent_digest == arrived_digest:
        return UNCHANGED
    src = sent.get("src")
    if not isinstance(src, str):
        return Comparison(True)
    try:
        expected = rebuild(src, dst)
    except (ValueError, ArithmeticError):
        return Comparison(True)
    if zlib.crc32(expected) != sent_digest:
        return Comparison(True)  # not built as we think: say it changed, not where
    arrived = _hex(arrival.get("bytes"))
    if arrived is None:
        head = _hex(arrival.get("head"))
        if head is None:
            return Comparison(True)
        if _translated(arrival, head, rebuild, expected, src):
            return UNCHANGED
        arrived = head + expected[len(head):]
    elif _translated(arrival, arrived[:8], rebuild, expected, src) and \
            arrived[8:] == expected[8:]:
        return UNCHANGED
    spans = changed_spans(expected, arrived)
    if not spans:
        return Comparison(True)  # the digests differ all the same: where, we cannot say
    stamped = sent.get("stamp_ns") is not None and any(
        start <= STAMP_BYTES[-1] and end >= STAMP_BYTES[0] for start, end in spans)
    return Comparison(True, spans_text(spans), stamped)


def _translated(arrival: Mapping[str, Any], head: bytes, rebuild: Rebuild,
                expected: bytes, sent_src: str) -> bool:
    """Whether a differing UDP header is a NAT's translation: a source the datagram left
    with replaced, and with it the source port and the checksum (valid for the addresses
    it arrived with), the rest as sent."""
    src, dst = arrival.get("src"), arrival.get("dst")
    if arrival.get("carrier") != "udp" or not isinstance(src, str) or not isinstance(dst, str):
        return False
    if len(head) < 8 or head[2:6] != expected[2:6]:
        return False
    if src != sent_src and arrival.get("intact") and "bytes" not in arrival:
        return True  # the listener found the checksum valid for the translated source
    try:
        translated = rebuild(src, dst)
    except (ValueError, ArithmeticError):
        return False
    return translated[:8] == head[:8]


def _hex(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def changed_spans(sent: bytes, arrived: bytes) -> list[tuple[int, int]]:
    """Inclusive (first, last) offsets where the two differ; a length change adds the span
    one of them lacks."""
    spans: list[tuple[int, int]] = []
    common = min(len(sent), len(arrived))
    start = None
    for offset in range(common):
        if sent[offset] != arrived[offset]:
            if start is None:
                start = offset
        elif start is not None:
            spans.append((start, offset - 1))
            start = None
    if len(sent) != len(arrived):
        spans.append((common if start is None else start, max(len(sent), len(arrived)) - 1))
    elif start is not None:
        spans.append((start, common - 1))
    return spans


def spans_text(spans: list[tuple[int, int]]) -> str:
    """"2-3", "4-11,40" (at most MAX_RANGES named, then "+N more")."""
    named = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:MAX_RANGES]]
    if len(spans) > MAX_RANGES:
        named.append(f"+{len(spans) - MAX_RANGES} more")
    return ",".join(named)
