"""IP fragmentation and reassembly as the chapter states them (10.7-10.9), seen on the wire.

Every test that captures keeps what it saw as a pcap (LINKTYPE_RAW) in its tmp_path and
names it in the check's detail, so a surprising answer can be opened in Wireshark. Its
capture keeps only its own flow (`hdp_path.flow`): the other workers' datagrams share the
protocol and, on loopback, the addresses.

Two tests change settings of a lab host, holding its namespace alone meanwhile
(`hdp_sysctl.change`): the timer test shortens the receiver's reassembly timer, and the
path MTU sequence flushes the sender's route cache and learns a smaller path MTU (flushed
again at its end). Tests whose answers depend on those settings hold them steady
(`hdp_sysctl.steady`, shared): the timer's value, and reassembly kept waiting for a
fragment, at the receiver; the sender's cut of the chapter's datagram, at the sender.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from hdp.capture import fragments_of
from hdp.checks.support import fate, open_receiver, payload, receive_tagged, transport_of
from hdp.errors import DecodeError
from hdp.wire import icmp, ipv4, ipv6, udp
from hdp.wire.fragment import fragment_ipv4, fragment_ipv6, refragment_ipv4

CHAPTER_PAYLOAD = 2992  # + 8 bytes UDP + 20 bytes IPv4 = the chapter's 3020-byte datagram


def describe(packets: list[bytes]) -> str:
    """'offsets 0+ 185+ 370; 3060 bytes': 8-byte units, + where MF is set, bytes in all."""
    views = sorted(fragments_of(packets), key=lambda view: view.offset)
    marks = " ".join(f"{v.offset}{'+' if v.more else ''}" for v in views) or "none"
    return f"offsets {marks}; {sum(len(p) for p in packets)} bytes"


def save(tmp_path, name: str, seen) -> str:
    target = tmp_path / f"{name}.pcap"
    target.write_bytes(seen.pcap())
    return str(target)


def _predicted(hdp_path, links) -> list[bytes]:
    """The chapter's datagram cut for the first link and re-cut by each router after it."""
    header = ipv4.IPv4Header(src=ip_address(hdp_path.src()), dst=ip_address(hdp_path.dst),
                             protocol=17)
    packets = fragment_ipv4(header, bytes(8 + CHAPTER_PAYLOAD), links[0])
    for mtu in links[1:]:
        packets = [piece for packet in packets for piece in refragment_ipv4(packet, mtu)]
    return packets


def _send_chapter_datagram(hdp_path, hdp_sysctl, *, outgoing: bool):
    """The chapter's datagram through a kernel UDP socket, DF clear, delivered; what was
    captured leaving the sender (`outgoing`) or arriving at the receiver."""
    hdp_sysctl.steady("sender")  # no path MTU learned meanwhile: the first link cuts it
    receiver = open_receiver(hdp_path)
    sender = hdp_path.sender.open_udp(4, bind="", pmtudisc="dont")
    watcher = hdp_path.sender if outgoing else hdp_path.receiver
    flow = hdp_path.flow(17, sender.port, receiver.port)
    with watcher.capture(flow, protocol=17, incoming_only=not outgoing) as seen:
        hdp_path.sender.send(sender.handle, data=payload(CHAPTER_PAYLOAD), dst=hdp_path.dst,
                             port=receiver.port)
        got = receive_tagged(hdp_path, receiver.handle)
    hdp_path.sender.close(sender.handle)
    receiver.close()
    assert got and got[0].length == CHAPTER_PAYLOAD, f"{hdp_path.id}: not delivered: {got}"
    if outgoing:
        seen.packets = [p for p, d in zip(seen.packets, seen.directions, strict=True)
                        if d == "outgoing"]
    return seen


@pytest.mark.hdp_check("fragment-chapter-example", families=[4])
def test_chapter_datagram_leaves_as_fragments(hdp_path, hdp_check, hdp_sysctl, tmp_path):
    """3020 bytes over the sender's link: as many fragments as its MTU makes (3 at 1500)."""
    mtu = hdp_path.first_link()
    if mtu != 1500:  # the chapter's rule on this link, rather than its 1500-byte example
        hdp_check.expect(describe(_predicted(hdp_path, (mtu,))))
    seen = _send_chapter_datagram(hdp_path, hdp_sysctl, outgoing=True)
    hdp_check.observe(describe([p for _, p in seen.packets]),
                      f"sender's link MTU {mtu}; pcap {save(tmp_path, 'sent', seen)}")


