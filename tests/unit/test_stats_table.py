"""The Markdown of many-probe results: the cells a reader checks, and the notes they need."""

from __future__ import annotations

import random

from hdp.stats import ClockKind, Measure, ProbeRecord, Reception, case_stats
from hdp.stats.compare import compare
from hdp.stats.table import comparison_table, stats_markdown, stats_table

T0 = 1_700_000_000_000_000_000


def case(latencies_ns, drops=0, clock=ClockKind.KERNEL, measure=Measure.ONE_WAY):
    records = [ProbeRecord(seq, T0 + seq * 1_000, clock=clock,
                           receptions=() if lat is None else (Reception(T0 + seq * 1_000 + lat),))
               for seq, lat in enumerate(latencies_ns)]
    return case_stats(records, drops, measure=measure)


def rows_of(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(" | ")]
            for line in markdown.splitlines() if line.startswith("|")]


def test_a_row_per_case_with_its_counts_percentiles_and_clock():
    table = stats_table([("HDP | 253", case([1_500, 2_500, None, 3_500])),
                         ("UDP", case([12_000, 14_000], clock=ClockKind.USER))])
    header, rule, hdp, udp = rows_of(table)
    assert len({len(header), len(rule), len(hdp), len(udp)}) == 1
    cells = dict(zip(header, hdp, strict=True))
    assert cells["Case"] == "HDP \\| 253"
    assert (cells["Sent"], cells["Delivered"], cells["Lost"], cells["Dropped"]) == (
        "4", "3", "1", "0")
    assert (cells["Min µs"], cells["p50 µs"], cells["Max µs"]) == ("1.50", "2.50", "3.50")
    assert cells["Loss (95% CI)"].startswith("25.00% [")
    assert cells["Clock"] == "kernel, shared clock"
    assert dict(zip(header, udp, strict=True))["Clock"] == "user, shared clock"
    assert "Lost ≤" not in table and "Left out" not in table


def test_unknown_drops_and_left_out_samples_are_explained():
    table = stats_table([("HDP", case([1_500, -20, None, None], drops=None))])
    header, _, row = rows_of(table)
    cells = dict(zip(header, row, strict=True))
    assert (cells["Lost"], cells["Dropped"]) == ("≤ 2", "unknown")
    assert cells["Samples"] == "1 (1 left out: 1 negative)"
    assert "Lost ≤ N: the listener's kernel drop count is unknown" in table
    assert "Left out:" in table


def test_a_case_without_trusted_samples_shows_dashes():
    header, _, row = rows_of(stats_table([("HDP", case([None, None]))]))
    cells = dict(zip(header, row, strict=True))
    assert (cells["p50 µs"], cells["Clock"], cells["Samples"]) == ("-", "-", "0")


def test_round_trips_say_so():
    table = stats_table([("HDP", case([40_000], measure=Measure.RTT))])
    assert "kernel, round trip" in table and "Round trip:" in table


def test_comparisons_give_the_difference_interval_and_verdict():
    rng = random.Random(4)
    udp = [40 + rng.random() * 5 for _ in range(2_000)]
    hdp = [x + 20 for x in udp]
    same = compare(udp, udp, labels=("UDP", "UDP"))
    header, _, shifted, equal = rows_of(comparison_table(
        [compare(hdp, udp, labels=("HDP", "UDP")), same]))
    cells = dict(zip(header, shifted, strict=True))
    assert (cells["Comparison"], cells["Statistic"], cells["Difference µs"]) == (
        "HDP - UDP", "median", "+20.00")
    assert cells["Verdict"] == "HDP slower"
    assert cells["Confidence interval µs"].endswith("(95%)")
    assert dict(zip(header, equal, strict=True))["Verdict"] == "no difference"


def test_the_whole_section_links_the_chart():
    markdown = stats_markdown([("HDP", case([1_500]))], chart="latency.png")
    assert markdown.rstrip().endswith("](latency.png)")
