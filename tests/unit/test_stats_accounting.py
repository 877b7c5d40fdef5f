"""Per-probe records -> CaseStats: one table row per accounting rule, then properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.stats import (
    NO_SYNC,
    CaseStats,
    ClockKind,
    ClockSync,
    LeftOut,
    Measure,
    ProbeRecord,
    Reception,
    SyncKind,
    case_stats,
)

T0 = 1_700_000_000_000_000_000  # probes leave 1 µs apart from here
GAP = 1_000
KERNEL, USER = ClockKind.KERNEL, ClockKind.USER


def probe(seq: int, *arrivals: int | tuple[int, bool], clock: ClockKind = KERNEL,
          refused: str | None = None, rx_clock: ClockKind = KERNEL) -> ProbeRecord:
    """Probe `seq`, sent at T0 + seq µs; each arrival is its latency in ns (and intact?)."""
    if refused:
        return ProbeRecord(seq, None, refused=refused)
    sent = T0 + seq * GAP
    copies = tuple(Reception(sent + a, clock=rx_clock) if isinstance(a, int)
                   else Reception(sent + a[0], intact=a[1], clock=rx_clock) for a in arrivals)
    return ProbeRecord(seq, sent, clock=clock, receptions=copies)


def counts(stats: CaseStats) -> tuple[object, ...]:
    return (stats.sent, stats.refused, stats.delivered, stats.lost, stats.dropped,
            stats.duplicated, stats.reordered, stats.corrupted)


#        sent refused delivered lost dropped duplicated reordered corrupted
@pytest.mark.parametrize(("probes", "drops", "expected"), [
    pytest.param([probe(0, 500), probe(1, 500), probe(2, 500)], 0,
                 (3, 0, 3, 0, 0, 0, 0, 0), id="all-in-order"),
    pytest.param([probe(0, 500), probe(1, 500, 700, 900), probe(2, 500)], 0,
                 (3, 0, 3, 0, 0, 2, 0, 0), id="three-copies-two-duplicates"),
    # 0 2 1 3: probe 1 arrives after probe 2 (RFC 4737: 1 reordered)
    pytest.param([probe(0, 500), probe(1, 2_500), probe(2, 500), probe(3, 500)], 0,
                 (4, 0, 4, 0, 0, 0, 1, 0), id="one-late"),
    # 3 0 1 2: every probe after the early 3 is reordered
    pytest.param([probe(0, 5_000), probe(1, 5_000), probe(2, 5_000), probe(3, 100)], 0,
                 (4, 0, 4, 0, 0, 0, 3, 0), id="one-early"),
    # a late duplicate of probe 0 is a duplicate, not a reordering
    pytest.param([probe(0, 500, 9_000), probe(1, 500)], 0,
                 (2, 0, 2, 0, 0, 1, 0, 0), id="late-duplicate-not-reordered"),
    pytest.param([probe(0, 500), probe(1, (500, False))], 0,
                 (2, 0, 1, 1, 0, 0, 0, 1), id="only-corrupted-is-lost"),
    pytest.param([probe(0, 500), probe(1, (400, False), 600)], 0,
                 (2, 0, 2, 0, 0, 0, 0, 1), id="corrupted-then-intact"),
    pytest.param([probe(0, 500), probe(1), probe(2)], 1,
                 (3, 0, 1, 1, 1, 0, 0, 0), id="drop-count-moves-lost-to-dropped"),
    pytest.param([probe(0, 500), probe(1)], 5,
                 (2, 0, 1, 0, 1, 0, 0, 0), id="drops-beyond-the-missing"),
    pytest.param([probe(0, 500), probe(1), probe(2)], None,
                 (3, 0, 1, None, None, 0, 0, 0), id="drops-unknown"),
    pytest.param([probe(0, 500), probe(1, refused="ENOBUFS"), probe(2, 500)], 0,
                 (2, 1, 2, 0, 0, 0, 0, 0), id="refused"),
    pytest.param([probe(0, refused="EOPNOTSUPP"), probe(1, refused="EOPNOTSUPP")], None,
                 (0, 2, 0, None, None, 0, 0, 0), id="all-refused"),
])
def test_accounting(probes, drops, expected):
    stats = case_stats(probes, drops)
    assert counts(stats) == expected
    if stats.lost is not None and stats.dropped is not None:
        assert stats.sent == stats.delivered + stats.lost + stats.dropped


def test_excess_drops_and_refusals_are_reported():
    stats = case_stats([probe(0, 500), probe(1), probe(2, refused="ENOBUFS"),
                        probe(3, refused="EMSGSIZE")], 5)
    assert (stats.excess_drops, stats.refusals) == (4, ("EMSGSIZE", "ENOBUFS"))
    assert (stats.missing, stats.loss_ratio) == (1, 0.5)


def test_unknown_drops_say_so():
    stats = case_stats([probe(0, 500), probe(1)], None)
    assert (stats.missing, stats.lost, stats.dropped, stats.excess_drops) == (1, None, None, None)


def test_nothing_sent_has_no_loss_ratio():
    stats = case_stats([probe(0, refused="EPERM")], 0)
    assert (stats.loss_ratio, stats.loss_interval(), stats.latency) == (None, None, None)


@pytest.mark.parametrize(("probes", "samples_us", "left_out", "clock"), [
    pytest.param([probe(0, 1_500), probe(1, 2_500)], (1.5, 2.5), LeftOut(), KERNEL,
                 id="kernel"),
    pytest.param([probe(0, 1_500), probe(1, -300), probe(2, 2_000)], (1.5, 2.0),
                 LeftOut(negative=1), KERNEL, id="negative"),
    # The write-up's -1.2e16 µs (a stamp the kernel rewrote) and a clock jump ahead
    pytest.param([probe(0, 1_500), probe(1, -12 * 10**18), probe(2, 11 * 10**12)], (1.5,),
                 LeftOut(negative=1, absurd=1), KERNEL, id="absurd"),
    pytest.param([probe(0, 1_500), probe(1, 900, clock=USER), probe(2, 2_000)], (1.5, 2.0),
                 LeftOut(other_clock=1), KERNEL, id="user-stamps-never-dilute-kernel"),
    pytest.param([probe(0, 1_500, clock=USER), probe(1, 2_000, clock=USER)], (1.5, 2.0),
                 LeftOut(), USER, id="user-only"),
    pytest.param([probe(0, 1_500, rx_clock=USER), probe(1, 2_000)], (2.0,),
                 LeftOut(other_clock=1), KERNEL, id="user-receive-stamp"),
    # duplicates give no extra sample: the first intact copy speaks for its probe
    pytest.param([probe(0, 3_000, 1_000, (200, False))], (1.0,), LeftOut(), KERNEL,
                 id="first-intact-copy"),
])
def test_latency_samples(probes, samples_us, left_out, clock):
    stats = case_stats(probes, 0)
    assert stats.latency is not None
    assert (stats.latency.samples_us, stats.left_out, stats.latency.clock) == (
        samples_us, left_out, clock)


def test_no_trusted_sample_gives_no_latency():
    stats = case_stats([probe(0, -5), probe(1, -7)], 0)
    assert (stats.latency, stats.left_out) == (None, LeftOut(negative=2))


def test_unsynchronised_clocks_give_no_one_way_latency():
    stats = case_stats([probe(0, 1_500), probe(1, 2_500)], 0, sync=NO_SYNC)
    assert (stats.latency, stats.left_out) == (None, LeftOut(unsynchronised=2))


def test_the_estimated_offset_is_taken_out():
    # The listener's clock runs 1 ms ahead: raw differences of 1001.5 µs are 1.5 µs
    sync = ClockSync(SyncKind.ESTIMATED, offset_ns=1_000_000, uncertainty_ns=200)
    stats = case_stats([probe(0, 1_001_500)], 0, sync=sync)
    assert stats.latency is not None
    assert (stats.latency.samples_us, stats.latency.sync) == ((1.5,), sync)


def test_round_trip_takes_out_the_reflectors_hold_time():
    sent = T0
    echo = Reception(sent + 30_000, hold_ns=12_000)
    stats = case_stats([ProbeRecord(0, sent, receptions=(echo,))], 0, measure=Measure.RTT)
    assert stats.latency is not None
    assert (stats.latency.samples_us, stats.latency.measure) == ((18.0,), Measure.RTT)


def test_round_trip_refuses_a_clock_offset():
    with pytest.raises(ValueError, match="sender's clock"):
        case_stats([probe(0, 500)], 0, measure=Measure.RTT, sync=NO_SYNC)


@pytest.mark.parametrize(("probes", "message"), [
    ([probe(0, 5), probe(0, 5)], "repeated"),
    ([probe(0, 5), probe(2, 5)], "missing"),
])
def test_probe_numbers_must_be_complete(probes, message):
    with pytest.raises(ValueError, match=message):
        case_stats(probes, 0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ProbeRecord(0, None), "no send timestamp"),
    (lambda: ProbeRecord(0, None, refused="EPERM", receptions=(Reception(T0),)), "refused"),
    (lambda: ProbeRecord(-1, T0), "seq"),
    (lambda: Reception(T0, hold_ns=-1), "hold_ns"),
    (lambda: case_stats([probe(0)], -1), "kernel_drops"),
])
def test_bad_records_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_json_round_trip_keeps_everything_but_the_samples():
    stats = case_stats([probe(0, 1_500), probe(1, -3), probe(2), probe(3, 500, 800)], 1)
    again = CaseStats.from_json(stats.as_json())
    assert again.as_json() == stats.as_json()
    assert again.latency is not None and again.latency.samples_us == ()


@pytest.mark.parametrize(("change", "message"), [
    ({"sent": -1}, "sent"),
    ({"sent": True}, "sent"),
    ({"lost": 5}, "sent 4 != delivered"),
    ({"dropped": None}, "lost and dropped"),
    ({"delivered": 9}, "exceeds"),
    ({"left_out": {"negative": 3}}, "do not make"),
    ({"latency": {"min_us": 2.0}}, "latency"),
    ({"refusals": "EPERM"}, "refusals"),
])
def test_bad_json_names_the_field(change, message):
    entry = case_stats([probe(0, 1_500), probe(1, 2_000), probe(2, 1_000), probe(3)],
                       0).as_json()
    entry.update(change)
    with pytest.raises(ValueError, match=message):
        CaseStats.from_json(entry)


# --- properties -------------------------------------------------------------------------

arrival = st.tuples(st.integers(-2_000, 50_000), st.booleans())
probe_spec = st.one_of(
    st.just("refused"),
    st.tuples(st.sampled_from([KERNEL, USER]), st.lists(arrival, max_size=3)))


def build(specs: list[object]) -> list[ProbeRecord]:
    records = []
    for seq, spec in enumerate(specs):
        if spec == "refused":
            records.append(probe(seq, refused="ENOBUFS"))
        else:
            clock, arrivals = spec  # type: ignore[misc]
            records.append(probe(seq, *arrivals, clock=clock))
    return records


@given(st.lists(probe_spec, max_size=30), st.one_of(st.none(), st.integers(0, 40)))
def test_every_probe_is_accounted_for(specs, drops):
    stats = case_stats(build(specs), drops)
    assert stats.sent + stats.refused == len(specs)
    assert stats.missing == stats.sent - stats.delivered >= 0
    if drops is None:
        assert (stats.lost, stats.dropped) == (None, None)
    else:
        assert stats.sent == stats.delivered + stats.lost + stats.dropped
        assert stats.dropped <= drops
    latency = stats.latency
    if latency is not None:
        figures = [latency.min_us, latency.p50_us, latency.p90_us, latency.p99_us,
                   latency.max_us]
        assert figures[0] >= 0 and figures == sorted(figures)
        assert all(sample >= 0 for sample in latency.samples_us)
    assert (0 if latency is None else latency.samples) + stats.left_out.total == stats.delivered


@given(st.lists(probe_spec, max_size=30), st.integers(0, 5), st.randoms())
def test_the_order_of_records_and_copies_does_not_matter(specs, drops, rng):
    records = build(specs)
    shuffled = [ProbeRecord(r.seq, r.sent_ns, r.clock,
                            tuple(rng.sample(r.receptions, len(r.receptions))), r.refused)
                for r in rng.sample(records, len(records))]
    assert case_stats(shuffled, drops) == case_stats(records, drops)


@given(st.permutations(range(12)))
def test_reordered_matches_its_definition(order):
    # Probe order[i] arrives i-th: reordered if a higher seq arrived before it
    arrival_at = {seq: index for index, seq in enumerate(order)}
    records = [ProbeRecord(seq, T0, receptions=(Reception(T0 + 1_000 * arrival_at[seq]),))
               for seq in range(12)]
    expected = sum(1 for i, seq in enumerate(order) if any(s > seq for s in order[:i]))
    assert case_stats(records, 0).reordered == expected


def test_a_large_case_matches_the_truth_it_was_built_from():
    # 10,000 probes with duplicates and loss, counted against the truth.
    rng = random.Random(5)
    records, lost, duplicated = [], 0, 0
    for seq in range(10_000):
        copies = 0 if rng.random() < 0.05 else 1 + (rng.random() < 0.01)
        lost += copies == 0
        duplicated += max(copies - 1, 0)
        records.append(probe(seq, *[1_000 + rng.randrange(5_000) for _ in range(copies)]))
    stats = case_stats(records, 0)
    assert (stats.lost, stats.duplicated, stats.delivered) == (lost, duplicated, 10_000 - lost)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)


@given(st.dictionaries(st.sampled_from(
    ["sent", "refused", "delivered", "lost", "dropped", "kernel_drops", "duplicated",
     "reordered", "corrupted", "measure", "refusals", "left_out", "latency"]), json_values,
    max_size=3), st.sampled_from(["min_us", "p50_us", "clock", "sync", "offset_ns",
                                  "samples", "measure"]), json_values)
def test_any_json_reads_as_stats_or_a_value_error(changes, latency_field, latency_value):
    # A report file is input: whatever is in it, reading it never fails another way.
    entry = case_stats([probe(0, 1_500), probe(1, 2_000), probe(2)], 0).as_json()
    entry.update(changes)
    if isinstance(entry.get("latency"), dict):
        entry["latency"] = {**entry["latency"], latency_field: latency_value}
    try:
        stats = CaseStats.from_json(entry)
    except ValueError:
        return
    assert stats.sent == stats.delivered + (stats.lost or 0) + (stats.dropped or 0) or (
        stats.kernel_drops is None)


def test_kinds_given_as_text_are_the_kinds():
    record = ProbeRecord(0, T0, clock="user", receptions=(Reception(T0 + 5, clock="kernel"),))
    assert (record.clock, record.receptions[0].clock) == (USER, KERNEL)
    assert ClockSync("shared").kind is SyncKind.SHARED
