"""`hdp_sender` and `hdp_listener`: send and listen yourself, through a privileged agent."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError
from pytest_hdp.session import HdpSession, privilege_fix


@dataclass
class AgentProbes:
    """One agent shared by a session's hand-written path tests; events kept until asked for."""

    agent: AgentClient
    run_id: int = field(default_factory=lambda: random.getrandbits(32))
    backlog: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, session: HdpSession) -> AgentProbes:
        try:
            spec = session.local_sender_spec({"loopback"})
            return cls(AgentClient.start(spec))
        except AgentError as exc:
            pytest.skip(f"{exc}; {privilege_fix()}")

    def close(self) -> None:
        self.agent.close()

    def next_event(self, match: Any, timeout: float) -> dict[str, Any] | None:
        """The first event (kept or new) for which `match(event)` holds, within `timeout`."""
        for index, event in enumerate(self.backlog):
            if match(event):
                return self.backlog.pop(index)
        return self.agent.next_event(match, timeout, self.backlog)

    def listener(self, protocols: int | list[int], family: int = 4) -> Listener:
        wanted = [protocols] if isinstance(protocols, int) else list(protocols)
        ident = self.agent.request(messages.Listen(
            family=family, protocols=tuple(wanted), runs=(self.run_id,)))  # type: ignore[arg-type]
        ack = self.next_event(lambda e: e.get("id") == ident, 10)
        if ack is None:
            raise AgentError(f"agent {self.agent.spec} did not open listeners")
        return Listener(self, family, ack.get("opened", []), ack.get("refused", {}))

    @property
    def sender(self) -> Sender:
        return Sender(self)


@dataclass
class Listener:
    probes: AgentProbes
    family: int
    opened: list[int]
    refused: dict[str, str]  # protocol -> errno name

    def wait(self, case: int | None = None, timeout: float = 2.0) -> dict[str, Any] | None:
        """The next arrival of our probes (of `case`, if given), or None at the timeout."""
        def match(event: dict[str, Any]) -> bool:
            return event.get("event") == "arrival" and event.get("family") == self.family \
                and (case is None or event.get("case") == case)

        return self.probes.next_event(match, timeout)


@dataclass
class Sender:
    probes: AgentProbes

    def send(self, dst: str, protocol: int, *, family: int | None = None,
             payload: str = "hdp", size: int = 64, case: int = 0, dscp: int = 0,
             ecn: int = 0) -> dict[str, Any]:
        """Send one tagged probe; the agent's `sent` event (ok, errno, bytes, src)."""
        fam = family if family is not None else (6 if ":" in dst else 4)
        probe = messages.ProbeSpec(case=case, family=fam, protocol=protocol,  # type: ignore[arg-type]
                                   dst=dst, payload=payload, size=size,  # type: ignore[arg-type]
                                   tos=dscp << 2 | ecn)
        ident = self.probes.agent.request(messages.Send(run=self.probes.run_id,
                                                        probes=(probe,)))
        sent = self.probes.next_event(
            lambda e: e.get("event") == "sent" and e.get("case") == case, 10)
        self.probes.next_event(lambda e: e.get("event") == "send-done" and e.get("id") == ident,
                               10)
        if sent is None:
            raise AgentError(f"agent {self.probes.agent.spec} did not answer the send")
        return sent