@pytest.mark.hdp_check("fragment-send-order", families=[4])
def test_fragment_send_order(hdp_path, hdp_check, hdp_sysctl, tmp_path):
    mtu = hdp_path.first_link()
    if mtu >= 20 + 8 + CHAPTER_PAYLOAD:
        pytest.skip(f"{hdp_path.id}: the sender's link (MTU {mtu}) carries the datagram "
                    "whole; a lab path (--hdp-lab) has 1500-byte links")
    seen = _send_chapter_datagram(hdp_path, hdp_sysctl, outgoing=True)
    offsets = [v.offset for v in fragments_of([p for _, p in seen.packets])]
    answer = "in-order" if offsets == sorted(offsets) else \
        "last-first" if offsets and offsets[0] == max(offsets) else "other"
    hdp_check.observe(answer, f"offsets in sending order {offsets}; pcap "
                              f"{save(tmp_path, 'sent', seen)}")


@pytest.mark.hdp_check("fragment-router-recut", families=[4])
def test_routers_recut_fragments(hdp_path, hdp_check, hdp_sysctl, tmp_path):
    """What arrives is what the chapter's rule predicts for each link MTU on the path."""
    links = hdp_path.links or (hdp_path.first_link(),)
    hdp_check.expect(describe(_predicted(hdp_path, links)))
    seen = _send_chapter_datagram(hdp_path, hdp_sysctl, outgoing=False)
    hdp_check.observe(describe([p for _, p in seen.packets]),
                      f"link MTUs {list(links)}; pcap {save(tmp_path, 'arrived', seen)}")


def _narrow_path(hdp_path) -> int:
    if not hdp_path.links or min(hdp_path.links) >= hdp_path.links[0]:
        pytest.skip(f"{hdp_path.id}: needs a path whose later link is narrower than the "
                    "first: --hdp-lab mtu-1280 or mtu-576")
    if not hdp_path.private:
        pytest.skip(f"{hdp_path.id}: the sender's path MTU cache can be reset only inside "
                    "a lab namespace")
    return min(hdp_path.links)


def _forget_path_mtu(hdp_path, hdp_sysctl) -> None:
    """Flush the sender's route cache, now and when the test ends: the sequence learns
    the path MTU afresh, and leaves none learned for the tests after it."""
    name = "net.ipv4.route.flush" if hdp_path.family == 4 else "net.ipv6.route.flush"
    answer = hdp_sysctl.change(name, 1, "sender", restore=1)
    assert answer["ok"], f"{hdp_path.id}: cannot flush the route cache: {answer}"


@dataclass
class PmtuRun:
    """One DF datagram too big for a later link, sent once per path and family."""

    size: int
    first: dict[str, Any]
    mtus: list[int]  # next-hop MTUs named by the ICMP errors that came back
    arrived: int  # packets of it that reached the receiver
    socket_mtu: int | None  # the connected socket's path MTU afterwards
    second: dict[str, Any]  # the same send again
    pcap: str


_RUNS: dict[str, PmtuRun] = {}


@pytest.fixture
def pmtu_runs(request, tmp_path_factory) -> Path | None:
    """Where the xdist workers of one session share their path MTU runs; None alone."""
    if not hasattr(request.config, "workerinput"):
        return None
    return tmp_path_factory.getbasetemp().parent  # the controller's, one a session


def pmtu_run(hdp_path, hdp_sysctl, tmp_path, shared: Path | None) -> PmtuRun:
    """Learning a path MTU changes the sender's route cache for minutes (and the router
    rate-limits its ICMP errors), so the sequence runs once a session, holding the
    sender's namespace alone, and its tests share it: in this process, and through a file
    with the session's other workers. (A route cache flush forgets an IPv4 path MTU, but
    not an IPv6 one, which expires only after net.ipv6.route.mtu_expires.)"""
    if hdp_path.id in _RUNS:
        return _RUNS[hdp_path.id]
    _narrow_path(hdp_path)
    hdp_sysctl.alone("sender")
    record = None if shared is None else shared / f"pmtu-{hdp_path.id.replace('/', '-')}.json"
    if record is not None and record.exists():
        run = PmtuRun(**json.loads(record.read_text()))
    else:
        run = _learn_path_mtu(hdp_path, hdp_sysctl, tmp_path)
        if record is not None:
            record.write_text(json.dumps(dataclasses.asdict(run)))
    _RUNS[hdp_path.id] = run
    return run


