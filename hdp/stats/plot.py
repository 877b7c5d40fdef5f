"""The write-up's chart: latency distributions per kind of probe (CDF and histogram) and the
loss per kind with its interval, to PNG or SVG by the file's suffix.

matplotlib is an optional extra (`pip install 'pytest-hdp[plot]'`), imported only when a
chart is drawn. The figure is drawn on an Agg canvas of its own, never through pyplot, so
drawing leaves the process's matplotlib backend and state alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hdp.errors import HdpError
from hdp.stats.accounting import CaseStats
from hdp.stats.binomial import Proportion
from hdp.stats.compare import Comparison
from hdp.stats.records import Measure
from hdp.stats.summary import quantile

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase

INSTALL_HINT = "pip install 'pytest-hdp[plot]'"
FORMATS = (".png", ".svg")
_TAIL = 0.995  # a linear x axis ends here; a few far outliers would squash the rest
_BINS = 80


class PlotError(HdpError):
    """A chart that cannot be drawn: no matplotlib, a file type we do not write, no data."""


def plot_cases(path: str | Path, cases: Mapping[str, CaseStats], *,
               comparisons: Sequence[Comparison] = (), log_x: bool = False,
               title: str | None = None) -> Path:
    """`plot_stats` for labelled case results: their latency samples and loss intervals."""
    measures = {stats.measure for stats in cases.values() if stats.latency is not None}
    if len(measures) > 1:
        raise PlotError("one chart cannot mix one-way latencies and round trips: "
                        "draw each measure to its own file")
    latency = {label: stats.latency.samples_us for label, stats in cases.items()
               if stats.latency is not None and stats.latency.samples_us}
    loss = {label: interval for label, stats in cases.items()
            if (interval := stats.loss_interval()) is not None}
    return plot_stats(path, latency, loss, comparisons=comparisons, log_x=log_x, title=title,
                      measure=measures.pop() if measures else Measure.ONE_WAY)


def plot_stats(path: str | Path, latency: Mapping[str, Sequence[float]],
               loss: Mapping[str, Proportion] | None = None, *,
               comparisons: Sequence[Comparison] = (), log_x: bool = False,
               title: str | None = None, measure: Measure = Measure.ONE_WAY) -> Path:
    """Draw latency (µs samples per label) and loss (per label) to `path` (.png or .svg).

    The comparisons, if any, are written under the title. Returns the path written.
    """
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise PlotError(f"chart file {str(target)!r}: give a name ending in .png or .svg")
    series = {label: sorted(samples) for label, samples in latency.items() if samples}
    if not series and not loss:
        raise PlotError(f"chart file {str(target)!r}: no latency samples and no loss to draw")
    figure = _new_figure()
    colours = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(
        [*series, *(loss or {})]))}
    # Subfigures, so the latency legend sits between the title and its own panels and
    # hides no curve: constrained layout makes room for it there.
    parts: list[FigureBase] = [figure]
    if series and loss:
        halves = figure.add_gridspec(2, 1, height_ratios=[3, 2])
        parts = [figure.add_subfigure(halves[0]), figure.add_subfigure(halves[1])]
    if series:
        top = parts[0]
        cdf, histogram = top.subplots(1, 2)
        _draw_latency(cdf, histogram, series, colours, log_x, measure)
        top.legend(*cdf.get_legend_handles_labels(), loc="outside upper center",
                   ncols=min(len(series), 3), fontsize=9, frameon=False)
    if loss:
        _draw_loss(parts[-1].subplots(), loss, colours)
    heading = title or "Latency and loss per kind of probe"
    if comparisons:
        heading += "\n" + "\n".join(c.describe() for c in comparisons)
    figure.suptitle(heading, fontsize=12)
    try:
        figure.savefig(target, format=target.suffix.lower()[1:], dpi=120)
    except OSError as error:
        raise PlotError(f"cannot write chart {str(target)!r}: {error.strerror or error}") from None
    return target


def _new_figure() -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"charts need matplotlib, which is not installed: {INSTALL_HINT}"
                        ) from None
    figure = Figure(figsize=(12, 8.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw_latency(cdf: Axes, histogram: Axes, series: Mapping[str, list[float]],
                  colours: Mapping[str, str], log_x: bool, measure: Measure) -> None:
    lowest = min(values[0] for values in series.values())
    if log_x:
        # A log axis cannot show 0 µs: such samples are drawn at the smallest positive one.
        positive = [v for values in series.values() for v in values if v > 0]
        low = min(positive) if positive else 0.001
        high = max(values[-1] for values in series.values())
        edges = [low * (high / low) ** (i / _BINS) for i in range(_BINS + 1)] if high > low \
            else [low / 1.1, low * 1.1]
    else:
        low = lowest
        high = max(quantile(values, _TAIL) for values in series.values())
        high = high if high > low else low + 1.0
        edges = [low + (high - low) * i / _BINS for i in range(_BINS + 1)]
    hidden = 0
    for label, values in series.items():
        n = len(values)
        shown = [max(v, low) for v in values] if log_x else values
        median = quantile(values, 0.5)
        name = f"{label}: median {median:.2f} µs, n = {n}"
        cdf.step(shown, [100 * (i + 1) / n for i in range(n)], where="post",
                 color=colours[label], label=name, linewidth=1.5)
        cdf.axvline(median, color=colours[label], linestyle=":", linewidth=1)
        in_range = [v for v in shown if v <= edges[-1]]
        hidden += n - len(in_range)
        histogram.hist(in_range, bins=edges, weights=[100 / n] * len(in_range),
                       histtype="stepfilled", alpha=0.3, color=colours[label])
        histogram.hist(in_range, bins=edges, weights=[100 / n] * len(in_range),
                       histtype="step", linewidth=1.5, color=colours[label])
    axis = "one-way latency" if measure is Measure.ONE_WAY else "round-trip time"
    axis += " (µs, log scale)" if log_x else " (µs)"
    for axes in (cdf, histogram):
        axes.set_xlim(edges[0], edges[-1])
        if log_x:
            _log_ticks(axes, edges[0], edges[-1])
        axes.set_xlabel(axis)
        axes.grid(True, alpha=0.3)
    if hidden:
        histogram.set_xlabel(f"{axis}; {hidden} samples beyond p{100 * _TAIL:g} not shown")
        cdf.set_xlabel(f"{axis}; tail beyond p{100 * _TAIL:g} not shown")
    cdf.set_ylim(0, 100)
    cdf.set_ylabel("samples at or below (%)")
    cdf.set_title("Cumulative distribution (dotted: medians)")
    histogram.set_ylabel("share of samples per bin (%)")
    histogram.set_title("Histogram")


def _log_ticks(axes: Axes, low: float, high: float) -> None:
    """Plain numbers on a log axis (50, 60, ... rather than 6 x 10^1), as many as fit."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(high / low)
    subs = range(1, 10) if decades <= 1.5 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=tuple(subs)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _draw_loss(axes: Axes, loss: Mapping[str, Proportion], colours: Mapping[str, str]) -> None:
    labels = list(loss)
    ratios = [100 * loss[label].ratio for label in labels]
    below = [100 * (loss[label].ratio - loss[label].low) for label in labels]
    above = [100 * (loss[label].high - loss[label].ratio) for label in labels]
    positions = list(range(len(labels)))
    axes.bar(positions, ratios, color=[colours[label] for label in labels], alpha=0.8,
             yerr=[below, above], capsize=6, width=0.4)
    top = max(100 * loss[label].high for label in labels)
    axes.set_ylim(0, max(top * 1.3, 1.0))
    for x, label in zip(positions, labels, strict=True):
        share = loss[label]
        axes.annotate(f"{100 * share.ratio:.2f}%\n{share.total - share.count}/{share.total} "
                      "arrived", (x, 100 * share.high), xytext=(0, 4),
                      textcoords="offset points", ha="center", va="bottom", fontsize=9)
    axes.set_xticks(positions, labels)
    axes.set_ylabel("not delivered (%)")
    level = {f"{100 * share.confidence:g}%" for share in loss.values()}
    axes.set_title("Loss per kind, with its Wilson interval"
                   + (f" ({level.pop()})" if len(level) == 1 else ""))
    axes.grid(True, axis="y", alpha=0.3)
