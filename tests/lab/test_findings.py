"""Path findings on the topology that shows each, through agents inside the lab."""

from __future__ import annotations

import sys

import pytest

from hdp.agent.launch import AgentClient
from hdp.case import Case
from hdp.engine import Engine
from hdp.lab import Lab
from hdp.verdict import Outcome, Verdict, judge
from tests.lab.conftest import requires_lab

pytestmark = [requires_lab, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                               reason="asserts what Linux routers do")]


def _probe(lab: Lab, sender: AgentClient, listener: AgentClient, case: Case,
           server: str = "server", client: str | None = None) -> tuple[Verdict, object]:
    """One case from `client` (default: the first) to `server`, judged with the source a
    NAT on the way should give it, as the plugin judges lab paths."""
    client = client or lab.topology.clients[0]
    address = lab.address(server, case.family, toward=client)
    result = Engine(sender, {case.target: listener}, {case.target: {case.family: address}}
                    ).run([case], timeout=1.0)
    observation = result.observations[0]
    nat_source = lab.translated_source(client, server, case.family)
    return judge(observation, nat_source=nat_source), observation


def test_hop_count_across_the_router(lab, agents):
    routed = lab("routed")
    client, server = agents(routed, "client"), agents(routed, "server")
    for family in (4, 6):
        verdict, _ = _probe(routed, client, server, Case("srv", family, 253, path="routed"))
        assert verdict.outcome is Outcome.DELIVERED and verdict.hops == routed.hops(
            "client", "server") == 1


@pytest.mark.parametrize("family", [4, 6])
def test_df_meets_the_narrow_link(lab, agents, family):
    """DF across the 1280-byte link: fragmentation needed / packet too big, with the MTU,
    from the router that said it."""
    narrow = lab("mtu-1280")
    client, server = agents(narrow, "client"), agents(narrow, "server")
    case = Case("srv", family, 253, size=1400, df=True, path="mtu-1280")
    verdict, _ = _probe(narrow, client, server, case)
    assert verdict.outcome is Outcome.TOO_BIG
    assert verdict.icmp is not None and verdict.icmp.mtu == 1280
    assert verdict.icmp.source == narrow.address("router", family, toward="client")
    # The sender's next send of that size, with the path MTU now known to the kernel:
    again, _ = _probe(narrow, client, server, case)
    if family == 4:
        assert (again.outcome, again.errno) == (Outcome.SEND_ERROR, "EMSGSIZE")
    else:
        # Observed on Linux 6.18: an IPv6 raw socket's next send still leaves at full size
        # and draws another Packet Too Big; its path MTU is not lowered.
        assert again.outcome is Outcome.TOO_BIG


def test_router_fragments_what_does_not_fit(lab, agents):
    """With DF cleared the router cuts the 1400-byte probe for the 1280-byte link; the
    listener gets it whole and intact after reassembly."""
    narrow = lab("mtu-1280")
    client, server = agents(narrow, "client"), agents(narrow, "server")
    verdict, observation = _probe(narrow, client, server,
                                  Case("srv", 4, 253, size=1400, df=False, path="mtu-1280"))
    assert verdict.outcome is Outcome.DELIVERED
    assert observation.deliveries[0].length == 12 + 20 + 1400


def test_nat_rewrites_the_source_and_a_second_client_is_dropped(lab, agents):
    """A protocol without ports behind a masquerading NAT: the first client's flow is
    rewritten; the second client's, to the same server and protocol, cannot get a tuple
    of its own and is dropped; the first keeps working."""
    nat = lab("nat")
    server = agents(nat, "server")
    first, second = agents(nat, "client1"), agents(nat, "client2")
    router = nat.address("router", 4, toward="server")
    case = Case("srv", 4, 253, path="nat")
    verdict, observation = _probe(nat, first, server, case)
    assert verdict.outcome is Outcome.ALTERED and verdict.changes == ("src",)
    assert observation.deliveries[0].src == router
    verdict, _ = _probe(nat, second, server, case)
    assert verdict.outcome is Outcome.LOST
    verdict, _ = _probe(nat, first, server, case)
    assert verdict.outcome is Outcome.ALTERED


def test_nat_leaks_the_private_source_of_an_invalid_udp_body(lab, agents):
    """Protocol 17 carrying HDP bytes: conntrack finds it invalid, masquerade skips it,
    and the server sees the client's private address: a finding, not a delivery."""
    nat = lab("nat")
    server, client = agents(nat, "server"), agents(nat, "client1")
    verdict, observation = _probe(nat, client, server, Case("srv", 4, 17, path="nat"))
    assert verdict.outcome is Outcome.ALTERED and verdict.changes == ("src-not-translated",)
    assert observation.deliveries[0].src == nat.address("client1", 4)
    # Without knowing the path translates, the same observation is an intact delivery.
    assert judge(observation).outcome is Outcome.DELIVERED
    # IPv6 is routed, not translated: the client's own address is no leak there.
    verdict, observation = _probe(nat, client, server, Case("srv", 6, 17, path="nat"))
    assert verdict.outcome is Outcome.DELIVERED
    assert observation.deliveries[0].src == nat.address("client1", 6)