def _learn_path_mtu(hdp_path, hdp_sysctl, tmp_path) -> PmtuRun:
    _forget_path_mtu(hdp_path, hdp_sysctl)
    receiver = open_receiver(hdp_path)
    size = hdp_path.links[0] - (28 if hdp_path.family == 4 else 48)
    sender = hdp_path.sender.open_udp(hdp_path.family, pmtudisc="do",
                                      connect=(hdp_path.dst, receiver.port))
    before = hdp_path.sender.path_mtu(sender.handle)
    assert before == hdp_path.links[0], (
        f"{hdp_path.id}: the sender already knows a path MTU of {before} (learned earlier "
        "by another process?); the lab must be fresh for this sequence")
    icmp_protocol = 1 if hdp_path.family == 4 else 58
    # What arrives of the datagram, in whatever pieces; and the ICMP errors quoting it.
    with hdp_path.receiver.capture(hdp_path.flow(17, sender.port, receiver.port)) as arrived, \
            hdp_path.sender.capture(hdp_path.flow(17, sender.port, receiver.port),
                                    protocol=icmp_protocol, wait=2.0, count=1) as seen:
        first = hdp_path.sender.send(sender.handle, size)
    socket_mtu = hdp_path.sender.path_mtu(sender.handle)
    second = hdp_path.sender.send(sender.handle, size)
    hdp_path.sender.close(sender.handle)
    receiver.close()
    mtus = []
    for _, packet in seen.packets:
        body = transport_of(packet)
        try:
            message = icmp.decode(body or b"", hdp_path.family)
        except DecodeError:  # a malformed ICMP message is not the one we wait for
            continue
        if message.mtu:
            mtus.append(int(message.mtu))
    return PmtuRun(size, first, mtus, len(arrived.packets), socket_mtu, second,
                   save(tmp_path, "icmp", seen))


@pytest.mark.hdp_check("pmtud-too-big-names-mtu")
def test_too_big_names_next_hop_mtu(hdp_path, hdp_check, hdp_sysctl, tmp_path, pmtu_runs):
    hdp_check.expect(f"too-big {_narrow_path(hdp_path)}")
    run = pmtu_run(hdp_path, hdp_sysctl, tmp_path, pmtu_runs)
    assert run.first["ok"], f"{hdp_path.id}: the first {run.size}-byte send failed: {run}"
    hdp_check.observe(f"too-big {run.mtus[0]}" if run.mtus else "no ICMP",
                      f"{run.size}-byte DF datagram; pcap {run.pcap}")


@pytest.mark.hdp_check("pmtud-socket-mtu")
def test_socket_learns_path_mtu(hdp_path, hdp_check, hdp_sysctl, tmp_path, pmtu_runs):
    hdp_check.expect(str(_narrow_path(hdp_path)))
    run = pmtu_run(hdp_path, hdp_sysctl, tmp_path, pmtu_runs)
    assert run.mtus, f"{hdp_path.id}: no ICMP too-big came back"
    hdp_check.observe(str(run.socket_mtu), "IP_MTU / IPV6_MTU of the connected socket")


@pytest.mark.hdp_check("pmtud-next-send-refused")
def test_next_oversized_send_refused(hdp_path, hdp_check, hdp_sysctl, tmp_path, pmtu_runs):
    run = pmtu_run(hdp_path, hdp_sysctl, tmp_path, pmtu_runs)
    assert run.mtus, f"{hdp_path.id}: no ICMP too-big came back"
    hdp_check.observe("sent" if run.second["ok"] else str(run.second["errno"]),
                      f"second {run.size}-byte DF send")


