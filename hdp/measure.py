"""Many probes per case, measured: one stream between a sender's agent and a listener's,
read back as one CaseStats per lane (hdp.stats).

    sender agent                                   listener agent
    stream-open send  --- probes, paced, ---->     stream-open listen (+ reflect)
    stream-send ...       interleaved lanes        records: each copy, kernel stamp
    records: each send, kernel stamp  <-- echoes (reflect mode) --

A lane is what one kind of probe travels by: a raw socket of an IP protocol (HDP, or
another carrier), or the kernel's UDP or TCP. Its one-way latency is the listener's
arrival stamp minus the sender's departure stamp, read on one clock when the agents share
a kernel (their boot ids match: same host or its namespaces), else corrected by an offset
estimated from an echo exchange (hdp.stats.clock), with its uncertainty; in reflect mode
each probe also comes back, which times the round trip on the sender's clock alone.
Everything the agents send and keep is bounded by hdp.agent.messages; this module only
asks, reads the pages back, and hands the records to hdp.stats.
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError
from hdp.agent.messages import Lane
from hdp.agent.stream_io import FLAG_HOLD_KERNEL, FLAG_INTACT, FLAG_KERNEL, FLAG_REFUSED
from hdp.endpoint import Endpoint
from hdp.stats import (
    NO_SYNC,
    SHARED_CLOCK,
    CaseStats,
    ClockKind,
    ClockSync,
    Echo,
    Measure,
    OffsetEstimate,
    ProbeRecord,
    Reception,
    case_stats,
    estimate_offset,
    shared_clock,
)

CHUNK_SECONDS = 5.0  # a stream-send holds its agent this long at most (MAX_WAIT is 10)
ECHO_PROBES = 64  # the echo exchange that estimates a clock offset
ECHO_RATE = 500.0
STAMP_WAIT = 1.0  # seconds for the last kernel transmit stamps to come back
ANSWER_MARGIN = 15.0  # seconds an agent may take to answer, beyond what it was asked


@dataclass(frozen=True)
class StreamPlan:
    """What to measure: `count` probes down each lane to `dst`, `rate` a second a lane."""

    dst: str
    family: int
    lanes: tuple[Lane, ...]
    count: int
    rate: float
    size: int = 64
    reflect: bool = False  # also send each probe back: round trips
    timeout: float = 1.0  # seconds to wait for late probes after the last one left
    clock: str = "auto"  # auto: shared when one kernel, else estimated; estimate: always


@dataclass(frozen=True)
class LaneResult:
    """One lane's statistics, and where it could not even start."""

    lane: Lane
    one_way: CaseStats
    rtt: CaseStats | None = None
    socket_error: tuple[str, str] | None = None  # (stage, errno) at the sender
    listen_error: str | None = None  # errno at the listener: nothing could be heard


@dataclass(frozen=True)
class StreamResult:
    plan: StreamPlan
    lanes: tuple[LaneResult, ...]
    sync: ClockSync
    estimate: OffsetEstimate | None
    tx_stamps: str  # "kernel" or "user": how the sender stamped its sends
    rx_stamps: str
    late_us: float  # how far behind its schedule the sender fell at worst
    seconds: float  # time spent sending
    notes: tuple[str, ...] = ()


@dataclass
class _Ends:
    """The two streams of one measurement, and what their opening answered."""

    sender: Endpoint
    listener: Endpoint
    opened: dict[str, Any] = field(default_factory=dict)  # the sender's answer
    heard: dict[str, Any] = field(default_factory=dict)  # the listener's answer


