"""The agent's packet-rate paths give exactly what its general ones give, or decline.

A listener reads hostile bytes as root: whatever arrives, the fast path either leaves a
packet to hdp.arrival.decode_arrival or produces the very `arrival` event that path
would. A plain probe sent from a template is the probe, and the `sent` event, that
building it through hdp.probe gives.
"""

from __future__ import annotations

import os
import time
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hdp import rawsock
from hdp.agent import messages
from hdp.agent.fastpath import Templates, arrival_row, plain
from hdp.agent.server import Agent, arrival_event
from hdp.arrival import decode_arrival
from hdp.wire import ipv4
from hdp.wire.fastprobe import ProbeTemplate
from hdp.wire.hdp import Carrier

FIELDS = messages.FRAMES["arrivals"][1]
u32 = st.integers(0, (1 << 32) - 1)


def _probe_packet(family: int, run: int, case: int, data: bytes, tos: int, ttl: int,
                  frag: int, options: bytes) -> bytes:
    body = bytes(ProbeTemplate(Carrier.HDP, data).fill(run, case, 0, 1_764_000_000 << 30))
    if family == 6:
        return body
    header = ipv4.IPv4Header(src=IPv4Address("127.0.0.1"), dst=IPv4Address("127.3.2.1"),
                             protocol=253, ttl=ttl, dscp=tos >> 2, ecn=tos & 3,
                             flags=frag >> 13, fragment_offset=frag & 0x1FFF,
                             options=options)
    return ipv4.encode(header, body)


@st.composite
def packets(draw: st.DrawFn) -> tuple[int, bytes, int, bool]:
    """(family, packet, bytes of it received, mutated): probes of ours as they arrive,
    and the same with bytes changed, cut, or left over after them; and any bytes."""
    family = draw(st.sampled_from([4, 6]))
    if draw(st.integers(0, 9)) == 0:
        noise = draw(st.binary(max_size=120))
        return family, noise, len(noise), True
    packet = bytearray(_probe_packet(
        family, draw(u32), draw(u32), draw(st.binary(max_size=80)), draw(st.integers(0, 255)),
        draw(st.integers(0, 255)), draw(st.sampled_from([0, 0x4000, 0x2000, 0x0005])),
        draw(st.sampled_from([b"", b"\x01\x01\x01\x00", bytes(8)]))))
    length = len(packet)
    mutated = False
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "grow", "trail"]))
        mutated = True
        if kind == "flip" and packet:
            at = draw(st.integers(0, len(packet) - 1))
            packet[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            length = draw(st.integers(0, length))
        elif kind == "grow":  # more bytes than the IPv4 total length says
            packet += draw(st.binary(min_size=1, max_size=16))
            length = len(packet)
        else:  # the reader's buffer holds bytes of an earlier packet after this one
            packet += draw(st.binary(min_size=1, max_size=16))
    return family, bytes(packet), min(length, len(packet)), mutated


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=packets(), stamp=st.none() | st.integers(0, 1 << 62),
       hops=st.none() | st.integers(0, 255), tclass=st.none() | st.integers(0, 255),
       truncated=st.booleans(), protocol=st.sampled_from([253, 17, 300]))
@example(drawn=(4, _probe_packet(4, 7, 9, b"abc", 0, 64, 0, b""), 55, False), stamp=5,
         hops=None, tclass=None, truncated=False, protocol=253)
def test_an_arrival_is_read_fast_exactly_as_decode_arrival_reads_it_or_left_to_it(
        drawn, stamp, hops, tclass, truncated, protocol):
    family, packet, length, mutated = drawn
    dst = "::1" if family == 6 else None
    src = "::1" if family == 6 else "127.0.0.1"
    if family == 4:
        hops = tclass = None  # as an IPv4 listener's ancillary data has them
    buffer = bytearray(packet) + bytes(16)  # the reader's buffer is longer than a packet
    row = arrival_row(buffer, length, family, protocol, src, dst, hops, tclass, stamp,
                      truncated)
    received = rawsock.Received(family, protocol, packet[:length], src, dst, hops, tclass,
                                stamp, 0, truncated)
    slow = arrival_event(decode_arrival(received, ipv4.RawQuirk.NONE))
    if row is None:
        # Only what is not an intact probe of ours, whole, may be declined.
        assert mutated or truncated or slow["intact"] is False
        return
    assert {"event": "arrival", **dict(zip(FIELDS, row, strict=True))} == slow


