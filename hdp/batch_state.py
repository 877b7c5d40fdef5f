"""The state of one batch in flight in the engine: its cases, its pacers, what agents said."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdp import icmp_budget
from hdp.address import is_loopback
from hdp.agent.launch import AgentClient
from hdp.observe import CaseState


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
