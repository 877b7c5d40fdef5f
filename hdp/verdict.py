"""Observation -> Outcome: the one place that decides what happened to a probe (pure)."""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hdp.case import Delivery, IcmpReport, Observation
from hdp.quick_init import quick_init
from hdp.wire.icmp import (
    ICMP4_PROHIBITED_CODES,
    ICMP6_PROHIBITED_CODES,
    Icmp4TimeExceeded,
    Icmp4Type,
    Icmp4Unreach,
    Icmp6ParamProblem,
    Icmp6TimeExceeded,
    Icmp6Type,
)

if TYPE_CHECKING:
    from hdp.stats import CaseStats


class Outcome(str, enum.Enum):
    DELIVERED = "delivered"
    ALTERED = "altered"
    UNREACHABLE = "unreachable"
    PROHIBITED = "prohibited"
    TOO_BIG = "too-big"
    LOST = "lost"
    SEND_ERROR = "send-error"
    SOCKET_ERROR = "socket-error"
    LISTEN_ERROR = "listen-error"
    NO_ANSWER = "no-answer"
    # Our own machinery failed (an agent died, a lab was not up, a full kernel queue hid
    # the answer): what broke is in the observation's note. Never a conformance result.
    ERROR = "error"


SRC_NOT_TRANSLATED = "src-not-translated"


@quick_init
@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    errno: str | None = None
    # src, dst, protocol, dscp, ecn, length, payload; src-not-translated (see changes_of)
    changes: tuple[str, ...] = ()
    wire_protocol: int | None = None
    hops: int | None = None
    latency_us: float | None = None
    icmp: IcmpReport | None = None
    changed_bytes: str | None = None  # with change `payload`: the offsets, e.g. "2-3"
    inferred: bool = False  # from ICMP alone, no listener on the target


def icmp_outcome(report: IcmpReport) -> Outcome | None:
    """What an ICMP error says about a probe (RFC 792/1812, RFC 4443), or None if it says
    nothing we classify: any destination unreachable is unreachable, unless the codec's
    codes say a firewall spoke or the packet was too big. A TTL or hop limit that ran out
    on the way (time exceeded in transit: a probe sent with a TTL below the path's hop
    count) is unreachable too, from the router that said so: the probe could not get there."""
    if report.family == 4:
        if (report.type, report.code) == (Icmp4Type.TIME_EXCEEDED, Icmp4TimeExceeded.TTL):
            return Outcome.UNREACHABLE
        if report.type != Icmp4Type.DEST_UNREACH:
            return None
        if report.code == Icmp4Unreach.FRAG_NEEDED:
            return Outcome.TOO_BIG
        if report.code in ICMP4_PROHIBITED_CODES:
            return Outcome.PROHIBITED
        return Outcome.UNREACHABLE
    if (report.type, report.code) == (Icmp6Type.TIME_EXCEEDED, Icmp6TimeExceeded.HOP_LIMIT):
        return Outcome.UNREACHABLE
    if report.type == Icmp6Type.PACKET_TOO_BIG:
        return Outcome.TOO_BIG
    if report.type == Icmp6Type.DEST_UNREACH:
        return (Outcome.PROHIBITED if report.code in ICMP6_PROHIBITED_CODES
                else Outcome.UNREACHABLE)
    if (report.type, report.code) == (Icmp6Type.PARAM_PROBLEM,
                                      Icmp6ParamProblem.UNRECOGNIZED_NEXT_HEADER):
        return Outcome.UNREACHABLE
    return None


