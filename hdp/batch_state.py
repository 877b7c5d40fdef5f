"""The state of one batch in flight in the engine: its cases, its pacers, what agents said."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdp import accounting, icmp_budget
from hdp.address import is_loopback
from hdp.agent.launch import AgentClient
from hdp.observe import CaseState, listen_protocol


@dataclass
class BatchState:
    """One batch in flight: its cases, its pacers, and what the agents said."""

    run_id: int
    states: list[CaseState]
    timeout: float
    icmp_time: float
    max_asks: int
    pacers: dict[str, icmp_budget.Pacer] = field(default_factory=dict)
    rounds: dict[int, icmp_budget.Pacer] = field(default_factory=dict)  # send id -> pacer
    direct_sends: set[int] = field(default_factory=set)
    deadline: float | None = None
    hard_deadline: float = 0.0
    done: int = 0
    direct_open: int = 0  # cases with a listener (or none to pace) not yet settled
    draining: dict[int, AgentClient] | None = None
    broken: list[str] = field(default_factory=list)
    exited: set[AgentClient] = field(default_factory=set)
    drops_before: dict[str, int | None] = field(default_factory=dict)
    drops_after: dict[str, int | None] = field(default_factory=dict)
    foreign_asks: dict[int, int] = field(default_factory=dict)  # request id -> family
    foreign: dict[int, dict[int, set[int]]] = field(default_factory=dict)  # fam->proto->inodes
    foreign_unknown: dict[int, str] = field(default_factory=dict)  # family -> why
    _quotes: dict[tuple[int, int, str | None], int] | None = None  # see quoted()

    def quoted(self, event: dict[str, Any]) -> int | None:
        """The header-included probe an untagged ICMP quote is about: its ident (IPv4) or
        flow label (IPv6) is the case's index + 1, and its destination the case's."""
        family = event.get("family")
        ident = event.get("quoted_ident") if family == 4 else event.get("quoted_flow")
        dst = event.get("quoted_dst")
        if family not in (4, 6) or not isinstance(ident, int) or ident <= 0 \
                or not isinstance(dst, str):
            return None
        if self._quotes is None:
            self._quotes = {}
            for index, state in enumerate(self.states):
                if state.header_included:
                    width = 0xFFFF if state.case.family == 4 else 0xFFFFF
                    key = (state.case.family, (index + 1) & width, state.address)
                    self._quotes.setdefault(key, index)
        return self._quotes.get((int(family), ident, dst))

    def foreign_seen(self, family: int, event: dict[str, Any]) -> None:
        if event.get("unavailable"):
            self.foreign_unknown[family] = str(event["unavailable"])
        seen = self.foreign.setdefault(family, {})
        for entry in event.get("sockets") or []:
            seen.setdefault(int(entry["protocol"]), set()).add(int(entry["inode"]))
        for state in self.states:
            inodes = seen.get(state.case.protocol)
            if state.header_included and state.case.family == family and inodes:
                state.foreign_inodes = sorted(inodes)

    def foreign_report(self) -> dict[str, dict[str, Any]]:
        """Per ICMP-only target: the other raw sockets seen, or why they cannot be told."""
        report: dict[str, dict[str, Any]] = {}
        for state in self.states:
            if not state.header_included or state.address is None:
                continue
            family = state.case.family
            entry = report.setdefault(state.address, {})
            if not is_loopback(state.address):
                entry["unavailable"] = ("cannot tell: no agent of this run runs on the "
                                        "target to read its raw sockets")
            elif family in self.foreign_unknown:
                entry["unavailable"] = self.foreign_unknown[family]
            elif state.foreign_inodes:
                entry[f"{family}/{state.case.protocol}"] = state.foreign_inodes
        return report

    def account(self) -> tuple[accounting.Accounting, dict[str, int]]:
        """sent = delivered + lost + dropped per listener socket, and each socket's drops
        during the batch; a case a drop may hide becomes `error` (hdp.accounting)."""
        drops = accounting.batch_drops(self.drops_before, self.drops_after)
        probes = []
        by_socket: dict[str, list[CaseState]] = defaultdict(list)
        names: dict[tuple[AgentClient, int, int], str] = {}  # a few sockets, many cases
        for state in self.states:
            proto = listen_protocol(state.case.family, state.case.protocol)
            if state.listener is None or proto is None or state.listen_errno \
                    or not (state.sent and state.sent.get("ok")):
                continue
            key = (state.listener, state.case.family, proto)
            socket_name = names.get(key)
            if socket_name is None:
                socket_name = names[key] = f"{state.listener.spec} {state.case.family}/{proto}"
            stopped = bool(state.icmp) and any(r.source is not None and r.source != state.address
                                               for r in state.icmp)
            probes.append(accounting.Probe(socket_name, bool(state.arrivals), stopped))
            if not state.arrivals and not stopped:
                by_socket[socket_name].append(state)
        counted = accounting.account(probes, drops)
        for count in counted.sockets:
            if not count.hides or count.kernel_drops is None:
                continue
            for state in by_socket[count.socket]:
                if not state.failure_stage:
                    state.failure_stage = "queue"
                    state.note = accounting.queue_note(count.socket, count.kernel_drops)
        return counted, {k: v for k, v in drops.items() if v is not None}
