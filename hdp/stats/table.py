"""Many-probe results as Markdown: one row per case, one per comparison (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hdp.describe import markdown_cell
from hdp.stats.accounting import CaseStats
from hdp.stats.compare import Comparison
from hdp.stats.records import Measure

_CASE_HEADER = ("Case", "Sent", "Refused", "Delivered", "Lost", "Dropped", "Duplicated",
                "Reordered", "Corrupted", "Loss ({confidence} CI)", "Min µs", "p50 µs",
                "p90 µs", "p99 µs", "Max µs", "Samples", "Clock")
_COMPARISON_HEADER = ("Comparison", "Statistic", "Difference µs", "Confidence interval µs",
                      "Samples", "Verdict")


def stats_markdown(rows: Sequence[tuple[str, CaseStats]],
                   comparisons: Sequence[Comparison] = (), *, chart: str | None = None,
                   confidence: float = 0.95) -> str:
    """The case table, the comparison table and a link to the chart, with the notes that
    the figures need."""
    parts = [stats_table(rows, confidence=confidence)]
    if comparisons:
        parts.append(comparison_table(comparisons))
    if chart:
        parts.append(f"![Latency and loss per kind of probe]({chart})\n")
    return "\n".join(parts)


def case_header(confidence: float = 0.95) -> list[str]:
    """The column names of a case row, the loss interval's level among them."""
    return [name.format(confidence=f"{100 * confidence:g}%") for name in _CASE_HEADER]


def case_cells(label: str, stats: CaseStats, confidence: float = 0.95) -> list[str]:
    """One case row as plain text cells (other reports lay them out their own way)."""
    return _case_cells(label, stats, confidence)


def stats_table(rows: Sequence[tuple[str, CaseStats]], *, confidence: float = 0.95) -> str:
    """One row per (label, stats): the accounting, the loss with its Wilson interval, the
    latency percentiles and the clock they were read on."""
    header = case_header(confidence)
    lines = [_row(header), _row("---" if i == 0 else "---:" for i in range(len(header)))]
    lines += [_row(markdown_cell(cell) for cell in _case_cells(label, stats, confidence))
              for label, stats in rows]
    notes = []
    if any(stats.kernel_drops is None for _, stats in rows):
        notes.append("Lost ≤ N: the listener's kernel drop count is unknown, so the N probes "
                     "that did not arrive are not split into lost and dropped.")
    if any(stats.left_out.total for _, stats in rows):
        notes.append("Left out: samples that cannot be latencies (before the send, beyond "
                     "any probe window, of the other clock kind, or across unsynchronised "
                     "clocks) are counted here and kept out of the percentiles.")
    if any(stats.measure is Measure.RTT for _, stats in rows):
        notes.append("Round trip: the probe went to the listener and back (reflect mode); "
                     "the reflector's hold time is taken out where it reported it.")
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    """One row per comparison: the difference, its interval, and the verdict."""
    lines = [_row(_COMPARISON_HEADER), _row(("---", "---", "---:", "---:", "---:", "---"))]
    for c in comparisons:
        if not c.differs:
            verdict = "no difference"
        else:
            verdict = f"{c.a} {'slower' if c.estimate_us > 0 else 'faster'}"
        cells = (f"{c.a} - {c.b}", c.statistic, f"{c.estimate_us:+.2f}",
                 f"{c.low_us:+.2f} to {c.high_us:+.2f} ({100 * c.confidence:g}%)",
                 f"{c.n_a} / {c.n_b}", verdict)
        lines.append(_row(markdown_cell(cell) for cell in cells))
    return "\n".join(lines) + "\n"


def _case_cells(label: str, stats: CaseStats, confidence: float) -> list[str]:
    latency = stats.latency
    loss = stats.loss_interval(confidence)
    samples = str(0 if latency is None else latency.samples)
    if stats.left_out.total:
        samples += f" ({stats.left_out.total} left out: {stats.left_out.describe()})"
    if latency is None:
        figures = ["-"] * 5
        clock = "-"
    else:
        figures = [_us(x) for x in (latency.min_us, latency.p50_us, latency.p90_us,
                                    latency.p99_us, latency.max_us)]
        read_on = "round trip" if stats.measure is Measure.RTT else latency.sync.describe()
        clock = f"{latency.clock.value}, {read_on}"
    return [label, str(stats.sent), str(stats.refused), str(stats.delivered),
            f"≤ {stats.missing}" if stats.lost is None else str(stats.lost),
            "unknown" if stats.dropped is None else str(stats.dropped),
            str(stats.duplicated), str(stats.reordered), str(stats.corrupted),
            "-" if loss is None else
            f"{100 * loss.ratio:.2f}% [{100 * loss.low:.2f}, {100 * loss.high:.2f}]",
            *figures, samples, clock]


def _us(value: float) -> str:
    # Loopback latencies are a few µs and differ by tenths; paths across hosts, by more.
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"
