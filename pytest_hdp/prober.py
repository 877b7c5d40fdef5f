"""Probing for the plugin: `probe(requests) -> results`, the one call every hdp case of a
process goes through, in pipelined batches (hdp.target.probe, hdp.engine).

A request is a case and how it is observed (who listens, how long to wait for late
evidence); requests that share both go out as one batch. With `--hdp-pcap`, every agent
of a batch captures the batch's flows while it runs (all it sees, when there are more
flows than an agent runs captures), and each case keeps its own packets (hdp.evidence).
Agents are started once per spec and kept for later batches; `close()` ends them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hdp import target as targets
from hdp.address import resolve
from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.case import Case, Observation
from hdp.evidence import Packet, batch_flows, packets_of_case
from hdp.flow import Flow
from hdp.target import Target
from hdp.verdict import Verdict, judge

CAPTURE_WAIT = 0.2  # for the last packets to reach a capture after the batch's deadline


class NoLocalAgent(Exception):
    """The agent this host probes from did not start: it has no raw sockets to give (the
    run's cases cannot be had here), unlike another end's agent that failed."""


@dataclass(frozen=True)
class Request:
    """A case to probe, and how: who listens (None: the target's own), and how long to
    wait for late evidence."""

    case: Case
    listener: str | None
    timeout: float


@dataclass(frozen=True)
class Evidence:
    """A case's own packets as each capturing end kept them, or why there are none."""

    packets: Mapping[str, tuple[Packet, ...]] = field(default_factory=dict)  # end -> packets
    note: str | None = None


@dataclass(frozen=True)
class Probed:
    """What probing one request gave: the observation, its verdict, the evidence."""

    request: Request
    observation: Observation
    verdict: Verdict
    evidence: Evidence | None = None  # None: no capture was asked for


@dataclass
class _Capture:
    """The captures one agent runs for a batch: one per flow, or one keeping all."""

    agent: AgentClient
    handles: list[int] = field(default_factory=list)
    note: str | None = None


class AgentPool:
    """Agents started once per spec and kept for later probes; `close()` ends them."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentClient] = {}
        self.used: list[str] = []  # every agent spec that probed, for the summary

    def _agent(self, spec: AgentSpec) -> AgentClient:
        key = str(spec)
        agent = self.agents.get(key)
        if agent is None or not agent.alive():
            agent = self.agents[key] = AgentClient.start(spec)
            if key not in self.used:
                self.used.append(key)
        return agent

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
        self.agents.clear()


class Prober(AgentPool):
    """The agents of one process's delivery cases and the batches sent through them."""

    def __init__(self, local: Callable[[set[str]], AgentSpec], *, capture: bool) -> None:
        super().__init__()
        self.local = local  # how this host sends (see HdpWorld.local_sender_spec)
        self.capture = capture
        self.drops: dict[str, int] = {}
        self.seconds = 0.0

    def probe(self, requests: Iterable[Request],
              plan: Mapping[str, Target]) -> dict[Request, Probed]:
        """Probe `requests` (each once), one batch per listener choice and timeout.

        An agent of another end that cannot start (a lab namespace gone, an ssh host
        down) makes its cases `error`; AgentError or NoLocalAgent when this host has no
        agent to probe from."""
        groups: dict[tuple[str | None, float], list[Request]] = defaultdict(list)
        for request in dict.fromkeys(requests):
            groups[(request.listener, request.timeout)].append(request)
        probed: dict[Request, Probed] = {}
        for (listener, timeout), group in groups.items():
            probed.update(self._batch(group, plan, listener, timeout))
        return probed

    def _batch(self, group: Sequence[Request], plan: Mapping[str, Target],
               listener: str | None, timeout: float) -> dict[Request, Probed]:
        by_case = {request.case: request for request in group}
        captures: list[_Capture] = []
        flows = _flows(by_case, plan) if self.capture else []

        local_specs: set[str] = set()

        def local(paths: set[str]) -> AgentSpec:
            spec = self.local(paths)  # AgentError: no way to raw sockets here
            local_specs.add(str(spec))
            return spec

        def start(spec: AgentSpec) -> AgentClient:
            try:
                agent = self._agent(spec)
            except AgentError as exc:
                if str(spec) in local_specs:
                    raise NoLocalAgent(str(exc)) from None
                raise  # another end's: targets.probe makes its cases `error`
            if self.capture and all(c.agent is not agent for c in captures):
                captures.append(_start_capture(agent, flows))
            return agent

        batches = targets.probe(list(by_case), plan, start, local, listener=listener,
                                record_failures=True, timeout=timeout)
        packets = [(c, _stop_capture(c)) for c in captures]
        probed: dict[Request, Probed] = {}
        for batch in batches:
            self.seconds += batch.seconds
            self.drops.update(batch.drops)
            for index, observation in enumerate(batch.observations):
                case = observation.case
                evidence = None
                if self.capture:
                    evidence = _evidence(packets, observation, batch.run_id, index)
                probed[by_case[case]] = judged(by_case[case], observation, evidence, plan)
        return probed



def judged(request: Request, observation: Observation, evidence: Evidence | None,
           plan: Mapping[str, Target]) -> Probed:
    """The result of a probed request: its observation judged on the target's path."""
    case = observation.case
    verdict = judge(observation, nat_source=plan[case.target].nat_source.get(case.family))
    return Probed(request, observation, verdict, evidence)


def _flows(cases: Iterable[Case], plan: Mapping[str, Target]) -> list[Flow | None]:
    """What each capture of a batch keeps: the batch's flows, one capture each, when an
    agent can run that many at once; else one capture of everything, cut afterwards
    (hdp.evidence), which for a caller that is not root holds its own flows only."""
    addressed = []
    for case in cases:
        address = plan[case.target].addresses.get(case.family) or \
            resolve(case.target, case.family)[0]
        if address is not None:  # the engine finds it unresolved too: nothing to capture
            addressed.append((case, address))
    flows = batch_flows(addressed)
    return list(flows) if len(flows) <= messages.MAX_CAPTURES else [None]


def _start_capture(agent: AgentClient, flows: Sequence[Flow | None]) -> _Capture:
    """Capture what `flows` keep at this agent's host, or say why it cannot."""
    capture = _Capture(agent)
    for flow in flows:
        try:
            answer = _ask(agent, messages.CaptureStart(flow=flow, incoming_only=False), 15.0)
        except AgentError as exc:
            capture.note = f"no capture at {agent.spec}: {exc}"
            break
        if answer is None or not answer.get("ok"):
            reason = "no answer" if answer is None else answer.get("message") or \
                f"{answer.get('errno')}: {answer.get('reason') or 'captures need Linux AF_PACKET'}"
            capture.note = f"no capture at {agent.spec} ({reason})"
            break
        handle = answer.get("handle")
        if isinstance(handle, int):
            capture.handles.append(handle)
    return capture


def _stop_capture(capture: _Capture) -> list[Packet]:
    """The packets of every capture of `capture`'s agent, in the order they came."""
    packets: list[Packet] = []
    for handle in capture.handles:
        packets += _stop_one(capture, handle)
    return sorted(packets, key=lambda packet: packet[0])


def _stop_one(capture: _Capture, handle: int) -> list[Packet]:
    try:
        answer = _ask(capture.agent, messages.CaptureStop(handle=handle, wait=CAPTURE_WAIT),
                      15.0 + CAPTURE_WAIT)
    except AgentError as exc:
        capture.note = f"capture at {capture.agent.spec} lost: {exc}"
        return []
    if answer is None or answer.get("event") == "error":
        capture.note = f"capture at {capture.agent.spec} did not answer" if answer is None \
            else f"capture at {capture.agent.spec} refused: {answer.get('message')}"
        return []
    if answer.get("dropped"):
        capture.note = (f"capture at {capture.agent.spec} kept its first packets only "
                        f"({answer['dropped']} more not kept)")
    packets = answer.get("packets")
    return [packet for packet in map(_packet, packets) if packet is not None] \
        if isinstance(packets, list) else []


def _packet(item: object) -> Packet | None:
    """A packet of a `captured` answer; None for the leaving copy of a loopback packet,
    which shows twice (leaving and arriving: the arrival is kept)."""
    if not isinstance(item, dict):
        return None
    time_ns, data = item.get("time_ns"), item.get("data")
    if not isinstance(time_ns, int) or not isinstance(data, str) or \
            (item.get("direction") == "outgoing" and item.get("interface") == "lo"):
        return None
    return time_ns, bytes.fromhex(data)


def _ask(agent: AgentClient, request: messages.Request,
         within: float) -> dict[str, object] | None:
    """The agent's answer to `request` (an `error` event is one), None if none came."""
    ident = agent.request(request)
    return agent.next_event(lambda e: e.get("id") == ident, within, [])


def _evidence(captured: list[tuple[_Capture, list[Packet]]], observation: Observation,
              run_id: int, index: int) -> Evidence:
    ends = {str(capture.agent.spec): tuple(packets_of_case(packets, observation, run_id,
                                                           index))
            for capture, packets in captured if capture.handles}
    notes = [capture.note for capture, _ in captured if capture.note]
    return Evidence(ends, "; ".join(notes) or None)
