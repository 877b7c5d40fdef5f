"""`@pytest.mark.hdp(count=N, rate=R)`: many probes per case, as a test asserts on them
(`hdp_result.stats`), in the quirk report, and under xdist; run with pytester on loopback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RAW_FIX, RAW_V4

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
COUNT = 300

STREAMS = f"""
import pytest


@pytest.mark.hdp(protocols=[252, 253], families=4, payloads="hdp", count={COUNT}, rate=3000)
def test_nothing_is_lost(hdp_result):
    stats = hdp_result.stats
    assert stats.sent == {COUNT} and stats.loss_ratio < 0.01
    assert stats.latency.clock.value == "kernel" and stats.latency.p99_us < 1_000_000
    assert stats.reordered == 0 and stats.duplicated == 0
    hdp_result.check()


@pytest.mark.hdp(protocols=253, families=4, payloads="udp", count={COUNT}, rate=3000)
def test_udp_payload_too(hdp_result):
    assert hdp_result.stats.delivered == {COUNT}
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider",
                                         "--hdp-lab", "none", *args)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_stats_of_many_probes_in_the_test_and_the_report(pytester, workers):
    pytester.makepyfile(test_streams=STREAMS)
    result = _run(pytester, "--hdp-report", "quirks.json", *workers)
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "quirks.json").read_text())
    cases = {(c["protocol"], c["payload"]): c for c in report["cases"]}
    assert set(cases) == {(252, "hdp"), (253, "hdp"), (253, "udp")}
    for entry in cases.values():
        # Each stream left once, whichever process ran its test: not once per worker.
        assert (entry["count"], entry["rate"]) == (COUNT, 3000)
        assert entry["stats"]["sent"] == entry["stats"]["delivered"] == COUNT
        assert entry["outcome"] == "delivered"
    assert cases[(253, "hdp")]["verdict"] == "pass"


def test_the_quirk_report_shows_the_stats_columns(pytester):
    pytester.makepyfile(test_streams=STREAMS)
    result = _run(pytester, "--hdp-report", "quirks.md", "-k", "nothing_is_lost")
    result.assert_outcomes(passed=2)
    text = (pytester.path / "quirks.md").read_text()
    assert "## Many probes per case" in text
    header = next(line for line in text.splitlines() if line.startswith("| Case | Outcome"))
    for column in ("Sent", "Delivered", "Lost", "Dropped", "Reordered", "Loss (95% CI)",
                   "p50 µs", "p99 µs", "Clock"):
        assert f" {column} |" in header, column
    assert "| 127.0.0.1 IPv4 p253 hdp | delivered | delivered | pass | 300 |" in text


def test_a_one_probe_case_says_it_has_no_statistics(pytester):
    pytester.makepyfile(test_one="""
import pytest


@pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
def test_one(hdp_result):
    hdp_result.stats
""")
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AttributeError: 127.0.0.1-ipv4-p253: a case of one probe "
                                 "has no statistics: give @pytest.mark.hdp(count=N)*"])


@pytest.mark.parametrize(("marker", "needle"), [
    ("count=0", "@pytest.mark.hdp(count=...): give a whole number 1..65536, not 0"),
    ("rate=100", "rate= paces the probes of count=: give count= too"),
    ("count=5, ttl=3", "count= sends probes of `size` filler, not with ttl="),
    ("count=5, listener='none'", "count= needs a listener at the target"),
    ("count=5, rate=0", "@pytest.mark.hdp(rate=...): give probes a second"),
], ids=["count-0", "rate-alone", "ttl", "no-listener", "rate-0"])
def test_a_bad_count_or_rate_is_one_usage_error(pytester, marker, needle):
    pytester.makepyfile(test_bad=f"""
import pytest


@pytest.mark.hdp(protocols=253, {marker})
def test_bad(hdp_result):
    pass
""")
    result = _run(pytester)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    assert needle in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stderr.str()
