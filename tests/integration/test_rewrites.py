"""Kernel rewrites of the probe, on IPv6 loopback: the whole probe as sent is compared
with what arrived, so a checksum the kernel writes is `altered` with its bytes named."""

from __future__ import annotations

import sys

import pytest

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import RAW_FIX, RAW_V6

pytestmark = [pytest.mark.skipif(not RAW_V6, reason=RAW_FIX),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="asserts Linux's IPv6 checksum offsets")]


@pytest.fixture(scope="module")
def verdicts():
    agent = AgentClient.start(AgentSpec("inprocess"))
    cases = [Case("::1", 6, p, payload=k) for p in (58, 135) for k in ("hdp", "udp", "raw")]
    try:
        result = Engine(agent, {"::1": agent}).run(cases, timeout=1.0, icmp=False)
    finally:
        agent.close()
    return {(o.case.protocol, o.case.payload): (judge(o), o) for o in result.observations}


@pytest.mark.parametrize("payload", ["hdp", "udp", "raw"])
def test_icmpv6_probe_is_altered_where_the_kernel_writes_its_checksum(verdicts, payload):
    """ICMPv6 raw sockets always checksum at offset 2 (RFC 3542 3.1): the probe leaves
    with bytes 2-3 rewritten, which HDP's destination port, UDP's, or (a raw body) our
    tag's magic holds: still matched to its case, never `lost`."""
    verdict, observation = verdicts[(58, payload)]
    assert verdict.outcome is Outcome.ALTERED, observation
    assert verdict.changes == ("payload",)
    assert verdict.changed_bytes is not None
    named = {int(x) for part in verdict.changed_bytes.split(",")
             for x in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)}
    assert named and named <= {2, 3}, verdict.changed_bytes


@pytest.mark.parametrize("payload", ["hdp", "udp", "raw"])
def test_mobility_header_probe_arrives_byte_for_byte(verdicts, payload):
    """Protocol 135 defaults to a checksum at offset 4, which the sender turns off: the
    probe arrives as sent, with a latency that is a latency."""
    verdict, observation = verdicts[(135, payload)]
    assert verdict.outcome is Outcome.DELIVERED, observation
    assert verdict.changes == () and verdict.changed_bytes is None
    assert verdict.latency_us is not None and 0 <= verdict.latency_us < 1_000_000
