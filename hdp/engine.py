"""The probe engine: a batch of cases, pipelined through agents, one Observation each.

Listeners open first, every probe of the batch goes out in one request, and one
deadline covers the batch. Packets are matched to cases by the probe tag they carry,
never by the protocol they arrived on. Whatever fails — a refused socket, a dead
agent, an unknown host, Ctrl-C — each case still ends with an Observation.
"""

from __future__ import annotations

import contextlib
import queue
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdp.address import is_loopback, resolve
from hdp.agent import messages, protocol
from hdp.agent.launch import AgentClient, AgentError, Event
from hdp.case import Case, Delivery, IcmpReport, Observation

ACK_TIMEOUT = 10.0
ICMP_BURST = 40  # Linux answers a burst of 50 ICMP errors, then 1000/s (icmp_msgs_*)
ICMP_GAP = 0.05
SEND_DATA = protocol.MAX_LINE // 2  # hex of probe data in one `send` request


@dataclass
class BatchResult:
    observations: list[Observation]
    run_id: int
    interrupted: bool = False
    drops: dict[str, int] = field(default_factory=dict)  # "agent family/protocol" -> count
    unaccounted: int = 0  # sent probes with no evidence at all before the deadline
    seconds: float = 0.0


def listen_protocol(family: int, protocol: int) -> int | None:
    """The protocol a listener needs to see a probe of `protocol` (Linux renumbers > 255)."""
    if 0 <= protocol <= 255:
        return protocol
    if family == 4 and 256 <= protocol <= 511:
        return protocol & 0xFF
    return None


def send_requests(run: int, probes: Sequence[messages.ProbeSpec]) -> list[messages.Send]:
    """`probes` as the `send` requests an agent takes: at most MAX_PROBES each, and their
    own data (hex) at most SEND_DATA, so a batch of large probes stays below MAX_LINE."""
    sends: list[messages.Send] = []
    batch: list[messages.ProbeSpec] = []
    volume = 0
    for probe in probes:
        size = len(probe.data or "")
        if batch and (len(batch) == messages.MAX_PROBES or volume + size > SEND_DATA):
            sends.append(messages.Send(run=run, probes=tuple(batch)))
            batch, volume = [], 0
        batch.append(probe)
        volume += size
    if batch:
        sends.append(messages.Send(run=run, probes=tuple(batch)))
    return sends


@dataclass
class _State:
    case: Case
    address: str | None = None
    listener: AgentClient | None = None
    sent: dict[str, Any] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    icmp: list[IcmpReport] = field(default_factory=list)
    listen_errno: str | None = None
    resolve_errno: str | None = None
    failure_stage: str | None = None
    note: str | None = None
    header_included: bool = False

    @property
    def resolved(self) -> bool:
        if self.resolve_errno or self.failure_stage or self.deliveries or self.icmp:
            return True
        return self.sent is not None and not self.sent["ok"]


