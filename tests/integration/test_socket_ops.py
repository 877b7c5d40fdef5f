"""The agent's UDP, packet and host requests, served for real on loopback."""

from __future__ import annotations

import sys
from ipaddress import ip_address

import pytest

from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.endpoint import Endpoint
from hdp.flow import Flow
from hdp.wire import udp
from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
# /proc/sys, AF_PACKET and a whole local 127/8 are Linux's (hdp.osnet says what others lack).
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/sys, captures with AF_PACKET, uses 127.0.0.3")


@pytest.fixture(scope="module")
def endpoint():
    agent = AgentClient.start(AgentSpec("inprocess"))
    yield Endpoint(agent, "loopback")
    agent.close()


@pytest.mark.parametrize("family", [4, pytest.param(6, marks=pytest.mark.skipif(
    not RAW_V6, reason="no IPv6 loopback"))])
def test_udp_round_trip_with_truncation(endpoint, family):
    dst = "127.0.0.1" if family == 4 else "::1"
    receiver = endpoint.open_udp(family, bind=dst, port=0)
    sender = endpoint.open_udp(family)
    sent = endpoint.send(sender.handle, 300, dst=dst, port=receiver.port)
    got = endpoint.receive(receiver.handle, bufsize=100, timeout=2.0)
    endpoint.close(receiver.handle, sender.handle)
    assert sent["ok"] and sent["bytes"] == 300
    assert [(d.length, d.truncated, d.src) for d in got] == [(100, True, dst)]


def test_refusals_are_errno_names_with_their_stage(endpoint):
    first = endpoint.open_udp(4, bind="127.0.0.1", port=0)
    second = endpoint.open_udp(4, bind="127.0.0.1", port=first.port)
    endpoint.close(first.handle)
    assert (second.ok, second.stage, second.errno) == (False, "bind", "EADDRINUSE")
    big = endpoint.open_udp(4)
    answer = endpoint.send(big.handle, udp.MAX_PAYLOAD_V4 + 1, dst="127.0.0.1", port=9)
    endpoint.close(big.handle)
    assert (answer["ok"], answer["errno"]) == (False, "EMSGSIZE")


def test_a_bad_request_is_an_error_answer_and_the_agent_goes_on(endpoint):
    with pytest.raises(AgentError, match="no UDP socket with handle 999999"):
        endpoint.send(999999, 10, dst="127.0.0.1", port=9)
    assert endpoint.counters()["Udp.InDatagrams"] >= 0


@linux_only
def test_sysctl_reads_but_never_writes_outside_a_lab_namespace(endpoint):
    read = endpoint.sysctl("net.ipv4.ipfrag_time")
    refused = endpoint.sysctl("net.ipv4.ipfrag_time", 1)
    assert read["ok"] and read["value"].isdigit()
    assert (refused["ok"], refused["errno"]) == (False, "EPERM")
    assert endpoint.sysctl("net.ipv4.ipfrag_time")["value"] == read["value"]
    with pytest.raises(AgentError, match="only net"):
        endpoint.sysctl("kernel.hostname")


@linux_only
def test_captured_packets_and_their_pcap(endpoint, tmp_path):
    from hdp.pcap import decode_pcap

    receiver = endpoint.open_udp(4, bind="127.0.0.3", port=0)
    sender = endpoint.open_udp(4, bind="127.0.0.1")
    flow = Flow(17, ip_address("127.0.0.1"), ip_address("127.0.0.3"), sender.port,
                receiver.port)
    with endpoint.capture(flow, protocol=17, wait=2.0, count=1) as seen:
        endpoint.send(sender.handle, 50, dst="127.0.0.3", port=receiver.port)
    endpoint.close(receiver.handle, sender.handle)
    assert len(seen.packets) == 1 and seen.directions == ["host"]
    records = decode_pcap(seen.pcap())
    assert [r.data for r in records] == [seen.packets[0][1]]
