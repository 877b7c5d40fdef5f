"""What each middlebox does to probes, seen through hdp's own engine and raw sockets run
inside the lab's hosts. Every probe goes to a lab address, inside the lab."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from hdp.lab import Lab, LabError
from tests.lab.conftest import ip_json, raw_probe, requires_lab, udp_exchange

pytestmark = requires_lab
Start = Callable[[str], Lab]


def sweep(lab: Lab, family: int, protocols: str, listener: bool) -> dict[int, dict[str, Any]]:
    """`hdp sweep` from the client (agent in its namespace) to the server, as JSON cases."""
    client = lab.topology.clients[0]
    target = lab.address("server", family, toward=client)
    done = subprocess.run(
        [sys.executable, "-m", "hdp", "sweep", target, "--protocols", protocols,
         "--family", str(family), "--agent", lab.agent(client),
         "--listener", lab.agent("server") if listener else "none",
         "--format", "json", "--timeout", "0.5"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {case["protocol"]: case for case in json.loads(done.stdout)["cases"]}


@pytest.mark.parametrize("family", [4, 6])
def test_routed_delivers_any_protocol_one_hop_away(lab: Start, family: int) -> None:
    cases = sweep(lab("routed"), family, "17,253", listener=True)
    for protocol in (17, 253):
        assert cases[protocol]["outcome"] == "delivered", cases[protocol]
        assert cases[protocol]["hops"] == 1


@pytest.mark.parametrize("family", [4, 6])
def test_firewall_drop_forwards_udp_and_silently_drops_253(lab: Start, family: int) -> None:
    routed = lab("firewall-drop")
    cases = sweep(routed, family, "17,253", listener=True)
    assert (cases[17]["outcome"], cases[17]["hops"]) == ("delivered", 1)
    assert cases[253]["outcome"] == "lost" and cases[253]["icmp"] is None
    assert raw_probe(routed, "client", "server", family, 253, valid_sum=True) == {"icmp": None}


@pytest.mark.parametrize("family", [4, 6])
def test_firewall_reject_says_prohibited_from_the_router(lab: Start, family: int) -> None:
    firewall = lab("firewall-reject")
    assert udp_exchange(firewall, "client", "server", family)["ttl"] == 63
    answer = raw_probe(firewall, "client", "server", family, 253, valid_sum=True)
    assert answer["icmp"] == ([3, 13] if family == 4 else [1, 1])  # admin-prohibited
    assert answer["from"] == firewall.address("router", family, toward="client")


@pytest.mark.parametrize("family", [4, 6])
def test_firewall_reject_is_silent_for_payloads_without_a_valid_checksum(
        lab: Start, family: int) -> None:
    """Known kernel behaviour, not a lab fault: netfilter's reject checks the Internet
    checksum of a protocol it does not know (IPv4: over the payload, IPv6: with the
    pseudo-header) and answers only a packet that passes; HDP has no checksum, so a plain
    HDP probe is dropped without a word, exactly as firewall-drop does."""
    firewall = lab("firewall-reject")
    assert raw_probe(firewall, "client", "server", family, 253) == {"icmp": None}
    # Silence proves nothing without a listener: the firewall, the target's kernel or its
    # ICMP budget could each be why. No-answer, never lost.
    assert sweep(firewall, family, "253", listener=False)[253]["outcome"] == "no-answer"


def test_nat_rewrites_the_source_of_both_clients(lab: Start) -> None:
    nat = lab("nat")
    outside = nat.address("router", 4, toward="server")
    for client in ("client1", "client2"):
        assert udp_exchange(nat, client, "server", 4) == {"src": outside, "ttl": 63, "size": 32}
        seen = udp_exchange(nat, client, "server", 6)  # IPv6 is routed, not translated
        assert seen["src"] == nat.address(client, 6)
    cases = sweep(nat, 4, "17,253", listener=True)
    assert cases[253]["source"] == outside and "src" in cases[253]["changes"]
    # HDP's header where UDP's should be: conntrack calls it invalid, NAT leaves it alone,
    # and the client's private address leaks to the server.
    assert cases[17]["source"] == nat.address("client1", 4)


def test_mtu_1280_narrow_link_and_router_fragmentation(lab: Start) -> None:
    narrow = lab("mtu-1280")
    router_side = ip_json(narrow.namespace("router"), "link", "show", "dev", "eth1")[0]
    server_side = ip_json(narrow.namespace("server"), "link", "show", "dev", "eth0")[0]
    assert router_side["mtu"] == server_side["mtu"] == 1280
    assert ip_json(narrow.namespace("client"), "link", "show", "dev", "eth0")[0]["mtu"] == 1500
    # IPv4 without DF: the router fragments, the server reassembles the whole datagram.
    assert udp_exchange(narrow, "client", "server", 4, size=1400, df=False)["size"] == 1400
    # IPv6: the router says "packet too big", the client fragments the next ones itself.
    assert udp_exchange(narrow, "client", "server", 6, size=1400)["size"] == 1400


def test_mtu_576_is_ipv4_only(lab: Start) -> None:
    narrow = lab("mtu-576")
    assert ip_json(narrow.namespace("server"), "link", "show", "dev", "eth0")[0]["mtu"] == 576
    assert udp_exchange(narrow, "client", "server", 4, size=1000, df=False)["size"] == 1000
    with pytest.raises(LabError, match="has no IPv6"):
        narrow.address("server", 6)
    addresses = ip_json(narrow.namespace("client"), "-6", "address")
    assert all(not entry.get("addr_info") for entry in addresses)
