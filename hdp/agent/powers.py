"""Who the agent serves, and what it may do for them.

An agent runs as root for whoever may start it. A root caller (a root pytest, `hdp sweep`
as root, a lab's own agents, ssh as root) gets every operation. A caller that reached
root only through ``sudo`` gets what a probe run needs and no more: probes the agent
builds itself (its own source address, its own tag), listeners that report only the
runs it names, UDP sockets above port 1023, floods (hdp.agent.flood) of its own
probes to this host's own addresses only, and captures that keep only the flows of
the sockets and probes this agent itself opened and sent. Caller-built packets
(`raw-send`) and privileged ports are refused with an `error` event.

Who called is read from SUDO_UID, which sudo sets to the invoking user's uid and which
a caller cannot choose: sudo overwrites it whatever the caller's environment holds, and
without a privilege tool an unprivileged user cannot start a root process at all.
pkexec's PKEXEC_UID and doas's DOAS_USER are read the same way; any other tool that runs
the agent as root (a setuid wrapper, say) makes its caller root in the agent's eyes.
Every launcher but sudo starts agents with these variables removed from their
environment (their caller is root, or is the agent's own user), so a root run that was
itself started with sudo keeps its powers.
"""

from __future__ import annotations

import collections
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from hdp.agent.schema import Invalid
from hdp.errors import DecodeError
from hdp.flow import Address, read_packet, transport_ports
from hdp.wire import hdp as hdp_wire
from hdp.wire import icmp

if TYPE_CHECKING:
    from hdp.capture import Captured

CALLER_ENV = ("SUDO_UID", "SUDO_GID", "SUDO_USER", "SUDO_COMMAND", "PKEXEC_UID",
              "DOAS_USER")
UDP_PROTOCOLS = (17, 136)
_REMEMBERED = 1 << 16  # header-included probes kept for matching ICMP quotes
FragmentOf = tuple[Address, Address, int, int]  # (src, dst, protocol, identification)


