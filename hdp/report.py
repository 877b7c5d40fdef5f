"""Outcomes -> the hdp-report/1 JSON document, its Markdown tables and a folded summary (pure)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hdp.case import Case, Observation
from hdp.describe import family_name as _family
from hdp.describe import markdown_cell as _md
from hdp.describe import one_line, with_details
from hdp.host import platform_info
from hdp.json_text import indented
from hdp.quick_init import quick_init
from hdp.report_checks import render_checks
from hdp.report_load import SCHEMA, VERDICT_LABELS, loads, read_report
from hdp.report_meta import meta_lines
from hdp.selection import fold_ranges
from hdp.verdict import Outcome, Verdict

__all__ = ["SCHEMA", "VERDICT_LABELS", "CaseResult", "build_report", "case_entry", "dumps",
           "loads", "read_report", "render_markdown", "render_table", "report_of_entries",
           "summarize"]

_ARRIVED = frozenset({Outcome.DELIVERED.value, Outcome.ALTERED.value})
_LOCAL_REFUSALS = frozenset({Outcome.SOCKET_ERROR.value, Outcome.SEND_ERROR.value})
# A change that has a value in the entry is shown with it: "altered (protocol: 3)".
_CHANGE_VALUES = {"protocol": "wire_protocol", "src": "source", "length": "bytes_received",
                  "src-not-translated": "source", "payload": "payload_changed"}


@quick_init
@dataclass(frozen=True)
class CaseResult:
    """One case with what was seen, what it means, and (optionally) what a profile expected."""

    case: Case
    observation: Observation
    verdict: Verdict
    expected: str | None = None  # an Outcome value from a profile; None = no profile said
    verdict_label: str | None = None  # pass | fail | xfail | xpass; None = not judged
    # Where the probe was sent from when that is a chosen vantage point (an xdist worker
    # inside lab host `nat/client1`, or HDP_VANTAGE); None: the target's usual sender.
    vantage: str | None = None

    def __post_init__(self) -> None:
        if self.expected is not None:
            Outcome(self.expected)  # raises ValueError naming the bad value
        if self.verdict_label is not None and self.verdict_label not in VERDICT_LABELS:
            raise ValueError(f"verdict_label {self.verdict_label!r} is not one of "
                             f"{', '.join(VERDICT_LABELS)}")


def case_entry(result: CaseResult) -> dict[str, Any]:
    """One element of the report's "cases": plain JSON types, nothing time-of-run dependent."""
    case, observation, verdict = result.case, result.observation, result.verdict
    first = observation.deliveries[0] if observation.deliveries else None
    icmp = verdict.icmp
    # In the order of their names: the report's text sorts every object's members, and
    # members already in order sort in one pass (4,096 entries: 18.8 -> 16.0 ms).
    entry: dict[str, Any] = {
        "bytes_received": None if first is None else first.length,
        "bytes_sent": observation.sent_bytes,
        "changes": list(verdict.changes),
        "deliveries": len(observation.deliveries),
        "errno": verdict.errno,
        "expected": None if result.expected is None else Outcome(result.expected).value,
        "family": case.family,
        "hops": verdict.hops,
        "icmp": None if icmp is None else {"code": icmp.code, "from": icmp.source,
                                           "mtu": icmp.mtu, "type": icmp.type},
        "inferred": verdict.inferred,
        "latency_us": _rounded(verdict.latency_us),
        "note": observation.note,
        "outcome": verdict.outcome.value,
        "path": case.path,
        "payload": case.payload,
        "protocol": case.protocol,
        "received": first is not None,
        "sent": not (observation.socket_errno or observation.send_errno
                     or observation.failure_stage in ("send", "agent")),
        "size": case.size,
        "source": None if first is None else first.src,
        "target": case.target,
        "verdict": result.verdict_label,
        "wire_protocol": verdict.wire_protocol,
    }
    if verdict.changed_bytes is not None:  # which bytes differ from the probe as sent
        entry["payload_changed"] = verdict.changed_bytes
    if result.vantage is not None:  # absent, not null: reports without vantage points keep
        entry["vantage"] = result.vantage  # the fields they always had
    # Probe knobs other than the defaults, likewise absent when unused: two cases that differ
    # only in them are two cases of one report.
    if case.tos:
        entry["tos"] = case.tos
    if case.df is not None:
        entry["df"] = case.df
    if case.ttl is not None:
        entry["ttl"] = case.ttl
    if case.data is not None:
        entry["data"] = case.data
    if case.count is not None:  # many probes: their accounting, not one probe's latency
        entry.update(count=case.count, rate=case.rate)
    if observation.stats is not None:
        entry["stats"] = observation.stats.as_json()
    return entry


