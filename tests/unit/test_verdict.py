"""Observation -> Outcome, one table row per rule of DESIGN.md's vocabulary."""

from __future__ import annotations

import dataclasses

import pytest

from hdp.case import Case, Delivery, IcmpReport, Observation
from hdp.verdict import Outcome, judge

V4 = Case("127.0.0.1", 4, 253)
V6 = Case("::1", 6, 253)


def _delivery(**changes: object) -> Delivery:
    base = Delivery(src="127.0.0.1", dst="127.0.0.1", wire_protocol=253, ttl=64, dscp=0,
                    ecn=0, length=96, intact=True, latency_us=12.5)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _observed(case: Case = V4, **fields: object) -> Observation:
    base = Observation(case, sent_bytes=96, sent_src=case.target)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("observation", "outcome", "errno", "changes"), [
    (_observed(deliveries=(_delivery(),)), Outcome.DELIVERED, None, ()),
    (_observed(socket_errno="EINVAL"), Outcome.SOCKET_ERROR, "EINVAL", ()),
    (_observed(send_errno="EOPNOTSUPP"), Outcome.SEND_ERROR, "EOPNOTSUPP", ()),
    (_observed(Case("127.0.0.1", 4, 259), deliveries=(_delivery(wire_protocol=3),)),
     Outcome.ALTERED, None, ("protocol",)),
    (_observed(deliveries=(_delivery(src="10.0.0.1"),)), Outcome.ALTERED, None, ("src",)),
    (_observed(deliveries=(_delivery(dscp=10, ecn=1),)), Outcome.ALTERED, None, ("dscp", "ecn")),
    (_observed(deliveries=(_delivery(length=90, intact=False),)), Outcome.ALTERED, None,
     ("length", "payload")),
    (_observed(icmp=(IcmpReport(4, 3, 2, "127.0.0.1"),)), Outcome.UNREACHABLE, None, ()),
    (_observed(icmp=(IcmpReport(4, 3, 13, "10.9.0.1"),)), Outcome.PROHIBITED, None, ()),
    (_observed(icmp=(IcmpReport(4, 3, 4, "10.9.0.1", mtu=1280),)), Outcome.TOO_BIG, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 4, 1, "::1"),)), Outcome.UNREACHABLE, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 1, 1, "fd00::1"),)), Outcome.PROHIBITED, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 1, 6, "fd00::1"),)), Outcome.PROHIBITED, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 1, 4, "fd00::1"),)), Outcome.UNREACHABLE, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 2, 0, "fd00::1", mtu=1280),)), Outcome.TOO_BIG, None, ()),
    # TTL / hop limit exceeded in transit: the probe could not get there.
    (_observed(icmp=(IcmpReport(4, 11, 0, "10.9.0.1"),)), Outcome.UNREACHABLE, None, ()),
    (_observed(V6, icmp=(IcmpReport(6, 3, 0, "fd00::1"),)), Outcome.UNREACHABLE, None, ()),
    # Reassembly time exceeded says fragments went missing; the listener saw nothing.
    (_observed(icmp=(IcmpReport(4, 11, 1, "127.0.0.1"),)), Outcome.LOST, None, ()),
    (_observed(listen_errno="EPROTONOSUPPORT"), Outcome.LISTEN_ERROR, "EPROTONOSUPPORT", ()),
    (_observed(failure_stage="send"), Outcome.ERROR, None, ()),
    (_observed(failure_stage="listen"), Outcome.ERROR, None, ()),
    (_observed(failure_stage="queue"), Outcome.ERROR, None, ()),
    (_observed(failure_stage="queue", icmp=(IcmpReport(4, 3, 13, "10.9.0.1"),)),
     Outcome.PROHIBITED, None, ()),
    (_observed(), Outcome.LOST, None, ()),
], ids=lambda v: getattr(v, "value", None) if isinstance(v, Outcome) else None)
def test_judge(observation, outcome, errno, changes):
    verdict = judge(observation)
    assert (verdict.outcome, verdict.errno, verdict.changes) == (outcome, errno, changes)


def test_hops_and_latency_come_from_the_delivery():
    verdict = judge(_observed(deliveries=(_delivery(ttl=62),)))
    assert (verdict.hops, verdict.latency_us) == (2, 12.5)


def test_ipv6_addresses_compare_as_addresses():
    observation = _observed(V6, sent_src="0:0::1",
                            deliveries=(_delivery(src="::1", dst="::0:1", wire_protocol=253),))
    assert judge(observation).outcome is Outcome.DELIVERED


def test_icmp_without_listener_is_marked_inferred():
    verdict = judge(_observed(listened=False, icmp=(IcmpReport(4, 3, 2, "127.0.0.1"),)))
    assert verdict.outcome is Outcome.UNREACHABLE and verdict.inferred
    assert judge(_observed(listened=False)).inferred


def test_case_ids_and_json_round_trip():
    case = Case("127.0.0.1", 4, 253)
    assert case.id == "127.0.0.1-ipv4-p253"
    assert Case("::1", 6, 17, payload="udp").id == "::1-ipv6-p17-udp"
    assert Case.from_json(case.to_json()) == case
