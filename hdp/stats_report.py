"""`hdp stats` at work: plan the targets, measure each through the agents (hdp.measure),
and report it: Markdown that links the chart, hdp-stats/1 JSON, the chart itself, and the
same Markdown in a GitHub Actions job summary.

The differences reported are each kind's median one-way latency minus UDP's (the kernel's
own datagram path is the baseline), with stats-core's bootstrap interval; round trips
take their place where the clocks are not synchronised and the run reflected.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hdp.address import resolve
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.describe import family_name
from hdp.errors import UsageError
from hdp.host import platform_info
from hdp.json_text import indented
from hdp.measure import LaneResult, StreamPlan, StreamResult, lane_label, lanes_of, measure
from hdp.stats import CaseStats, Comparison, Measure, SyncKind, compare
from hdp.stats.table import comparison_table, stats_table
from hdp.target import Target, expand, plan_target

SCHEMA = "hdp-stats/1"
# A bootstrap interval of a median says little about fewer samples than this: no
# comparison is drawn from them (the report says so).
MIN_COMPARED = 100


@dataclass(frozen=True)
class Measured:
    """One target and family: what was measured there, or what kept it from it."""

    target: str
    family: int
    address: str | None
    result: StreamResult | None = None
    error: str | None = None


def run_stats_command(args: argparse.Namespace, stdout: TextIO) -> int:
    from hdp.sweep import check_out, write_text

    fmt = args.format or ("json" if args.out and args.out.endswith(".json") else "md")
    if args.plot:
        check_plot(args.plot)
    check_out(args.out)
    measured = measure_targets(args)
    comparisons = compare_kinds(measured)
    chart = None
    problems = [f"{m.target} {family_name(m.family)}: {m.error}" for m in measured if m.error]
    if args.plot:
        from hdp.stats.plot import PlotError

        try:
            chart = draw(args.plot, measured, comparisons, log_x=args.log_x)
        except PlotError as exc:
            problems.append(str(exc))
    document = build_document(args, measured, comparisons, chart)
    markdown = render_markdown(document, measured, comparisons)
    write_text(indented(document) + "\n" if fmt == "json" else markdown, args.out, stdout)
    return finish(markdown, problems)


def finish(markdown: str, problems: list[str]) -> int:
    """The Markdown to the GitHub Actions job summary (when there is one), each problem
    on stderr; the exit status."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as job:
                job.write(markdown + "\n")
        except OSError as exc:
            problems.append(f"cannot append to GITHUB_STEP_SUMMARY ({exc.strerror})")
    for problem in problems:
        print(f"hdp stats: {problem}", file=sys.stderr)
    return 1 if problems else 0


def check_plot(path: str) -> None:
    """A chart that cannot be drawn is a usage error before anything is sent."""
    from hdp.stats.plot import FORMATS, INSTALL_HINT
    from hdp.sweep import check_out

    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: give a file name ending in .png or .svg")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
                         ) from None
    try:
        check_out(path)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--out", "--plot")) from None


# -- measuring ------------------------------------------------------------------------------

def measure_targets(args: argparse.Namespace) -> list[Measured]:
    """Every target x family the targets have, measured in turn with the same agents."""
    from hdp.sweep import sender_spec

    targets = [plan_target(text, args.family) for text in expand(args.targets, args.family)]
    agents: dict[str, AgentClient] = {}

    def agent(spec: AgentSpec) -> AgentClient:
        key = str(spec)
        if key not in agents:
            agents[key] = AgentClient.start(spec)
        return agents[key]

    measured = []
    try:
        for target in targets:
            sending = sender_spec(args.agent) if target.sender == "local" else \
                AgentSpec.parse(target.sender)
            listening = _listener(target, args.listener, sending)
            for family in target.families:
                address = target.addresses.get(family) or resolve(target.name, family)[0]
                plan = StreamPlan(str(address), family, lanes_of(args.kinds, args.protocol),
                                  args.count, args.rate, args.size, args.reflect,
                                  args.timeout, args.clock)
                try:
                    result = measure(agent(sending), agent(listening), plan)
                except AgentError as exc:
                    measured.append(Measured(target.name, family, address, error=str(exc)))
                    continue
                measured.append(Measured(target.name, family, address, result))
    finally:
        for client in agents.values():
            client.close()
    return measured


