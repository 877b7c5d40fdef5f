"""Cases of many probes, the pure parts: their verdict, the profile rules that name them,
the report that carries their statistics, and the records an agent's columns become."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdp.agent.messages import Lane
from hdp.agent.stream_io import (
    FLAG_HOLD_KERNEL,
    FLAG_INTACT,
    FLAG_KERNEL,
    FLAG_REFUSED,
)
from hdp.case import Case, Observation
from hdp.measure import _echoes, _records
from hdp.profile import ProfileError, expect, load_profile, record_report
from hdp.report import CaseResult, build_report, loads, render_markdown, render_table
from hdp.stats import ClockKind, ProbeRecord, Reception, case_stats, estimate_offset
from hdp.verdict import Outcome, judge

ROOT = Path(__file__).resolve().parents[2]
K, OK = FLAG_KERNEL, FLAG_INTACT


def _stats(arrived: list[int], sent: int = 10, *, drops: int | None = 0,
           corrupt: tuple[int, ...] = (), refused: str | None = None):
    """Case stats of `sent` probes of which those in `arrived` came, 5 µs each."""
    probes = []
    for seq in range(sent):
        if refused:
            probes.append(ProbeRecord(seq, None, refused=refused))
            continue
        copies = [Reception(1000 * seq + 5000)] if seq in arrived else []
        copies += [Reception(1000 * seq + 6000, intact=False)] if seq in corrupt else []
        probes.append(ProbeRecord(seq, 1000 * seq, receptions=tuple(copies)))
    return case_stats(probes, drops)


CASE = Case("127.0.0.1", 4, 253, count=10)


@pytest.mark.parametrize(("stats", "extra", "outcome", "errno"), [
    (_stats(list(range(10))), {}, Outcome.DELIVERED, None),
    (_stats([0]), {}, Outcome.LOST, None),  # first-packet: 1 of 10
    (_stats(list(range(9)), drops=1), {}, Outcome.ERROR, None),  # our queue, not the path
    (_stats(list(range(8)), drops=1), {}, Outcome.LOST, None),  # one lost beside it
    (_stats(list(range(9)), drops=None), {}, Outcome.LOST, None),  # macOS: no counter
    (_stats(list(range(9)), corrupt=(9,)), {}, Outcome.ALTERED, None),
    (_stats([], refused="ENOBUFS"), {}, Outcome.SEND_ERROR, "ENOBUFS"),
    (_stats([]), {"listen_errno": "EPERM"}, Outcome.LISTEN_ERROR, "EPERM"),
    (_stats([], refused="EPROTONOSUPPORT"), {"socket_errno": "EPROTONOSUPPORT"},
     Outcome.SOCKET_ERROR, "EPROTONOSUPPORT"),
], ids=["all", "first-only", "dropped", "lost-and-dropped", "no-counter", "corrupted",
        "refused", "listen", "socket"])
def test_the_verdict_of_many_probes(stats, extra, outcome, errno):
    verdict = judge(Observation(CASE, stats=stats, **extra))
    assert (verdict.outcome, verdict.errno) == (outcome, errno)
    if outcome is Outcome.DELIVERED:
        assert verdict.latency_us == pytest.approx(5.0)


def test_an_agent_that_failed_is_error_whatever_the_stats_say():
    observation = Observation(CASE, stats=_stats(list(range(10))), failure_stage="agent",
                              note="listener gone")
    assert judge(observation).outcome is Outcome.ERROR


def test_many_rules_apply_to_many_probes_only(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("profile: lab\napplies: {system: linux}\nrules:\n"
                    "  - {many: true, protocols: [253], expect: lost, why: first only}\n"
                    "  - {many: false, protocols: [253], expect: unreachable, why: one}\n")
    profile = load_profile(path)
    assert expect(profile, Case("x", 4, 253, count=2)).outcome == "lost"
    # count=1 is a stream of one probe: as a one-probe case, no second packet to lose.
    assert expect(profile, Case("x", 4, 253, count=1)).outcome == "unreachable"
    assert expect(profile, Case("x", 4, 253)).outcome == "unreachable"


@pytest.mark.parametrize(("rules", "fragment"), [
    (["{many: yes-please, protocols: [2], expect: lost, why: x}"],
     "many is 'yes-please': give true (cases of many probes only), false"),
    (["{protocols: [2], expect: lost, why: x}",
      "{many: true, protocols: [2], expect: delivered, why: y}"],
     "can never match: rule 1 already covers all its cases"),
])
def test_a_bad_many_is_one_line(tmp_path, rules, fragment):
    path = tmp_path / "lab.yaml"
    path.write_text("profile: lab\napplies: {system: linux}\nrules:\n"
                    + "".join(f"  - {rule}\n" for rule in rules))
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert fragment in str(raised.value)


def test_the_first_packet_profile_expects_many_probes_of_unknown_protocols_lost():
    profile = load_profile(ROOT / "conformance" / "profiles" / "lab-first-packet.yaml")
    many = Case("first-packet/server", 4, 253, path="first-packet", count=100)
    assert expect(profile, many).outcome == "lost"
    assert expect(profile, Case("first-packet/server", 4, 253, path="first-packet")
                  ).outcome == "delivered"  # one probe: the first of its flow
    assert expect(profile, Case("first-packet/server", 4, 17, path="first-packet",
                                count=100)).outcome == "delivered"
    assert expect(profile, Case("first-packet/server", 6, 44, path="first-packet",
                                count=100)).outcome == "delivered"


def _report(*cases: tuple[Case, Observation]) -> dict:
    return build_report([CaseResult(case, observation, judge(observation), "lost", "xfail")
                         for case, observation in cases])


def test_a_report_carries_the_stats_and_reads_them_back():
    first = Case("s", 4, 253, count=10, rate=500.0, path="first-packet")
    one = Case("s", 4, 253, path="first-packet")
    report = _report((first, Observation(first, stats=_stats([0]))),
                     (one, Observation(one, deliveries=())))
    again = loads(json.dumps(report))
    many = next(entry for entry in again["cases"] if "count" in entry)
    assert (many["count"], many["rate"], many["outcome"]) == (10, 500.0, "lost")
    assert (many["stats"]["sent"], many["stats"]["lost"]) == (10, 9)
    assert len(again["cases"]) == 2  # the same protocol with and without count: two cases
    text = render_markdown(again)
    assert "## Many probes per case" in text
    assert "| s IPv4 p253 hdp | lost | lost | xfail | 10 | 0 | 1 | 9 | 0 |" in text
    assert "s IPv4 hdp x10 probes: 253 lost" in text
    assert "Many probes per case" in render_table(again)
    # A profile recorded from the run holds the one-probe case only.
    recorded = record_report(again, "lab", "test")
    assert all("many" not in rule for rule in recorded["rules"])


def test_stats_that_do_not_add_up_are_refused_on_reading():
    case = Case("s", 4, 253, count=10)
    report = _report((case, Observation(case, stats=_stats([0]))))
    report["cases"][0]["stats"]["delivered"] = 11
    with pytest.raises(Exception, match="stats"):
        loads(json.dumps(report))


def _table(rows: list[tuple[int, int, int, int, int]]) -> dict:
    names = ("lane", "seq", "ns", "flags", "hold_ns")
    return {"columns": {name: [row[i] for row in rows] for i, name in enumerate(names)},
            "refusals": {}, "drops": {}}


def test_records_of_columns_become_probe_records():
    sent = _table([(0, 0, 100, K, -1), (0, 1, 200, 0, -1), (0, 2, 300, FLAG_REFUSED, -1),
                   (1, 0, 150, K, -1)])
    sent["refusals"] = {2: "ENOBUFS"}
    heard = _table([(0, 1, 260, K | OK, -1), (0, 0, 170, K | OK, -1), (0, 0, 190, K | OK, -1),
                    (1, 0, 155, K | OK, -1), (0, 1, 270, K, -1)])
    probes = _records(0, 3, sent, heard, None)
    assert probes[0] == ProbeRecord(0, 100, ClockKind.KERNEL, (
        Reception(170, True, ClockKind.KERNEL), Reception(190, True, ClockKind.KERNEL)))
    assert probes[1].clock is ClockKind.USER and len(probes[1].receptions) == 2
    assert probes[2].refused == "ENOBUFS"
    stats = case_stats(probes, 0)
    assert (stats.sent, stats.delivered, stats.duplicated, stats.corrupted) == (2, 2, 1, 1)
    assert _records(0, 3, sent, heard, ("socket", "EPERM"))[0].refused == "EPERM"


def test_reflected_probes_are_echo_rounds_that_hold_the_offset():
    """A listener clock 50 µs ahead: t2 = t1 + 10 µs on the wire + 50 µs offset."""
    sent = _table([(0, seq, 1_000_000 * seq, K, -1) for seq in range(5)])
    heard = _table([(0, seq, 1_000_000 * seq + 60_000, K | OK | FLAG_HOLD_KERNEL, 2_000)
                    for seq in range(5)])
    echoes = _table([(0, seq, 1_000_000 * seq + 22_000 + seq * 1000, K | OK, -1)
                     for seq in range(5)])
    rounds = _echoes(sent, heard, echoes)
    estimate = estimate_offset(rounds)
    assert len(rounds) == 5 and estimate.delay_ns == 20_000
    assert abs(estimate.offset_ns - 50_000) <= estimate.uncertainty_ns
    probes = _records(0, 5, sent, echoes, None, holds=heard)
    assert all(p.receptions[0].hold_ns == 2_000 for p in probes)


def test_a_lane_label_names_its_protocol():
    from hdp.measure import lane_label

    assert [lane_label(lane) for lane in (Lane("raw", 253, "hdp"), Lane("udp"), Lane("tcp"),
                                          Lane("raw", 47, "udp"))] == [
        "HDP (253)", "UDP", "TCP", "UDP header (47)"]
