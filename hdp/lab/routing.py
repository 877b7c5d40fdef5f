"""Paths and routes over a topology's link graph (pure): shortest paths by BFS.

Only routers forward, so a path's inner hosts are always routers. Ties go to the link and
end that come first in the file, so the same topology always gets the same routes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hdp.lab.errors import LabError
from hdp.lab.topology import Topology


@dataclass(frozen=True)
class Route:
    """`host` reaches link `destination`'s subnet through `gateway`'s end of link `via`."""

    host: str
    destination: int
    gateway: str
    via: int


def neighbours(topology: Topology, host: str) -> list[tuple[str, int]]:
    """(neighbour, link) for every host sharing a link with `host`, in file order."""
    found = []
    for link in topology.links_of(host):
        found += [(end, link.index) for end in link.ends if end != host]
    return found


def _tree(topology: Topology, start: str) -> dict[str, str | None]:
    """BFS parents from `start`, expanding only through `start` itself and routers."""
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        host = queue.popleft()
        if host != start and not topology.forwards(host):
            continue
        for neighbour, _ in neighbours(topology, host):
            if neighbour not in parents:
                parents[neighbour] = host
                queue.append(neighbour)
    return parents


def _walk(parents: dict[str, str | None], end: str) -> list[str]:
    path = [end]
    while (parent := parents[path[-1]]) is not None:
        path.append(parent)
    return path[::-1]


def shortest_path(topology: Topology, a: str, b: str) -> list[str]:
    """The hosts from `a` to `b` inclusive; LabError if no chain of routers joins them."""
    for host in (a, b):
        if host not in topology.hosts:
            raise LabError(f"lab {topology.name} has no host {host!r} "
                           f"(hosts: {', '.join(topology.hosts)})")
    parents = _tree(topology, a)
    if b not in parents:
        raise LabError(f"lab {topology.name}: no path from {a} to {b} through routers")
    return _walk(parents, b)


def shared_link(topology: Topology, a: str, b: str) -> int:
    """The first link (in file order) that `a` and `b` are both on."""
    for neighbour, link in neighbours(topology, a):
        if neighbour == b:
            return link
    raise LabError(f"lab {topology.name}: {a} and {b} share no link")


def routes(topology: Topology, host: str) -> list[Route]:
    """A route for every subnet `host` is not on, via the first hop towards the nearest
    router on that subnet; subnets no router chain reaches get none."""
    parents = _tree(topology, host)
    order = list(parents)  # BFS order: nearest first
    mine = {link.index for link in topology.links_of(host)}
    found = []
    for link in topology.links:
        if link.index in mine:
            continue
        exits = [h for h in order if h != host and topology.forwards(h) and h in link.ends]
        if not exits:
            continue
        gateway = _walk(parents, exits[0])[1]
        found.append(Route(host, link.index, gateway, shared_link(topology, host, gateway)))
    return found
