"""The controller's outputs: report files, the job summary, the recorded profile, the
terminal summary. Per-test data arrives as plain JSON entries (see HdpSession.record)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hdp import profile as profiles
from hdp.report import CaseResult, case_entry, dumps, render_markdown, report_of_entries, summarize
from hdp.report_checks import sort_checks
from hdp.report_load import case_identity
from pytest_hdp.results import HdpResult
from pytest_hdp.settings import Settings

Entry = dict[str, object]  # one case or check of the hdp-report/1 document: plain JSON
Report = dict[str, object]
# Where tests of one case disagree, the report shows the worst.
_SEVERITY = ("pass", "inconclusive", "xfail", "xpass", "fail", "error")


@dataclass
class RunNotes:
    """What the summary says besides the cases: files written, warnings."""

    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def case_entry_of(result: HdpResult, label: str | None) -> Entry:
    """The report entry of a tested case: expected is what the test held it to (None for
    a test that asserted by itself), and no timing, so the same run gives the same report
    with one process or several."""
    held = result.asserted
    data: Entry = case_entry(CaseResult(result.case, result.observation, result.verdict,
                                        expected=None if held is None else held.outcome,
                                        verdict_label=label, vantage=result.vantage))
    data["latency_us"] = None
    return data


def merged(entries: Iterable[Entry]) -> list[Entry]:
    """One entry a case: an asserted one over one that asserted nothing, then the worst."""
    chosen: dict[tuple[object, ...], Entry] = {}
    for entry in entries:
        key = case_identity(entry)
        if key not in chosen or _rank(entry) > _rank(chosen[key]):
            chosen[key] = entry
    return list(chosen.values())


def _rank(entry: Entry) -> tuple[bool, int]:
    label = entry.get("verdict")
    return (entry.get("expected") is not None,
            _SEVERITY.index(label) if isinstance(label, str) and label in _SEVERITY else -1)


def build(entries: Iterable[Entry], checks: Iterable[Entry]) -> Report:
    report: Report = report_of_entries(merged(entries))
    found = list(checks)
    if found:
        report["checks"] = sort_checks(found)
    return report


def cases_of(report: Report) -> list[Entry]:
    cases = report["cases"]
    assert isinstance(cases, list)
    return [case for case in cases if isinstance(case, dict)]


def recorded_profile(report: Report, path: str) -> str:
    return profiles.dump_profile(profiles.record_report(
        report, Path(path).stem, "recorded by pytest --hdp-record-profile"))


def write_outputs(report: Report, settings: Settings, step_summary: str | None,
                  notes: RunNotes) -> None:
    """Everything the controller writes at the end of a run; never raises on a bad path."""
    if settings.report:
        text = dumps(report) if settings.report.endswith(".json") else render_markdown(report)
        _write(notes, settings.report, text)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as summary:
                summary.write(render_markdown(report) + "\n")
        except OSError as exc:
            notes.warnings.append(f"cannot append to GITHUB_STEP_SUMMARY ({exc.strerror})")
    cases = cases_of(report)
    if settings.record_profile and cases:
        _write(notes, settings.record_profile,
               recorded_profile(report, settings.record_profile))
    mismatched = [e for e in cases if e.get("verdict") in ("fail", "xpass")]
    if settings.explicit_profile and mismatched:
        obtained = f"{settings.profile}.obtained.yaml"
        _write(notes, obtained, recorded_profile(report, settings.profile))
        notes.warnings.append(f"{len(mismatched)} cases differ from {settings.profile}: "
                              f"diff {settings.profile} {obtained}")


def _write(notes: RunNotes, path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
        notes.written.append(path)
    except OSError as exc:
        notes.warnings.append(f"cannot write {path} ({exc.strerror}): give a writable path")


@dataclass(frozen=True)
class RunFacts:
    """How the run probed, for the summary's first lines."""

    profiles: list[str]
    lab: str | None  # "routed (one router), token 1a2b3c"
    lab_note: str | None  # why the default target fell back to loopback
    agents: list[str]
    drops: Mapping[str, int]


def terminal_summary(report: Report, facts: RunFacts, notes: RunNotes,
                     terminal: pytest.TerminalReporter) -> None:
    cases = cases_of(report)
    counts: dict[str, int] = {}
    for case in cases:
        label = str(case.get("verdict") or "?")
        counts[label] = counts.get(label, 0) + 1
    platform = report["platform"]
    assert isinstance(platform, dict)
    terminal.write_sep("=", "hdp quirk report")
    terminal.write_line(f"{len(cases)} cases on {platform['system']} {platform['release']}: "
                        + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())))
    terminal.write_line("profile: " + (", ".join(facts.profiles) if facts.profiles
                                       else "none (every case expects delivered)"))
    if facts.lab_note:
        terminal.write_line(facts.lab_note)
    if facts.lab:
        terminal.write_line(f"lab: {facts.lab}")
    if facts.agents:
        terminal.write_line("agents: " + ", ".join(dict.fromkeys(facts.agents)))
    vantages = sorted({str(e["vantage"]) for e in cases if e.get("vantage")})
    if vantages:
        terminal.write_line("vantage points: " + ", ".join(vantages))
    for line in summarize(report):
        terminal.write_line(f"  {line}")
    if any(facts.drops.values()):
        terminal.write_line(f"kernel receive-queue drops: {dict(facts.drops)}")
    for path in notes.written:
        terminal.write_line(f"wrote {path}")
    for warning in notes.warnings:
        terminal.write_line(f"hdp: {warning}", yellow=True)
