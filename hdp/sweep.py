"""`hdp sweep` and `hdp report`: plan cases, start agents, run the engine, write reports."""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hdp import rawsock
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import BatchResult, Engine, resolve
from hdp.errors import HdpError, UsageError
from hdp.report import CaseResult, build_report, dumps, loads, render_markdown
from hdp.verdict import judge


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


def is_loopback(target: str) -> bool:
    try:
        return ipaddress.ip_address(target.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return target == "localhost"


def plan_cases(plan: SweepPlan) -> list[Case]:
    """Every target x family x protocol, skipping families a target has no address in."""
    cases = []
    for target in plan.targets:
        families = _families_of(target, plan.families)
        path = "loopback" if is_loopback(target) else "network"
        for family in families:
            cases += [Case(target, family, p, plan.payload, plan.size, path)
                      for p in plan.protocols]
    return cases


def _families_of(target: str, wanted: Sequence[int]) -> list[int]:
    try:
        literal = ipaddress.ip_address(target.strip("[]").split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        if literal.version not in wanted:
            raise UsageError(f"{target} is an IPv{literal.version} address but --family is "
                             f"{','.join(map(str, wanted))}: add {literal.version} to --family")
        return [literal.version]
    found = [f for f in wanted if resolve(target, f)[0] is not None]
    if not found:
        raise HdpError(f"cannot resolve host {target!r} for IPv"
                       f"{' or IPv'.join(map(str, wanted))}: give a host name that resolves, "
                       "or an IPv4/IPv6 address")
    return found


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
    cases = plan_cases(plan)
    agents: list[AgentClient] = []
    try:
        sender = AgentClient.start(sender_spec(plan.agent))
        agents.append(sender)
        listeners: dict[str, AgentClient | None] = {}
        for target in plan.targets:
            if plan.listener == "none" or (plan.listener == "auto" and not is_loopback(target)):
                listeners[target] = None
            elif plan.listener in ("auto", "same"):
                listeners[target] = sender
            else:
                listener = AgentClient.start(AgentSpec.parse(plan.listener))
                agents.append(listener)
                listeners[target] = listener
        engine = Engine(sender, listeners)

        def announce(count: int) -> None:
            sys.stderr.write(f"hdp sweep: probing {len(cases)} cases (agent {sender.spec}); "
                             "Ctrl-C reports what was learned so far\n")
            sys.stderr.flush()

        result = engine.run(cases, timeout=plan.timeout, icmp=plan.icmp,
                            progress=progress.update if progress else None, started=announce)
    finally:
        if progress is not None:
            progress.finish()
        for agent in agents:
            agent.close()
    results = [CaseResult(o.case, o, judge(o)) for o in result.observations]
    meta = {"run_id": f"{result.run_id:08x}", "seconds": round(result.seconds, 3),
            "interrupted": result.interrupted, "unaccounted": result.unaccounted,
            "kernel_drops": result.drops, "agent": str(sender.spec),
            "agent_platform": sender.ready.get("platform")}
    return build_report(results, platform=sender.ready.get("platform"), meta=meta), result


def write_report(report: dict[str, Any], fmt: str | None, out: str | None,
                 stdout: TextIO) -> None:
    if fmt is None:
        fmt = "json" if out and out.endswith(".json") else "md"
    text = dumps(report) if fmt == "json" else render_markdown(report)
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
        timeout=args.timeout, icmp=not args.no_icmp, agent=args.agent, listener=args.listener)
    progress = ProgressBar(sys.stderr, len(plan.targets) * len(plan.protocols)
                           * len(plan.families))
    report, result = run_sweep(plan, progress)
    write_report(report, args.format, args.out, stdout)
    if result.interrupted:
        print("hdp sweep: interrupted; the report holds what was learned so far",
              file=sys.stderr)
        return 130
    return 0


def command_report(args: Any, stdout: TextIO) -> int:
    if len(args.files) != 1:
        raise UsageError("give one JSON report to render, e.g. hdp report sweep.json; "
                         "for several, hdp report merge A.json B.json")
    source = args.files[0]
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise HdpError(f"cannot read {source} ({reason}): give the path of a report "
                       "written by hdp sweep --format json") from None
    write_report(loads(text, source), args.format or "md", args.out, stdout)
    return 0
