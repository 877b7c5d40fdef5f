"""Quantiles and latency summaries: numpy's definition, monotone, within the data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.stats import SHARED_CLOCK, ClockKind, LatencySummary, LeftOut, Measure, quantile
from hdp.stats.summary import summarize

values = st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=200)
fractions = st.floats(0, 1)


@given(values, fractions, fractions)
def test_quantiles_rise_with_q_and_stay_within_the_data(data, q1, q2):
    ordered = sorted(data)
    low, high = sorted((q1, q2))
    assert ordered[0] <= quantile(ordered, low) <= quantile(ordered, high) <= ordered[-1]


@given(values, fractions)
def test_quantile_is_numpys_default(data, q):
    numpy = pytest.importorskip("numpy", reason="numpy is the oracle (pip install numpy)")
    assert math.isclose(quantile(sorted(data), q), float(numpy.quantile(data, q)),
                        rel_tol=1e-9, abs_tol=1e-9)


def test_quantile_ends_and_middle():
    assert [quantile([1.0, 2.0, 3.0, 4.0], q) for q in (0, 0.5, 1)] == [1.0, 2.5, 4.0]


@pytest.mark.parametrize("q", [-0.1, 1.1])
def test_quantile_outside_zero_one_is_refused(q):
    with pytest.raises(ValueError, match="within"):
        quantile([1.0], q)


def test_summary_in_us_from_ns():
    summary, left_out = summarize([(2_000, ClockKind.KERNEL), (1_000, ClockKind.KERNEL)],
                                  sync=SHARED_CLOCK)
    assert left_out == LeftOut()
    assert summary is not None
    assert (summary.min_us, summary.p50_us, summary.max_us, summary.samples) == (
        1.0, 1.5, 2.0, 2)
    assert summary.percentile_us(0.25) == 1.25


@pytest.mark.parametrize(("fields", "message"), [
    ({"samples": 0}, "at least one"),
    ({"min_us": -1.0}, ">= 0"),
    ({"p90_us": 1.0}, "rise"),
    ({"max_us": math.inf}, "finite"),
    ({"samples_us": (1.0,)}, "samples given"),
])
def test_a_summary_with_impossible_figures_is_refused(fields, message):
    good = {"measure": Measure.ONE_WAY, "clock": ClockKind.KERNEL, "sync": SHARED_CLOCK,
            "samples": 3, "min_us": 1.0, "p50_us": 2.0, "p90_us": 3.0, "p99_us": 3.0,
            "max_us": 3.0}
    with pytest.raises(ValueError, match=message):
        LatencySummary(**{**good, **fields})