def _listener(target: Target, choice: str, sending: AgentSpec) -> AgentSpec:
    listener = target.listener if choice == "auto" else choice
    if listener == "same":
        return sending
    if listener in (None, "none"):
        raise UsageError(f"{target.name}: many probes need a listener at the target to count "
                         "them: give --listener AGENT (netns:NAME, ssh://HOST) or an ssh:// "
                         "target")
    return AgentSpec.parse(str(listener))


# -- comparing, drawing ---------------------------------------------------------------------

def _case_label(measured: list[Measured], m: Measured, lane: LaneResult) -> str:
    if len(measured) == 1:
        return lane_label(lane.lane)
    return f"{lane_label(lane.lane)}, {m.target}"


def _chosen(m: Measured, lane: LaneResult) -> CaseStats:
    """One-way latency, or the round trip where the clocks are not synchronised."""
    assert m.result is not None
    if m.result.sync.kind is SyncKind.NONE and lane.rtt is not None:
        return lane.rtt
    return lane.one_way


def compare_kinds(measured: list[Measured]) -> list[Comparison]:
    """Each kind's median minus UDP's, per target and family, where both have at least
    MIN_COMPARED samples of one clock kind."""
    comparisons = []
    for m in measured:
        if m.result is None:
            continue
        by_kind = {lane.lane.kind if lane.lane.kind != "raw" else "hdp": lane
                   for lane in m.result.lanes}
        udp = by_kind.get("udp")
        if udp is None:
            continue
        base = _chosen(m, udp).latency
        for kind in ("hdp", "tcp"):
            other = by_kind.get(kind)
            latency = None if other is None else _chosen(m, other).latency
            if other is None or latency is None or base is None or \
                    min(len(latency.samples_us), len(base.samples_us)) < MIN_COMPARED or \
                    latency.clock != base.clock:
                continue
            comparisons.append(compare(latency.samples_us, base.samples_us, labels=(
                _case_label(measured, m, other), _case_label(measured, m, udp))))
    return comparisons


def draw(path: str, measured: list[Measured], comparisons: list[Comparison], *,
         log_x: bool = False) -> str:
    from hdp.stats.plot import plot_cases

    cases = {_case_label(measured, m, lane): _chosen(m, lane)
             for m in measured if m.result is not None for lane in m.result.lanes}
    measures = {stats.measure for stats in cases.values()}
    if len(measures) > 1:  # some targets one-way, others round trips: draw the one-way
        cases = {label: stats for label, stats in cases.items()
                 if stats.measure is Measure.ONE_WAY}
    plan = next((m.result.plan for m in measured if m.result is not None), None)
    title = "HDP, UDP and TCP: latency and loss" if plan is None else (
        f"{plan.count:,} probes a kind at {plan.rate:,.0f}/s, {plan.size} data bytes")
    return str(plot_cases(path, cases, comparisons=comparisons, log_x=log_x, title=title))


# -- the report -----------------------------------------------------------------------------

def build_document(args: argparse.Namespace, measured: list[Measured],
                   comparisons: list[Comparison], chart: str | None) -> dict[str, Any]:
    """The hdp-stats/1 document: plain JSON, no samples."""
    cases, runs = [], []
    for m in measured:
        result = m.result
        runs.append({"target": m.target, "family": m.family, "address": m.address,
                     "error": m.error, **({} if result is None else _run_facts(result))})
        for lane in () if result is None else result.lanes:
            cases.append({
                "target": m.target, "family": m.family, "kind": lane.lane.kind,
                "protocol": lane.lane.protocol if lane.lane.kind == "raw" else
                (17 if lane.lane.kind == "udp" else 6),
                "label": _case_label(measured, m, lane), "stats": lane.one_way.as_json(),
                "rtt": None if lane.rtt is None else lane.rtt.as_json(),
                "socket_error": None if lane.socket_error is None else
                {"stage": lane.socket_error[0], "errno": lane.socket_error[1]},
                "listen_error": lane.listen_error})
    return {"schema": SCHEMA, "platform": platform_info(),
            "plan": {"count": args.count, "rate": args.rate, "size": args.size,
                     "kinds": list(args.kinds), "protocol": args.protocol,
                     "reflect": args.reflect, "clock": args.clock, "timeout": args.timeout},
            "runs": runs, "cases": cases,
            "comparisons": [_comparison_json(c) for c in comparisons], "chart": chart}


