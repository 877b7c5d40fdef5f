"""Building a lab, one small named step each, in the order `build` runs them.

Namespaces are hdp-<token>-<host>, and hdp-<token>-lanN for the bridge of a link with more
than two ends. Each host's links, in file order, are its interfaces eth0, eth1, ... (the
names nftables rulesets use); veth pairs are created with each end directly in its
namespace, so no interface ever exists in the root namespace.
"""

from __future__ import annotations

import json
import time

from hdp.lab import addresses
from hdp.lab.errors import LabError
from hdp.lab.netns import add_namespace, in_namespace, run, sysctl
from hdp.lab.routing import routes
from hdp.lab.topology import LinkSpec, Topology

BRIDGE = "br0"
NETEM_MISSING = "Specified qdisc kind is unknown"


def host_namespace(token: str, host: str) -> str:
    return f"hdp-{token}-{host}"


def switch_namespace(token: str, link: int) -> str:
    return f"hdp-{token}-lan{link}"


def switched(link: LinkSpec) -> bool:
    return len(link.ends) > 2


def planned_namespaces(topology: Topology, token: str) -> list[str]:
    return ([host_namespace(token, host) for host in topology.hosts]
            + [switch_namespace(token, link.index) for link in topology.links if switched(link)])


def build(topology: Topology, token: str) -> list[str]:
    """Bring the whole topology up; returns notes on what could not be applied (netem)."""
    create_namespaces(topology, token)
    create_links(topology, token)
    configure_interfaces(topology, token)
    notes = shape_links(topology, token)
    add_routes(topology, token)
    load_rulesets(topology, token)
    wait_until_up(topology, token)
    return notes


def create_namespaces(topology: Topology, token: str) -> None:
    """Every namespace with loopback up; forwarding on routers; IPv6 off where unused."""
    no_ipv6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
    # Addresses are planned, so duplicate address detection only delays the first packets.
    no_dad = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
    for host in topology.hosts:
        namespace = host_namespace(token, host)
        add_namespace(namespace)
        settings = dict(no_dad if topology.ipv6 else no_ipv6)
        if topology.forwards(host):
            settings["net.ipv4.ip_forward"] = "1"
            if topology.ipv6:
                settings["net.ipv6.conf.all.forwarding"] = "1"
        sysctl(namespace, settings)
    for link in topology.links:
        if switched(link):
            namespace = switch_namespace(token, link.index)
            add_namespace(namespace)
            sysctl(namespace, no_ipv6)  # a bridge forwards IPv6 without an address of its own
            run(["ip", "-n", namespace, "link", "add", BRIDGE, "type", "bridge",
                 "mcast_snooping", "0"])


def create_links(topology: Topology, token: str) -> None:
    """A veth pair for a two-ended link; for more ends, one pair an end to the bridge.

    The two ends get different interface indexes: with equal ones (2 and 2, in two fresh
    namespaces) the kernel defers the first end's carrier-on by up to a second, and that
    end drops everything until then.
    """
    for link in topology.links:
        if not switched(link):
            a, b = link.ends
            run(["ip", "-n", host_namespace(token, a), "link", "add",
                 topology.interface(a, link.index), "index", str(100 + 2 * link.index),
                 "type", "veth", "peer", "name", topology.interface(b, link.index),
                 "index", str(101 + 2 * link.index), "netns", host_namespace(token, b)])
            continue
        switch = switch_namespace(token, link.index)
        for position, host in enumerate(link.ends, 1):
            port = f"p{position}"
            run(["ip", "-n", host_namespace(token, host), "link", "add",
                 topology.interface(host, link.index), "index", str(100 + 2 * link.index),
                 "type", "veth", "peer", "name", port, "index", str(1000 + position),
                 "netns", switch])
            run(["ip", "-n", switch, "link", "set", port, "master", BRIDGE,
                 *_mtu(link), "up"])
        run(["ip", "-n", switch, "link", "set", BRIDGE, *_mtu(link), "up"])


def _mtu(link: LinkSpec) -> list[str]:
    return [] if link.mtu is None else ["mtu", str(link.mtu)]


def configure_interfaces(topology: Topology, token: str) -> None:
    """The planned addresses (addresses.py) and MTU on every host interface, then up."""
    for host in topology.hosts:
        namespace = host_namespace(token, host)
        for link in topology.links_of(host):
            device = topology.interface(host, link.index)
            position = topology.position(host, link.index)
            for family in (4, 6) if topology.ipv6 else (4,):
                run(["ip", "-n", namespace, "address", "add",
                     addresses.interface_address(link.index, position, family), "dev", device,
                     *(["nodad"] if family == 6 else [])])
            run(["ip", "-n", namespace, "link", "set", device, *_mtu(link), "up"])


def shape_links(topology: Topology, token: str) -> list[str]:
    """netem delay/loss on each end's way out; a note instead where the kernel lacks it."""
    notes: list[str] = []
    for link in topology.links:
        options = [*(["delay", link.delay] if link.delay else []),
                   *(["loss", link.loss] if link.loss else [])]
        if not options:
            continue
        for host in link.ends:
            try:
                run(["tc", "-n", host_namespace(token, host), "qdisc", "add", "dev",
                     topology.interface(host, link.index), "root", "netem", *options])
            except LabError as exc:
                if NETEM_MISSING not in str(exc):
                    raise
                notes.append(f"link {link.index} ({'-'.join(link.ends)}): "
                             f"{' '.join(options)} not applied: this kernel has no sch_netem "
                             "(modprobe sch_netem; on Debian/Ubuntu it ships in "
                             "linux-modules-extra-$(uname -r))")
                break
    return notes


def add_routes(topology: Topology, token: str) -> None:
    """Routes computed from the link graph (routing.py), the same for both families."""
    for host in topology.hosts:
        namespace = host_namespace(token, host)
        for route in routes(topology, host):
            device = topology.interface(host, route.via)
            position = topology.position(route.gateway, route.via)
            for family in (4, 6) if topology.ipv6 else (4,):
                run(["ip", f"-{family}", "-n", namespace, "route", "add",
                     addresses.subnet(route.destination, family), "via",
                     addresses.host_address(route.via, position, family), "dev", device])


def load_rulesets(topology: Topology, token: str) -> None:
    for host, ruleset in topology.nftables.items():
        try:
            in_namespace(host_namespace(token, host), "nft", "-f", "-", input=ruleset)
        except LabError as exc:
            raise LabError(f"lab {topology.name}: {host}'s nftables ruleset "
                           f"({topology.source}) did not load: {exc}") from None


def wait_until_up(topology: Topology, token: str, timeout: float = 5.0) -> None:
    """Wait for every interface to report carrier: until then the kernel drops what is
    sent on it, and a probe would see loss that no link has."""
    waiting = planned_namespaces(topology, token)
    deadline = time.monotonic() + timeout
    while waiting:
        down = [(namespace, link["ifname"]) for namespace in waiting
                for link in json.loads(run(["ip", "-j", "-n", namespace, "link"]) or "[]")
                if link["ifname"] != "lo" and link.get("operstate") != "UP"]
        waiting = list(dict.fromkeys(namespace for namespace, _ in down))
        if waiting and time.monotonic() > deadline:
            late = ", ".join(f"{name} in {namespace}" for namespace, name in down)
            raise LabError(f"lab {topology.name}: interfaces still down after {timeout:g} s: "
                           f"{late}")
        if waiting:
            time.sleep(0.02)
