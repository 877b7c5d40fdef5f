"""The engine on loopback, for real: outcomes per case through real agents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import LOOPBACK, RAW_FIX, RAW_V4

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="asserts Linux's raw-socket behaviour")


@pytest.fixture
def agent() -> Iterator[AgentClient]:
    client = AgentClient.start(AgentSpec("inprocess"))
    yield client
    client.close()


def _outcomes(result) -> dict[int, tuple]:
    verdicts = {o.case.protocol: (judge(o), o) for o in result.observations}
    return verdicts


def test_delivered_refused_and_renumbered(agent, family):
    target = LOOPBACK[family]
    cases = [Case(target, family, p) for p in (-1, 0, 17, 253, 259)]
    result = Engine(agent, {target: agent}).run(cases, timeout=1.0)
    assert [o.case for o in result.observations] == cases  # one Observation per case
    verdicts = _outcomes(result)
    delivered, _ = verdicts[253]
    assert delivered.outcome is Outcome.DELIVERED and delivered.hops == 0
    assert delivered.latency_us is not None and 0 < delivered.latency_us < 1_000_000
    assert verdicts[17][0].outcome is Outcome.DELIVERED
    if sys.platform.startswith("linux"):
        assert (verdicts[-1][0].outcome, verdicts[-1][0].errno) == (Outcome.SOCKET_ERROR, "EINVAL")
        assert (verdicts[0][0].outcome, verdicts[0][0].errno) == (
            Outcome.SOCKET_ERROR, "EPROTONOSUPPORT")
        renumbered, _ = verdicts[259]
        if family == 4:  # goes out as 3, and is still recognised as case 259
            assert renumbered.outcome is Outcome.ALTERED
            assert renumbered.changes == ("protocol",) and renumbered.wire_protocol == 3
        else:
            assert (renumbered.outcome, renumbered.errno) == (Outcome.SEND_ERROR, "EINVAL")
    assert result.unaccounted == 0 and not result.interrupted


@linux_only
def test_icmp_protocol_unreachable_when_nothing_listens(netns, family):
    """No listener on the target: the verdict is inferred from ICMP, as nmap -sO does.

    Runs in a namespace of its own: any raw socket of the protocol elsewhere on the host
    (another test, another tool) would stop the kernel from answering.
    """
    target = LOOPBACK[family]
    cases = [Case(target, family, p) for p in (17, 253, 254)]
    agent = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    try:
        result = Engine(agent, {target: None}).run(cases, timeout=1.0)
    finally:
        agent.close()
    verdicts = _outcomes(result)
    for protocol in (253, 254):
        verdict, observation = verdicts[protocol]
        assert verdict.outcome is Outcome.UNREACHABLE, observation
        assert verdict.inferred and verdict.icmp is not None
        assert (verdict.icmp.type, verdict.icmp.code) == ((3, 2) if family == 4 else (4, 1))
        assert verdict.icmp.source == target
        assert verdict.wire_protocol == protocol
    # UDP has a kernel handler: it never answers "protocol unreachable".
    assert verdicts[17][0].outcome is not Outcome.UNREACHABLE


def test_child_agent_sweeps_loopback(family):
    target = LOOPBACK[family]
    child = AgentClient.start(AgentSpec.parse("child"))
    try:
        assert child.process is not None and child.ready["pid"] == child.process.pid
        result = Engine(child, {target: child}).run(
            [Case(target, family, p) for p in range(250, 256)], timeout=1.0)
        assert {judge(o).outcome for o in result.observations} == {Outcome.DELIVERED}
    finally:
        child.close()
    assert child.process.returncode == 0


@linux_only
def test_agent_in_a_network_namespace(netns, family):
    agent = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    try:
        identify = subprocess.run(["ip", "netns", "identify", str(agent.ready["pid"])],
                                  capture_output=True, text=True, check=True)
        assert identify.stdout.strip() == netns
        target = LOOPBACK[family]
        result = Engine(agent, {target: agent}).run(
            [Case(target, family, 253), Case(target, family, 0)], timeout=1.0)
        outcomes = [judge(o).outcome for o in result.observations]
        assert outcomes == [Outcome.DELIVERED, Outcome.SOCKET_ERROR]
    finally:
        agent.close()


def test_listener_agent_killed_mid_sweep_still_yields_every_outcome(agent):
    """One target's listener dies after another target's first delivery, before it read
    its own (stopped once the probes are on their way): every case gets one outcome."""
    listener = AgentClient.start(AgentSpec.parse("child"))
    assert listener.process is not None
    pid = listener.process.pid
    killed = []

    def kill_on_first_progress(done: int, total: int) -> None:
        if not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(done)

    lost, heard = "127.0.0.1", "127.0.0.2"  # the second heard by the sender's own agent
    cases = [Case(target, 4, p) for target in (lost, heard) for p in range(1, 256)]
    try:
        result = Engine(agent, {lost: listener, heard: agent}).run(
            cases, timeout=1.0, icmp=False, progress=kill_on_first_progress,
            started=lambda count: os.kill(pid, signal.SIGSTOP))
    finally:
        if not killed:
            os.kill(pid, signal.SIGCONT)
        listener.close()
    assert killed, "the sweep never reported progress"
    assert len(result.observations) == len(cases)
    outcomes = {target: {judge(o).outcome for o in result.observations
                         if o.case.target == target} for target in (lost, heard)}
    assert outcomes[heard] == {Outcome.DELIVERED}
    assert Outcome.ERROR in outcomes[lost]  # our listener died: no verdict about the probe
    assert outcomes[lost] <= {Outcome.DELIVERED, Outcome.ERROR}
    broken = [o for o in result.observations if judge(o).outcome is Outcome.ERROR]
    assert all("listener lost" in (o.note or "") for o in broken)
    assert any("exited during the run" in why for why in result.broken)


def _udp_to_a_closed_port_with_a_late_listener(agent, target, family):
    listener = AgentClient.start(AgentSpec.parse("child"))
    assert listener.process is not None
    pid = listener.process.pid
    try:
        result = Engine(agent, {target: listener}).run(
            [Case(target, family, 17, payload="udp")], timeout=1.0,
            started=lambda n: os.kill(pid, signal.SIGSTOP),  # before it reads the datagram
            progress=lambda done, total: os.kill(pid, signal.SIGCONT))  # once ICMP is in
    finally:
        os.kill(pid, signal.SIGCONT)
        listener.close()
    (observation,) = result.observations
    return observation


def test_port_unreachable_before_the_listener_speaks_is_still_a_delivery(agent, family):
    """UDP to a closed port: the target's raw listener holds the datagram before its kernel
    answers port unreachable, however late the listener's agent reports it."""
    # Set up when the ICMP is in first: rarely the listener reports before it is stopped,
    # and the batch ends on that delivery without waiting for the ICMP. Try again then.
    for _attempt in range(3):
        observation = _udp_to_a_closed_port_with_a_late_listener(agent, LOOPBACK[family], family)
        if observation.icmp:
            break
    port_unreachable = (3, 3) if family == 4 else (1, 4)
    assert [(r.type, r.code) for r in observation.icmp] == [port_unreachable], \
        "no port unreachable first in 3 tries: is UDP port 420 open here?"
    assert judge(observation).outcome is Outcome.DELIVERED