def measure(sender: AgentClient, listener: AgentClient, plan: StreamPlan, *,
            run: int | None = None) -> StreamResult:
    """Run `plan` from `sender` to `listener` (one agent may be both, on loopback).

    AgentError when an agent dies or will not open a stream; refusals of a lane (a
    protocol the OS will not open, a port nobody listens on) are the lane's result."""
    run = random.getrandbits(32) if run is None else run
    ends = _open(Endpoint(sender, "sender"), Endpoint(listener, "listener"), plan, run)
    try:
        sent_ok, late, seconds = _send(ends, plan)
        heard = _pages(ends.listener, ends.heard["handle"], "received",
                       wait=plan.timeout, expect=sent_ok)
        sent = _pages(ends.sender, ends.opened["handle"], "sent", wait=STAMP_WAIT)
        echoes = _pages(ends.sender, ends.opened["handle"], "received", wait=plan.timeout,
                        expect=_distinct(heard)) if plan.reflect else None
    finally:
        _close(ends)
    estimate: OffsetEstimate | None = None
    notes = []
    shared = shared_clock(ends.opened.get("boot_id"), ends.heard.get("boot_id"))
    if plan.clock == "estimate" or not shared:
        echo_rounds = _echoes(sent, heard, echoes) if echoes is not None else \
            _echo_exchange(sender, listener, plan)
        try:
            estimate = estimate_offset(echo_rounds)
        except ValueError as exc:
            notes.append(f"no clock offset estimate: {exc}")
    sync = estimate.sync() if estimate is not None else SHARED_CLOCK if shared else NO_SYNC
    if ends.opened.get("stamps_note"):
        notes.append(f"send stamps from the process's clock: {ends.opened['stamps_note']}")
    lanes = tuple(_lane_result(index, lane, plan, ends, sent, heard, echoes, sync)
                  for index, lane in enumerate(plan.lanes))
    return StreamResult(plan, lanes, sync, estimate, str(ends.opened.get("tx_stamps")),
                        str(ends.heard.get("rx_stamps")), late, seconds, tuple(notes))


# -- talking to the agents ----------------------------------------------------------------

def _open(sender: Endpoint, listener: Endpoint, plan: StreamPlan, run: int) -> _Ends:
    family = messages.family(plan.family)
    peer = sender.call(messages.Source(dst=plan.dst, family=family)).get("address")
    ends = _Ends(sender, listener)
    ends.heard = listener.call(messages.StreamOpen(
        role="listen", run=run, family=family, lanes=plan.lanes, count=plan.count,
        size=plan.size, reflect=plan.reflect, peer=peer if plan.reflect else None))
    try:
        ends.opened = sender.call(messages.StreamOpen(
            role="send", run=run, family=family, lanes=plan.lanes, count=plan.count,
            size=plan.size, dst=plan.dst, udp_port=ends.heard["udp_port"],
            tcp_port=ends.heard["tcp_port"], reflect=plan.reflect))
    except BaseException:
        _close(ends)
        raise
    return ends


def _send(ends: _Ends, plan: StreamPlan) -> tuple[int, float, float]:
    """Send every probe in requests of at most CHUNK_SECONDS; (sent, worst lateness in
    µs, seconds spent)."""
    sent, late, seconds = 0, 0.0, 0.0
    chunk = max(1, int(plan.rate * CHUNK_SECONDS))
    for first in range(0, plan.count, chunk):
        count = min(chunk, plan.count - first)
        answer = ends.sender.call(messages.StreamSend(
            handle=ends.opened["handle"], first=first, count=count, rate=plan.rate),
            answer_within=count / plan.rate + ANSWER_MARGIN)
        sent += int(answer["sent"])
        late = max(late, float(answer["late_us"]))
        seconds += float(answer["seconds"])
    return sent, late, seconds


def _pages(end: Endpoint, handle: int, table: Literal["sent", "received"], *, wait: float,
           expect: int = 0) -> dict[str, Any]:
    """Every record of one table, its pages joined; the last page's drops and counts."""
    columns: dict[str, list[int]] = defaultdict(list)
    refusals: dict[int, str] = {}
    offset = 0
    while True:
        answer = end.call(messages.StreamRecords(
            handle=handle, table=table, offset=offset, wait=min(wait, messages.MAX_WAIT),
            expect=expect), answer_within=wait + ANSWER_MARGIN)
        wait = 0.0  # only the first page waits
        for name, values in answer["columns"].items():
            columns[name] += values
        refusals.update({int(index): why for index, why in answer["refusals"].items()})
        offset += len(answer["columns"]["lane"])
        if offset >= answer["total"] or not answer["columns"]["lane"]:
            return {"columns": dict(columns), "refusals": refusals,
                    "drops": answer["drops"], "complete": answer["complete"]}


