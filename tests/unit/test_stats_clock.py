"""Clock offset from echo exchanges with a known offset, and when a clock is shared."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.stats import NO_SYNC, SHARED_CLOCK, ProbeRecord, Reception, SyncKind, case_stats
from hdp.stats.clock import Echo, clock_sync, estimate_offset, shared_clock

T0 = 1_700_000_000_000_000_000


def exchange(offset_ns: int, out_ns: int, back_ns: int, turnaround_ns: int,
             at_ns: int = T0) -> Echo:
    """One round between a sender and a peer whose clock reads `offset_ns` ahead."""
    t1 = at_ns
    t2 = t1 + out_ns + offset_ns
    t3 = t2 + turnaround_ns
    t4 = t3 - offset_ns + back_ns
    return Echo(t1, t2, t3, t4)


def test_symmetric_fastest_round_gives_the_offset_exactly():
    rounds = [exchange(123_456_789, 40_000, 90_000, 5_000),
              exchange(123_456_789, 20_000, 20_000, 7_000, T0 + 10**6),
              exchange(123_456_789, 70_000, 25_000, 3_000, T0 + 2 * 10**6)]
    estimate = estimate_offset(rounds)
    assert (estimate.offset_ns, estimate.uncertainty_ns, estimate.delay_ns) == (
        123_456_789, 20_000, 40_000)
    assert (estimate.rounds, estimate.rejected) == (3, 0)


rounds_strategy = st.lists(
    st.tuples(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**6)),
    min_size=1, max_size=8)


@given(st.integers(-10**12, 10**12), rounds_strategy)
def test_the_true_offset_is_always_within_the_bound(offset, delays):
    # Asymmetric paths shift the estimate, never past its bound.
    estimate = estimate_offset(exchange(offset, out, back, hold, T0 + i * 10**8)
                               for i, (out, back, hold) in enumerate(delays))
    assert abs(estimate.offset_ns - offset) <= estimate.uncertainty_ns
    assert estimate.uncertainty_ns <= min(out + back for out, back, _ in delays) // 2 + 1


def test_more_rounds_tighten_the_estimate():
    rng = random.Random(8)
    rounds = [exchange(-5_000_000, 30_000 + rng.randrange(50_000),
                       30_000 + rng.randrange(50_000), 4_000, T0 + i * 10**6)
              for i in range(50)]
    few, many = estimate_offset(rounds[:3]), estimate_offset(rounds)
    assert many.uncertainty_ns <= few.uncertainty_ns
    assert abs(many.offset_ns + 5_000_000) <= many.uncertainty_ns


def test_implausible_rounds_are_rejected():
    good = exchange(1_000, 10_000, 10_000, 1_000)
    backwards = Echo(T0, T0 + 5, T0 + 6, T0 - 1)  # received before it was sent
    peer_backwards = Echo(T0, T0 + 50, T0 + 10, T0 + 100)
    negative_delay = Echo(T0, T0, T0 + 1_000, T0 + 10)  # the peer held it longer than the trip
    estimate = estimate_offset([backwards, good, peer_backwards, negative_delay])
    assert (estimate.rounds, estimate.rejected, estimate.offset_ns) == (1, 3, 1_000)
    with pytest.raises(ValueError, match="no plausible round among 1"):
        estimate_offset([backwards])


def test_estimate_corrects_one_way_latency_across_hosts():
    # The listener's clock is 2.5 ms ahead; the path takes 30 µs each way.
    offset = 2_500_000
    sync = estimate_offset([exchange(offset, 30_000, 30_000, 2_000)]).sync()
    probe = ProbeRecord(0, T0, receptions=(Reception(T0 + 30_000 + offset),))
    latency = case_stats([probe], 0, sync=sync).latency
    assert latency is not None
    assert latency.samples_us == (30.0,)
    assert sync.describe() == "offset +2500.0 ± 30.0 µs"


@pytest.mark.parametrize(("sender", "listener", "shared"), [
    ("2f1c-boot", "2f1c-boot", True),  # one kernel: same host, or namespaces of it
    ("2f1c-boot", "9a0e-boot", False),
    (None, None, False),  # unknown is never taken as shared
    ("", "", False),
])
def test_shared_clock_follows_the_kernels_boot_id(sender, listener, shared):
    assert shared_clock(sender, listener) is shared


def test_clock_sync_prefers_a_shared_clock_then_an_estimate():
    estimate = estimate_offset([exchange(7_000, 10_000, 10_000, 500)])
    assert clock_sync("a", "a", estimate) == SHARED_CLOCK
    assert clock_sync("a", "b", estimate).kind is SyncKind.ESTIMATED
    assert clock_sync("a", "b") == NO_SYNC
