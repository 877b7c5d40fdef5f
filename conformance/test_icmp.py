"""ICMP-only verdicts: what a host that runs no listener says about protocols it lacks."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge


@pytest.fixture(scope="module")
def private_stack() -> Iterator[AgentClient]:
    """An agent alone in a network namespace of its own.

    Any raw socket of protocol P on a host stops its kernel from answering P with
    "protocol unreachable"; other tests' listeners (other xdist workers too) would make
    this check flaky on a shared loopback, so it runs where nothing else listens.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux network namespaces for an undisturbed loopback")
    try:
        agent = AgentClient.start(AgentSpec("userns"))
    except AgentError as exc:
        pytest.skip(f"{exc}; to fix: enable unprivileged user namespaces "
                    "(sysctl kernel.unprivileged_userns_clone=1) or run as root")
    yield agent
    agent.close()


@pytest.mark.hdp(protocols="253,254", payloads=["hdp"], paths=["loopback"])
def test_unknown_protocol_draws_protocol_unreachable(hdp_case, private_stack):
    """RFC 1122 3.2.2.1 / RFC 4443 3.1: a host without the protocol says so with ICMP."""
    case = Case(hdp_case.target, hdp_case.family, hdp_case.protocol, path=hdp_case.path)
    result = Engine(private_stack, {case.target: None}).run([case], timeout=1.0)
    verdict = judge(result.observations[0])
    assert verdict.inferred, f"{hdp_case.id}: a listener answered, not ICMP"
    assert verdict.outcome is Outcome.UNREACHABLE, (
        f"{hdp_case.id}: no ICMP protocol unreachable came back "
        f"({verdict.outcome.value})")
    assert verdict.icmp is not None and verdict.icmp.source == case.target
