"""Two kinds' latencies compared: a known shift is found, identical kinds are not told apart."""

from __future__ import annotations

import random

import pytest

from hdp.stats.compare import compare
from hdp.stats.summary import quantile


def latencies(rng: random.Random, n: int, shift_us: float = 0.0) -> list[float]:
    """A path's one-way latencies: a floor, log-normal jitter and rare long stalls."""
    out = []
    for _ in range(n):
        sample = 45.0 + shift_us + rng.lognormvariate(2.0, 0.7)
        if rng.random() < 0.01:
            sample += rng.expovariate(1 / 200)
        out.append(sample)
    return out


def test_a_20us_shift_is_found_on_10000_samples():
    rng = random.Random(20)
    hdp, udp = latencies(rng, 10_000, shift_us=20.0), latencies(rng, 10_000)
    result = compare(hdp, udp, labels=("HDP", "UDP"), seed=1)
    assert result.differs
    assert result.low_us <= 20.0 <= result.high_us
    assert result.high_us - result.low_us < 1.0
    assert result.describe().startswith("HDP - UDP median: +20.")


def test_identical_kinds_are_mostly_no_difference():
    # At 95% confidence, about 95 of 100 comparisons of one distribution with itself hold
    # zero; 90 leaves room for the sampling of 100 trials (P(< 90) is about 2%).
    rng = random.Random(7)
    same = sum(not compare(latencies(rng, 1_000), latencies(rng, 1_000), replicates=1_000,
                           seed=trial).differs for trial in range(100))
    assert same >= 90


def test_seeded_runs_repeat_exactly():
    rng = random.Random(3)
    a, b = latencies(rng, 2_000), latencies(rng, 2_000)
    assert compare(a, b, seed=4) == compare(list(reversed(a)), b, seed=4)
    assert compare(a, b, seed=4) != compare(a, b, seed=5)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.25])
def test_same_interval_as_the_textbook_bootstrap(q):
    # The order-statistic shortcut against resampling n values and sorting them, on data
    # small enough for the slow way: the intervals agree to within the Monte Carlo noise.
    rng = random.Random(11)
    a, b = latencies(rng, 301), latencies(rng, 300, shift_us=3.0)
    fast = compare(a, b, q=q, replicates=4_000, seed=2)
    slow_rng = random.Random(2)
    replica = sorted(
        quantile(sorted(slow_rng.choices(a, k=len(a))), q)
        - quantile(sorted(slow_rng.choices(b, k=len(b))), q) for _ in range(4_000))
    slow = (quantile(replica, 0.025), quantile(replica, 0.975))
    width = slow[1] - slow[0]
    assert fast.low_us == pytest.approx(slow[0], abs=0.1 * width)
    assert fast.high_us == pytest.approx(slow[1], abs=0.1 * width)
    assert fast.estimate_us == quantile(sorted(a), q) - quantile(sorted(b), q)


def test_other_quantiles_and_their_names():
    rng = random.Random(9)
    result = compare(latencies(rng, 3_000, 5.0), latencies(rng, 3_000), q=0.9, seed=0)
    assert (result.statistic, result.differs) == ("p90", True)


def test_no_difference_is_said_in_words():
    rng = random.Random(1)
    data = latencies(rng, 2_000)
    result = compare(data, data, labels=("HDP", "HDP"))
    assert not result.differs
    assert result.describe().startswith("HDP - HDP median: no difference (95% CI -")


@pytest.mark.parametrize(("a", "b", "options", "message"), [
    ([], [1.0], {}, "no A samples"),
    ([1.0], [2.0, float("nan"), 1.0], {}, "finite"),
    ([1.0], [1.0], {"confidence": 1.0}, "confidence"),
    ([1.0], [1.0], {"replicates": 10}, "replicates"),
])
def test_bad_input_is_refused(a, b, options, message):
    with pytest.raises(ValueError, match=message):
        compare(a, b, **options)