def changes_of(observation: Observation, delivery: Delivery,
               nat_source: str | None = None) -> tuple[str, ...]:
    """How a delivery differs from what was sent, beyond normal forwarding.

    `nat_source` is the address a NAT on the path should have put in the source (a lab
    knows its masquerading router). A delivery that crossed it still carrying another
    source, normally the sender's own private address, is the private-address leak:
    change `src-not-translated`, so the case is `altered` -- on a NAT path, an untouched
    source is not normal forwarding. A translated source stays change `src`.
    """
    case = observation.case
    found = []
    if observation.sent_src is not None and not _same_address(delivery.src, observation.sent_src):
        found.append("src")
    elif nat_source is not None and not _same_address(delivery.src, nat_source):
        found.append(SRC_NOT_TRANSLATED)
    if delivery.dst is not None and _is_address(case.target) \
            and not _same_address(delivery.dst, case.target):
        found.append("dst")
    if delivery.wire_protocol is not None and delivery.wire_protocol != case.protocol:
        found.append("protocol")
    if delivery.dscp is not None and delivery.dscp != observation.sent_dscp:
        found.append("dscp")
    if delivery.ecn is not None and delivery.ecn != observation.sent_ecn:
        found.append("ecn")
    if observation.sent_bytes is not None and delivery.length != observation.sent_bytes:
        found.append("length")
    if not delivery.intact:
        found.append("payload")
    return tuple(found)


def _same_address(a: str, b: str) -> bool:
    if a == b:  # the usual case, and the same answer either way: no parsing needed
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)  # a batch asks it of the same few targets throughout
def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def judge(observation: Observation, *, nat_source: str | None = None) -> Verdict:
    """The single Outcome of a case; every observation has exactly one. `nat_source`: the
    source a NAT on the path should give the probe (see changes_of)."""
    if observation.socket_errno:
        return Verdict(Outcome.SOCKET_ERROR, errno=observation.socket_errno)
    if observation.send_errno:
        return Verdict(Outcome.SEND_ERROR, errno=observation.send_errno)
    if observation.stats is not None and not observation.failure_stage:
        return _judge_many(observation, observation.stats)
    if observation.deliveries:
        delivery = observation.deliveries[0]
        changes = changes_of(observation, delivery, nat_source)
        hops = None if delivery.ttl is None else observation.sent_ttl - delivery.ttl
        return Verdict(Outcome.ALTERED if changes else Outcome.DELIVERED, changes=changes,
                       wire_protocol=delivery.wire_protocol, hops=hops,
                       latency_us=delivery.latency_us, changed_bytes=delivery.changed_bytes)
    for report in observation.icmp:
        outcome = icmp_outcome(report)
        if outcome is not None:
            return Verdict(outcome, icmp=report, wire_protocol=report.quoted_protocol,
                           inferred=not observation.listened)
    if observation.failure_stage:
        # Our machinery, not the system under test: no verdict about the probe.
        return Verdict(Outcome.ERROR, inferred=not observation.listened)
    if observation.listen_errno:
        return Verdict(Outcome.LISTEN_ERROR, errno=observation.listen_errno)
    if not observation.listened:
        # No listener and no ICMP: the target's kernel may handle the protocol, the path
        # may have dropped the probe, or the target's ICMP budget withheld the answer
        # (hdp.icmp_budget). Silence proves none of them: inconclusive, never `lost`.
        return Verdict(Outcome.NO_ANSWER, inferred=True)
    return Verdict(Outcome.LOST)


def _judge_many(observation: Observation, stats: CaseStats) -> Verdict:
    """The outcome of a case of many probes, from their accounting (hdp.stats): `lost`
    when any probe did not arrive and the listener's kernel does not explain it, `altered`
    when a copy arrived changed, `error` when only our own listener's queue lost probes;
    `delivered` when every one arrived intact. Latency: the median from kernel stamps."""
    if observation.listen_errno:
        return Verdict(Outcome.LISTEN_ERROR, errno=observation.listen_errno)
    if stats.sent == 0:
        return Verdict(Outcome.SEND_ERROR, errno=stats.refusals[0] if stats.refusals else None)
    latency = None if stats.latency is None else stats.latency.p50_us
    if stats.corrupted:
        return Verdict(Outcome.ALTERED, changes=("payload",), latency_us=latency)
    if stats.lost is None or stats.lost:
        return Verdict(Outcome.LOST, latency_us=latency)
    if stats.dropped:
        return Verdict(Outcome.ERROR)  # our listener's full queue hid whether they came
    return Verdict(Outcome.DELIVERED, latency_us=latency)
