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

from hdp import accounting, icmp_budget
from hdp.address import is_loopback, resolve
from hdp.agent import messages, protocol
from hdp.agent.launch import AgentClient, AgentError, EventQueue
from hdp.batch_state import BatchState
from hdp.case import Case, IcmpReport, Observation
from hdp.gcpause import collection_paused
from hdp.observe import CaseState, listen_protocol, observation

ACK_TIMEOUT = 10.0
ICMP_TIME = 60.0  # s an ICMP-only batch may spend asking (hdp.icmp_budget); --patient: more
SEND_DATA = protocol.MAX_LINE // 2  # hex of probe data in one `send` request
STREAM = frozenset(("sent", "arrival", "icmp"))  # events about a case, not answers


@dataclass
class BatchResult:
    observations: list[Observation]
    run_id: int
    interrupted: bool = False
    # "agent family/protocol" -> the listener's kernel drops during the batch, exactly
    drops: dict[str, int] = field(default_factory=dict)
    unaccounted: int = 0  # sent probes with no evidence at all before the deadline
    seconds: float = 0.0
    broken: list[str] = field(default_factory=list)  # what of our machinery failed
    # sent = delivered + lost + dropped, per listener and in all (hdp.accounting)
    accounting: accounting.Accounting = field(default_factory=accounting.Accounting)
    icmp_budget: dict[str, dict[str, Any]] = field(default_factory=dict)  # by target address
    # by target address: {"family/protocol": [inodes]} of other raw sockets seen during
    # the batch, or {"unavailable": why} where they cannot be told
    foreign_sockets: dict[str, dict[str, Any]] = field(default_factory=dict)


