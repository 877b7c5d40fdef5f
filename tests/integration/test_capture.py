"""AF_PACKET capture on loopback, for real: each fragment as sent, before reassembly."""

from __future__ import annotations

import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hdp import rawsock
from hdp.capture import PRIVILEGE_FIX, Capture, Captured, FragmentView, fragments_of
from hdp.pcap import decode_pcap, write_pcap
from hdp.wire import udp
from hdp.wire.fragment import fragment_ipv4, fragment_ipv6
from hdp.wire.ipv4 import IPv4Header
from hdp.wire.ipv6 import FRAGMENT, IPv6Header
from tests.conftest import requires_raw
from tests.wire.test_pcap import requires_tshark, tshark_fields

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="packet capture uses Linux AF_PACKET")

TIMEOUT = 5.0
# (MTU, offsets in 8-byte units, IP lengths) for a 2992-byte UDP payload: the chapter's
# 3020-byte IPv4 datagram, and the same payload over IPv6's minimum MTU.
EXPECTED = {4: (1500, [0, 185, 370], [1500, 1500, 60]),
            6: (1280, [0, 154, 308], [1240, 1240, 544])}


def _destination(family: int) -> str:
    """A loopback address of our own for IPv4, so concurrent tests' UDP does not match."""
    if family == 6:
        return "::1"
    return f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


def _fragments(family: int, host: str, port: int,
               identification: int) -> tuple[bytes, list[bytes]]:
    """A random UDP payload and, in offset order, the fragments that carry it."""
    payload = os.urandom(2992)
    datagram = udp.encode(40000, port, payload, host, host)
    mtu = EXPECTED[family][0]
    if family == 4:
        header = IPv4Header(src=host, dst=host, protocol=17, identification=identification)
        return payload, fragment_ipv4(header, datagram, mtu)
    header6 = IPv6Header(src=host, dst=host, next_header=FRAGMENT)
    return payload, fragment_ipv6(header6, datagram, 17, mtu, identification)


def _send(family: int, host: str, packets: list[bytes]) -> None:
    """Send caller-built IP packets to `host`, a loopback address, exactly as given."""
    assert host == "::1" or host.startswith("127."), "tests send to loopback only"
    sender = rawsock.RawSocket.open(family, rawsock.IPPROTO_RAW, listen=False,
                                    header_included=True)
    assert not isinstance(sender, rawsock.OsRefusal), f"header-included socket: {sender}"
    try:
        for packet in packets:
            result = sender.send(packet, host)
            assert result.ok, f"send refused: {result.refusal}"
    finally:
        sender.close()