class Engine:
    """Runs batches from one sender agent to targets with (or without) listener agents."""

    def __init__(self, sender: AgentClient,
                 listeners: Mapping[str, AgentClient | None] | None = None,
                 addresses: Mapping[str, Mapping[int, str]] | None = None) -> None:
        """`addresses` gives a target's address per family where a name lookup cannot
        (e.g. a namespace's own loopback); other targets resolve through getaddrinfo."""
        self.sender = sender
        self.listeners = dict(listeners or {})
        self.addresses = {t: dict(a) for t, a in (addresses or {}).items()}
        self.events: queue.Queue[Event] = queue.Queue()
        for agent in {sender, *(a for a in self.listeners.values() if a is not None)}:
            agent.attach(self.events)

    def run(self, cases: Sequence[Case], *, timeout: float = 1.0, icmp: bool = True,
            progress: Callable[[int, int], None] | None = None,
            started: Callable[[int], None] | None = None) -> BatchResult:
        """Probe `cases`; `started(n)` is called once the n probes are on their way."""
        began = time.monotonic()
        run_id = random.getrandbits(32)
        states = [_State(case) for case in cases]
        result = BatchResult([], run_id)
        try:
            self._prepare(states, run_id, icmp)
            self._send_and_collect(states, run_id, timeout, progress, started)
        except KeyboardInterrupt:
            result.interrupted = True
            for state in states:
                if not state.resolved:
                    state.note = "interrupted before its deadline"
        finally:
            result.drops = self._finish(run_id)
        result.observations = [_observation(s) for s in states]
        result.unaccounted = sum(1 for s in states if s.sent and s.sent["ok"] and not s.resolved)
        result.seconds = time.monotonic() - began
        return result

    # -- phases ---------------------------------------------------------------------

    def _prepare(self, states: list[_State], run_id: int, icmp: bool) -> None:
        wanted: dict[tuple[AgentClient, int], set[int]] = defaultdict(set)
        families: set[int] = set()
        for state in states:
            case = state.case
            known = self.addresses.get(case.target, {}).get(case.family)
            if known is not None:
                state.address = known
            else:
                state.address, state.resolve_errno = resolve(case.target, case.family)
            state.listener = self.listeners.get(case.target)
            families.add(case.family)
            proto = listen_protocol(case.family, case.protocol)
            if state.listener is not None and proto is not None:
                wanted[(state.listener, case.family)].add(proto)
            state.header_included = state.listener is None and 0 <= case.protocol <= 255
        acks: dict[int, tuple[AgentClient, int]] = {}
        for (agent, family), protocols in wanted.items():
            ident = agent.request(messages.Listen(family=family,  # type: ignore[arg-type]
                                                  protocols=tuple(sorted(protocols)),
                                                  runs=(run_id,)))
            acks[ident] = (agent, family)
        if icmp:
            for family in sorted(families):
                acks[self.sender.request(messages.Icmp(
                    family=family, runs=(run_id,)))] = (self.sender, family)  # type: ignore[arg-type]
        refused: dict[tuple[AgentClient, int], dict[str, str]] = {}
        for ident, event in self._await_acks(acks, states).items():
            if event.get("event") == "listening":
                refused[acks[ident]] = event.get("refused", {})
        for state in states:
            proto = listen_protocol(state.case.family, state.case.protocol)
            if state.listener is not None and proto is not None:
                errno_name = refused.get((state.listener, state.case.family), {}).get(str(proto))
                state.listen_errno = errno_name

    def _await_acks(self, acks: Mapping[int, tuple[AgentClient, int]],
                    states: list[_State]) -> dict[int, dict[str, Any]]:
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + ACK_TIMEOUT
        while len(answers) < len(acks) and time.monotonic() < deadline:
            try:
                agent, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event.get("id") in acks:
                answers[event["id"]] = event
            elif event.get("event") == "exit":
                self._agent_exited(agent, states)
                answers.update({i: {"event": "exit"} for i, (a, _) in acks.items() if a is agent})
        return answers

    def _send_and_collect(self, states: list[_State], run_id: int, timeout: float,
                          progress: Callable[[int, int], None] | None,
                          started: Callable[[int], None] | None) -> None:
        probes = [self._probe(i, s) for i, s in enumerate(states)
                  if s.resolve_errno is None and s.failure_stage is None]
        paced = [p for p in probes if p.header_included]
        direct = [p for p in probes if not p.header_included]
        pending_sends = 0
        for send in send_requests(run_id, direct):
            self.sender.request(send)
            pending_sends += 1
        # ICMP-only probes go in bursts the target's ICMP rate limit can answer.
        bursts = [paced[i:i + ICMP_BURST] for i in range(0, len(paced), ICMP_BURST)]
        if started is not None:
            started(len(probes))
        next_burst = time.monotonic()
        deadline = None
        hard_deadline = time.monotonic() + timeout + ACK_TIMEOUT + 0.01 * len(probes)
        done = sum(s.resolved for s in states)
        draining: dict[int, AgentClient] | None = None
        while True:
            now = time.monotonic()
            if bursts and now >= next_burst:
                try:
                    self.sender.request(messages.Send(run=run_id,
                                                      probes=tuple(bursts.pop(0))))
                except AgentError:
                    # Gone since the last burst, its `exit` not read yet: that event
                    # marks what was never sent (the hard deadline bounds the wait).
                    bursts = []
                else:
                    pending_sends += 1
                next_burst = now + ICMP_GAP
            if done == len(states) and not pending_sends:
                if draining is None:
                    draining = self._drain_after_icmp(states)
                if not draining:
                    return
            limit = min(t for t in (deadline, hard_deadline) if t is not None)
            if now >= limit:
                return
            wait = limit - now
            if bursts:
                wait = min(wait, max(0.0, next_burst - now))
            try:
                agent, event = self.events.get(timeout=wait)
            except queue.Empty:
                continue
            kind = event.get("event")
            if draining and event.get("id") in draining and kind in ("drained", "error"):
                del draining[event["id"]]  # an agent without `drain` answers an error
            elif kind == "send-done":
                pending_sends -= 1
                if pending_sends == 0 and not bursts:
                    deadline = time.monotonic() + timeout
            elif kind == "exit":
                self._agent_exited(agent, states)
                if draining:
                    draining = {i: a for i, a in draining.items() if a is not agent}
                if agent is self.sender:
                    pending_sends, bursts = 0, []
                    deadline = time.monotonic()
                done = sum(s.resolved for s in states)  # rare: recount once
                if progress is not None:
                    progress(done, len(states))
            else:
                # Counted per event, not recounted: a batch has thousands of each.
                state = self._state_of(event, run_id, states)
                if state is not None:
                    was_resolved = state.resolved
                    self._record(event, state, agent)
                    if state.resolved and not was_resolved:
                        done += 1
                        if deadline is not None:
                            # The agent reads a batch's arrivals only after it has sent
                            # the whole batch: wait `timeout` after the latest evidence,
                            # not after send-done, while evidence is still coming in.
                            deadline = max(deadline, time.monotonic() + timeout)
                        if progress is not None:
                            progress(done, len(states))
                elif kind == "error" and agent is self.sender:
                    self._sender_error(event, states)

    def _drain_after_icmp(self, states: list[_State]) -> dict[int, AgentClient]:
        """Ask the listeners of cases that only ICMP answered for what they already hold.

        A host hands a packet to its raw listeners before it answers it (port
        unreachable for a UDP probe to a closed port): the arrival may still be on its
        way from the listener's agent when the ICMP from the sender's agent is in.
        """
        agents = {s.listener for s in states
                  if s.icmp and not s.deliveries and s.listener is not None}
        asked = {}
        for agent in agents:
            with contextlib.suppress(AgentError):  # gone: its `exit` event marks its cases
                asked[agent.request(messages.Drain())] = agent
        return asked

    def _probe(self, index: int, state: _State) -> messages.ProbeSpec:
        case = state.case
        return messages.ProbeSpec(
            case=index, family=case.family, protocol=case.protocol,  # type: ignore[arg-type]
            dst=str(state.address), payload=case.payload,  # type: ignore[arg-type]
            size=case.size, header_included=state.header_included, ident=index + 1,
            df=case.df, tos=case.tos, ttl=case.ttl, data=case.data)

    def _state_of(self, event: dict[str, Any], run_id: int,
                  states: list[_State]) -> _State | None:
        """The case an event is about, by its tag (or, for bare ICMP quotes, its ident)."""
        kind = event.get("event")
        if kind not in ("sent", "arrival", "icmp"):
            return None
        index = event.get("case")
        if kind == "icmp" and event.get("run") is None:
            index = _match_quote(event, states)
        elif event.get("run") != run_id:
            return None
        if not isinstance(index, int) or not 0 <= index < len(states):
            return None
        return states[index]

    def _sender_error(self, event: dict[str, Any], states: list[_State]) -> None:
        for state in states:
            if state.sent is None and not state.failure_stage:
                state.note = f"agent error: {event.get('message')}"

    def _record(self, event: dict[str, Any], state: _State, agent: AgentClient) -> None:
        kind = event.get("event")
        if kind == "sent":
            state.sent = event
        elif kind == "arrival" and agent is state.listener:
            state.deliveries.append(_delivery(event, state.sent))
        elif kind == "icmp":
            state.icmp.append(IcmpReport(event["family"], event["type"], event["code"],
                                         event.get("from"), event.get("mtu"),
                                         event.get("quoted_protocol")))

    def _agent_exited(self, agent: AgentClient, states: list[_State]) -> None:
        why = f"agent {agent.spec} exited{agent.stderr_note()}"
        for state in states:
            if state.resolved:
                continue
            if agent is self.sender and state.sent is None:
                state.failure_stage, state.note = "send", f"never sent: {why}"
            elif agent is state.listener:
                state.failure_stage, state.note = "listen", f"listener lost: {why}"

    def _finish(self, run_id: int) -> dict[str, int]:
        """Close listeners and collect receive-queue drop counts; never raises."""
        drops: dict[str, int] = {}
        agents = {a for a in self.listeners.values() if a is not None and a.alive()}
        if self.sender.alive():
            agents.add(self.sender)
        acks = {}
        for agent in agents:
            try:
                acks[agent.request(messages.Close())] = agent
            except Exception:
                continue
        deadline = time.monotonic() + 2.0
        while acks and time.monotonic() < deadline:
            try:
                agent, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except (queue.Empty, KeyboardInterrupt):
                break
            if event.get("id") in acks and event.get("event") == "closed":
                acks.pop(event["id"])
                for key, count in event.get("drops", {}).items():
                    drops[f"{agent.spec} {key}"] = count
        return drops


