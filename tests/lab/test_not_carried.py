"""A chapter check on a path that carries nothing of its protocol is inconclusive, not failed.

`firewall-drop` forwards only TCP, UDP and ICMP: a UDP-Lite datagram never reaches the
server, so what a UDP-Lite receiver does with coverage cannot be seen across it.
"""

from __future__ import annotations

import json

from tests.lab.conftest import requires_lab

pytestmark = requires_lab


def test_udplite_checks_across_a_firewall_that_drops_udplite_are_inconclusive(pytester):
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--pyargs", "pytest_hdp.conformance.test_udplite", "-p", "no:randomly",
        "--hdp-lab", "firewall-drop", "-k", "send_coverage or covered_corruption_dropped",
        "--hdp-report", str(report), "-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*inconclusive: udplite-send-coverage on firewall-drop/server"
                                 " IPv4: observed no-answer*does not carry UDP-Lite*"])
    checks = json.loads(report.read_text())["checks"]
    assert sorted(c["check"] for c in checks) == sorted(
        ["udplite-send-coverage", "udplite-covered-corruption-dropped"] * 2)
    assert {c["verdict"] for c in checks} == {"inconclusive"}
    assert {c["observed"] for c in checks} == {"no-answer"}


def test_udplite_checks_across_a_router_that_carries_udplite_decide(pytester):
    result = pytester.runpytest_subprocess(
        "--pyargs", "pytest_hdp.conformance.test_udplite", "-p", "no:randomly",
        "--hdp-lab", "routed", "-k", "send_coverage")
    result.assert_outcomes(passed=2)
