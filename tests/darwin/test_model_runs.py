"""Whole runs under the xnu model: `hdp sweep` of loopback over protocols 1-255 and the
conformance suite, each in a process of its own (and a network namespace of its own where
this process may create one), as a user on macOS would start them.

What they prove: the macOS code paths give one verdict per case, and every refusal is one
xnu makes (darwin.yaml says which), none caused by our own calls. What they cannot: that
macOS behaves as the model says (see tests/darwin/xnu.py); only a run on a Mac does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdp import profile as profiles
from hdp.case import Case
from hdp.verdict import Outcome, Verdict
from tests.darwin.conftest import ROOT, requires_model, run_under_model

pytestmark = requires_model

DARWIN = ROOT / "conformance" / "profiles" / "darwin.yaml"
# The refusals the model makes on purpose (xnu's socket()); nothing else may fail locally.
DELIBERATE = {(4, 50), (4, 51), (6, 43), (6, 44), (6, 50), (6, 51), (6, 60)}
LOCAL_FAILURES = {"listen-error", "socket-error", "send-error"}


def _sweep(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "sweep.json"
    done = run_under_model("hdp", "sweep", "127.0.0.1", "::1", "--agent", "inprocess",
                           "--format", "json", "--out", str(out), *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(out.read_text())


def _verdict(entry: dict) -> Verdict:
    return Verdict(Outcome(entry["outcome"]), errno=entry.get("errno"),
                   changes=tuple(entry.get("changes") or ()),
                   wire_protocol=entry.get("wire_protocol"))


@pytest.mark.parametrize("payload", ["hdp", "udp"])
def test_sweep_of_loopback_gives_a_verdict_per_case_that_darwin_yaml_expects(tmp_path, payload):
    report = _sweep(tmp_path, "--protocols", "1-255", "--payload", payload)
    assert report["platform"]["system"] == "darwin"
    cases = {(c["target"], c["family"], c["protocol"]): c for c in report["cases"]}
    assert set(cases) == {(t, f, p) for t, f in (("127.0.0.1", 4), ("::1", 6))
                          for p in range(1, 256)}, "one case per target, family, protocol"
    failed = {(f, p): (c["outcome"], c["errno"]) for (_, f, p), c in cases.items()
              if c["outcome"] in LOCAL_FAILURES}
    assert set(failed) == DELIBERATE, failed
    assert {errno for _, errno in failed.values()} == {"EOPNOTSUPP"}
    darwin = profiles.load_profile(DARWIN)
    wrong = []
    for (target, family, protocol), entry in cases.items():
        case = Case(target, family, protocol, payload, path="loopback")
        expected = profiles.expect(darwin, case)
        if not profiles.satisfied(expected, _verdict(entry)):
            wrong.append(f"{case.id}: {profiles.describe_mismatch(expected, _verdict(entry))}")
    assert not wrong, "\n".join(wrong)
    delivered = [c for c in cases.values() if c["outcome"] == "delivered"]
    assert len(delivered) >= 240 * 2, "most protocols must arrive intact under the model"


def test_icmp_only_sweep_is_unreachable_over_ipv4_and_no_answer_over_ipv6(tmp_path):
    """--listener none: IPv4 goes out header-included (host-order ip_len, xnu's way) and
    draws protocol unreachable; IPv6 cannot (no IPV6_HDRINCL), and on this very host our
    own socket takes the probe, so the honest verdict is no-answer, never lost."""
    report = _sweep(tmp_path, "--protocols", "250-254", "--listener", "none")
    by_family: dict[int, set[str]] = {}
    for case in report["cases"]:
        by_family.setdefault(case["family"], set()).add(case["outcome"])
        assert case["inferred"] is True
    assert by_family[6] == {"no-answer"}
    assert by_family[4] <= {"unreachable", "no-answer"} and "unreachable" in by_family[4]
    notes = {c["note"] for c in report["cases"] if c["family"] == 6}
    assert notes and all("no ICMP possible" in n for n in notes)


def test_conformance_suite_completes_without_failures_or_errors(tmp_path):
    """The whole suite, as `pytest conformance --hdp-lab none` on a Mac would run it."""
    report_path = tmp_path / "quirks.json"
    done = run_under_model(
        "pytest", "conformance", "--hdp-lab", "none", "--hdp-privilege", "direct",
        "--hdp-protocols", "1-255", "--hdp-report", str(report_path), "-p", "no:randomly",
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-q", "--no-header", "-rfE", f"--basetemp={tmp_path / 'base'}")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " failed" not in summary and " error" not in summary, summary
    report = json.loads(report_path.read_text())
    assert report["platform"]["system"] == "darwin"
    verdicts = {c["verdict"] for c in report["cases"]}
    assert verdicts <= {"pass", "xfail"}, verdicts
    assert len({(c["target"], c["family"], c["protocol"], c["payload"])
                for c in report["cases"]}) == 2 * 2 * 255


def test_hdp_stats_labels_every_send_stamp_user_where_xnu_has_none(tmp_path):
    """xnu stamps what it receives (SO_TIMESTAMP) but nothing it sends: every latency is
    then from the process's send time, and says so; the rest is counted as on Linux,
    but for the kernel's drop counter, which macOS does not give (lost and dropped
    unknown: `Lost <= N`)."""
    out = tmp_path / "stats.json"
    done = run_under_model("hdp", "stats", "127.0.0.1", "::1", "--count", "200", "--rate",
                           "2000", "--agent", "inprocess", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["platform"]["system"] == "darwin"
    for run in report["runs"]:
        assert (run["tx_stamps"], run["rx_stamps"], run["clock"]) == ("user", "kernel",
                                                                       "shared")
        assert any("macOS has no SO_TIMESTAMPING" in note for note in run["notes"])
    assert {(c["family"], c["kind"]) for c in report["cases"]} == {
        (f, k) for f in (4, 6) for k in ("raw", "udp", "tcp")}
    for case in report["cases"]:
        stats = case["stats"]
        assert (stats["delivered"], stats["lost"], stats["dropped"]) == (200, None, None)
        assert stats["latency"]["clock"] == "user" and stats["latency"]["min_us"] >= 0


def test_hdp_stats_flood_goes_a_packet_a_call_where_xnu_has_no_sendmmsg(tmp_path):
    """xnu has neither sendmmsg nor recvmmsg, nor a drop counter: a flood sends and reads
    one packet a call, and what the kernel dropped is inside `lost` (dropped unknown)."""
    out = tmp_path / "flood.json"
    done = run_under_model("hdp", "stats", "127.0.0.1", "::1", "--flood", "--count", "3000",
                           "--agent", "inprocess", "--listener", "inprocess", "--out",
                           str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["platform"]["system"] == "darwin"
    assert [c["family"] for c in report["cases"]] == [4, 6]
    for case in report["cases"]:
        assert not case["batched_send"] and not case["batched_receive"]
        assert case["dropped"] is None and case["socket_drops"] is None
        assert case["sent"] == 3000 and case["sent"] == case["delivered"] + case["lost"]
        assert case["duplicated"] == case["corrupted"] == 0
