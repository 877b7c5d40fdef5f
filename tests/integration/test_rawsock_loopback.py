"""Raw sockets on loopback, for real: what the kernel accepts, delivers and reports."""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import time

import pytest

from hdp import rawsock
from hdp.arrival import decode_arrival
from hdp.probe import PayloadKind, Probe, encode_probe
from hdp.wire.hdp import Carrier, ProbeTag
from tests.conftest import RAW_FIX, RAW_V6, requires_raw

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="asserts Linux's raw-socket behaviour")


def _open(raw_sockets: list[rawsock.RawSocket], family: int, protocol: int, *,
          listen: bool) -> rawsock.RawSocket:
    opened = rawsock.RawSocket.open(family, protocol, listen=listen)
    assert not isinstance(opened, rawsock.OsRefusal), f"protocol {protocol}: {opened}"
    raw_sockets.append(opened)
    return opened


def _receive_tagged(listener: rawsock.RawSocket, run_id: int, count: int = 1,
                    timeout: float = 2.0) -> list:
    """Arrivals carrying our run id; other traffic on the protocol is skipped."""
    found = []
    for received in rawsock.receive_until([listener], time.monotonic() + timeout):
        arrival = decode_arrival(received)
        if arrival.tag is not None and arrival.tag.run_id == run_id:
            found.append(arrival)
            if len(found) == count:
                break
    return found


def test_hdp_probe_delivered_with_header_fields(raw_sockets, family, loopback):
    run_id = int.from_bytes(os.urandom(4), "big")
    listener = _open(raw_sockets, family, 253, listen=True)
    sender = _open(raw_sockets, family, 253, listen=False)
    probe = Probe(PayloadKind.HDP, b"the write-up's cow", ProbeTag(run_id, case=7, probe=1))
    result = sender.send(encode_probe(probe, loopback, loopback), loopback)
    assert result.ok and result.refusal is None
    assert result.sent_bytes == 12 + 20 + len(probe.data)

    (arrival,) = _receive_tagged(listener, run_id)
    assert arrival.src == loopback and arrival.dst == loopback
    assert arrival.wire_protocol == 253
    assert arrival.ttl == 64
    assert (arrival.dscp, arrival.ecn) == (0, 0)
    assert arrival.carrier is Carrier.HDP
    assert arrival.hdp is not None and (arrival.hdp.src_port, arrival.hdp.dst_port) == (420, 420)
    assert arrival.tag == ProbeTag(run_id, 7, 1, Carrier.HDP)
    assert arrival.intact and arrival.data == probe.data
    assert arrival.byte_count == result.sent_bytes
    # The kernel's receive stamp lies after our send stamp and before now.
    stamp = arrival.received.kernel_time_ns
    assert stamp is not None and result.time_ns <= stamp <= time.time_ns()
    assert arrival.hdp.timestamp_ns <= stamp
    if family == 4:
        assert arrival.ipv4 is not None and arrival.ipv4.total_length == 20 + result.sent_bytes


@linux_only
@pytest.mark.parametrize(("protocol", "errno_name"), [
    (0, "EPROTONOSUPPORT"), (-1, "EINVAL"), (263, "EINVAL"), (300, "EINVAL"),
])
def test_socket_refusal_is_data(family, protocol, errno_name):
    refusal = rawsock.RawSocket.open(family, protocol)
    assert isinstance(refusal, rawsock.OsRefusal)
    assert refusal.errno_name == errno_name
    assert refusal.message == os.strerror(getattr(errno, errno_name))


@linux_only
@pytest.mark.parametrize("protocol", [257, 259, 262])
def test_linux_ipv4_puts_protocol_modulo_256_on_the_wire(raw_sockets, protocol):
    """Linux accepts an IPv4 raw socket for 256..262 and sends the number's low byte."""
    run_id = int.from_bytes(os.urandom(4), "big")
    wire = protocol & 0xFF
    listener = _open(raw_sockets, 4, wire, listen=True)
    sender = _open(raw_sockets, 4, protocol, listen=False)
    probe = Probe(PayloadKind.HDP, b"renumbered", ProbeTag(run_id, case=protocol))
    assert sender.send(encode_probe(probe, "127.0.0.1", "127.0.0.1"), "127.0.0.1").ok
    (arrival,) = _receive_tagged(listener, run_id)
    # The tag, not the protocol it arrived on, says which case this was.
    assert arrival.tag is not None and arrival.tag.case == protocol
    assert arrival.wire_protocol == wire