def _match_quote(event: dict[str, Any], states: list[_State]) -> int | None:
    """The header-included probe an untagged ICMP quote is about (by ident/flow label)."""
    ident = event.get("quoted_ident") if event.get("family") == 4 else event.get("quoted_flow")
    if not isinstance(ident, int) or ident <= 0:
        return None
    width = 0xFFFF if event.get("family") == 4 else 0xFFFFF
    for index, state in enumerate(states):
        if state.header_included and (index + 1) & width == ident \
                and state.address == event.get("quoted_dst"):
            return index
    return None


def _delivery(event: dict[str, Any], sent: dict[str, Any] | None) -> Delivery:
    received_at = event.get("kernel_time_ns")
    stamp = event.get("hdp_time_ns") or (sent or {}).get("time_ns")
    latency = (received_at - stamp) / 1000 if received_at and stamp else None
    offset = event.get("fragment_offset")
    return Delivery(src=event["src"], dst=event.get("dst"),
                    wire_protocol=event.get("wire_protocol"),
                    ttl=event.get("ttl"), dscp=event.get("dscp"), ecn=event.get("ecn"),
                    length=event["length"], intact=bool(event.get("intact")),
                    kernel_time_ns=received_at, latency_us=latency,
                    fragment_offsets=(offset,) if offset else ())