@pytest.mark.hdp_check("ipv6-source-only-fragmentation", families=[6])
def test_ipv6_routers_do_not_fragment(hdp_path, hdp_check, hdp_sysctl, tmp_path, pmtu_runs):
    """A packet too big for the router's next link comes back as Packet Too Big."""
    run = pmtu_run(hdp_path, hdp_sysctl, tmp_path, pmtu_runs)
    answer = "too-big" if run.mtus and not run.arrived else \
        "fragmented" if run.arrived else "lost"
    hdp_check.observe(answer, f"{run.size}-byte packet; {run.arrived} packet(s) of it "
                              f"arrived; pcap {run.pcap}")


# -- reassembly: fragments made by hand -------------------------------------------------------


def _fragments(hdp_path, port: int, size: int = 3000) -> list[bytes]:
    src = hdp_path.src()
    datagram = udp.encode(40020, port, payload(size), src, hdp_path.dst)
    if hdp_path.family == 4:
        header = ipv4.IPv4Header(src=ip_address(src), dst=ip_address(hdp_path.dst),
                                 protocol=17, identification=random.getrandbits(16))
        return fragment_ipv4(header, datagram, 1500)
    header6 = ipv6.IPv6Header(src=ip_address(src), dst=ip_address(hdp_path.dst),
                              next_header=17)
    return fragment_ipv6(header6, datagram, 17, 1280, random.getrandbits(32))


@pytest.mark.hdp_check("reassembly-out-of-order")
def test_out_of_order_fragments_reassembled(hdp_path, hdp_check, hdp_sysctl):
    hdp_sysctl.steady()  # the first fragments wait for the rest under the receiver's timer
    receiver = open_receiver(hdp_path)
    fragments = _fragments(hdp_path, receiver.port)
    order = [len(fragments) - 1, *range(len(fragments) - 1)]  # last first, then the rest
    answer, got = fate(hdp_path, receiver, [fragments[i] for i in order])
    receiver.close()
    hdp_check.observe(answer, f"{len(fragments)} fragments sent in order {order}; "
                              f"read {[d.length for d in got]}")


@pytest.mark.hdp_check("reassembly-missing-fragment")
def test_missing_fragment_never_delivered(hdp_path, hdp_check, hdp_sysctl):
    hdp_sysctl.steady()
    receiver = open_receiver(hdp_path)
    fragments = _fragments(hdp_path, receiver.port)
    answer, _ = fate(hdp_path, receiver, fragments[:1] + fragments[2:])
    receiver.close()
    hdp_check.observe(answer, f"fragment 2 of {len(fragments)} withheld")


FRAG_TIME = {4: "net.ipv4.ipfrag_time", 6: "net.ipv6.ip6frag_time"}


@pytest.mark.hdp_check("reassembly-timeout")
def test_reassembly_timeout_setting(hdp_path, hdp_check, hdp_sysctl):
    answer = hdp_sysctl.read(FRAG_TIME[hdp_path.family])
    if not answer["ok"]:
        pytest.skip(f"{hdp_path.id}: the receiver has no {FRAG_TIME[hdp_path.family]} "
                    f"({answer['errno']})")
    hdp_check.observe(str(answer["value"]), f"{FRAG_TIME[hdp_path.family]} in seconds")


@pytest.mark.hdp_check("reassembly-timer-not-reset")
def test_reassembly_timer_not_reset(hdp_path, hdp_check, hdp_sysctl):
    """With a 1 s timer, fragments 0.6 s apart: a timer reset by each would deliver."""
    if not hdp_path.private:
        pytest.skip(f"{hdp_path.id}: shortening the reassembly timer needs a lab namespace "
                    "(--hdp-lab); the host's own is never changed")
    name = FRAG_TIME[hdp_path.family]
    changed = hdp_sysctl.change(name, 1)  # written back when the test ends, however
    assert changed["ok"], f"{hdp_path.id}: cannot set {name}: {changed}"
    receiver = open_receiver(hdp_path)
    spaced = _fragments(hdp_path, receiver.port)
    for index, fragment in enumerate(spaced):  # 3 fragments: t=0, 0.6 s, 1.2 s
        if index:
            time.sleep(0.6)  # the interval under test, not a synchronisation
        hdp_path.sender.send_packets(hdp_path.family, hdp_path.dst, [fragment])
    answer, _ = fate(hdp_path, receiver, [])
    receiver.close()
    hdp_check.observe(answer, f"{len(spaced)} fragments 0.6 s apart, {name}=1")