class _Wire:
    """A raw socket's stand-in that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent.append((bytes(data), address))
        return len(data)


rows = st.builds(messages.ProbeRow, case=u32, family=st.sampled_from([4, 6]),
                 protocol=st.integers(1, 255),
                 dst=st.sampled_from(["127.0.0.1", "127.9.8.7", "::1"]),
                 payload=st.sampled_from(["hdp", "raw"]), size=st.integers(0, 1500),
                 header_included=st.just(False), ident=u32, tos=st.just(0), df=st.none(),
                 ttl=st.none(), data=st.none())


@settings(max_examples=300)
@given(row=rows, run=u32)
def test_a_plain_probe_from_a_template_is_the_probe_and_event_the_general_path_makes(
        row, run, monkeypatch_time):
    row = row._replace(family=6 if ":" in row.dst else 4)
    assert plain(row)
    agent = Agent(*os.pipe())
    wire = _Wire()
    sender = rawsock.RawSocket(wire, row.family, row.protocol)  # type: ignore[arg-type]
    agent.senders[(row.family, row.protocol, False)] = sender
    agent._sources[(row.family, row.dst)] = row.dst
    general = agent._send_one(run, messages.ProbeSpec(*row))
    fast = agent.templates.send(sender, run, row, row.dst)
    assert {"event": "sent", **dict(zip(messages.FRAMES["sents"][1], fast,
                                        strict=True))} == general
    (built, to), (filled, address) = wire.sent
    assert filled == built and address == to


def test_a_probe_row_is_a_probe_spec_field_by_field():
    from dataclasses import fields

    assert tuple(f.name for f in fields(messages.ProbeSpec)) == messages.ProbeRow._fields
    assert messages.ProbeRow._field_defaults == {
        f.name: f.default for f in fields(messages.ProbeSpec) if f.name in
        messages.ProbeRow._field_defaults}


@pytest.fixture(scope="module")
def monkeypatch_time():
    """One wall clock for both paths: stamps and send times compare equal."""
    saved = time.time_ns
    time.time_ns = lambda: 1_764_000_000_123_456_789  # type: ignore[assignment]
    try:
        yield
    finally:
        time.time_ns = saved  # type: ignore[assignment]


def test_the_send_refusal_of_a_template_probe_names_the_errno(monkeypatch_time):
    class Refusing(_Wire):
        def sendto(self, data: bytes, address: Any) -> int:
            raise OSError(13, "Permission denied")

    row = messages.ProbeRow(5, 4, 253, "127.0.0.1")
    agent = Agent(*os.pipe())
    sender = rawsock.RawSocket(Refusing(), 4, 253)  # type: ignore[arg-type]
    agent.senders[(4, 253, False)] = sender
    agent._sources[(4, "127.0.0.1")] = "127.0.0.1"
    fast = Templates().send(sender, 3, row, "127.0.0.1")
    general = agent._send_one(3, messages.ProbeSpec(*row))
    assert general["errno"] == "EACCES" and general["ok"] is False
    assert {"event": "sent", **dict(zip(messages.FRAMES["sents"][1], fast,
                                        strict=True))} == general


def test_hdp_carried_probes_of_every_size_are_read_fast():
    """The fast path is taken: an intact probe of ours is never left to the slow one."""
    for size in (0, 1, 63, 64, 1400):
        packet = _probe_packet(4, 1, 2, bytes(size), 0, 64, 0x4000, b"")
        assert arrival_row(packet, len(packet), 4, 253, "127.0.0.1", None, None, None, 1,
                           False) is not None
