"""A running lab: its namespaces, addresses and agents, brought up and always taken down."""

from __future__ import annotations

import itertools
import os
import re
import secrets
from types import TracebackType

from hdp.lab import addresses, loss, netns, routing, state
from hdp.lab.build import LOSS_BY, build, host_namespace, planned_namespaces
from hdp.lab.errors import LabError
from hdp.lab.state import KEPT, LabState, running_labs
from hdp.lab.topology import Topology, load_topology

_TOKEN = re.compile(r"[0-9a-f]{6}")

__all__ = ["Lab", "LabState", "reap_stale", "running_labs", "start_lab", "stop_all",
           "stop_lab"]


def _new_token() -> str:
    taken = {s.token for s in running_labs()}
    taken |= {netns.LAB_NAMESPACE.fullmatch(n).group(1)  # type: ignore[union-attr]
              for n in netns.lab_namespaces()}
    while (token := secrets.token_hex(3)) in taken:
        pass
    return token


class Lab:
    """A topology brought up under a token unique to this run; `with` takes it down."""

    def __init__(self, topology: Topology, *, keep: bool = False,
                 loss_by: str = "auto") -> None:
        if loss_by not in LOSS_BY:
            raise LabError(f"loss by {loss_by!r}: give one of {', '.join(LOSS_BY)}")
        self.topology = topology
        # Drawn when first needed (it lists the namespaces), so that a lab only planned --
        # its addresses and routes read for `pytest --collect-only` -- runs no command.
        self._token: str | None = None
        self.keep = keep  # owner 0: kept by the user, never reaped
        self.loss_by = loss_by  # auto: netem where the kernel has it, else nftables
        self.notes: list[str] = []  # how delay and loss were applied, or why not
        self.is_up = False
        self._attached = False  # a handle from attach(): the owner takes it down

    @classmethod
    def attach(cls, topology: Topology, token: str) -> Lab:
        """A handle on a lab another process brought up (an xdist worker's view of it);
        it never takes the lab down: its owner does."""
        if not _TOKEN.fullmatch(token):
            raise LabError(f"invalid lab token {token!r}: expected 6 hex digits")
        lab = cls.__new__(cls)
        lab.topology, lab._token, lab.keep, lab.notes = topology, token, True, []
        lab.loss_by = "auto"
        lab.is_up = True
        lab._attached = True
        return lab

    @property
    def token(self) -> str:
        """The six hex digits in this lab's namespace names, unique on the host."""
        if self._token is None:
            self._token = _new_token()
        return self._token

    def __repr__(self) -> str:
        return (f"<Lab {self.topology.name} {self._token or 'planned'}"
                f"{' up' if self.is_up else ''}>")

    # -- where things are -------------------------------------------------------------

    def _host(self, host: str) -> str:
        if host not in self.topology.hosts:
            raise LabError(f"lab {self.topology.name} has no host {host!r} "
                           f"(hosts: {', '.join(self.topology.hosts)})")
        return host

    def namespace(self, host: str) -> str:
        return host_namespace(self.token, self._host(host))

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the lab: one a host, one a link with more than two ends."""
        return planned_namespaces(self.topology, self.token)

    def agent(self, host: str) -> str:
        """The agent spec that runs pytest-hdp's agent on `host` (AgentSpec.parse)."""
        return f"netns:{self.namespace(host)}"

    def path(self, a: str, b: str) -> list[str]:
        """The hosts along the shortest path from `a` to `b`, both included."""
        return routing.shortest_path(self.topology, a, b)

    def hops(self, a: str, b: str) -> int:
        """The routers between `a` and `b`: the TTL / hop limit a packet loses."""
        return max(len(self.path(a, b)) - 2, 0)

    def address(self, host: str, family: int, toward: str | None = None) -> str:
        """`host`'s address on its link toward `toward` (default: its first link)."""
        self._host(host)
        if family not in (4, 6):
            raise LabError(f"address family {family!r}: give 4 or 6")
        if family == 6 and not self.topology.ipv6:
            raise LabError(f"lab {self.topology.name} has no IPv6 (ipv6: false in "
                           f"{self.topology.source})")
        if toward is None or toward == host:
            link = self.topology.links_of(host)[0].index
        else:
            link = routing.shared_link(self.topology, host, self.path(host, toward)[1])
        return addresses.host_address(link, self.topology.position(host, link), family)

    def translated_source(self, sender: str, receiver: str, family: int) -> str | None:
        """The source address a packet from `sender` should carry at `receiver`: the
        address of the last router on the way whose nftables rewrites the source (the
        topology's masquerade or snat) on its interface toward `receiver`; None where no
        router translates, and the sender's own address is what should arrive."""
        path = self.path(sender, receiver)
        translated = None
        for host, following in itertools.pairwise(path):
            if not self.topology.forwards(host):
                continue
            link = routing.shared_link(self.topology, host, following)
            interface = self.topology.interface(host, link)
            if any(rule in (None, interface)
                   for rule in self.topology.source_nat(host, family)):
                translated = addresses.host_address(
                    link, self.topology.position(host, link), family)
        return translated

    def host_of_this_process(self) -> str | None:
        """The host whose namespace this process is in (an xdist worker started with
        `hdp lab python HOST`), by the namespace's identity, not by any name it was told."""
        return netns.host_of_current_namespace(
            {self.namespace(host): host for host in self.topology.hosts})

    def loss_drops(self, host: str) -> dict[str, int]:
        """Packets the nftables loss rules on `host`'s links have dropped, per interface;
        {} where no link of `host` loses by nftables (netem counts in `tc -s qdisc`)."""
        return loss.dropped(self.namespace(host))

    def interfaces(self, host: str) -> list[tuple[str, int, list[str]]]:
        """(interface, link, addresses with prefix) for each of `host`'s links."""
        families = (4, 6) if self.topology.ipv6 else (4,)
        return [(self.topology.interface(host, link.index), link.index,
                 [addresses.interface_address(
                     link.index, self.topology.position(host, link.index), family)
                  for family in families])
                for link in self.topology.links_of(self._host(host))]

    # -- life -------------------------------------------------------------------------

    def up(self) -> Lab:
        """Build every namespace, link, address, route and ruleset; on any failure or
        interrupt, remove what was built before the error propagates."""
        if self.is_up:
            return self
        # Recorded before the first namespace exists: a killed owner leaves a stale record.
        state.write_state(self.token, self.topology.name, os.getpid(), self.namespaces)
        try:
            self.notes = build(self.topology, self.token, self.loss_by)
            if self.keep:
                state.write_state(self.token, self.topology.name, KEPT, self.namespaces)
        except BaseException:
            remove_lab(self.token, self.namespaces)
            raise
        self.is_up = True
        return self

    def down(self) -> None:
        """Remove every namespace of the lab (and so its links and rulesets); idempotent."""
        if self._attached or self._token is None:  # attached, or never brought up
            return
        self.is_up = False
        remove_lab(self.token, self.namespaces)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.down()


