"""Two kinds of probe side by side: is HDP's latency different from UDP's, and by how much?

The figure is the difference of medians (or of any quantile) of two independent samples,
with a bootstrap percentile confidence interval; an interval that holds zero is reported as
"no difference". The bootstrap is exact and cheap: resampling n values with replacement from
sorted x is x[floor(n U_i)] for uniforms U_i, a non-decreasing map, so the k-th order
statistic of a resample is x[floor(n U_(k))], and U_(k) ~ Beta(k, n + 1 - k). One replicate
of a quantile thus costs two beta draws (the next order statistic, for interpolation, is
U_(k) + (1 - U_(k)) Beta(1, n - k)) instead of n draws and a sort: 10,000 replicates of
two 10,000-sample sets take a fraction of a second in pure Python, the same distribution
as the textbook bootstrap (benchmarks/stats_compare.py measures both). Seeded, so a run
repeats exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from hdp.stats.summary import quantile

DEFAULT_REPLICATES = 10_000


@dataclass(frozen=True)
class Comparison:
    """quantile(a) - quantile(b) in µs, with its bootstrap confidence interval."""

    a: str  # label of the first sample set, e.g. "HDP"
    b: str
    estimate_us: float
    low_us: float
    high_us: float
    confidence: float
    q: float  # 0.5: medians
    n_a: int
    n_b: int
    replicates: int
    seed: int

    def __post_init__(self) -> None:
        if not self.low_us <= self.high_us:
            raise ValueError(f"interval [{self.low_us}, {self.high_us}] is upside down")

    @property
    def differs(self) -> bool:
        """False when the interval holds zero: no difference at this confidence."""
        return not self.low_us <= 0.0 <= self.high_us

    @property
    def statistic(self) -> str:
        """'median', 'p90', 'p99.9'."""
        return "median" if self.q == 0.5 else f"p{100 * self.q:g}"

    def describe(self) -> str:
        """'HDP - UDP median: +20.10 µs (95% CI +19.74 to +20.47 µs)' or '... no difference'."""
        interval = (f"{100 * self.confidence:g}% CI {self.low_us:+.2f} to "
                    f"{self.high_us:+.2f} µs")
        head = f"{self.a} - {self.b} {self.statistic}"
        if not self.differs:
            return f"{head}: no difference ({interval})"
        return f"{head}: {self.estimate_us:+.2f} µs ({interval})"


def compare(a: Sequence[float], b: Sequence[float], *, labels: tuple[str, str] = ("A", "B"),
            q: float = 0.5, confidence: float = 0.95, replicates: int = DEFAULT_REPLICATES,
            seed: int = 0) -> Comparison:
    """quantile_q(a) - quantile_q(b) with a seeded bootstrap percentile interval.

    The samples (µs) are taken as independent draws of each kind: send the kinds
    interleaved so that drift hits all alike.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), not {confidence}")
    if replicates < 100:
        raise ValueError(f"replicates must be >= 100 for an interval, not {replicates}")
    ordered_a, ordered_b = _ordered(a, labels[0]), _ordered(b, labels[1])
    estimate = quantile(ordered_a, q) - quantile(ordered_b, q)
    rng = random.Random(seed)
    replica = sorted(_replicate(ordered_a, q, rng) - _replicate(ordered_b, q, rng)
                     for _ in range(replicates))
    alpha = 1 - confidence
    low, high = quantile(replica, alpha / 2), quantile(replica, 1 - alpha / 2)
    return Comparison(a=labels[0], b=labels[1], estimate_us=estimate, low_us=low,
                      high_us=high, confidence=confidence, q=q, n_a=len(ordered_a),
                      n_b=len(ordered_b), replicates=replicates, seed=seed)


def _ordered(samples: Sequence[float], label: str) -> list[float]:
    if not samples:
        raise ValueError(f"no {label} samples to compare")
    if not all(map(math.isfinite, samples)):  # a NaN would not even sort to an end
        raise ValueError(f"{label} samples must be finite numbers")
    return sorted(samples)


def _replicate(ordered: Sequence[float], q: float, rng: random.Random) -> float:
    """The q-quantile (type 7, as `quantile`) of one bootstrap resample of `ordered`."""
    n = len(ordered)
    h = (n - 1) * q
    k = math.floor(h)  # 0-based: the resample's order statistics k and k + 1 are needed
    u = rng.betavariate(k + 1, n - k)
    below = ordered[min(int(n * u), n - 1)]
    if h == k:
        return below
    u_next = u + (1 - u) * rng.betavariate(1, n - k - 1)
    above = ordered[min(int(n * u_next), n - 1)]
    return below + (h - k) * (above - below)