def send_requests(run: int, probes: Sequence[messages.ProbeRow], *,
                  columns: bool = True) -> list[messages.Send]:
    """`probes` as the `send` requests an agent takes: at most MAX_PROBES each, and their
    own data (hex) at most SEND_DATA, so a batch of large probes stays below MAX_LINE.
    `columns`: field by field (protocol 3), else one ProbeSpec each (an older agent)."""
    sends: list[messages.Send] = []
    batch: list[messages.ProbeRow] = []
    volume = 0

    def flush() -> None:
        if columns:
            sends.append(messages.Send(run=run, columns=messages.Probes.of(batch)))
        else:
            sends.append(messages.Send(run=run, probes=tuple(
                messages.ProbeSpec(*probe) for probe in batch)))

    for probe in probes:
        size = len(probe.data or "")
        if batch and (len(batch) == messages.MAX_PROBES or volume + size > SEND_DATA):
            flush()
            batch, volume = [], 0
        batch.append(probe)
        volume += size
    if batch:
        flush()
    return sends


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
        self.events = EventQueue()
        for agent in {sender, *(a for a in self.listeners.values() if a is not None)}:
            agent.attach(self.events)

    def run(self, cases: Sequence[Case], *, timeout: float = 1.0, icmp: bool = True,
            progress: Callable[[int, int], None] | None = None,
            started: Callable[[int], None] | None = None,
            icmp_time: float = ICMP_TIME,
            max_asks: int = icmp_budget.MAX_ASKS) -> BatchResult:
        """Probe `cases`; `started(n)` is called once the n probes are on their way.

        ICMP-only cases (no listener on the target) are asked at the pace the target's
        ICMP budget allows, again where an answer may have been withheld, for at most
        `icmp_time` seconds and `max_asks` times each (hdp.icmp_budget)."""
        with collection_paused():
            return self._run(cases, timeout, icmp, progress, started, icmp_time, max_asks)

    def _run(self, cases: Sequence[Case], timeout: float, icmp: bool,
             progress: Callable[[int, int], None] | None,
             started: Callable[[int], None] | None, icmp_time: float,
             max_asks: int) -> BatchResult:
        began = time.monotonic()
        run = BatchState(random.getrandbits(32), [CaseState(case) for case in cases], timeout,
                         icmp_time, max_asks)
        result = BatchResult([], run.run_id)
        try:
            self._prepare(run, icmp)
            self._send_and_collect(run, progress, started)
        except KeyboardInterrupt:
            result.interrupted = True
            for state in run.states:
                if not state.resolved:
                    state.note = "interrupted before its deadline"
        except AgentError as exc:  # an agent gone in the middle of a request
            self._broken(run, str(exc))
        finally:
            self._finish(run)
        result.accounting, result.drops = run.account()
        result.broken = run.broken
        for pacer in run.pacers.values():
            for index, status in pacer.status.items():
                if status in (icmp_budget.SILENT, icmp_budget.UNSURE):
                    run.states[index].silence = (status, pacer.asks[index])
        result.observations = [observation(s, run.run_id, i) for i, s in enumerate(run.states)]
        result.unaccounted = sum(1 for s in run.states
                                 if s.sent and s.sent["ok"] and not s.resolved)
        result.icmp_budget = {t: p.summary() for t, p in run.pacers.items()}
        result.foreign_sockets = run.foreign_report()
        result.seconds = time.monotonic() - began
        return result

    # -- phases ---------------------------------------------------------------------

    def _prepare(self, run: BatchState, icmp: bool) -> None:
        wanted: dict[tuple[AgentClient, int], set[int]] = defaultdict(set)
        families: set[int] = set()
        resolved: dict[tuple[str, int], tuple[str | None, str | None]] = {}
        for state in run.states:
            case = state.case
            known = self.addresses.get(case.target, {}).get(case.family)
            if known is not None:
                state.address = known
            else:
                where = (case.target, case.family)  # one lookup a target and family
                if where not in resolved:
                    resolved[where] = resolve(case.target, case.family)
                state.address, state.resolve_errno = resolved[where]
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
                                                  runs=(run.run_id,)))
            acks[ident] = (agent, family)
        if icmp:
            for family in sorted(families):
                acks[self.sender.request(messages.Icmp(
                    family=family, runs=(run.run_id,)))] = (self.sender, family)  # type: ignore[arg-type]
        refused: dict[tuple[AgentClient, int], dict[str, str]] = {}
        for ident, event in self._await_acks(acks, run).items():
            if event.get("event") == "listening":
                refused[acks[ident]] = event.get("refused", {})
                agent = acks[ident][0]
                for key, count in (event.get("drops") or {}).items():
                    run.drops_before[f"{agent.spec} {key}"] = count
        for state in run.states:
            proto = listen_protocol(state.case.family, state.case.protocol)
            if state.listener is not None and proto is not None:
                errno_name = refused.get((state.listener, state.case.family), {}).get(str(proto))
                state.listen_errno = errno_name

    def _await_acks(self, acks: Mapping[int, tuple[AgentClient, int]],
                    run: BatchState) -> dict[int, dict[str, Any]]:
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
                self._agent_exited(agent, run)
                answers.update({i: {"event": "exit"} for i, (a, _) in acks.items() if a is agent})
        return answers

    def _send_and_collect(self, run: BatchState, progress: Callable[[int, int], None] | None,
                          started: Callable[[int], None] | None) -> None:
        probes = {i: self._probe(i, s) for i, s in enumerate(run.states)
                  if s.resolve_errno is None and s.failure_stage is None}
        direct = [p for p in probes.values() if not p.header_included]
        paced: dict[str, list[int]] = defaultdict(list)
        for index, probe in probes.items():
            if probe.header_included:
                paced[probe.dst].append(index)
        now = time.monotonic()
        for address, indices in paced.items():
            # Our own IPPROTO_RAW socket on this host takes a protocol-255 probe to it.
            once = [i for i in indices if run.states[i].case.protocol == 255
                    and is_loopback(address)]
            run.pacers[address] = icmp_budget.Pacer(
                indices, run.icmp_time, run.timeout, run.max_asks, began=now, once=once)
        for send in send_requests(run.run_id, direct, columns=self._columns()):
            run.direct_sends.add(self.sender.request(send))
        self._watch_foreign(run)
        if started is not None:
            started(len(probes))
        run.hard_deadline = now + run.timeout + ACK_TIMEOUT + 0.01 * len(direct) + (
            max(run.icmp_time, run.timeout) + run.timeout if run.pacers else 0.0)
        run.done = sum(s.resolved for s in run.states)
        run.direct_open = sum(1 for s in run.states if not s.header_included and not s.resolved)
        while True:
            now = time.monotonic()
            wake = run.hard_deadline
            for address, pacer in run.pacers.items():
                pacer.poll(now)
                if pacer.round is None and not pacer.finished and pacer.next_at <= now:
                    self._ask(run, address, pacer, probes, now)
                due = pacer.due(now)
                if due is not None:
                    wake = min(wake, due)
            if self._finished(run):
                return
            if run.deadline is not None:
                wake = min(wake, run.deadline)
            try:
                events = self.events.get_all(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                continue
            for agent, event in events:  # all that came: the checks above once a batch
                self._handle(run, agent, event, progress)

    def _finished(self, run: BatchState) -> bool:
        """Whether the batch is over: every pacer done, every direct case settled (or its
        deadline passed) and the listeners drained, or the hard deadline passed."""
        now = time.monotonic()
        if now >= run.hard_deadline:
            return True
        if any(not pacer.finished for pacer in run.pacers.values()) or run.direct_sends:
            return False
        if not run.direct_open or (run.deadline is not None and now >= run.deadline):
            if run.draining is None:
                run.draining = self._drain_after_icmp(run.states)
            return not run.draining
        return False

    def _ask(self, run: BatchState, address: str, pacer: icmp_budget.Pacer,
             probes: Mapping[int, messages.ProbeRow], now: float) -> None:
        """Send the pacer's next round for `address`, and look for foreign sockets."""
        asked = pacer.start_round(now)
        if not asked:
            return
        try:
            # A round is one request unless its probes' data overruns a line: it is sent
            # once the last of its requests is done (see _handle).
            for send in send_requests(run.run_id, [probes[i] for i in asked],
                                      columns=self._columns()):
                run.rounds[self.sender.request(send)] = pacer
        except AgentError:
            # Gone since the last round, its `exit` not read yet: what it never sent, and
            # what only it could have heard an answer for, is ours to mark now.
            pacer.round, pacer.ended_by = None, "agent gone"
            self._agent_exited(self.sender, run)
            return
        if pacer.rounds % 8 == 1:
            self._watch_foreign(run)

    def _handle(self, run: BatchState, agent: AgentClient, event: dict[str, Any],
                progress: Callable[[int, int], None] | None) -> None:
        kind = event.get("event")
        if kind in STREAM:  # thousands a batch: first
            self._evidence(run, agent, event, progress)
            return
        ident = event.get("id")
        if run.draining and ident in run.draining and kind in ("drained", "error"):
            del run.draining[ident]  # an agent without `drain` answers an error
        elif kind == "send-done" and ident in run.rounds:
            pacer = run.rounds.pop(ident)
            if pacer not in run.rounds.values():  # the round's last request
                pacer.all_sent(time.monotonic())
        elif kind == "send-done" and ident in run.direct_sends:
            run.direct_sends.discard(ident)
            if not run.direct_sends:
                run.deadline = time.monotonic() + run.timeout
        elif kind == "raw-sockets" and ident in run.foreign_asks:
            run.foreign_seen(run.foreign_asks.pop(ident), event)
        elif kind == "exit":
            self._agent_exited(agent, run)
            if run.draining:
                run.draining = {i: a for i, a in run.draining.items() if a is not agent}
            if agent is self.sender:
                run.direct_sends.clear()
                run.rounds.clear()
                for pacer in run.pacers.values():
                    pacer.round, pacer.ended_by = None, "agent gone"
                run.deadline = time.monotonic()
            run.done = sum(s.resolved for s in run.states)  # rare: recount once
            run.direct_open = sum(1 for s in run.states
                                  if not s.header_included and not s.resolved)
            if progress is not None:
                progress(run.done, len(run.states))
        elif kind == "error" and agent is self.sender:
            self._sender_error(event, run.states)

    def _evidence(self, run: BatchState, agent: AgentClient, event: dict[str, Any],
                  progress: Callable[[int, int], None] | None) -> None:
        """A `sent`, `arrival` or `icmp` event: recorded with its case, and counted as it
        settles the case (counted per event, not recounted: a batch has thousands)."""
        index = self._index_of(event, run)
        if index is None:
            return
        state = run.states[index]
        was_resolved = state.resolved
        self._record(event, state, agent, run, index)
        if state.resolved and not was_resolved:
            run.done += 1
            run.direct_open -= not state.header_included
            if run.deadline is not None and not state.header_included:
                # The agent reads a batch's arrivals only after it has sent the
                # whole batch: wait `timeout` after the latest evidence, not after
                # send-done, while evidence is still coming in.
                run.deadline = max(run.deadline, time.monotonic() + run.timeout)
            if progress is not None:
                progress(run.done, len(run.states))

    def _watch_foreign(self, run: BatchState) -> None:
        """Ask the sender which other raw sockets of the probed protocols are open, where
        its namespace is the target's (loopback): they make the kernel answer no ICMP."""
        for family in (4, 6):
            protocols = sorted({s.case.protocol for s in run.states if s.header_included
                                and s.case.family == family and is_loopback(s.address)})
            if not protocols:
                continue
            with contextlib.suppress(AgentError):
                run.foreign_asks[self.sender.request(messages.RawSockets(
                    family=family, protocols=tuple(protocols)))] = family

    def _drain_after_icmp(self, states: list[CaseState]) -> dict[int, AgentClient]:
        """Ask the listeners of cases that only ICMP answered for what they already hold.

        A host hands a packet to its raw listeners before it answers it (port
        unreachable for a UDP probe to a closed port): the arrival may still be on its
        way from the listener's agent when the ICMP from the sender's agent is in.
        """
        agents = {s.listener for s in states
                  if s.icmp and not s.arrivals and s.listener is not None}
        asked = {}
        for agent in agents:
            with contextlib.suppress(AgentError):  # gone: its `exit` event marks its cases
                asked[agent.request(messages.Drain())] = agent
        return asked

    @staticmethod
    def _probe(index: int, state: CaseState) -> messages.ProbeRow:
        case = state.case
        return messages.ProbeRow(index, case.family, case.protocol,  # type: ignore[arg-type]
                                 str(state.address), case.payload,  # type: ignore[arg-type]
                                 case.size, state.header_included, index + 1, case.tos,
                                 case.df, case.ttl, case.data)

    def _columns(self) -> bool:
        """Whether the sender takes a `send`'s probes as columns (protocol 3 on)."""
        version = self.sender.ready.get("version")
        return not isinstance(version, int) or version >= 3

    def _index_of(self, event: dict[str, Any], run: BatchState) -> int | None:
        """The case an event is about, by its tag (or, for bare ICMP quotes, its ident)."""
        kind = event.get("event")
        if kind not in ("sent", "arrival", "icmp"):
            return None
        index = event.get("case")
        if kind == "icmp" and event.get("run") is None:
            index = run.quoted(event)
        elif event.get("run") != run.run_id:
            return None
        if not isinstance(index, int) or not 0 <= index < len(run.states):
            return None
        return index

    def _sender_error(self, event: dict[str, Any], states: list[CaseState]) -> None:
        for state in states:
            if state.sent is None and not state.failure_stage:
                state.note = f"agent error: {event.get('message')}"

    def _record(self, event: dict[str, Any], state: CaseState, agent: AgentClient,
                run: BatchState, index: int) -> None:
        kind = event.get("event")
        pacer = run.pacers.get(str(state.address)) if state.header_included else None
        if kind == "sent":
            if state.sent is None or event.get("ok"):
                state.sent = event  # a probe asked again: its latest send
            if pacer is not None:
                pacer.on_sent(index, event.get("time_ns"), bool(event.get("ok")))
        elif kind == "arrival" and agent is state.listener:
            state.arrivals.append(event)
        elif kind == "icmp":
            state.icmp.append(IcmpReport(event["family"], event["type"], event["code"],
                                         event.get("from"), event.get("mtu"),
                                         event.get("quoted_protocol")))
            if pacer is not None:
                pacer.on_answer(index, (state.sent or {}).get("time_ns"),
                                event.get("kernel_time_ns"), time.time_ns())

    def _agent_exited(self, agent: AgentClient, run: BatchState) -> None:
        if agent in run.exited:
            return
        run.exited.add(agent)
        why = f"agent {agent.spec} exited{agent.stderr_note()}"
        run.broken.append(f"agent {agent.spec} exited during the run")
        for state in run.states:
            if state.resolved:
                continue
            if agent is self.sender and state.sent is None:
                state.failure_stage, state.note = "send", f"never sent: {why}"
            elif agent is state.listener:
                state.failure_stage, state.note = "listen", f"listener lost: {why}"
            elif agent is self.sender and state.listener is None:
                state.failure_stage, state.note = "icmp", f"no ICMP could be heard: {why}"

    def _broken(self, run: BatchState, why: str) -> None:
        """Our machinery failed outside an agent's exit: every open case is `error`."""
        run.broken.append(why)
        for state in run.states:
            if not state.resolved:
                state.failure_stage, state.note = "agent", why

    def _finish(self, run: BatchState) -> None:
        """Close every agent's sockets, reading what their listeners still held and their
        exact drop counts; never raises."""
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
                for key, count in (event.get("drops") or {}).items():
                    run.drops_after[f"{agent.spec} {key}"] = count
            elif event.get("event") in ("arrival", "icmp"):
                # Read before the socket closed: late, and evidence all the same.
                index = self._index_of(event, run)
                if index is not None:
                    self._record(event, run.states[index], agent, run, index)