def remove_lab(token: str, planned: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Delete lab `token`'s namespaces (planned or found) and then its record."""
    names = list(dict.fromkeys([*planned, *netns.lab_namespaces(token)]))
    removed, failures = [], []
    for name in names:
        try:
            if netns.delete_namespace(name):
                removed.append(name)
        except LabError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
    state.remove_state(token)
    return removed


def reap_stale() -> list[str]:
    """Remove the labs whose owner process has gone; their namespaces."""
    removed: list[str] = []
    for lab in running_labs():
        if lab.stale:
            removed += remove_lab(lab.token, lab.namespaces)
    return removed


def start_lab(name_or_topology: str | Topology, *, keep: bool = False,
              loss_by: str = "auto") -> Lab:
    """Load the topology (name, path or value), reap stale labs, then bring it up: a bad
    topology file fails before anything on the host is touched. `loss_by`: how links
    lose packets, "auto" (netem where the kernel has it, else nftables), "netem" or
    "nftables"."""
    topology = (load_topology(name_or_topology) if isinstance(name_or_topology, str)
                else name_or_topology)
    lab = Lab(topology, keep=keep, loss_by=loss_by)
    reap_stale()
    return lab.up()


def stop_lab(token_or_name: str, *, everyone: bool = False) -> list[str]:
    """Remove a lab by token (whoever owns it), or by topology name the kept or stale labs
    this user brought up in this session (`everyone`: every lab of that topology)."""
    labs = running_labs()
    if _TOKEN.fullmatch(token_or_name) and (
            any(s.token == token_or_name for s in labs) or netns.lab_namespaces(token_or_name)):
        recorded = [s for s in labs if s.token == token_or_name]
        return remove_lab(token_or_name, recorded[0].namespaces if recorded else ())
    named = [s for s in labs if s.topology == token_or_name]
    if not named:
        raise LabError(f"no running lab {token_or_name!r}: give a token or lab name that "
                       "`hdp lab list` shows")
    ours = [s for s in named if everyone or ((s.kept or s.stale) and s.brought_up_here)]
    if not ours:
        others = "; ".join(
            f"{s.token} belongs to a running process (pid {s.owner})"
            if s.alive and not s.kept else f"{s.token} was brought up by {s.who}"
            for s in named)
        raise LabError(f"lab {token_or_name}: none of its labs is this session's to remove "
                       f"({others}): give a token, or --all to remove them anyway")
    removed: list[str] = []
    for lab in ours:
        removed += remove_lab(lab.token, lab.namespaces)
    return removed


def stop_all() -> list[str]:
    """Remove every lab namespace (hdp-<6 hex>-*) and record, whoever left it."""
    removed: list[str] = []
    for lab in running_labs():
        removed += remove_lab(lab.token, lab.namespaces)
    for name in netns.lab_namespaces():
        if netns.delete_namespace(name):
            removed.append(name)
    return removed
