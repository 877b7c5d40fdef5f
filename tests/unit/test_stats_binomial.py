"""The Wilson interval against published values, scipy when present, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.stats import wilson_interval


# The score (Wilson) intervals of the worked examples in Newcombe, "Two-sided confidence
# intervals for the single proportion: comparison of seven methods", Statistics in
# Medicine 17 (1998) 857-872.
@pytest.mark.parametrize(("count", "total", "low", "high"), [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_published_values(count, total, low, high):
    interval = wilson_interval(count, total)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


@pytest.fixture(scope="module")
def scipy_stats():
    # Imported once, outside the examples: scipy's first import takes a second.
    return pytest.importorskip("scipy.stats", reason="scipy is the oracle: pip install scipy")


@given(st.integers(1, 20_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_scipy_agrees(scipy_stats, count_total, confidence):
    count, total = count_total
    ours = wilson_interval(count, total, confidence)
    theirs = scipy_stats.binomtest(count, total).proportion_ci(confidence, method="wilson")
    assert ours.low == pytest.approx(theirs.low, abs=1e-9)
    assert ours.high == pytest.approx(theirs.high, abs=1e-9)


def test_five_percent_injected_over_10000_probes():
    # What the lab checks: 5% loss on a link, measured over 10,000 probes
    interval = wilson_interval(500, 10_000)
    assert interval.contains(0.05)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0459, 0.0544)
    assert interval.describe() == "5.00% (95% CI 4.59 to 5.44%)"
    assert not wilson_interval(400, 10_000).contains(0.05)


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_holds_the_ratio_within_zero_one(count_total):
    interval = wilson_interval(*count_total)
    assert 0.0 <= interval.low <= interval.ratio <= interval.high <= 1.0


def test_more_probes_narrow_the_interval():
    widths = [wilson_interval(n // 20, n) for n in (100, 1_000, 10_000)]
    assert [w.high - w.low for w in widths] == sorted((w.high - w.low for w in widths),
                                                     reverse=True)


@pytest.mark.parametrize(("count", "total", "confidence"), [
    (1, 0, 0.95), (-1, 10, 0.95), (11, 10, 0.95), (1, 10, 0.0), (1, 10, 1.0)])
def test_bad_input_is_refused(count, total, confidence):
    with pytest.raises(ValueError):
        wilson_interval(count, total, confidence)
