"""Per-probe records of one many-probe case -> its accounting and latency (pure).

The counts, for the N probes (seq 0..N-1) of a case:

- `sent`: probes the OS accepted; `refused`: those it refused (errno names in `refusals`).
- `delivered`: distinct probes the listener read intact (tag CRC good) at least once.
- `dropped`: probes the listener's own kernel dropped (a full socket queue). The kernel's
  counter counts packets, not which ones, so it cannot mark probes: it moves probes from
  lost to dropped, `dropped = min(kernel_drops, sent - delivered)`. That is exact when every
  packet the socket dropped in the case's window was one of the case's missing probes; the
  rest of the counter (`excess_drops`) was other traffic of the protocol on the host or
  extra copies. When the counter is unknown, `dropped` and `lost` are None: the
  `sent - delivered` probes that did not arrive (`missing`) were lost or dropped, and the
  split is not guessed.
- `lost`: the remaining missing probes: nothing intact of them arrived and the kernel's
  counter does not explain them. A probe that arrived only corrupted is lost: a corrupted
  copy cannot say which probe it was.
- With the counter known, `sent = delivered + lost + dropped` holds exactly.
- `duplicated`: extra intact copies of delivered probes (3 copies of one probe: 2).
- `corrupted`: copies whose tag CRC failed; counted, and otherwise ignored.
- `reordered` (RFC 4737 section 3): a delivered probe whose first intact copy arrived after
  the first intact copy of a probe with a higher seq. Arrival order is receive-stamp order
  (ties: lower seq first, so equal stamps never count as reordering); duplicates and
  corrupted copies take no part. Sending 0 1 2 3 and receiving 0 2 1 3 counts 1 (probe 1);
  receiving 3 0 1 2 counts 3.

Latency takes one sample per delivered probe, from its first intact copy: receive stamp
minus send stamp (minus the listener's clock offset across hosts; minus the reflector's
hold time for a round trip). See `hdp.stats.summary` for the samples left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdp.probe_rules import DEFAULT_MAX_LATENCY_US, split_missing
from hdp.stats.binomial import Proportion, wilson_interval
from hdp.stats.records import (
    SHARED_CLOCK,
    ClockKind,
    ClockSync,
    Measure,
    ProbeRecord,
    SyncKind,
)
from hdp.stats.summary import (
    LatencySummary,
    LeftOut,
    count,
    summarize,
)


@dataclass(frozen=True)
class CaseStats:
    """The accounting and latency of one many-probe case; see the module for each count."""

    sent: int
    refused: int
    delivered: int
    lost: int | None
    dropped: int | None
    kernel_drops: int | None  # the listener's counter as read; None: unknown
    duplicated: int
    reordered: int
    corrupted: int
    latency: LatencySummary | None  # None: no sample could be trusted
    left_out: LeftOut = field(default_factory=LeftOut)
    measure: Measure = Measure.ONE_WAY
    refusals: tuple[str, ...] = ()  # distinct errno names, sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", Measure(self.measure))
        counts = {"sent": self.sent, "refused": self.refused, "delivered": self.delivered,
                  "duplicated": self.duplicated, "reordered": self.reordered,
                  "corrupted": self.corrupted, "lost": self.lost, "dropped": self.dropped,
                  "kernel_drops": self.kernel_drops}
        for name, value in counts.items():
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a count >= 0, not {value!r}")
        if self.delivered > self.sent:
            raise ValueError(f"delivered {self.delivered} exceeds sent {self.sent}")
        if self.reordered > self.delivered:
            raise ValueError(f"reordered {self.reordered} exceeds delivered {self.delivered}")
        if self.kernel_drops is None:
            if self.lost is not None or self.dropped is not None:
                raise ValueError("lost and dropped are unknown while kernel_drops is")
        elif self.lost is None or self.dropped is None:
            raise ValueError("lost and dropped are needed when kernel_drops is known")
        elif (self.dropped != min(self.kernel_drops, self.missing)
              or self.delivered + self.lost + self.dropped != self.sent):
            raise ValueError(f"sent {self.sent} != delivered {self.delivered} + lost "
                             f"{self.lost} + dropped {self.dropped} (kernel drops "
                             f"{self.kernel_drops})")
        samples = 0 if self.latency is None else self.latency.samples
        if samples + self.left_out.total != self.delivered:
            raise ValueError(f"{samples} latency samples and {self.left_out.total} left out "
                             f"do not make the {self.delivered} delivered probes")
        if self.latency is not None and self.latency.measure is not self.measure:
            raise ValueError("the latency summary measures something else than the case")

    @property
    def missing(self) -> int:
        """Sent probes of which nothing intact arrived: lost or dropped."""
        return self.sent - self.delivered

    @property
    def excess_drops(self) -> int | None:
        """Kernel drops that cannot have been this case's probes (other traffic, copies)."""
        return None if self.kernel_drops is None or self.dropped is None else (
            self.kernel_drops - self.dropped)

    @property
    def loss_ratio(self) -> float | None:
        """The share of sent probes that did not arrive intact; None when none was sent."""
        return self.missing / self.sent if self.sent else None

    def loss_interval(self, confidence: float = 0.95) -> Proportion | None:
        """`loss_ratio` with its Wilson interval; None when no probe was sent."""
        return wilson_interval(self.missing, self.sent, confidence) if self.sent else None

    def as_json(self) -> dict[str, Any]:
        """The report's `stats` object: plain JSON types, no samples."""
        return {"sent": self.sent, "refused": self.refused, "delivered": self.delivered,
                "lost": self.lost, "dropped": self.dropped, "kernel_drops": self.kernel_drops,
                "duplicated": self.duplicated, "reordered": self.reordered,
                "corrupted": self.corrupted, "measure": self.measure.value,
                "refusals": list(self.refusals), "left_out": self.left_out.as_json(),
                "latency": None if self.latency is None else self.latency.as_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseStats:
        """The inverse of `as_json` (samples aside); ValueError names a bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"stats must be an object, not {type(data).__name__}")
        left = data.get("left_out", {})
        if not isinstance(left, Mapping):
            raise ValueError("stats.left_out must be an object")
        refusals = data.get("refusals", [])
        if not isinstance(refusals, list) or not all(isinstance(r, str) for r in refusals):
            raise ValueError("stats.refusals must be a list of errno names")
        latency = data.get("latency")
        return cls(
            sent=count(data, "sent"), refused=count(data, "refused"),
            delivered=count(data, "delivered"), lost=count(data, "lost", optional=True),
            dropped=count(data, "dropped", optional=True),
            kernel_drops=count(data, "kernel_drops", optional=True),
            duplicated=count(data, "duplicated"), reordered=count(data, "reordered"),
            corrupted=count(data, "corrupted"),
            latency=None if latency is None else LatencySummary.from_json(latency),
            left_out=LeftOut(**{name: count(left, name, default=0)
                                for name in LeftOut().as_json()}),
            measure=Measure(data.get("measure", Measure.ONE_WAY.value)),
            refusals=tuple(refusals))


def case_stats(probes: Iterable[ProbeRecord], kernel_drops: int | None, *,
               sync: ClockSync = SHARED_CLOCK, measure: Measure = Measure.ONE_WAY,
               max_latency_us: float = DEFAULT_MAX_LATENCY_US) -> CaseStats:
    """The accounting of one case from its probes (seq 0..N-1, each once, any order).

    `kernel_drops` is the listener's drop counter over the case's socket window (None when
    the OS does not give it). `sync` relates the listener's clock to the sender's; a round
    trip (`measure=Measure.RTT`, reflect mode) is timed on the sender's clock alone.
    """
    records = sorted(probes, key=lambda probe: probe.seq)
    for index, probe in enumerate(records):
        if probe.seq != index:
            raise ValueError(f"probe records must number 0..{len(records) - 1} once each; "
                             f"seq {index} is {'repeated' if probe.seq < index else 'missing'}")
    if not max_latency_us > 0:
        raise ValueError(f"max_latency_us must be > 0, not {max_latency_us}")
    if kernel_drops is not None and kernel_drops < 0:
        raise ValueError(f"kernel_drops must be >= 0 or None, not {kernel_drops}")
    if measure is Measure.RTT and sync.kind is not SyncKind.SHARED:
        raise ValueError("a round trip is timed on the sender's clock: give no clock sync")
    # ProbeRecord guarantees a stamp on every sent probe; the pair keeps that typed.
    sent = [(probe, probe.sent_ns) for probe in records
            if probe.refused is None and probe.sent_ns is not None]
    corrupted = duplicated = 0
    firsts: list[tuple[int, int]] = []  # (receive stamp of the first intact copy, seq)
    raw: list[tuple[int, ClockKind]] = []
    for probe, sent_ns in sent:
        intact = [copy for copy in probe.receptions if copy.intact]
        corrupted += len(probe.receptions) - len(intact)
        if not intact:
            continue
        duplicated += len(intact) - 1
        first = min(intact, key=lambda copy: copy.received_ns)
        firsts.append((first.received_ns, probe.seq))
        sample = first.received_ns - sent_ns
        sample -= first.hold_ns if measure is Measure.RTT else sync.offset_ns
        both_kernel = probe.clock is ClockKind.KERNEL and first.clock is ClockKind.KERNEL
        raw.append((sample, ClockKind.KERNEL if both_kernel else ClockKind.USER))
    latency, left_out = summarize(raw, measure=measure, sync=sync,
                                  max_latency_us=max_latency_us)
    lost, dropped = split_missing(len(sent) - len(firsts), kernel_drops)
    return CaseStats(
        sent=len(sent), refused=len(records) - len(sent), delivered=len(firsts),
        lost=lost, dropped=dropped,
        kernel_drops=kernel_drops, duplicated=duplicated, reordered=_reordered(firsts),
        corrupted=corrupted, latency=latency, left_out=left_out, measure=measure,
        refusals=tuple(sorted({probe.refused for probe in records if probe.refused})))


def _reordered(firsts: list[tuple[int, int]]) -> int:
    """RFC 4737's reordered count: arrivals whose seq is below the next one expected."""
    count = 0
    highest = -1
    for _, seq in sorted(firsts):
        if seq < highest:
            count += 1
        highest = max(highest, seq)
    return count