def _close(ends: _Ends) -> None:
    """Close both streams, as far as their agents still answer (an agent that died took
    its streams with it)."""
    for end, answer in ((ends.sender, ends.opened), (ends.listener, ends.heard)):
        if "handle" in answer and end.agent.alive():
            with contextlib.suppress(AgentError):
                end.call(messages.StreamClose(handle=answer["handle"]))


def _distinct(table: dict[str, Any]) -> int:
    columns = table["columns"]
    return len({(lane, seq) for lane, seq, flags in zip(
        columns.get("lane", []), columns.get("seq", []), columns.get("flags", []),
        strict=True) if flags & FLAG_INTACT})


# -- clocks -----------------------------------------------------------------------------

def _echoes(sent: dict[str, Any], heard: dict[str, Any],
            echoes: dict[str, Any]) -> list[Echo]:
    """Each reflected probe as one round of NTP's exchange: t1 sent, t2 heard, t3 = t2 +
    the reflector's hold, t4 the echo heard back. The rounds stamped by the kernel at all
    four points where there are any; else all of them: a user stamp is taken before the
    send and after the arrival, which only widens the interval that holds the offset."""
    left = {(lane, seq): (ns, flags) for lane, seq, ns, flags in _rows(sent)}
    there = {(lane, seq): (ns, hold, flags) for lane, seq, ns, flags, hold in
             _rows(heard, with_hold=True) if flags & FLAG_INTACT and hold >= 0}
    kernel: list[Echo] = []
    user: list[Echo] = []
    for lane, seq, ns, flags in _rows(echoes):
        if not flags & FLAG_INTACT or (lane, seq) not in left or (lane, seq) not in there:
            continue
        t1, sent_flags = left[(lane, seq)]
        t2, hold, heard_flags = there[(lane, seq)]
        echo = Echo(t1, t2, t2 + hold, ns)
        both = sent_flags & flags & FLAG_KERNEL and heard_flags & FLAG_HOLD_KERNEL
        (kernel if both else user).append(echo)
    return kernel or user


def _echo_exchange(sender: AgentClient, listener: AgentClient,
                   plan: StreamPlan) -> list[Echo]:
    """A short reflected UDP stream, for its echoes alone."""
    probe = StreamPlan(plan.dst, plan.family, (Lane("udp"),), ECHO_PROBES, ECHO_RATE,
                       size=plan.size, reflect=True, timeout=plan.timeout)
    ends = _open(Endpoint(sender, "sender"), Endpoint(listener, "listener"), probe,
                 random.getrandbits(32))
    try:
        _send(ends, probe)
        heard = _pages(ends.listener, ends.heard["handle"], "received", wait=probe.timeout,
                       expect=ECHO_PROBES)
        sent = _pages(ends.sender, ends.opened["handle"], "sent", wait=STAMP_WAIT)
        echoes = _pages(ends.sender, ends.opened["handle"], "received", wait=probe.timeout,
                        expect=_distinct(heard))
    finally:
        _close(ends)
    return _echoes(sent, heard, echoes)


# -- records -> statistics -----------------------------------------------------------------

def _rows(table: dict[str, Any], *, with_hold: bool = False) -> Iterator[Any]:
    columns = table["columns"]
    names = ["lane", "seq", "ns", "flags"] + (["hold_ns"] if with_hold else [])
    return zip(*(columns.get(name, []) for name in names), strict=True)


