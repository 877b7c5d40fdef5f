"""One probed case's own packets, picked out of what a capture kept during its batch (pure).

A batch probes many cases at once, so a capture at an end holds the packets of all of
them, and, on a shared host, other people's. The packets of one case are those of its
flow (hdp.flow: its protocol, the addresses it went between, the ports every probe
carries, later fragments by their first's IP ID, ICMP errors by the packet they quote),
and of those, the ones whose probe tag, where it can be read, is this case's: probes of
one flow differ only in their tag.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address

from hdp.case import Case, Observation
from hdp.errors import DecodeError
from hdp.flow import ICMP_PROTOCOLS, Flow, FlowFilter, Sieve, read_packet
from hdp.wire import hdp as hdp_wire
from hdp.wire import icmp

MAX_PACKETS = 10_000
Packet = tuple[int, bytes]  # (kernel time ns, IP packet)


def case_flow(observation: Observation, index: int) -> Flow | None:
    """The flow of a probed case; None when it never left (no address to pin it to)."""
    case = observation.case
    if observation.sent_dst is None:
        return None
    ported = case.payload in ("hdp", "udp")  # raw probes begin with the tag, not ports
    port = hdp_wire.ORIGINAL_PORT if ported else None
    # A header we built carries the case's number as its IP ID (ICMP quotes keep it); the
    # source is left open behind a NAT, and where the kernel chose it.
    idents = frozenset({index + 1}) if not observation.listened else frozenset()
    return Flow(case.protocol & 0xFF, None, ip_address(observation.sent_dst.split("%")[0]),
                port, port, idents)


def batch_flows(cases: Iterable[tuple[Case, str]]) -> list[Flow]:
    """The flows a batch's capture keeps, known before it is sent: one per protocol and
    destination (`cases` pairs a case with the address it goes to), with the port the
    probes go to when every case of that pair carries one. Flows never overlap, so a packet
    is kept by one capture at most; `packets_of_case` then picks each case's own."""
    ported: dict[tuple[int, str], bool] = {}
    for case, address in cases:
        key = (case.protocol & 0xFF, address.split("%")[0])
        ported[key] = ported.get(key, True) and case.payload in ("hdp", "udp")
    # The source and its port are left open: a NAT on the way may rewrite either.
    port = hdp_wire.ORIGINAL_PORT
    return [Flow(protocol, None, ip_address(address), None, port if both else None)
            for (protocol, address), both in ported.items()]


def packets_of_case(packets: Iterable[Packet], observation: Observation, run_id: int,
                    index: int) -> list[Packet]:
    """The packets of case `index` of batch `run_id`, in capture order."""
    flow = case_flow(observation, index)
    if flow is None:
        return []
    judge = FlowFilter(flow)
    kept: Sieve[Packet] = Sieve(MAX_PACKETS)
    for time_ns, data in packets:
        verdict = judge.judge(data)
        if verdict.keep and not _tag_allows(data, run_id, index):
            continue  # the same flow, another case's probe
        kept.offer(verdict, (time_ns, data))
    return kept.items()


def _tag_allows(data: bytes, run_id: int, index: int) -> bool:
    """False when the packet (or the packet an ICMP error quotes) carries another probe's
    tag; True when it carries this case's, or none that can be read (a later fragment)."""
    try:
        packet = read_packet(data)
    except DecodeError:
        return True
    found = hdp_wire.find_tag(packet.transport)
    if found is None and packet.protocol == ICMP_PROTOCOLS[packet.src.version]:
        try:
            quoted = icmp.quoted_probe(icmp.decode(packet.transport, packet.src.version))
        except DecodeError:
            return True
        found = hdp_wire.find_tag(quoted.payload)
    tag = None if found is None else found[1].tag
    return tag is None or (tag.run_id, tag.case) == (run_id, index)

