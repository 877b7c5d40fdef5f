"""`hdp sweep` and `hdp report`: plan cases, start agents, run the engine, write reports."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hdp import icmp_budget, rawsock
from hdp.accounting import Accounting
from hdp.address import literal_address
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import BatchResult
from hdp.errors import HdpError, UsageError
from hdp.gcpause import collection_paused
from hdp.report import (
    CaseResult,
    build_report,
    dumps,
    read_report,
    render_markdown,
    render_table,
)
from hdp.target import Target, expand, plan_target, probe
from hdp.verdict import judge

EXIT_BROKEN = 1  # our machinery failed (an agent died or never started): report written
EXIT_FOUND = 3  # --fail-on: a case had one of the named outcomes (hdp sweep --help)


@dataclass(frozen=True)
class SweepPlan:
    targets: tuple[str, ...]
    protocols: tuple[int, ...]
    families: tuple[int, ...] = (4, 6)
    payload: str = "hdp"
    size: int = 64
    timeout: float = 1.0
    icmp: bool = True
    agent: str = "auto"  # the sender: auto | inprocess | child | sudo | netns:NAME | ssh://..
    listener: str = "auto"  # auto: the sender's agent for loopback targets, none otherwise
    patient: bool = False  # ICMP-only: ask until every case is settled, not for ICMP_TIME


def plan_targets(plan: SweepPlan) -> dict[str, Target]:
    """The plan's targets by name; an address of a family not asked for is a usage error."""
    targets = {}
    for text in expand(plan.targets, plan.families):
        target = plan_target(text, plan.families)
        literal = literal_address(text)
        if not target.families and literal is not None:
            version = literal.version
            raise UsageError(f"{text} is an IPv{version} address but --family is "
                             f"{','.join(map(str, plan.families))}: add {version} to --family")
        targets[target.name] = target
    return targets


def plan_cases(plan: SweepPlan, targets: dict[str, Target] | None = None) -> list[Case]:
    """Every target x family x protocol, skipping families a target has no address in."""
    cases = []
    for target in (targets or plan_targets(plan)).values():
        for family in target.families:
            cases += [Case(target.name, family, p, plan.payload, plan.size, target.path)
                      for p in plan.protocols]
    return cases


def sender_spec(text: str) -> AgentSpec:
    """`auto`: this process if it may open raw sockets, else the agent through `sudo -n`."""
    if text != "auto":
        return AgentSpec.parse(text)
    try:
        rawsock.check_privilege(4)
    except HdpError:
        return AgentSpec("sudo")
    return AgentSpec("inprocess")


class ProgressBar:
    """A one-line bar on a terminal; silent when the stream is piped."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty() and total > 0
        self._last = -1.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.05 and done < total):
            return
        self._last = now
        width = 30
        filled = width * done // max(total, 1)
        self.stream.write(f"\rsweep [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def run_sweep(plan: SweepPlan, progress: ProgressBar | None = None
              ) -> tuple[dict[str, Any], BatchResult]:
    """Run the plan; the report holds one case per planned case, whatever happened."""
    targets = plan_targets(plan)
    cases = plan_cases(plan, targets)
    agents: list[AgentClient] = []

    def start(spec: AgentSpec) -> AgentClient:
        agents.append(AgentClient.start(spec))
        return agents[-1]

    def announce(count: int) -> None:
        if announced:  # once, when the first batch is on its way
            return
        announced.append(count)
        sys.stderr.write(f"hdp sweep: probing {len(cases)} cases (agent {agents[0].spec}); "
                         "Ctrl-C reports what was learned so far\n")
        sys.stderr.flush()

    announced: list[int] = []

    try:
        pacing = ({"icmp_time": icmp_budget.PATIENT_TIME,
                   "max_asks": icmp_budget.PATIENT_ASKS} if plan.patient else {})
        batches = probe(cases, targets, start, lambda paths: sender_spec(plan.agent),
                        listener=None if plan.listener == "auto" else plan.listener,
                        record_failures=True, timeout=plan.timeout, icmp=plan.icmp,
                        started=announce, progress=progress.update if progress else None,
                        **pacing)
    finally:
        if progress is not None:
            progress.finish()
        for agent in agents:
            agent.close()
    ready = agents[0].ready if agents else {}
    result = _combined(batches)
    with collection_paused():
        return _report(result, ready, agents), result


def _report(result: BatchResult, ready: dict[str, Any], agents: list[AgentClient]
            ) -> dict[str, Any]:
    results = [CaseResult(o.case, o, judge(o)) for o in result.observations]
    meta = {"run_id": f"{result.run_id:08x}", "seconds": round(result.seconds, 3),
            "interrupted": result.interrupted, "unaccounted": result.unaccounted,
            "kernel_drops": result.drops, "agent": str(agents[0].spec) if agents else None,
            "agent_platform": ready.get("platform"),
            # What the run could not learn because our own machinery failed.
            "incomplete": bool(result.broken) or result.interrupted,
            "broken": list(result.broken),
            "accounting": result.accounting.as_json()}
    if result.icmp_budget:
        meta["icmp_budget"] = result.icmp_budget
    if result.foreign_sockets:
        meta["foreign_raw_sockets"] = result.foreign_sockets
    return build_report(results, platform=ready.get("platform"), meta=meta)


def _combined(batches: list[BatchResult]) -> BatchResult:
    """One sender's batch as it is; several (namespace targets) as one result."""
    if len(batches) == 1:
        return batches[0]
    drops: dict[str, int] = {}
    budget: dict[str, dict[str, Any]] = {}
    foreign: dict[str, dict[str, Any]] = {}
    for batch in batches:
        drops.update(batch.drops)
        budget.update(batch.icmp_budget)
        foreign.update(batch.foreign_sockets)
    return BatchResult([o for b in batches for o in b.observations], batches[0].run_id,
                       any(b.interrupted for b in batches), drops,
                       sum(b.unaccounted for b in batches), sum(b.seconds for b in batches),
                       [why for b in batches for why in b.broken],
                       Accounting(tuple(c for b in batches for c in b.accounting.sockets)),
                       budget, foreign)


