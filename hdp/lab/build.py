"""Building a lab, one small named step each, in the order `build` runs them.

Namespaces are hdp-<token>-<host>, and hdp-<token>-lanN for the bridge of a link with more
than two ends. Each host's links, in file order, are its interfaces eth0, eth1, ... (the
names nftables rulesets use); veth pairs are created with each end directly in its
namespace, so no interface ever exists in the root namespace.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from hdp.lab import addresses, loss
from hdp.lab.errors import LabError
from hdp.lab.loss import LossRate
from hdp.lab.netns import add_namespace, in_namespace, run, sysctl
from hdp.lab.routing import routes
from hdp.lab.topology import LinkSpec, Topology

BRIDGE = "br0"
NETEM_MISSING = "Specified qdisc kind is unknown"
NETEM_FIX = ("modprobe sch_netem; on Debian/Ubuntu it ships in "
             "linux-modules-extra-$(uname -r)")
LOSS_BY = ("auto", "netem", "nftables")  # how link loss is applied: see shape_links


def host_namespace(token: str, host: str) -> str:
    return f"hdp-{token}-{host}"


def switch_namespace(token: str, link: int) -> str:
    return f"hdp-{token}-lan{link}"


def switched(link: LinkSpec) -> bool:
    return len(link.ends) > 2


def planned_namespaces(topology: Topology, token: str) -> list[str]:
    return ([host_namespace(token, host) for host in topology.hosts]
            + [switch_namespace(token, link.index) for link in topology.links if switched(link)])


def build(topology: Topology, token: str, loss_by: str = "auto") -> list[str]:
    """Bring the whole topology up; returns notes on how delay and loss were applied, or
    why they were not."""
    create_namespaces(topology, token)
    create_links(topology, token)
    configure_interfaces(topology, token)
    add_routes(topology, token)
    load_rulesets(topology, token)
    # After the rulesets: a topology's `flush ruleset` would take the loss rules with it.
    notes = shape_links(topology, token, loss_by)
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
            # A router answers every packet it rejects or cannot forward: with Linux's
            # per-peer ICMP limit (a burst of 6, then one a second) which of a batch's
            # probes draw an answer would depend on their order on the wire.
            settings["net.ipv4.icmp_ratelimit"] = "0"
            if topology.ipv6:
                settings["net.ipv6.conf.all.forwarding"] = "1"
                settings["net.ipv6.icmp.ratelimit"] = "0"
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


def shape_links(topology: Topology, token: str, loss_by: str = "auto") -> list[str]:
    """Delay and loss on each lossy or slow link; a note on each saying how it was applied.

    netem does both on each end's way out where the kernel has sch_netem (`loss_by`
    "auto" or "netem"); loss falls back to nftables rules (loss.py) where it has not, or
    always with `loss_by="nftables"`. Delay has no fallback: its note says it is missing.
    """
    if loss_by not in LOSS_BY:
        raise LabError(f"loss by {loss_by!r}: give one of {', '.join(LOSS_BY)}")
    notes: list[str] = []
    by_nftables: dict[str, list[tuple[str, LossRate]]] = defaultdict(list)
    netem: bool | None = None  # whether this kernel has sch_netem, once a link has tried
    for link in topology.links:
        rate = link.loss_rate
        on_nftables = rate is not None and loss_by == "nftables"
        options = [*(["delay", link.delay] if link.delay else []),
                   *(["loss", link.loss] if link.loss and not on_nftables else [])]
        name = f"link {link.index} ({'-'.join(link.ends)})"
        if options and netem is not False:
            netem = all(_netem(token, topology, host, link, options) for host in link.ends)
        if options and netem:
            notes.append(f"{name}: {' '.join(options)} by netem on each end's way out")
        elif options:
            if loss_by == "netem":
                raise LabError(f"lab {topology.name}: {name}: {' '.join(options)} needs "
                               f"sch_netem, which this kernel lacks ({NETEM_FIX})")
            if link.delay:
                notes.append(f"{name}: delay {link.delay} not applied: this kernel has no "
                             f"sch_netem ({NETEM_FIX})")
            on_nftables = rate is not None
        if rate is not None and on_nftables:
            notes.append(_nftables_note(name, link.loss or "", rate, netem))
            if rate.dropped:
                for host in link.ends:
                    by_nftables[host].append((topology.interface(host, link.index), rate))
    for host, interfaces in by_nftables.items():
        in_namespace(host_namespace(token, host), "nft", "-f", "-",
                     input=loss.ruleset(interfaces))
    return notes


def _netem(token: str, topology: Topology, host: str, link: LinkSpec,
           options: list[str]) -> bool:
    """netem on `host`'s end of `link`; False where the kernel has no sch_netem."""
    try:
        run(["tc", "-n", host_namespace(token, host), "qdisc", "add", "dev",
             topology.interface(host, link.index), "root", "netem", *options])
    except LabError as exc:
        if NETEM_MISSING not in str(exc):
            raise
        return False
    return True


def _nftables_note(name: str, text: str, rate: LossRate, netem: bool | None) -> str:
    why = "no sch_netem" if netem is False else "as asked"
    if not rate.dropped:
        return f"{name}: loss {text} by nftables ({why}): nothing to drop"
    return (f"{name}: loss {text} by nftables ({why}): each end drops what arrives from the "
            f"link when {rate.expression} (netdev ingress); ARP and neighbour discovery pass")


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