def _observation(state: _State) -> Observation:
    sent = state.sent or {}
    socket_errno = sent.get("errno") if sent.get("stage") == "socket" else None
    send_errno = sent.get("errno") if sent.get("stage") == "send" else None
    note = state.note
    if state.header_included and state.case.protocol == 255 and is_loopback(state.address) \
            and sent.get("ok") and not state.resolved:
        note = ("no ICMP possible: on the sending host our own IPPROTO_RAW socket counts "
                "as a protocol-255 listener")
    silenced = bool(sent.get("icmp_possible") is False and sent.get("ok") and not state.resolved)
    if silenced:
        note = ("no ICMP possible: the OS cannot send our own IPv6 header, and on the "
                "sending host the raw socket that sent the probe takes it in")
    if state.resolve_errno:
        send_errno = state.resolve_errno
        note = f"cannot resolve {state.case.target!r} for IPv{state.case.family}"
    return Observation(
        case=state.case, socket_errno=socket_errno, send_errno=send_errno,
        listen_errno=state.listen_errno, sent_bytes=sent.get("bytes"),
        sent_src=sent.get("src"), sent_dst=state.address, sent_dscp=state.case.tos >> 2,
        sent_ecn=state.case.tos & 3,
        sent_ttl=64 if state.case.ttl is None else state.case.ttl,
        deliveries=tuple(state.deliveries), icmp=tuple(state.icmp),
        listened=state.listener is not None, failure_stage=state.failure_stage, note=note,
        icmp_possible=not silenced)