def report_format(fmt: str | None, out: str | None, stdout: TextIO) -> str:
    """table on a terminal, md when piped or written to a file, json for an --out *.json."""
    if fmt is not None:
        return fmt
    if out is not None and out != "-":
        return "json" if out.endswith(".json") else "md"
    return "table" if stdout.isatty() else "md"


def check_out(out: str | None) -> None:
    """Refuse an --out that cannot be written, before anything is probed."""
    if out is None or out == "-":
        return
    path = Path(out)
    fix = "give a writable file path with --out"
    if path.is_dir():
        raise UsageError(f"--out {out} is a directory: name a file in it, e.g. "
                         f"{path / 'report.json'}")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--out {out}: there is no directory {folder}: create it, or {fix}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists()
                                                    and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {out} is not writable by this user: {fix}")


def write_report(report: dict[str, Any], fmt: str | None, out: str | None,
                 stdout: TextIO) -> None:
    fmt = report_format(fmt, out, stdout)
    render = {"json": dumps, "md": render_markdown, "table": render_table}[fmt]
    write_text(render(report), out, stdout)


def write_text(text: str, out: str | None, stdout: TextIO) -> None:
    """A rendered report to `out`, or to stdout when there is none (or it is `-`)."""
    if out is None or out == "-":
        stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HdpError(f"cannot write the report to {out} ({exc.strerror}): "
                       "give a writable path with --out") from None


def command_sweep(args: Any, stdout: TextIO) -> int:
    plan = SweepPlan(
        targets=tuple(args.targets), protocols=tuple(args.protocols),
        families=tuple(args.family), payload=args.payload, size=args.size,
        timeout=args.timeout, icmp=not args.no_icmp, agent=args.agent, listener=args.listener,
        patient=args.patient)
    check_out(args.out)
    progress = ProgressBar(sys.stderr, len(plan.targets) * len(plan.protocols)
                           * len(plan.families))
    report, result = run_sweep(plan, progress)
    write_report(report, args.format, args.out, stdout)
    if result.broken:
        errors = sum(1 for entry in report["cases"] if entry["outcome"] == "error")
        print(f"hdp sweep: {'; '.join(dict.fromkeys(result.broken))}: {errors} case"
              f"{'' if errors == 1 else 's'} could not be judged (error); the report holds "
              "what was learned", file=sys.stderr)
    if result.interrupted:
        print("hdp sweep: interrupted; the report holds what was learned so far",
              file=sys.stderr)
        return 130
    if result.broken:
        return EXIT_BROKEN
    found = Counter(entry["outcome"] for entry in report["cases"]
                    if entry["outcome"] in args.fail_on)
    if found:
        counted = ", ".join(f"{count} {outcome}" for outcome, count in sorted(found.items()))
        print(f"hdp sweep: {counted} (--fail-on {','.join(args.fail_on)})", file=sys.stderr)
        return EXIT_FOUND
    return 0


def command_report(args: Any, stdout: TextIO) -> int:
    if len(args.files) != 1:
        raise UsageError("give one JSON report to render, e.g. hdp report sweep.json; "
                         "for several, hdp report merge A.json B.json")
    check_out(args.out)
    write_report(read_report(args.files[0]), args.format, args.out, stdout)
    return 0
