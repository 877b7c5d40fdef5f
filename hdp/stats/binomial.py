"""Confidence intervals for a proportion, such as the share of probes lost (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.95996... for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Proportion:
    """`count` of `total`, with a confidence interval [low, high] for the true ratio."""

    count: int
    total: int
    low: float
    high: float
    confidence: float

    def __post_init__(self) -> None:
        if not 0 <= self.count <= self.total or self.total < 1:
            raise ValueError(f"a proportion needs 0 <= count <= total and total >= 1, "
                             f"not {self.count} of {self.total}")
        if not 0.0 <= self.low <= self.ratio <= self.high <= 1.0:
            raise ValueError(f"interval [{self.low}, {self.high}] does not hold the ratio "
                             f"{self.ratio} within [0, 1]")

    @property
    def ratio(self) -> float:
        return self.count / self.total

    def contains(self, ratio: float) -> bool:
        """Whether a ratio (say the 5% loss a lab link injects) is within the interval."""
        return self.low <= ratio <= self.high

    def describe(self) -> str:
        """'5.02% (95% CI 4.61 to 5.46%)'."""
        return (f"{100 * self.ratio:.2f}% ({100 * self.confidence:g}% CI "
                f"{100 * self.low:.2f} to {100 * self.high:.2f}%)")


def wilson_interval(count: int, total: int, confidence: float = 0.95) -> Proportion:
    """The Wilson score interval (Wilson 1927): unlike the textbook p ± z·se it stays
    within [0, 1] and keeps close to its nominal coverage for ratios near 0, as losses are
    (Brown, Cai & DasGupta 2001 recommend it for n >= 40)."""
    if not 0 <= count <= total or total < 1:
        raise ValueError(f"a proportion needs 0 <= count <= total and total >= 1, "
                         f"not {count} of {total}")
    z = z_value(confidence)
    p = count / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / total + z2n / (4 * total)) / (1 + z2n)
    # Exact ends where the data put them; elsewhere rounding must not push the interval
    # past the observed ratio or outside [0, 1].
    low = 0.0 if count == 0 else min(max(centre - half, 0.0), p)
    high = 1.0 if count == total else max(min(centre + half, 1.0), p)
    return Proportion(count, total, low, high, confidence)
