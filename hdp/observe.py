"""What the agents said of one case, and the Observation it makes (pure).

The engine fills a CaseState from the events of a batch (its `sent` event, the arrivals
its listener reported, the ICMP errors quoting it, what broke); `observation` turns it
into the Observation that hdp.verdict judges. Here the probe as sent is compared with
what arrived (hdp.rewrites), latency is taken only from stamps that can be trusted, and
a silent ICMP-only case says why it is silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdp import icmp_budget, rewrites
from hdp.address import is_loopback
from hdp.agent.launch import AgentClient
from hdp.case import Case, Delivery, IcmpReport, Observation
from hdp.probe_rules import DEFAULT_MAX_LATENCY_US


def listen_protocol(family: int, protocol: int) -> int | None:
    """The protocol a listener needs to see a probe of `protocol` (Linux renumbers > 255)."""
    if 0 <= protocol <= 255:
        return protocol
    if family == 4 and 256 <= protocol <= 511:
        return protocol & 0xFF
    return None


@dataclass
class CaseState:
    case: Case
    address: str | None = None
    listener: AgentClient | None = None
    sent: dict[str, Any] | None = None
    arrivals: list[dict[str, Any]] = field(default_factory=list)
    icmp: list[IcmpReport] = field(default_factory=list)
    listen_errno: str | None = None
    resolve_errno: str | None = None
    failure_stage: str | None = None
    note: str | None = None
    header_included: bool = False
    silence: tuple[str, int] | None = None  # ICMP-only, unanswered: (pacer status, asks)
    foreign_inodes: list[int] = field(default_factory=list)  # other raw sockets of it

    @property
    def resolved(self) -> bool:
        if self.resolve_errno or self.failure_stage or self.arrivals or self.icmp:
            return True
        return self.sent is not None and not self.sent["ok"]


def delivery(event: dict[str, Any], sent: dict[str, Any] | None, case: Case, run_id: int,
             index: int, dst: str | None) -> tuple[Delivery, str | None]:
    """One arrival as a Delivery, compared with the probe as sent; and a note when its
    latency had to be left out."""
    received_at = event.get("kernel_time_ns")
    comparison = rewrites.UNCHANGED if event.get("intact") else rewrites.Comparison(True)
    if sent is not None and dst is not None:
        digest = sent.get("digest")
        if not isinstance(digest, int) or digest != event.get("digest"):
            # Equal digests: unchanged, what rewrites.compare says first (the common case)
            rebuild = rewrites.rebuilder(
                case.payload, case.size, run_id, index, sent.get("stamp_ns"),
                data=None if case.data is None else bytes.fromhex(case.data))
            comparison = rewrites.compare(sent, event, rebuild, dst)
        else:
            comparison = rewrites.UNCHANGED
    latency, left_out = _latency(received_at, sent)
    offset = event.get("fragment_offset")
    return Delivery(src=event["src"], dst=event.get("dst"),
                    wire_protocol=event.get("wire_protocol"),
                    ttl=event.get("ttl"), dscp=event.get("dscp"), ecn=event.get("ecn"),
                    length=event["length"],
                    intact=bool(event.get("intact")) and comparison.unchanged,
                    kernel_time_ns=received_at, latency_us=latency,
                    fragment_offsets=(offset,) if offset else (),
                    changed_bytes=comparison.ranges), left_out


def _latency(received_at: object, sent: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """Kernel receive stamp minus the sender's own record of when it sent (never a stamp
    read back from the packet, which the path may have rewritten); a value below zero or
    past DEFAULT_MAX_LATENCY_US cannot be trusted and is left out, with a note."""
    stamp = (sent or {}).get("time_ns")
    if not isinstance(received_at, int) or not isinstance(stamp, int):
        return None, None
    latency = (received_at - stamp) / 1000
    if 0 <= latency <= DEFAULT_MAX_LATENCY_US:
        return latency, None
    return None, (f"latency left out: {latency:.0f} µs between send and receive stamps "
                  "cannot be trusted (clocks apart, or a stamp rewritten)")


def observation(state: CaseState, run_id: int, index: int) -> Observation:
    sent = state.sent or {}
    stage = sent.get("stage")
    socket_errno = sent.get("errno") if stage == "socket" else None
    send_errno = sent.get("errno") if stage == "send" else None
    note = state.note
    deliveries = []
    for event in state.arrivals:
        made, left_out = delivery(event, state.sent, state.case, run_id, index,
                                  state.address)
        deliveries.append(made)
        note = note or left_out
    unsettled = not state.resolved and sent.get("ok")
    silenced = bool(unsettled and sent.get("icmp_possible") is False)
    if unsettled and state.listener is None:
        note = silence_note(state, silenced) or note
    if state.resolve_errno:
        send_errno = state.resolve_errno
        note = f"cannot resolve {state.case.target!r} for IPv{state.case.family}"
    return Observation(
        case=state.case, socket_errno=socket_errno, send_errno=send_errno,
        listen_errno=state.listen_errno, sent_bytes=sent.get("bytes"),
        sent_src=sent.get("src"), sent_dst=state.address, sent_dscp=state.case.tos >> 2,
        sent_ecn=state.case.tos & 3,
        sent_ttl=64 if state.case.ttl is None else state.case.ttl,
        deliveries=tuple(deliveries), icmp=tuple(state.icmp),
        listened=state.listener is not None, failure_stage=state.failure_stage, note=note,
        icmp_possible=not silenced)


def silence_note(state: CaseState, silenced: bool) -> str | None:
    """Why an ICMP-only case that drew no answer is inconclusive (`no-answer`)."""
    case = state.case
    if state.header_included and case.protocol == 255 and is_loopback(state.address):
        return ("no ICMP possible: on the sending host our own IPPROTO_RAW socket counts "
                "as a protocol-255 listener")
    if silenced:
        return ("no ICMP possible: the OS cannot send our own IPv6 header, and on the "
                "sending host the raw socket that sent the probe takes it in")
    if state.foreign_inodes:
        inodes = ", ".join(map(str, state.foreign_inodes[:4]))
        return (f"no ICMP possible: another raw socket of protocol {case.protocol} was open "
                f"on the target during the run (inode {inodes}): it takes the probe, so "
                "the kernel answers nothing")
    if state.silence is None:
        return None
    status, asks = state.silence
    times = f"{asks} time{'s' if asks != 1 else ''}"
    if status == icmp_budget.SILENT:
        return (f"no ICMP answer, though the target answered probes sent right after it: "
                f"its kernel handles protocol {case.protocol} or the probe was dropped on "
                "the way (nmap: open|filtered)")
    if asks == 0:
        return ("not asked: the target's ICMP budget left no time for it within the "
                "limit (hdp sweep --patient asks until every case is settled)")
    return (f"no ICMP answer in {times}, each while the target's ICMP budget may have "
            "been spent: an answer may have been withheld (rate limit)")
