"""Latency samples -> a summary a user can trust: percentiles, and what was left out (pure).

A sample is left out, and counted, when it cannot be a latency:
- `other_clock`: its stamps are of the other kind than the summary's. Kernel stamps win
  whenever the case has any, so user-space stamps never dilute them (nor the reverse);
- `negative`: the receive stamp is earlier than the send stamp (after the clock offset,
  across hosts). Nothing arrives before it leaves: a clock step, an offset estimate off by
  more than its uncertainty, or a kernel that rewrote the stamp;
- `absurd`: longer than `max_latency_us` (default 10 s, beyond any probe window): a clock
  jump, or a stamp that is not a time at all (the write-up's -1.2e16 µs);
- `unsynchronised`: a one-way sample between hosts whose clock offset is not known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from hdp.probe_rules import DEFAULT_MAX_LATENCY_US as DEFAULT_MAX_LATENCY_US  # re-exported
from hdp.stats.records import ClockKind, ClockSync, Measure, SyncKind

PERCENTILES = (0.5, 0.9, 0.99)


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolating between the closest ranks.

    Hyndman & Fan's type 7 (numpy's and R's default): rank h = (n - 1) q, then linear
    interpolation between the values at floor(h) and floor(h) + 1. Monotone in q; the
    0- and 1-quantiles are the min and the max.
    """
    if not ordered:
        raise ValueError("no values to take a quantile of")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], not {q}")
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    if low + 1 >= len(ordered):
        return ordered[-1]
    below, above = ordered[low], ordered[low + 1]
    # Clamped: rounding must not put an interpolated value past its neighbours, or the
    # percentiles of one summary could come out of order.
    return min(max(below + (h - low) * (above - below), below), above)


@dataclass(frozen=True)
class LeftOut:
    """How many samples were left out of a latency summary, by reason (see the module)."""

    other_clock: int = 0
    negative: int = 0
    absurd: int = 0
    unsynchronised: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) < 0:
                raise ValueError(f"left-out count {item.name} must be >= 0")

    @property
    def total(self) -> int:
        return self.other_clock + self.negative + self.absurd + self.unsynchronised

    def as_json(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def describe(self) -> str:
        """'2 negative, 1 absurd', or '' when nothing was left out."""
        return ", ".join(f"{getattr(self, item.name)} {item.name.replace('_', ' ')}"
                         for item in fields(self) if getattr(self, item.name))


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of the trusted samples, in µs, with the clock they came from.

    `samples_us` holds the samples themselves, sorted, for comparisons and charts; it is
    empty in a summary read back from JSON, where `samples` still gives their count.
    """

    measure: Measure
    clock: ClockKind
    sync: ClockSync
    samples: int
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    samples_us: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", Measure(self.measure))
        object.__setattr__(self, "clock", ClockKind(self.clock))
        if self.samples < 1:
            raise ValueError("a latency summary needs at least one sample")
        figures = (self.min_us, self.p50_us, self.p90_us, self.p99_us, self.max_us)
        if not all(math.isfinite(x) for x in figures) or self.min_us < 0:
            raise ValueError(f"latency figures must be finite and >= 0: {figures}")
        if list(figures) != sorted(figures):
            raise ValueError(f"latency figures must rise from min to max: {figures}")
        if self.samples_us and len(self.samples_us) != self.samples:
            raise ValueError(f"{len(self.samples_us)} samples given for a count of "
                             f"{self.samples}")

    def percentile_us(self, q: float) -> float:
        """Any quantile (0.999, 0.25, ...) of the samples; needs `samples_us`."""
        if not self.samples_us:
            raise ValueError("this summary carries no samples (read back from JSON)")
        return quantile(self.samples_us, q)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types, the samples themselves left out."""
        return {"measure": self.measure.value, "clock": self.clock.value,
                "sync": self.sync.kind.value, "offset_ns": self.sync.offset_ns,
                "uncertainty_ns": self.sync.uncertainty_ns, "samples": self.samples,
                "min_us": self.min_us, "p50_us": self.p50_us, "p90_us": self.p90_us,
                "p99_us": self.p99_us, "max_us": self.max_us}

    @classmethod
    def from_json(cls, data: Any) -> LatencySummary:
        """The inverse of `as_json`, without the samples; ValueError names a bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"latency must be an object, not {type(data).__name__}")
        figures: list[float] = []
        for name in ("min_us", "p50_us", "p90_us", "p99_us", "max_us"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"latency.{name} must be a number, not {value!r}")
            figures.append(float(value))
        offset = data.get("offset_ns", 0)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ValueError(f"latency.offset_ns must be an integer, not {offset!r}")
        sync = ClockSync(SyncKind(data.get("sync")), offset,
                         count(data, "uncertainty_ns", default=0))
        return cls(measure=Measure(data.get("measure")), clock=ClockKind(data.get("clock")),
                   sync=sync, samples=count(data, "samples"), min_us=figures[0],
                   p50_us=figures[1], p90_us=figures[2], p99_us=figures[3],
                   max_us=figures[4])


def count(data: Mapping[str, Any], name: str, *, optional: bool = False,
          default: int | None = None) -> Any:
    """A non-negative integer field of a JSON object (None allowed when `optional`)."""
    value = data.get(name, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a count >= 0, not {value!r}")
    return value


def summarize(raw: Iterable[tuple[int, ClockKind]], *, measure: Measure = Measure.ONE_WAY,
              sync: ClockSync, max_latency_us: float = DEFAULT_MAX_LATENCY_US,
              ) -> tuple[LatencySummary | None, LeftOut]:
    """Samples (ns, already corrected by the clock offset, with their clock kind) -> the
    summary of those that can be trusted (None when none can) and the count of the rest."""
    raw = list(raw)
    if measure is Measure.ONE_WAY and sync.kind is SyncKind.NONE:
        return None, LeftOut(unsynchronised=len(raw))
    clock = (ClockKind.KERNEL if any(kind is ClockKind.KERNEL for _, kind in raw)
             else ClockKind.USER)
    limit_ns = max_latency_us * 1000
    kept: list[int] = []
    other = negative = absurd = 0
    for sample_ns, kind in raw:
        if kind is not clock:
            other += 1
        elif sample_ns < 0:
            negative += 1
        elif sample_ns > limit_ns:
            absurd += 1
        else:
            kept.append(sample_ns)
    left_out = LeftOut(other_clock=other, negative=negative, absurd=absurd)
    if not kept:
        return None, left_out
    kept.sort()
    ordered = tuple(ns / 1000 for ns in kept)
    p50, p90, p99 = (quantile(ordered, q) for q in PERCENTILES)
    return LatencySummary(measure=measure, clock=clock, sync=sync, samples=len(ordered),
                          min_us=ordered[0], p50_us=p50, p90_us=p90, p99_us=p99,
                          max_us=ordered[-1], samples_us=ordered), left_out
