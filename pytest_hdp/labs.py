"""The session's lab: planned when the plugin starts, brought up with the first probe.

Planning reads the topology (its hosts, addresses, routes) and runs no command, so
`pytest --collect-only` builds nothing. The process that plans a lab brings it up the
first time a test needs it (or, under xdist, before the workers start: they may run
inside its hosts) and takes it down at the end; xdist workers attach to the controller's.
A lab target names its ends symbolically (`lab:client`), since namespace names exist only
once the lab has its token; `real()` makes them agent specs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from hdp.lab.errors import LabError
from hdp.lab.lab import Lab, reap_stale
from hdp.lab.topology import load_topology
from hdp.lab.vantage import LAB_TOKEN_ENV
from hdp.target import Target

AUTO_LAB = "routed"
LAB_END = "lab:"  # a lab host's agent, before the lab has namespaces: lab:HOST


def plan(choice: str) -> Lab:
    """The lab of `--hdp-lab NAME|FILE`, planned (nothing built); LabError for a bad one."""
    return Lab(load_topology(choice))


def attach(shared: Mapping[str, str]) -> Lab:
    """The controller's lab, as its xdist worker sees it."""
    return Lab.attach(load_topology(shared["topology"]), shared["token"])


def share(lab: Lab) -> dict[str, str]:
    """What a worker needs to attach (plain JSON, for xdist's workerinput)."""
    return {"token": lab.token, "topology": lab.topology.source}


def why_no_auto_lab() -> str | None:
    """Why the routed lab cannot be built here, without building anything; None if it can."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "a lab needs root on Linux; run as root, or give --hdp-lab/--hdp-target"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"no {' or '.join(missing)}: apt-get install -y iproute2 nftables"
    return None


def bring_up(lab: Lab, on_down: Callable[[Callable[[], None]], None]) -> None:
    """Build `lab` (reaping what dead runs left first) and have `on_down` take it down;
    the token goes to HDP_LAB_TOKEN for `hdp lab python HOST` workers meanwhile."""
    if lab.is_up:
        return
    reap_stale()
    lab.up()
    before = os.environ.get(LAB_TOKEN_ENV)
    os.environ[LAB_TOKEN_ENV] = lab.token

    def down() -> None:
        if before is None:
            os.environ.pop(LAB_TOKEN_ENV, None)
        else:
            os.environ[LAB_TOKEN_ENV] = before
        lab.down()

    on_down(down)


def vantage_of(lab: Lab) -> str | None:
    """The lab host this process runs in (a worker of `hdp lab python HOST`), if any."""
    host = lab.host_of_this_process()
    return None if host is None else f"{lab.topology.name}/{host}"


def targets(lab: Lab, families: Sequence[int], vantage: str | None = None) -> list[Target]:
    """Each server of the lab, probed from its first client through an agent inside its
    namespace, or from `vantage`, the lab host this process runs in. A server behind a
    NAT expects the NAT's address as the source of what arrives."""
    topology = lab.topology
    client = topology.clients[0] if vantage is None else vantage.split("/", 1)[1]
    usable = tuple(f for f in families if f == 4 or topology.ipv6)
    planned = []
    for server in topology.servers:
        addresses = {f: lab.address(server, f, toward=client) for f in usable}
        nat_source = {f: source for f in usable
                      if (source := lab.translated_source(client, server, f)) is not None}
        planned.append(Target(f"{topology.name}/{server}", usable, topology.name,
                              f"{LAB_END}{client}" if vantage is None else "local",
                              f"{LAB_END}{server}", addresses, nat_source))
    return planned


def real(target: Target, lab: Lab | None) -> Target:
    """`target` with its lab ends as agent specs (the lab must be up)."""
    def spec(end: str | None) -> str | None:
        if end is None or not end.startswith(LAB_END):
            return end
        if lab is None:
            raise LabError(f"{target.name}: no lab to reach {end}")
        return lab.agent(end[len(LAB_END):])

    return replace(target, sender=spec(target.sender) or "local",
                   listener=spec(target.listener))


@dataclass(frozen=True)
class LabHost:
    """A lab host as a test names it: `server` or `routed/server`."""

    lab: Lab
    host: str

    @classmethod
    def find(cls, lab: Lab | None, text: str) -> LabHost | None:
        if lab is None:
            return None
        name, _, host = text.rpartition("/")
        if name not in ("", lab.topology.name) or host not in lab.topology.hosts:
            return None
        return cls(lab, host)
