"""Cases of many probes (`@pytest.mark.hdp(count=N)`): one stream each, from the case's
sender to its listener (hdp.measure), and the statistics its test reads (`hdp_result.stats`).

A one-probe case goes out in the batch a process sends up front, with every case it
collected; a stream is sent only when its test asks for it, by the process that runs the
test. Under xdist every worker collects every test, but each test runs on one worker: so
each stream leaves once, and streams do not add up across workers (what a first-packet
middlebox would otherwise see as one flow's packets from several tests at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hdp.address import resolve
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.agent.messages import Lane, payload
from hdp.case import Observation
from hdp.measure import LaneResult, StreamPlan, measure
from hdp.target import Target
from hdp.verdict import judge
from pytest_hdp.prober import AgentPool, NoLocalAgent, Probed, Request

DEFAULT_RATE = 1000.0  # probes a second, where the marker gives no rate=


class StreamProber(AgentPool):
    """The agents of one process's many-probe cases, and the streams sent through them."""

    def __init__(self, local: Callable[[set[str]], AgentSpec]) -> None:
        super().__init__()
        self.local = local  # how this host sends (HdpWorld.local_sender_spec)

    def probe(self, request: Request, plan: Mapping[str, Target]) -> Probed:
        """Send `request`'s stream; NoLocalAgent when this host has no agent to send
        from. What else fails (an agent of the other end, a dying one) is the case's
        `error`, with a note saying what broke."""
        case = request.case
        assert case.count is not None
        target = plan[case.target]
        sender: AgentClient | None
        if target.sender == "local":
            try:
                sender = self._agent(self.local({target.path}))
            except AgentError as exc:
                raise NoLocalAgent(str(exc)) from None
        else:
            sender = self._agent_or_none(AgentSpec.parse(target.sender))
        choice = request.listener if request.listener is not None else target.listener
        address = target.addresses.get(case.family) or resolve(case.target, case.family)[0]
        problem = None
        if sender is None:
            problem = f"the sender's agent {target.sender} did not start"
        elif choice in (None, "none"):
            problem = f"{case.target} has no listener to count what arrived"
        elif address is None:
            problem = f"{case.target} has no IPv{case.family} address"
        listener = sender if choice == "same" else (
            None if problem else self._agent_or_none(AgentSpec.parse(str(choice))))
        if problem is None and listener is None:
            problem = f"the listener's agent {choice} did not start"
        if problem is not None or sender is None or listener is None or address is None:
            return self._broken(request, problem or "no agent")
        stream = StreamPlan(str(address), case.family,
                            (Lane("raw", case.protocol, payload(case.payload)),), case.count,
                            case.rate or DEFAULT_RATE, case.size, timeout=request.timeout)
        try:
            result = measure(sender, listener, stream)
        except AgentError as exc:
            return self._broken(request, str(exc))
        observation = _observation(request, result.lanes[0], str(address))
        return Probed(request, observation, judge(observation))

    def _agent_or_none(self, spec: AgentSpec) -> AgentClient | None:
        try:
            return self._agent(spec)
        except AgentError:
            return None

    @staticmethod
    def _broken(request: Request, why: str) -> Probed:
        observation = Observation(request.case, failure_stage="agent", note=why)
        return Probed(request, observation, judge(observation))


def _observation(request: Request, lane: LaneResult, address: str) -> Observation:
    stats = lane.one_way
    socket_error = lane.socket_error
    note = f"{stats.delivered} of {stats.sent} probes delivered intact"
    if stats.dropped:
        note += f", {stats.dropped} dropped by the listener's full queue"
    return Observation(request.case, sent_dst=address,
                       socket_errno=socket_error[1] if socket_error and
                       socket_error[0] == "socket" else None,
                       send_errno=socket_error[1] if socket_error and
                       socket_error[0] != "socket" else None,
                       listen_errno=lane.listen_error, stats=stats, note=note)