def _lane_result(index: int, lane: Lane, plan: StreamPlan, ends: _Ends,
                 sent: dict[str, Any], heard: dict[str, Any], echoes: dict[str, Any] | None,
                 sync: ClockSync) -> LaneResult:
    at_sender = ends.opened["lanes"][index]
    at_listener = ends.heard["lanes"][index]
    socket_error = None if at_sender["ok"] else (str(at_sender["stage"]),
                                                 str(at_sender["errno"]))
    listen_error = None if at_listener["ok"] else str(at_listener["errno"])
    drops = _drops(lane, heard["drops"])
    probes = _records(index, plan.count, sent, heard, socket_error)
    one_way = case_stats(probes, drops, sync=sync)
    rtt = None
    if echoes is not None:
        back = _records(index, plan.count, sent, echoes, socket_error, holds=heard)
        echo_drops = _drops(lane, echoes["drops"])
        both = None if drops is None or echo_drops is None else drops + echo_drops
        rtt = case_stats(back, both, measure=Measure.RTT)
    return LaneResult(lane, one_way, rtt, socket_error, listen_error)


def _drops(lane: Lane, drops: dict[str, int | None]) -> int | None:
    key = f"raw/{lane.protocol}" if lane.kind == "raw" else lane.kind
    value = drops.get(key)
    return value if isinstance(value, int) else None


def _records(index: int, count: int, sent: dict[str, Any], received: dict[str, Any],
             socket_error: tuple[str, str] | None, *,
             holds: dict[str, Any] | None = None) -> list[ProbeRecord]:
    """One ProbeRecord a probe of lane `index`, seq 0..count-1, from the tables.

    A probe the sender never got to send (refused by the OS, or a lane that did not
    open) is refused with its errno; `holds` (reflect mode) gives each echo's hold time."""
    if socket_error is not None:
        return [ProbeRecord(seq, None, refused=socket_error[1]) for seq in range(count)]
    departures: dict[int, tuple[int, int, str | None]] = {}
    for record, (lane, seq, ns, flags) in enumerate(_rows(sent)):
        if lane == index and seq not in departures:
            why = sent["refusals"].get(record)
            if flags & FLAG_REFUSED and why is None:
                why = "EIO"
            departures[seq] = (ns, flags, why)
    held: dict[int, tuple[int, bool]] = {}
    if holds is not None:
        for lane, seq, _, flags, hold in _rows(holds, with_hold=True):
            if lane == index and hold >= 0 and seq not in held:
                held[seq] = (hold, bool(flags & FLAG_HOLD_KERNEL))
    copies: dict[int, list[Reception]] = defaultdict(list)
    for lane, seq, ns, flags in _rows(received):
        if lane != index:
            continue
        hold, hold_kernel = held.get(seq, (0, True))
        kernel = bool(flags & FLAG_KERNEL) and hold_kernel
        copies[seq].append(Reception(ns, bool(flags & FLAG_INTACT),
                                     ClockKind.KERNEL if kernel else ClockKind.USER, hold))
    probes = []
    for seq in range(count):
        departure = departures.get(seq)
        if departure is None:  # never handed to the OS (a send cut short): not sent
            probes.append(ProbeRecord(seq, None, refused="ECANCELED"))
            continue
        ns, flags, why = departure
        if why is not None:
            probes.append(ProbeRecord(seq, None, refused=why))
            continue
        probes.append(ProbeRecord(seq, ns, ClockKind.KERNEL if flags & FLAG_KERNEL
                                  else ClockKind.USER, tuple(copies.get(seq, ()))))
    return probes


def lane_label(lane: Lane) -> str:
    """'HDP (253)', 'UDP', 'TCP', 'raw (47)', 'UDP header (47)'."""
    if lane.kind == "udp":
        return "UDP"
    if lane.kind == "tcp":
        return "TCP"
    name = {"hdp": "HDP", "udp": "UDP header", "raw": "raw"}[lane.payload]
    return f"{name} ({lane.protocol})"


def lanes_of(kinds: Sequence[str], protocol: int = 253) -> tuple[Lane, ...]:
    """`hdp stats --kinds hdp,udp,tcp`: HDP over raw IP on `protocol`, the kernel's UDP,
    the kernel's TCP."""
    return tuple(Lane("raw", protocol, "hdp") if kind == "hdp" else
                 Lane("udp" if kind == "udp" else "tcp") for kind in kinds)
