"""hdp.flow: which packets are one exchange's own, read from bytes alone."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.flow import Flow, FlowFilter, Sieve, Verdict
from hdp.wire import icmp, ipv4, ipv6, udp
from hdp.wire.fragment import fragment_ipv4, fragment_ipv6

A4, B4 = "198.18.0.2", "198.18.1.2"
A6, B6 = "fd68:6470::2", "fd68:6470:1::2"


def _datagram(src: str, dst: str, sport: int, dport: int, size: int = 64, *,
              protocol: int = 17, ident: int = 7, mtu: int | None = None) -> list[bytes]:
    body = udp.encode(sport, dport, bytes(size), src, dst)
    if ip_address(src).version == 4:
        header = ipv4.IPv4Header(src=src, dst=dst, protocol=protocol, identification=ident)
        return fragment_ipv4(header, body, mtu or 1500)
    header6 = ipv6.IPv6Header(src=src, dst=dst, next_header=ipv6.FRAGMENT)
    if mtu is None:
        return [ipv6.encode(ipv6.IPv6Header(src=src, dst=dst, next_header=protocol), body)]
    return fragment_ipv6(header6, body, protocol, mtu, ident)


def _kept(flow: Flow, packets: list[bytes]) -> list[bytes]:
    sieve: Sieve[bytes] = Sieve(100)
    judge = FlowFilter(flow)
    for packet in packets:
        sieve.offer(judge.judge(packet), packet)
    return sieve.items()


FLOW4 = Flow(17, ip_address(A4), ip_address(B4), 40000, 5000)
FLOW6 = Flow(17, ip_address(A6), ip_address(B6), 40000, 5000)


@pytest.mark.parametrize("flow", [FLOW4, FLOW6], ids=["ipv4", "ipv6"])
def test_only_the_flows_own_datagram_is_kept(flow: Flow) -> None:
    src, dst = str(flow.src), str(flow.dst)
    ours = _datagram(src, dst, 40000, 5000)
    others = [_datagram(src, dst, 40001, 5000), _datagram(src, dst, 40000, 5001),
              _datagram(dst, src, 40000, 5000), _datagram(src, dst, 40000, 5000,
                                                          protocol=136)]
    mixed = [others[0][0], ours[0], *(o[0] for o in others[1:])]
    assert _kept(flow, mixed) == ours


# Wire orders as (datagram, fragment index): O ours, F a foreign datagram of the same
# addresses and protocol, other ports and ID.
ORDERS = {
    "interleaved": [("F", 1), ("O", 0), ("F", 0), ("O", 1), ("F", 2), ("O", 2)],
    # Our last fragment first; the foreign datagram's first never comes.
    "later-first": [("O", 2), ("F", 2), ("O", 1), ("F", 1), ("O", 0)],
}


@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
@pytest.mark.parametrize(("flow", "mtu"), [(FLOW4, 1500), (FLOW6, 1280)],
                         ids=["ipv4", "ipv6"])
def test_later_fragments_follow_their_first_in_wire_order(flow: Flow, mtu: int,
                                                           order: str) -> None:
    src, dst = str(flow.src), str(flow.dst)
    datagrams = {"O": _datagram(src, dst, 40000, 5000, 3000, ident=11, mtu=mtu),
                 "F": _datagram(src, dst, 40001, 5000, 3000, ident=12, mtu=mtu)}
    assert len(datagrams["O"]) == 3
    wire = [datagrams[which][index] for which, index in ORDERS[order]]
    assert _kept(flow, wire) == [datagrams["O"][index] for which, index in ORDERS[order]
                                 if which == "O"]


def test_identifications_the_test_chose_admit_its_own_packets_whatever_their_ports() -> None:
    flow = Flow(17, ip_address(A4), ip_address(B4), 40000, 5000, frozenset({99}))
    mangled = _datagram(A4, B4, 1, 2, ident=99)
    later_only = _datagram(A4, B4, 40000, 5000, 3000, ident=99)[1:]
    someone_elses = _datagram(A4, B4, 1, 2, ident=98)
    assert _kept(flow, [*someone_elses, *mangled, *later_only]) == [*mangled, *later_only]


def test_open_fields_match_anything() -> None:
    flow = Flow(17, dst=ip_address(B4), dport=5000)  # behind a NAT: source and its port open
    ours = [_datagram("203.0.113.1", B4, 1234, 5000)[0], _datagram(A4, B4, 999, 5000)[0]]
    assert _kept(flow, [*ours, _datagram(A4, B4, 999, 5001)[0]]) == ours


def test_behind_a_nat_later_fragments_follow_a_first_with_another_source() -> None:
    # A capture at the sender may read a fragment after the router rewrote it in place.
    flow = Flow(17, None, ip_address(B4), None, 5000)
    ours = _datagram(A4, B4, 40000, 5000, 3000, ident=31)
    rewritten = _datagram("198.18.2.1", B4, 40000, 5000, 3000, ident=31)
    other = _datagram(A4, B4, 40000, 5001, 3000, ident=32)
    assert _kept(flow, [ours[0], other[1], rewritten[1], rewritten[2]]) == [
        ours[0], rewritten[1], rewritten[2]]


def _icmp_error(family: int, quoted: bytes, src: str, dst: str) -> bytes:
    if family == 4:
        message = icmp.encode(3, 4, quoted[:28], family=4, mtu=1280)
        return ipv4.encode(ipv4.IPv4Header(src=src, dst=dst, protocol=1), message)
    message = icmp.encode(2, 0, quoted[:1232], family=6, mtu=1280, src=src, dst=dst)
    return ipv6.encode(ipv6.IPv6Header(src=src, dst=dst, next_header=58), message)


@pytest.mark.parametrize("flow", [FLOW4, FLOW6], ids=["ipv4", "ipv6"])
def test_icmp_errors_are_kept_when_they_quote_the_flow(flow: Flow) -> None:
    src, dst = str(flow.src), str(flow.dst)
    router = "198.18.0.1" if flow.src is not None and flow.src.version == 4 \
        else "fd68:6470::1"
    family = 4 if flow.src is not None and flow.src.version == 4 else 6
    ours = _icmp_error(family, _datagram(src, dst, 40000, 5000, 1400)[0], router, src)
    theirs = _icmp_error(family, _datagram(src, dst, 40002, 5000, 1400)[0], router, src)
    short = _icmp_error(family, _datagram(src, dst, 40000, 5000)[0][:22 if family == 4
                                                                      else 42], router, src)
    assert _kept(flow, [theirs, ours, short]) == [ours]
    icmp_flow = Flow(1 if family == 4 else 58, ip_address(router), ip_address(src))
    assert _kept(icmp_flow, [theirs, ours]) == [theirs, ours]  # a flow of ICMP itself


def test_a_damaged_packet_of_the_flow_is_kept_marked_and_an_unreadable_one_counted() -> None:
    whole = _datagram(A4, B4, 40000, 5000)[0]
    longer = whole[:2] + (len(whole) + 40).to_bytes(2, "big") + whole[4:]  # says 40 more
    judge = FlowFilter(FLOW4)
    verdict = judge.judge(longer)
    assert verdict.keep and verdict.malformed and "total length" in verdict.malformed
    cut_before_ports = whole[:22]
    assert judge.judge(cut_before_ports).unattributed
    assert judge.judge(b"\x45\x00").unattributed
    assert judge.judge(b"").unattributed
    foreign_damaged = _datagram(A4, B4, 40009, 5000)[0][:30]
    assert not judge.judge(foreign_damaged).keep


def test_sieve_bounds_kept_and_held_packets() -> None:
    sieve: Sieve[str] = Sieve(2, max_held=1)
    key = (ip_address(A4), ip_address(B4), 17, 5)
    assert sieve.offer(Verdict(hold=True, key=key), "later") == 0
    assert sieve.offer(Verdict(hold=True, key=key), "later again") == 0
    assert sieve.unattributed == 1
    assert sieve.offer(Verdict(keep=True, key=key, admits=key), "first") == 2
    assert sieve.items() == ["later", "first"]
    assert sieve.offer(Verdict(keep=True), "one too many") == 0
    assert sieve.dropped == 1


def test_sieve_bounds_the_bytes_kept_and_held_together() -> None:
    sieve: Sieve[bytes] = Sieve(100, max_weight=10, weight=len)
    key = (ip_address(A4), ip_address(B4), 17, 5)
    assert sieve.offer(Verdict(hold=True, key=key), b"4444") == 0  # held: 4 of 10
    assert sieve.offer(Verdict(keep=True), b"55555") == 1  # 9 of 10
    assert sieve.offer(Verdict(hold=True, key=key), b"22") == 0  # would be 11: not held
    assert sieve.unattributed == 1
    assert sieve.offer(Verdict(keep=True), b"22") == 0  # would be 11: dropped
    assert sieve.dropped == 1
    # The held fragment was counted when held; its first fragment must still fit.
    assert sieve.offer(Verdict(keep=True, key=key, admits=key), b"1") == 2
    assert sieve.items() == [b"4444", b"55555", b"1"]
    sieve.clear()
    assert sieve.offer(Verdict(keep=True), b"0123456789") == 1  # cleared: room again


@pytest.mark.parametrize(("request_flow", "complaint"), [
    ("17", "must be an object"),
    ({}, "needs a protocol"),
    ({"protocol": 256}, "protocol must be an integer 0..255"),
    ({"protocol": True}, "protocol must be an integer"),
    ({"protocol": 17, "sport": -1}, "sport must be an integer 0..65535"),
    ({"protocol": 17, "dport": "53"}, "dport must be an integer"),
    ({"protocol": 17, "src": "not-an-address"}, "src is not an IP address"),
    ({"protocol": 17, "src": "::1", "dst": "127.0.0.1"}, "different address families"),
    ({"protocol": 17, "identifications": 5}, "identifications must be a list"),
    ({"protocol": 17, "identifications": [1 << 32]}, "identification must be an integer"),
    ({"protocol": 17, "identifications": [[1]]}, "identification must be an integer"),
    ({"protocol": 17, "dst": 2130706433}, "dst must be an IP address as text"),
    ({"protocol": 17, "identifications": list(range(5000))}, "at most 4096"),
    ({"protocol": 17, "bogus": 1}, "unknown key(s) bogus"),
])
def test_a_bad_flow_in_a_request_names_the_field(request_flow: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        Flow.from_request(request_flow)
    assert complaint in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1


def test_a_flow_survives_the_trip_through_a_request() -> None:
    flow = Flow(136, ip_address(A6), ip_address(B6), 1, 2, frozenset({3, 4}))
    assert Flow.from_request(flow.to_request()) == flow
    assert str(flow) == f"protocol 136 {A6}:1 -> {B6}:2 ids [3, 4]"


@given(st.binary(max_size=120))
def test_any_bytes_get_a_verdict(data: bytes) -> None:
    verdict = FlowFilter(FLOW4).judge(data)
    assert not (verdict.keep and verdict.unattributed)
