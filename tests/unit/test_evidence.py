"""A case's own packets out of a batch's capture (hdp.evidence): its flow, then its tag."""

from __future__ import annotations

from ipaddress import IPv4Address

from hdp.case import Case, Observation
from hdp.evidence import packets_of_case
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.wire import icmp, ipv4
from hdp.wire.fragment import fragment_ipv4
from hdp.wire.hdp import ORIGINAL_PORT, ProbeTag

SRC, DST, OTHER = "198.18.1.1", "198.18.2.2", "198.18.3.3"
RUN = 0x1A2B3C4D


def _probe(index: int, *, run: int = RUN, protocol: int = 253, dst: str = DST,
           size: int = 64, ident: int = 7) -> bytes:
    body = encode_probe(Probe(PayloadKind.HDP, probe_data(size), ProbeTag(run, index)),
                        SRC, dst, timestamp_ns=1)
    header = ipv4.IPv4Header(src=IPv4Address(SRC), dst=IPv4Address(dst), protocol=protocol,
                             identification=ident)
    return ipv4.encode(header, body)


def _unreachable(quoted: bytes) -> bytes:
    message = icmp.encode(3, 2, quoted, family=4)
    header = ipv4.IPv4Header(src=IPv4Address(DST), dst=IPv4Address(SRC), protocol=1)
    return ipv4.encode(header, message)


def _observation(index: int, protocol: int = 253) -> Observation:
    return Observation(Case(DST, 4, protocol), sent_src=SRC, sent_dst=DST)


def test_of_one_flow_only_the_cases_own_probe_and_the_icmp_that_quotes_it():
    mine, theirs = _probe(3), _probe(4)  # same flow, another case's tag
    packets = list(enumerate([theirs, _probe(3, run=RUN + 1), mine,
                              _probe(3, protocol=254), _probe(3, dst=OTHER),
                              _unreachable(theirs), _unreachable(mine)]))
    kept = packets_of_case(packets, _observation(3), RUN, 3)
    assert [data for _, data in kept] == [mine, _unreachable(mine)]


def test_later_fragments_come_with_their_first():
    header = ipv4.IPv4Header(src=IPv4Address(SRC), dst=IPv4Address(DST), protocol=253,
                             identification=99)
    whole = _probe(5, size=3000, ident=99)
    fragments = fragment_ipv4(header, whole[20:], 1500)
    assert len(fragments) == 3
    # A later fragment that shows up before its first is kept, in its place.
    packets = list(enumerate([fragments[2], _probe(6), fragments[0], fragments[1]]))
    kept = [data for _, data in packets_of_case(packets, _observation(5), RUN, 5)]
    assert kept == [fragments[2], fragments[0], fragments[1]]


def test_a_probe_that_never_left_has_no_packets():
    never = Observation(Case(DST, 4, 253), send_errno="EPERM")
    assert packets_of_case([(0, _probe(0))], never, RUN, 0) == []


def test_a_batch_captures_one_flow_per_protocol_and_destination_and_keeps_each_case():
    from hdp.evidence import batch_flows
    from hdp.flow import FlowFilter

    cases = [(Case(DST, 4, 253), DST), (Case("b", 4, 253, payload="raw"), DST),
             (Case(DST, 4, 254), DST), (Case(OTHER, 4, 253), OTHER)]
    flows = batch_flows(cases)
    port = ORIGINAL_PORT  # where every hdp and udp probe goes; a raw probe has no port
    assert [(f.protocol, str(f.src), str(f.dst), f.sport, f.dport) for f in flows] == [
        (253, "None", DST, None, None), (254, "None", DST, None, port),
        (253, "None", OTHER, None, port)]
    # Each probe, and the ICMP error quoting it, is kept by exactly one flow's capture.
    for packet in (_probe(1), _probe(1, protocol=254), _probe(1, dst=OTHER),
                   _unreachable(_probe(1, protocol=254))):
        assert sum(FlowFilter(f).judge(packet).keep for f in flows) == 1
    assert not any(FlowFilter(f).judge(_probe(1, protocol=252)).keep for f in flows)
