"""ICMP-only sweeps next to another process's raw sockets, which make the kernel answer no
"protocol unreachable" for their protocols: the run detects them (Linux /proc/net/raw of
the target's namespace, our own sockets left out by inode), records them, and the cases
they silence are no-answer saying why, never lost."""

from __future__ import annotations

import os
import sys

import pytest

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import RAW_FIX, RAW_V4

pytestmark = [pytest.mark.skipif(not RAW_V4, reason=RAW_FIX),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="/proc/net/raw is Linux's")]

HELD = (251, 253)  # protocols a second sweep's listeners hold while ours runs


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[len("socket:["):-1]))
    return inodes


def test_another_sweeps_listeners_make_their_cases_inconclusive_and_are_named(netns):
    other = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    ours = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    try:
        aside: list[dict] = []
        other.request(messages.Listen(family=4, protocols=HELD, runs=()))
        assert other.next_event(lambda e: e.get("event") == "listening", 10, aside)
        held = _socket_inodes(other.ready["pid"])
        cases = [Case("127.0.0.1", 4, p) for p in range(250, 255)]
        result = Engine(ours, {"127.0.0.1": None}).run(cases, timeout=1.0)
    finally:
        ours.close()
        other.close()
    verdicts = {o.case.protocol: (judge(o), o) for o in result.observations}
    for protocol in range(250, 255):
        verdict, observation = verdicts[protocol]
        if protocol in HELD:
            assert verdict.outcome is Outcome.NO_ANSWER, observation
            assert f"another raw socket of protocol {protocol}" in (observation.note or "")
        else:
            assert verdict.outcome is Outcome.UNREACHABLE, observation
    found = result.foreign_sockets["127.0.0.1"]
    assert set(found) == {f"4/{p}" for p in HELD}, found
    assert all(set(inodes) <= held for inodes in found.values())


def test_a_target_no_agent_can_inspect_says_it_cannot_tell(netns):
    """Off this namespace, with no agent of ours on the target, nobody can read its
    sockets: the report says so rather than claiming there are none."""
    agent = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    try:
        result = Engine(agent, {"198.18.251.1": None}).run(
            [Case("198.18.251.1", 4, 253)], timeout=0.3, icmp_time=0.5)
    finally:
        agent.close()
    assert "cannot tell" in result.foreign_sockets["198.18.251.1"]["unavailable"]
    assert judge(result.observations[0]).outcome is not Outcome.LOST