def _wait(capture: Capture, done: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Read from `capture` until `done()` or the deadline; select() paces it, not sleep."""
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if select.select([capture], [], [], remaining)[0]:
            capture.read_available()


def _ours(capture: Capture, identification: int) -> list[Captured]:
    return [packet for packet in capture.packets
            if [v.identification for v in fragments_of([packet])] == [identification]]


@pytest.fixture
def receiver(family: int) -> Iterator[socket.socket]:
    """A UDP socket on a loopback address: it gets the datagram once it is reassembled."""
    kind = socket.AF_INET if family == 4 else socket.AF_INET6
    sock = socket.socket(kind, socket.SOCK_DGRAM)
    try:
        sock.bind((_destination(family), 0))
        yield sock
    finally:
        sock.close()


def _open(*, protocol: int, hosts: tuple[str, ...], incoming_only: bool = True,
          max_packets: int = 10_000) -> Capture:
    opened = Capture.open(interface="lo", protocol=protocol, hosts=hosts,
                          incoming_only=incoming_only, max_packets=max_packets)
    assert not isinstance(opened, rawsock.OsRefusal), f"capture on lo: {opened}"
    return opened


@requires_raw
def test_capture_sees_each_fragment_as_sent_before_reassembly(
        family: int, receiver: socket.socket, tmp_path: Path) -> None:
    host, port = receiver.getsockname()[:2]
    identification = random.randint(1, 0xFFFF)
    payload, fragments = _fragments(family, host, port, identification)
    sent = list(reversed(fragments))
    with _open(protocol=17, hosts=(host,)) as capture:
        _send(family, host, sent)
        _wait(capture, lambda: len(_ours(capture, identification)) >= len(sent))
        # The datagram is delivered only after reassembly: by then every copy of every
        # fragment the interface saw is queued, so one more read would show a duplicate.
        receiver.settimeout(TIMEOUT)
        delivered = receiver.recv(65535)
        capture.read_available()
        ours = _ours(capture, identification)

    assert delivered == payload
    assert [packet.data for packet in ours] == sent  # byte for byte, in send order, once each
    assert {(p.interface, p.direction, p.family) for p in ours} == {("lo", "host", family)}
    assert {p.interface_index for p in ours} == {socket.if_nametoindex("lo")}
    assert all(p.kernel_time and p.malformed is None and not p.truncated for p in ours)
    assert [p.time_ns for p in ours] == sorted(p.time_ns for p in ours)
    views = fragments_of(ours)
    _, offsets, lengths = EXPECTED[family]
    assert [v.offset for v in views] == offsets[::-1]
    assert [v.more for v in views] == [False, True, True]
    assert [v.length for v in views] == lengths[::-1]
    assert {(v.identification, v.protocol, v.src, v.dst, v.df) for v in views} == {
        (identification, 17, host, host, False)}
    if family == 4:
        assert sum(v.length for v in views) == 3060

    path = tmp_path / "capture.pcap"
    write_pcap(path, [packet.to_pcap_record() for packet in ours])
    assert decode_pcap(path.read_bytes()) == [p.to_pcap_record() for p in ours]


def _tshark_agrees(family: int, path: Path, views: list[FragmentView]) -> None:
    """tshark reads the offsets and more-fragments flags of `views` from the file."""
    fields = (("ip.frag_offset", "ip.flags.mf") if family == 4
              else ("ipv6.fraghdr.offset", "ipv6.fraghdr.more"))
    rows = tshark_fields(path, *fields)
    units = [int(offset) for offset, _ in rows]
    if family == 4 and max(units) > 370:  # tshark before 4.x shows IPv4 offsets in bytes
        units = [u // 8 for u in units]
    assert units == [v.offset for v in views]
    assert [more for _, more in rows] == [str(int(v.more)) for v in views]


@requires_raw
@requires_tshark
def test_capture_pcap_read_by_tshark(family: int, receiver: socket.socket,
                                     tmp_path: Path) -> None:
    host, port = receiver.getsockname()[:2]
    identification = random.randint(1, 0xFFFF)
    _, fragments = _fragments(family, host, port, identification)
    with _open(protocol=17, hosts=(host,)) as capture:
        _send(family, host, fragments)
        deadline = time.monotonic() + TIMEOUT
        # Other tests' UDP to ::1 may match too: ask for one more packet until ours are in.
        while (len(_ours(capture, identification)) < len(fragments)
               and time.monotonic() < deadline):
            capture.read_until(deadline, len(capture.packets) + 1)
        ours = _ours(capture, identification)
    path = tmp_path / "capture.pcap"
    write_pcap(path, [packet.to_pcap_record() for packet in ours])
    assert len(tshark_fields(path, "frame.len")) == len(fragments)
    _tshark_agrees(family, path, fragments_of(ours))


@requires_raw
def test_outgoing_copies_appear_when_asked_for(family: int, receiver: socket.socket) -> None:
    host, port = receiver.getsockname()[:2]
    identification = random.randint(1, 0xFFFF)
    _, fragments = _fragments(family, host, port, identification)
    with _open(protocol=17, hosts=(host,), incoming_only=False) as capture:
        _send(family, host, fragments)
        _wait(capture, lambda: len(_ours(capture, identification)) >= 2 * len(fragments))
        ours = _ours(capture, identification)
    # Loopback shows every packet twice: leaving (outgoing), then arriving (host).
    assert [(p.direction, p.data) for p in ours] == [
        (direction, fragment) for fragment in fragments for direction in ("outgoing", "host")]


@requires_raw
@pytest.mark.parametrize("family", [4], ids=["ipv4"], indirect=True)
def test_filters_and_bound(family: int, receiver: socket.socket) -> None:
    # IPv4 only: a 127/8 address of our own keeps other tests' packets out of the counts.
    host, port = receiver.getsockname()[:2]
    identification = random.randint(1, 0xFFFF)
    _, fragments = _fragments(family, host, port, identification)
    with _open(protocol=17, hosts=(host,), max_packets=1) as bounded, \
            _open(protocol=6, hosts=(host,)) as tcp_only, \
            _open(protocol=17, hosts=("127.0.0.254",)) as elsewhere:
        _send(family, host, fragments)
        _wait(bounded, lambda: len(bounded.packets) + bounded.dropped >= len(fragments))
        tcp_only.read_available()
        elsewhere.read_available()
        assert [p.data for p in bounded.packets] == fragments[:1]
        assert bounded.dropped == len(fragments) - 1
        assert bounded.kernel_drops() == 0
        assert tcp_only.packets == elsewhere.packets == []


def test_fragments_of_skips_what_does_not_decode() -> None:
    whole = fragment_ipv4(IPv4Header(src="127.0.0.1", dst="127.0.0.1", protocol=253,
                                      identification=7, flags=0b010), b"hdp", 1500)
    unfragmented6 = fragment_ipv6(IPv6Header(src="::1", dst="::1", next_header=FRAGMENT),
                                  b"hdp", 253, 1280, 9)
    views = fragments_of([b"", b"\x45" * 3, b"\x70" * 60, *unfragmented6, *whole])
    assert views == [FragmentView(4, "127.0.0.1", "127.0.0.1", 253, 7, 0, False, True, 23)]


@requires_raw
def test_unknown_interface_is_a_refusal() -> None:
    refusal = Capture.open(interface="hdpnosuch0")
    assert isinstance(refusal, rawsock.OsRefusal)
    assert refusal.errno_name == "ENODEV" and "hdpnosuch0" in str(refusal)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("capsh") is None,
                    reason="drops CAP_NET_RAW with capsh: run the tests as root with capsh "
                           "installed (apt-get install libcap2-bin)")
def test_without_cap_net_raw_the_refusal_names_the_fix() -> None:
    code = ("from hdp.capture import Capture\n"
            "print(Capture.open(interface='lo'))\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    # capsh runs bash with CAP_NET_RAW gone from the bounding set, so the python it
    # execs never has it, root or not.
    done = subprocess.run(
        ["capsh", "--drop=cap_net_raw", "--", "-c", 'exec "$0" -c "$1"', sys.executable, code],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, f"capsh or python failed: {done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("EPERM (")
    assert PRIVILEGE_FIX in lines[0]
    assert "run as root or grant CAP_NET_RAW" in lines[0]