@linux_only
@pytest.mark.parametrize("protocol", [256, 259, 262])
def test_linux_ipv6_accepts_socket_but_refuses_send_above_255(raw_sockets, protocol):
    if not RAW_V6:
        pytest.skip("IPv6 raw loopback unavailable: " + RAW_FIX)
    sender = _open(raw_sockets, 6, protocol, listen=False)
    result = sender.send(b"\x00" * 12, "::1")
    assert not result.ok
    assert result.refusal is not None and result.refusal.errno_name == "EINVAL"


def test_protocol_255_sends_without_our_ip_header(raw_sockets, family, loopback):
    """IPPROTO_RAW implies IP_HDRINCL; with it off the kernel builds the header."""
    run_id = int.from_bytes(os.urandom(4), "big")
    listener = _open(raw_sockets, family, 255, listen=True)
    sender = _open(raw_sockets, family, 255, listen=False)
    if family == 4:
        assert sender.sock.getsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL) == 0
    probe = Probe(PayloadKind.HDP, b"255 as the original client", ProbeTag(run_id, 0))
    assert sender.send(encode_probe(probe, loopback, loopback), loopback).ok
    (arrival,) = _receive_tagged(listener, run_id)
    assert arrival.wire_protocol == 255 and arrival.intact


@linux_only
def test_linux_raw_socket_receives_its_own_loopback_send(raw_sockets, family, loopback):
    """A listening raw socket gets its own outgoing packet back; a send-only one does not."""
    run_id = int.from_bytes(os.urandom(4), "big")
    both = _open(raw_sockets, family, 252, listen=True)
    send_only = _open(raw_sockets, family, 252, listen=False)
    probe = encode_probe(Probe(PayloadKind.RAW, b"echo", ProbeTag(run_id, 1)), loopback, loopback)
    assert both.send(probe, loopback).ok
    assert len(_receive_tagged(both, run_id)) == 1
    assert send_only.send(probe, loopback).ok
    assert len(_receive_tagged(both, run_id)) == 1  # the listener still hears the send-only one
    readable, _, _ = select.select([send_only.sock], [], [], 0.2)
    assert readable == [], "a send-only socket queued a copy of loopback traffic"


def test_udp_probe_is_a_real_udp_datagram(raw_sockets, family, loopback):
    """`--udp` on protocol 17: a UDP socket bound to the port receives the payload."""
    run_id = int.from_bytes(os.urandom(4), "big")
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    with socket.socket(af, socket.SOCK_DGRAM) as udp_sock:
        udp_sock.bind((loopback, 0))
        port = udp_sock.getsockname()[1]
        sender = _open(raw_sockets, family, 17, listen=False)
        probe = Probe(PayloadKind.UDP, b"baseline", ProbeTag(run_id, 17), 40000, port)
        src = rawsock.source_address_for(loopback, family)
        assert sender.send(encode_probe(probe, src, loopback), loopback).ok
        udp_sock.settimeout(2)
        data, peer = udp_sock.recvfrom(2048)
    # The kernel's UDP stack verified our checksum, or it would have dropped the datagram.
    assert data.endswith(b"baseline") and peer[1] == 40000


def test_burst_is_received_without_drops(raw_sockets, family, loopback):
    """A burst of 500 probes fits the enlarged receive queue: all arrive, none dropped."""
    run_id = int.from_bytes(os.urandom(4), "big")
    listener = _open(raw_sockets, family, 251, listen=True)
    sender = _open(raw_sockets, family, 251, listen=False)
    total = 500
    for n in range(total):
        probe = Probe(PayloadKind.HDP, b"x" * 64, ProbeTag(run_id, n))
        assert sender.send(encode_probe(probe, loopback, loopback), loopback).ok
    arrivals = _receive_tagged(listener, run_id, count=total, timeout=5)
    assert sorted(a.tag.case for a in arrivals) == list(range(total))
    assert all(a.received.drops in (0, None) for a in arrivals)


@requires_raw
def test_check_privilege_passes_as_root():
    rawsock.check_privilege(4)  # raises PrivilegeError when it would fail
