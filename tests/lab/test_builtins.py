"""Each built-in topology brought up for real: namespaces, addresses, MTUs, routes, a UDP
exchange between every client and server whose TTL shows the hop count; then down, and
nothing of it remains."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from hdp.lab import Lab, start_lab
from hdp.lab.addresses import in_plan, subnet
from hdp.lab.state import state_path
from tests.lab.conftest import ip_json, lab_namespaces, requires_lab, udp_exchange
from tests.lab.test_topology import BUILT_IN

pytestmark = requires_lab


def families(lab: Lab) -> tuple[int, ...]:
    return (4, 6) if lab.topology.ipv6 else (4,)


def check_interfaces(lab: Lab) -> None:
    """Every host interface up, with the planned addresses and MTU, and nothing else."""
    for host in lab.topology.hosts:
        shown = {entry["ifname"]: entry for entry in ip_json(lab.namespace(host), "address")}
        assert shown["lo"]["operstate"] == "UNKNOWN" and "UP" in shown["lo"]["flags"]
        planned = lab.interfaces(host)
        assert set(shown) == {"lo"} | {interface for interface, _, _ in planned}
        for interface, link, addresses in planned:
            entry = shown[interface]
            assert entry["operstate"] == "UP", (host, entry)
            assert entry["mtu"] == (lab.topology.links[link - 1].mtu or 1500)
            found = {f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"]
                     if a.get("scope") == "global"}
            assert found == set(addresses)
            assert all(in_plan(address) for address in found)


def check_routes(lab: Lab) -> None:
    """Every host reaches every subnet: on a link, or by a computed route."""
    for host in lab.topology.hosts:
        for family in families(lab):
            table = ip_json(lab.namespace(host), f"-{family}", "route")
            destinations = {entry["dst"] for entry in table}
            for link in lab.topology.links:
                assert subnet(link.index, family) in destinations, (host, family, table)


@pytest.mark.parametrize("name", BUILT_IN)
def test_topology_up_and_down(name: str) -> None:
    lab = start_lab(name)
    try:
        assert set(lab.namespaces) <= lab_namespaces()
        assert state_path(lab.token).is_file()
        check_interfaces(lab)
        check_routes(lab)
        for client in lab.topology.clients:
            for server in lab.topology.servers:
                for family in families(lab):
                    got = udp_exchange(lab, client, server, family)
                    assert got["ttl"] == 64 - lab.hops(client, server), (client, family, got)
                    nat = name == "nat" and family == 4
                    seen_as = lab.address("router" if nat else client, family, toward=server)
                    assert got["src"] == seen_as
    finally:
        lab.down()
    assert not {n for n in lab_namespaces() if n.startswith(f"hdp-{lab.token}-")}
    assert not state_path(lab.token).exists()
    for namespace in lab.namespaces:
        gone = subprocess.run(["ip", "-n", namespace, "link"], capture_output=True, text=True)
        assert gone.returncode != 0


def test_hops_and_paths(lab: Callable[[str], Lab]) -> None:
    routed, direct, nat = lab("routed"), lab("direct"), lab("nat")
    assert routed.hops("client", "server") == 1 and direct.hops("client", "server") == 0
    assert routed.path("server", "client") == ["server", "router", "client"]
    assert nat.hops("client1", "client2") == 0 and nat.hops("client2", "server") == 1
    assert routed.address("router", 4, toward="server") == "198.18.2.1"
    assert routed.address("router", 6) == "fd68:6470:0:1::2"
    assert routed.agent("client") == f"netns:hdp-{routed.token}-client"
    assert nat.namespaces[-1] == f"hdp-{nat.token}-lan1"
    assert len({routed.token, direct.token, nat.token}) == 3
