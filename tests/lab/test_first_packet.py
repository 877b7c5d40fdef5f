"""The first-packet lab: what the write-up saw from a laptop to a cloud server, rebuilt.

    client ---- router ---- server
                  |
      forwards TCP, UDP, ICMP, ICMPv6 always; of any other protocol, the first packet of
      each (source, destination, protocol) and nothing after it, for ten idle minutes

One probe per case sees every protocol delivered; the second probe of the same flow is
lost. Probes go through the project's own agents and engine, both families.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from hdp.agent.launch import AgentClient
from hdp.case import Case, Observation
from hdp.engine import Engine
from hdp.lab import Lab
from hdp.lab.netns import in_namespace
from tests.lab.conftest import requires_lab

pytestmark = [requires_lab, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                               reason="asserts what a Linux router does")]

PROBES = 3  # of each flow: the first, the second, one after it
TARGET = "server"
TABLE = ("inet", "hdp-first-packet")


def _flows(family: int, protocols: tuple[int, ...]) -> list[Case]:
    """PROBES cases of each protocol; they differ only in size, so each protocol's are
    one flow (source, destination, protocol), sent in this order."""
    return [Case(TARGET, family, protocol, size=64 + number, path="first-packet")
            for protocol in protocols for number in range(PROBES)]


def _arrivals(lab: Lab, client: AgentClient, server: AgentClient,
              cases: list[Case]) -> dict[tuple[int, int], list[bool]]:
    """Whether each probe of each (family, protocol) reached the server, in send order."""
    addresses = {TARGET: {f: lab.address("server", f, toward="client") for f in (4, 6)}}
    result = Engine(client, {TARGET: server}, addresses).run(cases, timeout=0.5)
    arrived: dict[tuple[int, int], list[bool]] = {}
    observation: Observation
    for observation in result.observations:
        case = observation.case
        assert observation.send_errno is None and observation.failure_stage is None, observation
        arrived.setdefault((case.family, case.protocol), []).append(bool(observation.deliveries))
    return arrived


def _flows_remembered(lab: Lab, family: int) -> list[list[str | int]]:
    """The router's remembered flows of `family`: [source, destination, protocol]."""
    listing = json.loads(in_namespace(lab.namespace("router"), "nft", "-j", "list", "set",
                                      *TABLE, f"seen{family}"))
    elements = next(item["set"] for item in listing["nftables"] if "set" in item).get("elem", [])
    return [element["elem"]["val"]["concat"] for element in elements]


def test_only_the_first_probe_of_an_unknown_protocol_s_flow_gets_through(
        lab: Callable[[str], Lab], agents: Callable[[Lab, str], AgentClient]) -> None:
    first_packet = lab("first-packet")
    client, server = agents(first_packet, "client"), agents(first_packet, "server")
    unknown, known = (253, 254), {4: (1, 6, 17), 6: (58, 6, 17)}
    cases = [c for family in (4, 6) for c in _flows(family, unknown + known[family])]
    arrived = _arrivals(first_packet, client, server, cases)
    for family in (4, 6):
        for protocol in unknown:
            assert arrived[(family, protocol)] == [True, False, False], (family, protocol)
        for protocol in known[family]:
            assert arrived[(family, protocol)] == [True] * PROBES, (family, protocol)
        remembered = [flow[2] for flow in _flows_remembered(first_packet, family)]
        assert sorted(map(int, remembered)) == list(unknown)  # nft names none of these
    # A flow is remembered, not just its first few packets: a later run is dropped whole.
    again = _arrivals(first_packet, client, server, _flows(4, (253,)) + _flows(6, (253,)))
    assert again == {(4, 253): [False] * PROBES, (6, 253): [False] * PROBES}


def test_forgetting_the_flows_lets_one_more_packet_through(
        lab: Callable[[str], Lab], agents: Callable[[Lab, str], AgentClient]) -> None:
    """`nft flush set` on the router starts every flow afresh, as ten idle minutes would:
    how a run of many probes per case gets a clean path without a new lab."""
    first_packet = lab("first-packet")
    client, server = agents(first_packet, "client"), agents(first_packet, "server")
    cases = _flows(4, (253,)) + _flows(6, (253,))
    assert _arrivals(first_packet, client, server, cases) == {
        (4, 253): [True, False, False], (6, 253): [True, False, False]}
    for family in (4, 6):
        in_namespace(first_packet.namespace("router"), "nft", "flush", "set", *TABLE,
                     f"seen{family}")
        assert _flows_remembered(first_packet, family) == []
    assert _arrivals(first_packet, client, server, cases) == {
        (4, 253): [True, False, False], (6, 253): [True, False, False]}
