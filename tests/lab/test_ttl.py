"""A probe whose TTL runs out at the router: unreachable, from the router that said so."""

from __future__ import annotations

import json

from tests.lab.conftest import requires_lab

pytestmark = requires_lab

SUITE = """
import pytest

@pytest.mark.hdp(protocols=253, payloads="hdp", ttl={ttl})
def test_ttl(hdp_result):
    hdp_result.expect("{expect}")
"""


def test_a_ttl_below_the_hop_count_is_unreachable_from_the_router(pytester):
    pytester.makepyfile(test_ttl=SUITE.format(ttl=1, expect="unreachable"))
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("--hdp-lab", "routed", "-p", "no:randomly",
                                           "--hdp-report", str(report))
    result.assert_outcomes(passed=2)
    cases = json.loads(report.read_text())["cases"]
    assert {(c["family"], c["outcome"]) for c in cases} == {(4, "unreachable"),
                                                           (6, "unreachable")}
    # the router's side facing the client, not the server, said it
    assert {c["icmp"]["from"] for c in cases} == {"198.18.1.2", "fd68:6470:0:1::2"}


def test_a_ttl_that_covers_the_hop_count_is_delivered(pytester):
    pytester.makepyfile(test_ttl=SUITE.format(ttl=2, expect="delivered"))
    result = pytester.runpytest_subprocess("--hdp-lab", "routed", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