def test_sender_agent_killed_mid_sweep_makes_error_never_a_conformance_outcome():
    """The sender (also the listener) dies after the first delivery of a batch larger
    than one request: every case still has one outcome, and none of what the death
    left unsettled is a send-error, lost or any other claim about the probe."""
    sender = AgentClient.start(AgentSpec.parse("child"))
    assert sender.process is not None

    def kill_on_first_progress(done: int, total: int) -> None:
        if sender.process.poll() is None:
            os.kill(sender.process.pid, signal.SIGKILL)

    cases = [Case("127.0.0.1", 4, 253, size=64 + i % 100) for i in range(3 * 4096)]
    try:
        result = Engine(sender, {"127.0.0.1": sender}).run(
            cases, timeout=0.5, icmp=False, progress=kill_on_first_progress)
    finally:
        sender.close()
    assert len(result.observations) == len(cases)
    outcomes = [judge(o).outcome for o in result.observations]
    assert set(outcomes) <= {Outcome.DELIVERED, Outcome.ERROR}, set(outcomes)
    broken = [o for o in result.observations if judge(o).outcome is Outcome.ERROR]
    assert broken and all(("never sent" in (o.note or "")) or ("listener lost" in (o.note or ""))
                          for o in broken)
    assert result.broken == ["agent child exited during the run"]


def test_sender_agent_gone_before_its_first_round_makes_error():
    """ICMP-only: the sender is killed and reaped once its first round is written, before
    any event is read: every case is error, never no-answer or lost."""
    sender = AgentClient.start(AgentSpec.parse("child"))
    assert sender.process is not None

    def kill_and_reap(count: int) -> None:
        os.kill(sender.process.pid, signal.SIGKILL)
        sender.process.wait()

    cases = [Case("127.0.0.1", 4, p) for p in range(1, 256)]
    try:
        result = Engine(sender, {"127.0.0.1": None}).run(cases, timeout=0.5,
                                                          started=kill_and_reap)
    finally:
        sender.close()
    assert len(result.observations) == len(cases)
    outcomes = {judge(o).outcome for o in result.observations}
    assert Outcome.ERROR in outcomes and outcomes <= {Outcome.ERROR, Outcome.UNREACHABLE}
    assert result.broken


def test_unknown_host_is_an_outcome_not_a_crash(agent, monkeypatch):
    """A name that does not resolve: each of its cases is a send-error naming EAI_*."""
    import hdp.engine

    monkeypatch.setattr(hdp.engine, "resolve",
                        lambda target, family: (None, "EAI_NONAME") if target == "nosuch.invalid"
                        else ("127.0.0.1", None))
    cases = [Case("nosuch.invalid", 4, 253), Case("127.0.0.1", 4, 253)]
    result = Engine(agent, {"nosuch.invalid": agent, "127.0.0.1": agent}).run(cases)
    first, second = (judge(o) for o in result.observations)
    assert (first.outcome, first.errno) == (Outcome.SEND_ERROR, "EAI_NONAME")
    assert "cannot resolve" in (result.observations[0].note or "")
    assert second.outcome is Outcome.DELIVERED


def test_agent_that_cannot_start_names_its_stderr():
    spec = AgentSpec("netns", f"hdp-missing-{uuid.uuid4().hex[:6]}")
    with pytest.raises(AgentError) as caught:
        AgentClient.start(spec, timeout=10)
    message = str(caught.value)
    assert "exited before it was ready" in message and "stderr" in message
    assert "\n" not in message


def test_large_batch_leaves_nothing_unaccounted(agent):
    """15,300 probes in one batch: the agent drains arrivals after the last send, so the
    deadline must count from the latest evidence, not from the end of sending."""
    cases = [Case("127.0.0.1", 4, p, size=64 + s) for s in range(60) for p in range(1, 256)]
    result = Engine(agent, {"127.0.0.1": agent}).run(cases, timeout=1.0, icmp=False)
    outcomes = [judge(o).outcome for o in result.observations]
    assert result.unaccounted == 0 and outcomes.count(Outcome.LOST) == 0
    assert not any(result.drops.values()), result.drops
