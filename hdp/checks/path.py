"""Both ends of one path as a check drives them, and the kernel settings it holds (pure of
pytest: the plugin's `hdp_path` and `hdp_sysctl` fixtures hand these out).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from hdp.endpoint import Endpoint, Unavailable
from hdp.flow import Flow
from hdp.lab.hold import SettingsHold
from hdp.lab.topology import Topology


@dataclass
class PathUnderTest:
    """Both ends of one path, for one address family."""

    target: str  # the case target name: 127.0.0.1, routed/server, ...
    path: str  # loopback | network | a lab topology name
    family: int
    sender: Endpoint
    receiver: Endpoint  # the same object on a loopback path
    dst: str  # the receiver's address as the sender reaches it
    links: tuple[int, ...] = ()  # link MTUs from sender to receiver, where known
    private: bool = False  # both ends run in namespaces of our own (settings may change)
    translated: bool = False  # a router on the path rewrites the source (NAT)
    _src: str | None = None

    @property
    def id(self) -> str:
        return f"{self.target}-ipv{self.family}"

    @property
    def loopback(self) -> bool:
        return self.sender is self.receiver

    def __repr__(self) -> str:
        return f"<PathUnderTest {self.id} ({self.path})>"

    def src(self) -> str:
        """The sender's source address toward the receiver (asked once per path)."""
        if self._src is None:
            self._src = str(self.sender.source_for(self.dst, self.family))
        return self._src

    def flow(self, protocol: int, sport: int | None, dport: int | None, *,
             identifications: Iterable[int] = ()) -> Flow:
        """The test's own exchange, from the sender's address and port to the receiver's
        (hdp.flow.Flow), for a capture at either end. `identifications` are the IP IDs of
        packets the test built itself.

        Behind a NAT the source is left open: what source arrives is what such a test is
        about (and a NAT may leave a protocol it does not know untranslated), and even a
        capture at the sender may show the router's rewrite, since the copy it reads
        shares memory with the packet the router translates in place. The receiver's
        address and the port of the test's own socket still pin the flow."""
        dst, ids = ip_address(self.dst), frozenset(identifications)
        if self.translated:
            return Flow(protocol, None, dst, None, dport, ids)
        return Flow(protocol, ip_address(self.src()), dst, sport, dport, ids)

    @property
    def narrowest(self) -> int | None:
        return min(self.links) if self.links else None

    def first_link(self) -> int:
        """The MTU of the sender's link toward the receiver: the lab's, or its kernel's
        route MTU where the links are not known (before any path MTU is learned);
        Unavailable where the sender cannot tell."""
        if self.links:
            return self.links[0]
        opened = self.sender.open_udp(self.family, connect=(self.dst, 9))
        if opened.handle is None:
            raise Unavailable(f"{self.id}: the sender cannot open a UDP socket toward "
                              f"{self.dst} ({opened.errno})")
        try:
            mtu = self.sender.path_mtu(opened.handle)
        finally:
            self.sender.close(opened.handle)
        if mtu is None:
            raise Unavailable(f"{self.id}: the sender cannot tell its path MTU toward "
                              f"{self.dst}")
        return int(mtu)


def link_mtus(topology: Topology, hosts: list[str]) -> tuple[int, ...]:
    """The MTU of each link along `hosts` (a path through the topology), 1500 by default."""
    mtus = []
    for a, b in itertools.pairwise(hosts):
        mtu = next((link.mtu for link in topology.links if a in link.ends and b in link.ends),
                   None)
        mtus.append(int(mtu or 1500))
    return tuple(mtus)


class PathSettings:
    """Kernel settings of a path's ends for one test (see hdp.lab.hold): `steady` and
    `read` hold a namespace shared, `alone` and `change` hold it alone; `side` is
    "receiver" or "sender". What a test changed is written back, and the holds let go,
    by `release()` (the fixture calls it when the test ends, however it ends)."""

    def __init__(self, path: PathUnderTest) -> None:
        self.path = path
        self.hold = SettingsHold()

    def _end(self, side: str) -> Endpoint:
        if side not in ("receiver", "sender"):
            raise ValueError(f"side must be 'receiver' or 'sender', not {side!r}")
        return self.path.receiver if side == "receiver" else self.path.sender

    def steady(self, side: str = "receiver") -> None:
        self.hold.steady(self._end(side))

    def read(self, name: str, side: str = "receiver") -> dict[str, Any]:
        return self.hold.read(self._end(side), name)

    def alone(self, side: str = "receiver") -> None:
        self.hold.alone(self._end(side))

    def change(self, name: str, value: str | int, side: str = "receiver", *,
               restore: str | int | None = None) -> dict[str, Any]:
        return self.hold.change(self._end(side), name, value, restore=restore)

    def release(self) -> None:
        self.hold.release()