class Refused(Invalid):
    """A request this caller may not make, or one over a limit; the text says which.

    `needs` is "root" when only a root caller may make it (the error event says so)."""

    def __init__(self, message: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.needs = needs


@dataclass(frozen=True)
class Caller:
    root: bool
    uid: int | None  # the sudo caller's uid when not root

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Caller:
        """Root unless a privilege tool says it ran the agent for another user; a value
        that does not parse counts as another user (the safe side)."""
        uid: int | None
        for name in ("SUDO_UID", "PKEXEC_UID", "DOAS_USER"):
            value = environ.get(name)
            if value is None:
                continue
            if name == "DOAS_USER":
                try:
                    uid = pwd.getpwnam(value).pw_uid
                except KeyError:
                    uid = None
            else:
                uid = int(value) if value.isdigit() and len(value) < 12 else None
            if uid != 0:
                return cls(False, uid)
        return cls(True, None)

    @property
    def name(self) -> str:
        return "root" if self.root else "user"

    def require_root(self, what: str) -> None:
        if not self.root:
            raise Refused(f"{what} needs a root caller: this agent serves uid {self.uid} "
                          "through sudo (run the controller as root for it)", needs="root")


def environment_without_caller() -> dict[str, str]:
    """This process's environment for an agent it starts itself (see the module doc)."""
    return {k: v for k, v in os.environ.items() if k not in CALLER_ENV}


WILDCARDS = ("0.0.0.0", "::")


@dataclass
class OwnFlows:
    """What this agent opened and sent: the only traffic a non-root caller may see.

    Judged packet by packet after the capture's own filters: a request's `flow` (hdp.flow)
    has already cut the capture to one exchange, but the caller chose that flow (any
    addresses, any IP identifications), so it proves nothing about whose packets they are.
    """

    # (protocol, port) -> the local addresses of our sockets there ("0.0.0.0"/"::": any)
    endpoints: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    runs: set[int] = field(default_factory=set)
    quoted: collections.OrderedDict[tuple[str, int, int], None] = field(
        default_factory=collections.OrderedDict)  # (dst, wire protocol, ident) of probes

    def socket_opened(self, protocol: int, address: str, port: int) -> None:
        if len(self.endpoints) < 1 << 16:
            self.endpoints.setdefault((protocol, port), set()).add(_plain(address))

    def probe_sent(self, run: int, dst: str, protocol: int, ident: int) -> None:
        self.runs.add(run)
        self.quoted[(_plain(dst), protocol & 0xFF, ident)] = None
        if len(self.quoted) > _REMEMBERED:
            self.quoted.popitem(last=False)

    def quote_is_ours(self, dst: str, protocol: int, ident: int | None) -> bool:
        return ident is not None and (dst, protocol, ident) in self.quoted

    def keep(self, packets: list[Captured]) -> list[Captured]:
        """The packets of our own flows, and the later fragments of those packets."""
        firsts: set[FragmentOf] = set()
        later: list[tuple[Captured, FragmentOf]] = []
        kept: set[int] = set()
        for packet in packets:
            try:
                ours, key = self._classify(packet.data)
            except (DecodeError, ValueError, IndexError):
                continue  # unreadable: cannot prove it is ours, so it is not shown
            if ours:
                kept.add(id(packet))
                if key is not None:
                    firsts.add(key)
            elif key is not None:
                later.append((packet, key))
        kept.update(id(packet) for packet, key in later if key in firsts)
        return [p for p in packets if id(p) in kept]

    def _classify(self, data: bytes) -> tuple[bool, FragmentOf | None]:
        """(ours, fragment key): a later fragment cannot tell; its first fragment can.

        A packet is read as hdp.flow reads it for a capture's flow (its addresses,
        protocol, identification and transport header, however mangled what follows)."""
        packet = read_packet(data)
        ident = packet.identification
        key = None if ident is None or not (packet.more or not packet.first) \
            else (packet.src, packet.dst, packet.protocol, ident)
        if not packet.first:
            return False, key
        return self._ours(packet.protocol, str(packet.src), str(packet.dst),
                          packet.transport, packet.src.version), key

    def _ours(self, protocol: int, src: str, dst: str, body: bytes, family: int) -> bool:
        ports = transport_ports(body) if protocol in UDP_PROTOCOLS else None
        if ports is not None and (self._is_endpoint(protocol, src, ports[0])
                                  or self._is_endpoint(protocol, dst, ports[1])):
            return True
        if protocol in (1, 58):
            return self._icmp_ours(body, family)
        found = hdp_wire.find_tag(body)
        return found is not None and found[1].tag is not None \
            and found[1].tag.run_id in self.runs

    def _is_endpoint(self, protocol: int, address: str, port: int) -> bool:
        addresses = self.endpoints.get((protocol, port))
        return addresses is not None and (address in addresses
                                          or any(w in addresses for w in WILDCARDS))

    def _icmp_ours(self, body: bytes, family: int) -> bool:
        message = icmp.decode(body, family)
        if not message.is_error:
            return False
        quoted = icmp.quoted_probe(message)
        if quoted.protocol not in (1, 58) and self._ours(
                quoted.protocol, str(quoted.src), str(quoted.dst), bytes(quoted.payload),
                family):
            return True  # a quote of our socket's datagram or of a tagged probe
        ident = quoted.identification if family == 4 else quoted.flow_label
        return self.quote_is_ours(str(quoted.dst), quoted.protocol, ident)


def _plain(address: str) -> str:
    """An address as the packet decoders write it (no scope, compressed IPv6)."""
    try:
        return str(ip_address(address.split("%")[0]))
    except ValueError:
        return address


Emit = Callable[[dict[str, Any]], None]  # an event to the controller
Register = Callable[[Any, Callable[[], object]], None]  # the agent's loop: watch a socket
Unregister = Callable[[Any], object]  # ...and stop watching it


class Ops:
    """What each group of an agent's operations holds: how it emits events, how the
    agent's loop watches its sockets, who called, and which flows are the caller's own."""

    def __init__(self, emit: Emit, register: Register, unregister: Unregister,
                 caller: Caller | None = None, own: OwnFlows | None = None) -> None:
        self.emit = emit
        self.register = register
        self.unregister = unregister
        self.caller = caller or Caller(root=True, uid=None)
        self.own = own or OwnFlows()
