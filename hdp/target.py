"""What a target names, and how its cases are probed: from where, and who listens.

A target is an address or host name (probed from this host; a loopback one is heard by
the sender's own agent, any other by nobody, so verdicts come from ICMP),
`ssh://[user@]host[:port]` (an agent there listens), or `netns://NAME` (an agent in the
namespace probes its own stack). `@IFACE` stands for every address of that interface and
`@local` for every address of this host, loopback included: a host's own addresses are
all reached through its own stack, and the loopback ones are the baseline the others
are compared with. `hdp sweep` and the pytest plugin plan and run targets alike through
this module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hdp.address import LOOPBACK, is_loopback, literal_address, resolve
from hdp.agent.launch import (
    AgentClient,
    AgentError,
    AgentSpec,
    check_ssh_destination,
    split_ssh,
)
from hdp.case import Case, Observation
from hdp.engine import BatchResult, Engine
from hdp.errors import UsageError


@dataclass(frozen=True)
class Target:
    """A target as planned: the name cases carry, where probes go, and who listens."""

    name: str  # Case.target: an address, a host name, netns:NAME or LAB/HOST
    families: tuple[int, ...]  # the requested families the target has an address in
    path: str  # loopback | network | netns | a lab topology
    sender: str  # "local", or the agent spec that sends from inside (a namespace)
    listener: str | None  # "same" (the sender's agent), an agent spec, or None: ICMP only
    addresses: dict[int, str] = field(default_factory=dict)  # where no lookup can tell
    # The source a NAT on the way gives probes, per family (a lab knows its masquerading
    # router): a delivery that still carries the sender's own address leaked it.
    nat_source: dict[int, str] = field(default_factory=dict)


LOCAL = "@local"


def expand(texts: Sequence[str], families: Sequence[int]) -> list[str]:
    """The targets with `@IFACE` and `@local` replaced by the addresses they stand for
    (of `families`, IPv6 link-local ones with their %zone), each target once."""
    from hdp import netinfo

    expanded: list[str] = []
    for text in texts:
        if not text.startswith("@"):
            expanded.append(text)
            continue
        interface = None if text == LOCAL else text[1:]
        try:
            found = netinfo.local_addresses(interface)
        except ValueError:
            raise UsageError(f"{text}: this host has no interface {interface!r}; give one of "
                             f"@{', @'.join(netinfo.interfaces())} or {LOCAL}") from None
        addresses = [a.address for a in found if a.family in families]
        if not addresses:
            raise UsageError(f"{text}: no IPv{' or IPv'.join(map(str, families))} address on "
                             f"{interface or 'this host'}; check --family or the interface")
        expanded += addresses
    return list(dict.fromkeys(expanded))


def plan_target(text: str, families: Sequence[int]) -> Target:
    """Parse one target; a host name that resolves in none of `families` is an error."""
    if text.startswith("netns://"):
        name = text[len("netns://"):]
        return Target(f"netns:{name}", tuple(families), "netns", f"netns:{name}", "same",
                      {f: LOOPBACK[f] for f in families})
    listener: str | None = None
    host = text
    if text.startswith("ssh://"):
        check_ssh_destination(text[len("ssh://"):])
        listener = text
        host = split_ssh(text[len("ssh://"):])[0].rpartition("@")[2]
    literal = literal_address(host)
    if literal is not None:
        usable = tuple(f for f in families if f == int(literal.version))
        host = host.strip("[]")
    else:
        usable = tuple(f for f in families if resolve(host, f)[0] is not None)
        if not usable:
            raise UsageError(f"cannot resolve host {host!r} for IPv"
                             f"{' or IPv'.join(map(str, families))}: give a host name that "
                             "resolves, or an IPv4/IPv6 address")
    loopback = is_loopback(host)
    if listener is None and loopback:
        listener = "same"
    return Target(host, usable, "loopback" if loopback else "network", "local", listener)


def probe(cases: Sequence[Case], targets: Mapping[str, Target],
          start: Callable[[AgentSpec], AgentClient],
          local: Callable[[set[str]], AgentSpec], *, listener: str | None = None,
          record_failures: bool = False, **run: object) -> list[BatchResult]:
    """Run `cases` through agents, one pipelined batch per sender.

    `start` starts an agent (the caller closes what it started); `local(paths)` says how
    this host sends; `listener` overrides every target's ("none", "same" or an agent
    spec); `run` goes to Engine.run (timeout, icmp, progress, started). With
    `record_failures`, an agent that cannot start (a lab namespace that is not there)
    makes its cases `error` instead of raising AgentError, and the other senders run.
    """
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[targets[case.target].sender].append(case)
    shared: AgentClient | None = None
    results = []
    for sender_key, group in groups.items():
        names = set(dict.fromkeys(c.target for c in group))
        spec = (local({targets[n].path for n in names}) if sender_key == "local"
                else AgentSpec.parse(sender_key))
        try:
            sender = start(spec)
            listeners: dict[str, AgentClient | None] = {}
            for name in names:
                choice = targets[name].listener if listener is None else listener
                if choice in (None, "none"):
                    listeners[name] = None
                elif choice == "same":
                    listeners[name] = sender
                elif listener is not None:  # one agent heard every target
                    shared = shared or start(AgentSpec.parse(listener))
                    listeners[name] = shared
                else:
                    listeners[name] = start(AgentSpec.parse(choice))
        except AgentError as exc:
            if not record_failures:
                raise
            results.append(not_run(group, str(exc)))
            continue
        addresses = {n: targets[n].addresses for n in names if targets[n].addresses}
        results.append(Engine(sender, listeners, addresses).run(group, **run))  # type: ignore[arg-type]
    return results


def not_run(cases: Sequence[Case], why: str) -> BatchResult:
    """The batch of cases whose agents could not start: each `error`, saying why."""
    return BatchResult([Observation(case, failure_stage="agent", note=why) for case in cases],
                       0, broken=[why])
