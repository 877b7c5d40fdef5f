"""A capture with a flow keeps one exchange's packets, on the loopback everyone shares.

The foreign traffic here uses the same protocol and the same addresses as the test's own
(127.0.0.1 or ::1, as every local process does): only the ports and IP identifications
tell them apart, which is all a test on a busy host can count on.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.capture import fragments_of
from hdp.endpoint import Endpoint
from hdp.flow import Flow
from hdp.wire import ipv4, ipv6, udp
from hdp.wire.fragment import fragment_ipv4, fragment_ipv6
from tests.conftest import LOOPBACK, requires_raw

pytestmark = [requires_raw, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                               reason="packet capture uses Linux AF_PACKET")]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    agent = AgentClient.start(AgentSpec("inprocess"))
    yield Endpoint(agent, "loopback")
    agent.close()


def _ports(packet: bytes) -> tuple[int, int]:
    body = ipv4.decode(packet).payload if packet[0] >> 4 == 4 else ipv6.decode(packet).payload
    return int.from_bytes(body[:2], "big"), int.from_bytes(body[2:4], "big")


@pytest.mark.parametrize("family", [4, 6], indirect=True)
def test_a_foreign_datagram_between_the_tests_own_is_not_captured(endpoint: Endpoint,
                                                                  family: int) -> None:
    host = LOOPBACK[family]
    receiver = endpoint.open_udp(family, bind=host)
    elsewhere = endpoint.open_udp(family, bind=host)
    ours = endpoint.open_udp(family, bind=host)
    stranger = endpoint.open_udp(family, bind=host)
    flow = Flow(17, ip_address(host), ip_address(host), ours.port, receiver.port)
    try:
        with endpoint.capture(flow, protocol=17) as seen:
            endpoint.send(ours.handle, 40, dst=host, port=receiver.port)
            endpoint.send(stranger.handle, 41, dst=host, port=receiver.port)  # our port
            endpoint.send(ours.handle, 42, dst=host, port=elsewhere.port)  # our source
            endpoint.send(stranger.handle, 43, dst=host, port=elsewhere.port)
            endpoint.send(ours.handle, 44, dst=host, port=receiver.port)
            got = endpoint.receive(receiver.handle, count=2, timeout=2.0)
    finally:
        endpoint.close(receiver.handle, elsewhere.handle, ours.handle, stranger.handle)
    assert len(got) == 2  # both of the receiver's datagrams had arrived before the stop
    assert [_ports(packet) for _, packet in seen.packets] == [(ours.port, receiver.port)] * 2
    assert [len(packet) for _, packet in seen.packets] == [
        (20 if family == 4 else 40) + 8 + size for size in (40, 44)]
    assert seen.directions == ["host", "host"]
    assert (seen.dropped, seen.unattributed) == (0, 0)


def _fragmented(family: int, host: str, sport: int, dport: int, ident: int) -> list[bytes]:
    datagram = udp.encode(sport, dport, random.randbytes(2992), host, host)
    if family == 4:
        header = ipv4.IPv4Header(src=host, dst=host, protocol=17, identification=ident)
        return fragment_ipv4(header, datagram, 1500)
    header6 = ipv6.IPv6Header(src=host, dst=host, next_header=ipv6.FRAGMENT)
    return fragment_ipv6(header6, datagram, 17, 1280, ident)


@pytest.mark.parametrize("family", [4, 6], indirect=True)
def test_later_fragments_are_kept_by_their_first_in_arrival_order(endpoint: Endpoint,
                                                                  family: int) -> None:
    host = LOOPBACK[family]
    receiver = endpoint.open_udp(family, bind=host)
    top = 0xFFFF if family == 4 else 0xFFFFFFFF
    ident = random.randint(1, top - 1)
    ours = _fragmented(family, host, 40000, receiver.port, ident)
    foreign = _fragmented(family, host, 40001, receiver.port, ident + 1)
    # The last of ours first, a foreign later fragment whose first never comes, then ours
    # and the foreign datagram interleaved.
    wire = [ours[2], foreign[2], ours[0], foreign[0], ours[1], foreign[1]]
    flow = Flow(17, ip_address(host), ip_address(host), 40000, receiver.port)
    try:
        with endpoint.capture(flow, protocol=17) as seen:
            endpoint.send_packets(family, host, wire[:2])
            endpoint.send_packets(family, host, wire[2:])
            got = endpoint.receive(receiver.handle, count=2, timeout=2.0)
    finally:
        endpoint.close(receiver.handle)
    assert len(got) == 2  # both datagrams were whole and delivered
    assert [packet for _, packet in seen.packets] == [ours[2], ours[0], ours[1]]
    assert {v.identification for v in fragments_of([p for _, p in seen.packets])} == {ident}


def _answer_to_line(endpoint: Endpoint, line: bytes, ident: int) -> dict[str, object]:
    """The agent's answer to a request line as a hostile caller could write it (a typed
    request could not carry a bad flow); `ident` is far from the client's own ids."""
    os.write(endpoint.agent._write_fd, line + b"\n")
    event = endpoint.agent.next_event(lambda e: e.get("id") == ident, 5.0, endpoint.aside)
    assert event is not None, "the agent did not answer"
    return event


def test_a_bad_flow_is_an_error_answer_naming_the_field(endpoint: Endpoint) -> None:
    ident = 1 << 40
    for flow, reason in (({"protocol": 17, "dport": 70000},
                          r"flow: dport must be an integer 0\.\.65535"),
                         ({"protocol": 17, "port": 1}, r"flow: unknown key\(s\) port")):
        line = json.dumps({"op": "capture-start", "id": ident, "protocol": 17, "flow": flow})
        answer = _answer_to_line(endpoint, line.encode(), ident)
        assert answer["event"] == "error" and re.search(reason, str(answer["message"]))
        ident += 1