def _rounded(value: float | None) -> float | None:
    # NaN/inf are not JSON; a latency that is not a number is no latency.
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 1)


def build_report(results: Iterable[CaseResult], *, platform: dict[str, str] | None = None,
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hdp-report/1 document; the same results give the same document apart from meta."""
    return report_of_entries((case_entry(result) for result in results), platform=platform,
                             meta=meta)


def report_of_entries(entries: Iterable[dict[str, Any]], *,
                      platform: dict[str, str] | None = None,
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document around case entries already made (e.g. carried from xdist workers)."""
    report: dict[str, Any] = {"schema": SCHEMA,
                              "platform": dict(platform_info() if platform is None else platform),
                              "cases": _sorted(entries)}
    if meta is not None:
        report["meta"] = dict(meta)
    return report


def _sorted(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """DESIGN's order, each target's vantage points apart (none first), then everything
    else, so that the order is total (duplicate cases too). The whole entry's JSON text
    is made only for entries that tie on the rest: sorting by it within each run of
    ties after a stable sort is sorting by both."""
    ordered = sorted(entries, key=_sort_key)
    result: list[dict[str, Any]] = []
    for _, tied in itertools.groupby(ordered, key=_sort_key):
        group = list(tied)
        if len(group) > 1:
            group.sort(key=lambda entry: json.dumps(entry, sort_keys=True))
        result += group
    return result


def _sort_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["target"], _vantage_key(entry), entry["family"], entry["protocol"],
            entry["payload"], entry["size"], entry["path"])


def _vantage_key(entry: dict[str, Any]) -> tuple[int, str]:
    vantage = entry.get("vantage")
    return (0, "") if vantage is None else (1, str(vantage))


def _from(entry: dict[str, Any]) -> str:
    """` from nat/client1` for a case probed from a vantage point, else nothing."""
    vantage = entry.get("vantage")
    return "" if vantage is None else f" from {vantage}"


def dumps(report: dict[str, Any]) -> str:
    """Deterministic text for a report: sorted keys, two-space indent, trailing newline."""
    return indented(report) + "\n"


# --- rendering -------------------------------------------------------------------------

# The write-up's columns. Its "Byte Sum (Server)" was what recv() returned on the server's
# raw socket, the IPv4 header included, so it read 33 where the client sent 13; what a
# listener reports here is the payload after the IP header, so the column has its own name
# (`hdp listen --format table` keeps the original column, counted the original way).
_HEADER = ("Protocol Number", "Source IP (Server)", "Payload Bytes (Server)",
           "Received (Server)", "Succeeded (Client)", "Byte sum (Client)",
           "Failure reason (Client)", "Time difference (μs)", "Outcome")
_RIGHT = frozenset({"Protocol Number", "Size", "Payload Bytes (Server)", "Byte sum (Client)",
                    "Time difference (μs)"})


def summarize(report: dict[str, Any]) -> list[str]:
    """One line per target x family x payload, protocol numbers folded by outcome (+ details)."""
    cases: list[dict[str, Any]] = report["cases"]
    by_size = len({entry.get("size") for entry in cases}) > 1
    by_count = len({entry.get("count") for entry in cases}) > 1
    sections: dict[tuple[Any, ...], dict[str, list[int]]] = {}
    for entry in cases:
        key: tuple[Any, ...] = (entry["target"], _vantage_key(entry), entry["family"],
                                entry["payload"])
        if by_size:
            key += (_sortable(entry.get("size")),)
        if by_count:
            key += (entry.get("count") or 1,)
        groups = sections.setdefault(key, {})
        groups.setdefault(outcome_label(entry), []).append(entry["protocol"])
    lines = []
    for key in sorted(sections):
        target, vantage, family, payload = key[:4]
        name = f"{target} {_family(family)} {payload}"
        if vantage[0]:
            name += f" from {vantage[1]}"
        if by_size:
            name += f" size {_cell(key[4][1])}"
        if by_count:
            name += f" x{key[-1]} probes"
        groups = sections[key]
        order = sorted(groups, key=lambda label: (min(groups[label]), label))
        folded = "; ".join(f"{fold_ranges(groups[label])} {label}" for label in order)
        lines.append(one_line(f"{name}: {folded}"))
    return lines


def outcome_label(entry: dict[str, Any], *, with_values: bool = False) -> str:
    """The outcome with what makes cases alike across runs and machines: errno, the fields
    that changed (with the protocol a packet arrived as, if asked), a renumbering, and
    whether it was inferred. Addresses, byte counts, latencies and notes are left out."""
    details = [str(entry["errno"])] if entry.get("errno") else []
    wire = entry.get("wire_protocol")
    for change in entry.get("changes") or []:
        details.append(f"protocol: {wire}" if with_values and change == "protocol"
                       and isinstance(wire, int) else str(change))
    details += _renumbered(entry)
    if entry.get("inferred") is True:
        details.append("inferred")
    return with_details(entry["outcome"], details)


def _renumbered(entry: dict[str, Any]) -> list[str]:
    """A protocol the OS put on the wire under another number, outside `altered`."""
    wire = entry.get("wire_protocol")
    if entry["outcome"] == Outcome.ALTERED.value or not isinstance(wire, int):
        return []
    return [f"on the wire as protocol {wire}"] if wire != entry["protocol"] else []


def outcome_text(entry: dict[str, Any]) -> str:
    """The Outcome cell: `altered (protocol: 3)`, `unreachable (ICMP 3/2 from ::1, inferred)`."""
    outcome = entry["outcome"]
    details: list[str] = []
    if entry.get("errno"):
        details.append(entry["errno"])
    for change in entry.get("changes") or []:
        value = entry.get(_CHANGE_VALUES.get(change, ""))
        details.append(change if value is None else f"{change}: {value}")
    icmp = entry.get("icmp")
    if isinstance(icmp, dict):
        if outcome == Outcome.TOO_BIG.value and icmp.get("mtu") is not None:
            details.append(f"MTU {icmp['mtu']}")
        else:
            kind = "ICMPv6" if entry.get("family") == 6 else "ICMP"
            origin = "" if icmp.get("from") is None else f" from {icmp['from']}"
            details.append(f"{kind} {icmp.get('type')}/{icmp.get('code')}{origin}")
    details += _renumbered(entry)
    if entry.get("inferred"):
        details.append("inferred")
    if entry.get("note"):
        details.append(entry["note"])
    return with_details(outcome, details)


@dataclass(frozen=True)
class _Table:
    heading: str
    header: list[str]
    rows: list[list[str]]  # one line of plain text a cell


@dataclass(frozen=True)
class _Layout:
    """What a rendered report says, before it is spelled as Markdown or as a text table."""

    title: str
    cases: int
    summary: list[str]
    notes: list[str]  # paragraphs
    meta: list[str]  # one paragraph, a line each
    tables: list[_Table]
    checks: str  # the chapter's section, Markdown


def _layout(report: dict[str, Any]) -> _Layout:
    cases: list[dict[str, Any]] = report["cases"]
    notes = []
    inferred = sum(1 for entry in cases if entry.get("inferred") is True)
    if inferred:
        notes.append(f"{inferred} of {len(cases)} cases had no listener on the target: their "
                     "outcome is inferred from ICMP alone, not observed by a listener.")
    judged = any(entry.get("expected") is not None or entry.get("verdict") is not None
                 for entry in cases)
    sized = len({entry.get("size") for entry in cases}) > 1
    header = list(_HEADER)
    if sized:
        header.insert(1, "Size")
    if judged:
        header += ["Expected", "Verdict"]
    sections: dict[tuple[str, tuple[int, str], int, str, str], list[dict[str, Any]]] = {}
    for entry in cases:
        if entry.get("stats") is not None:
            continue  # a case of many probes: a row of its own table (report_stats)
        key = (entry["target"], _vantage_key(entry), entry["family"], entry["payload"],
               entry["path"])
        sections.setdefault(key, []).append(entry)
    tables = []
    for key in sorted(sections):
        target, _, family, payload, path = key
        heading = f"{target} ({path}){_from(sections[key][0])}, {_family(family)}, " \
                  f"payload {payload}"
        rows = sorted(sections[key], key=lambda e: (e["protocol"], _sortable(e.get("size"))))
        tables.append(_Table(one_line(heading), header,
                             [_cells(entry, sized, judged) for entry in rows]))
    many = [entry for entry in cases if entry.get("stats") is not None]
    if many:
        from hdp.report_stats import stats_rows  # hdp.stats only for reports that need it

        tables.append(_Table(*stats_rows(many, judged)))
    return _Layout(one_line(_platform_text(report["platform"])), len(cases),
                   summarize(report) if cases else [], notes,
                   [one_line(line) for line in meta_lines(report.get("meta"))], tables,
                   render_checks(report.get("checks") or []))


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: platform heading, summary, one write-up style table per path."""
    layout = _layout(report)
    lines = [f"# HDP report: {_md(layout.title)}", ""]
    if not layout.cases:
        return "\n".join([*lines, "No protocol cases.", "", layout.checks] if layout.checks
                         else [*lines, "No cases.", ""])
    lines += [f"{layout.cases} case{'s' if layout.cases != 1 else ''}.", ""]
    lines += [f"- {_md(line)}" for line in layout.summary]
    for note in layout.notes:
        lines += ["", note]
    if layout.meta:
        lines += ["", *(_md(line) for line in layout.meta)]
    for table in layout.tables:
        lines += ["", f"## {_md(table.heading)}", "", _row(table.header),
                  _row("---:" if name in _RIGHT else "---" for name in table.header)]
        lines += [_row(_md(cell) for cell in row) for row in table.rows]
    if layout.checks:
        lines += ["", layout.checks]
    return "\n".join(lines) + "\n"


def render_table(report: dict[str, Any]) -> str:
    """The report for a terminal: the same content as Markdown, each table's columns
    aligned (numbers to the right) and no Markdown punctuation."""
    layout = _layout(report)
    lines = [f"HDP report: {layout.title}", ""]
    if not layout.cases:
        lines += ["No protocol cases." if layout.checks else "No cases.", ""]
        return "\n".join([*lines, layout.checks] if layout.checks else lines)
    lines += [f"{layout.cases} case{'s' if layout.cases != 1 else ''}."]
    lines += [f"  {line}" for line in layout.summary]
    for note in layout.notes:
        lines += ["", note]
    if layout.meta:
        lines += ["", *layout.meta]
    for table in layout.tables:
        widths = [max(len(row[column]) for row in [table.header, *table.rows])
                  for column in range(len(table.header))]
        lines += ["", table.heading]
        for row in [table.header, *table.rows]:
            cells = [cell.rjust(width) if name in _RIGHT else cell.ljust(width)
                     for cell, width, name in zip(row, widths, table.header, strict=True)]
            lines.append("  ".join(cells).rstrip())
    if layout.checks:
        lines += ["", layout.checks]
    return "\n".join(lines) + "\n"


def _cells(entry: dict[str, Any], sized: bool, judged: bool) -> list[str]:
    outcome = entry["outcome"]
    received = entry.get("received", outcome in _ARRIVED)
    sent = entry.get("sent", outcome not in _LOCAL_REFUSALS)
    cells = [_cell(entry["protocol"]), _cell(entry.get("source")),
             _cell(entry.get("bytes_received")), _cell(received is True),
             _cell(sent is True), _cell(entry.get("bytes_sent")), _cell(entry.get("errno")),
             _cell(entry.get("latency_us")), outcome_text(entry)]
    if sized:
        cells.insert(1, _cell(entry.get("size")))
    if judged:
        cells += [_cell(entry.get("expected")), _cell(entry.get("verdict"))]
    return [one_line(cell) for cell in cells]


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _sortable(value: object) -> tuple[int, Any]:
    # A missing size sorts first instead of failing to compare with an int.
    return (0, 0) if value is None else (1, value)


def _platform_text(platform: dict[str, str]) -> str:
    words = [platform[key] for key in ("system", "release", "machine") if platform.get(key)]
    if platform.get("python"):
        words.append(f"(Python {platform['python']})")
    return " ".join(words) or "unknown platform"
