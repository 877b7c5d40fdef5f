"""The controller's outputs: report files, the job summary, the recorded profile, the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hdp import profile as profiles
from hdp.case import Case, IcmpReport
from hdp.report import CaseResult, case_entry, dumps, render_markdown, report_of_entries, summarize
from hdp.report_checks import sort_checks
from hdp.verdict import Outcome, Verdict
from pytest_hdp.session import HdpResult, HdpSession


def xfail_reason(expectation: profiles.Expectation) -> str:
    where = f" [{expectation.rule}]" if expectation.rule else ""
    return f"{expectation.why or 'known quirk'}{where}"


def verdict_label(report: pytest.TestReport) -> str:
    """pass / fail / xfail / xpass, as the test's outcome says."""
    if report.skipped and hasattr(report, "wasxfail"):
        return "xfail"
    if report.passed:
        return "xpass" if hasattr(report, "wasxfail") else "pass"
    if str(report.longrepr).startswith("[XPASS(strict)]"):
        return "xpass"
    return "fail"


def entry(result: HdpResult, report: pytest.TestReport) -> dict[str, Any]:
    data = case_entry(CaseResult(result.case, result.observation, result.verdict,
                                 expected=result.expectation.outcome,
                                 verdict_label=verdict_label(report),
                                 vantage=result.vantage))
    # The quirk report compares platforms, not moments: it leaves out timing, so the same
    # run gives the same report whether one process or several (xdist) probed it.
    data["latency_us"] = None
    return data


def build(session: HdpSession) -> dict[str, Any]:
    # A case reported twice (a rerun, a retried worker) counts once.
    unique = {json.dumps(e, sort_keys=True): e for e in session.entries}
    report = report_of_entries(unique.values())
    checks = chapter_entries(session)
    if checks:
        report["checks"] = sort_checks(checks)
    return report


def chapter_entries(session: HdpSession) -> list[dict[str, Any]]:
    """What the chapter tests (pytest_hdp.chapter) observed, from every process."""
    plugin = session.config.pluginmanager.get_plugin("hdp-chapter")
    return list(getattr(plugin, "entries", []))


def _verdict_of(data: dict[str, Any]) -> Verdict:
    icmp = data.get("icmp")
    report = IcmpReport(data["family"], icmp["type"], icmp["code"], icmp.get("from"),
                        icmp.get("mtu"), data.get("wire_protocol")) if icmp else None
    return Verdict(Outcome(data["outcome"]), errno=data.get("errno"),
                   changes=tuple(data.get("changes") or ()),
                   wire_protocol=data.get("wire_protocol"), hops=data.get("hops"),
                   icmp=report, inferred=bool(data.get("inferred")))


def recorded_profile(session: HdpSession, report: dict[str, Any], path: str) -> str:
    pairs = [(Case.from_json(e), _verdict_of(e)) for e in report["cases"]]
    paths = {e["path"] for e in report["cases"]}
    recorded = profiles.record_profile(
        pairs, report["platform"], name=Path(path).stem,
        path=paths.pop() if len(paths) == 1 else None,
        source="recorded by pytest --hdp-record-profile")
    return profiles.dump_profile(recorded)


def write_outputs(session: HdpSession, step_summary: str | None) -> None:
    """Everything the controller writes at the end of a run; never raises on a bad path."""
    if not session.entries and not chapter_entries(session):
        return
    report = build(session)
    settings = session.settings
    if settings.report:
        text = dumps(report) if settings.report.endswith(".json") else render_markdown(report)
        _write(session, settings.report, text)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as summary:
                summary.write(render_markdown(report) + "\n")
        except OSError as exc:
            session.warnings.append(f"cannot append to GITHUB_STEP_SUMMARY ({exc.strerror})")
    if settings.record_profile:
        _write(session, settings.record_profile,
               recorded_profile(session, report, settings.record_profile))
    mismatched = [e for e in report["cases"] if e.get("verdict") in ("fail", "xpass")]
    explicit = settings.profile not in ("auto", "none")
    if explicit and mismatched:
        obtained = f"{settings.profile}.obtained.yaml"
        _write(session, obtained, recorded_profile(session, report, settings.profile))
        session.warnings.append(f"{len(mismatched)} cases differ from {settings.profile}: "
                                f"diff {settings.profile} {obtained}")


def _write(session: HdpSession, path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
        session.written.append(path)
    except OSError as exc:
        session.warnings.append(f"cannot write {path} ({exc.strerror}): give a writable path")


def terminal_summary(session: HdpSession, terminal: Any) -> None:
    if not session.entries:
        return
    report = build(session)
    counts: dict[str, int] = {}
    for case in report["cases"]:
        counts[case.get("verdict") or "?"] = counts.get(case.get("verdict") or "?", 0) + 1
    platform = report["platform"]
    terminal.write_sep("=", "hdp quirk report")
    terminal.write_line(f"{len(report['cases'])} cases on {platform['system']} "
                        f"{platform['release']}: " + ", ".join(
                            f"{n} {label}" for label, n in sorted(counts.items())))
    in_use = session.profiles_in_use()
    terminal.write_line("profile: " + (", ".join(p.path for p in in_use) if in_use
                                       else "none (every case expects delivered)"))
    note = getattr(session.config, "_hdp_lab_note", None)
    if note:
        terminal.write_line(note)
    lab = getattr(session.config, "_hdp_lab", None)
    if lab is not None:
        terminal.write_line(f"lab: {lab.topology.name} ({lab.topology.description}), "
                            f"token {lab.token}")
    if session.agent_specs:
        terminal.write_line("agents: " + ", ".join(dict.fromkeys(session.agent_specs)))
    vantages = sorted({e["vantage"] for e in report["cases"] if e.get("vantage")})
    if vantages:
        terminal.write_line("vantage points: " + ", ".join(vantages))
    for line in summarize(report):
        terminal.write_line(f"  {line}")
    if session.drops and any(session.drops.values()):
        terminal.write_line(f"kernel receive-queue drops: {session.drops}")
    for path in session.written:
        terminal.write_line(f"wrote {path}")
    for warning in session.warnings:
        terminal.write_line(f"hdp: {warning}", yellow=True)