def _run_facts(result: StreamResult) -> dict[str, Any]:
    estimate = result.estimate
    return {"clock": result.sync.kind.value, "clock_text": result.sync.describe(),
            "offset_ns": result.sync.offset_ns, "uncertainty_ns": result.sync.uncertainty_ns,
            "echo_rounds": None if estimate is None else estimate.rounds,
            "tx_stamps": result.tx_stamps, "rx_stamps": result.rx_stamps,
            "late_us": result.late_us, "seconds": round(result.seconds, 3),
            "notes": list(result.notes)}


def _comparison_json(c: Comparison) -> dict[str, Any]:
    return {"a": c.a, "b": c.b, "statistic": c.statistic, "estimate_us": c.estimate_us,
            "low_us": c.low_us, "high_us": c.high_us, "confidence": c.confidence,
            "n_a": c.n_a, "n_b": c.n_b, "differs": c.differs, "text": c.describe()}


def render_markdown(document: dict[str, Any], measured: list[Measured],
                    comparisons: list[Comparison]) -> str:
    plan = document["plan"]
    kinds = ", ".join(f"HDP on protocol {plan['protocol']}" if kind == "hdp" else kind.upper()
                      for kind in plan["kinds"])
    lines = ["# hdp stats", "",
             f"{plan['count']:,} probes of each kind ({kinds}) at {plan['rate']:,.0f} a "
             f"second each, interleaved; {plan['size']} data bytes after each probe's "
             "20-byte tag.", ""]
    for run in document["runs"]:
        where = f"{run['target']} ({family_name(run['family'])})"
        if run["error"]:
            lines.append(f"- {where}: not measured: {run['error']}")
            continue
        clock = run["clock_text"]
        if run["clock"] == "estimated":
            clock += f" (from {run['echo_rounds']} echoes)"
        elif run["clock"] == "none":
            clock += ": one-way latency cannot be told" + (
                "; the round trips stand in for it" if plan["reflect"] else
                "; --reflect measures round trips")
        lines.append(f"- {where}: {clock}; send stamps {run['tx_stamps']}, receive stamps "
                     f"{run['rx_stamps']}; the sender kept its schedule within "
                     f"{run['late_us'] / 1000:.1f} ms")
        lines += [f"  - {note}" for note in run["notes"]]
    rows = [(_case_label(measured, m, lane), lane.one_way) for m in measured
            if m.result is not None for lane in m.result.lanes]
    rows += [(f"{_case_label(measured, m, lane)} (round trip)", lane.rtt) for m in measured
             if m.result is not None for lane in m.result.lanes if lane.rtt is not None]
    if rows:
        lines += ["", stats_table(rows)]
    if comparisons:
        lines += [comparison_table(comparisons)]
    elif rows:
        lines += [f"No comparison: a kind has fewer than {MIN_COMPARED} latency samples "
                  "of one clock, or UDP (the baseline) was not measured.", ""]
    if document["chart"]:
        lines += [f"![Latency and loss per kind of probe]({document['chart']})", ""]
    refusals = [f"{case['label']}: {_refusal(case)}" for case in document["cases"]
                if case["socket_error"] or case["listen_error"]]
    if refusals:
        lines += ["Refused: " + "; ".join(refusals), ""]
    return "\n".join(lines)


def _refusal(case: dict[str, Any]) -> str:
    if case["socket_error"]:
        return f"{case['socket_error']['errno']} at {case['socket_error']['stage']}"
    return f"the listener could not listen ({case['listen_error']})"
