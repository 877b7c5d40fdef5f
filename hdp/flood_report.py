"""`hdp stats --flood` at work: each target flooded (hdp.flood) and reported, Markdown or
hdp-flood/1 JSON, one row a target and family.

The listener is always an agent of its own (on loopback, where `auto` would make it the
sender's in-process agent, a child agent): one agent at both ends has to read every
probe between its own sends, at about three quarters of the rate.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, TextIO

from hdp.address import resolve
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.describe import family_name
from hdp.flood import FloodPlan, FloodResult, flood
from hdp.host import platform_info
from hdp.json_text import indented
from hdp.target import expand, plan_target

SCHEMA = "hdp-flood/1"
LATENCY = "not measured: a flood stamps no packet (hdp stats without --flood measures it)"


@dataclass(frozen=True)
class Flooded:
    target: str
    family: int
    address: str | None
    result: FloodResult | None = None
    error: str | None = None


def run_flood_command(args: argparse.Namespace, stdout: TextIO) -> int:
    from hdp.stats_report import finish
    from hdp.sweep import check_out, write_text

    fmt = args.format or ("json" if args.out and args.out.endswith(".json") else "md")
    check_out(args.out)
    flooded = flood_targets(args)
    document = build_document(args, flooded)
    markdown = render_markdown(document)
    write_text(indented(document) + "\n" if fmt == "json" else markdown, args.out, stdout)
    problems = [f"{f.target} {family_name(f.family)}: {f.error}" for f in flooded if f.error]
    return finish(markdown, problems)


def flood_targets(args: argparse.Namespace) -> list[Flooded]:
    from hdp.stats_report import _listener
    from hdp.sweep import sender_spec

    targets = [plan_target(text, args.family) for text in expand(args.targets, args.family)]
    agents: dict[str, AgentClient] = {}

    def agent(spec: AgentSpec, role: str) -> AgentClient:
        key = f"{role} {spec}"
        if key not in agents:
            agents[key] = AgentClient.start(spec)
        return agents[key]

    flooded = []
    try:
        for target in targets:
            sending = sender_spec(args.agent) if target.sender == "local" else \
                AgentSpec.parse(target.sender)
            listening = _listener(target, args.listener, sending)
            if args.listener == "auto" and listening == sending and \
                    sending.kind == "inprocess":  # a process of its own, not a thread
                listening = AgentSpec("child")
            for family in target.families:
                address = target.addresses.get(family) or resolve(target.name, family)[0]
                plan = FloodPlan(str(address), family, args.count, args.protocol, args.size,
                                 args.timeout)
                try:
                    result = flood(agent(sending, "send"), agent(listening, "listen"), plan)
                except AgentError as exc:
                    flooded.append(Flooded(target.name, family, address, error=str(exc)))
                    continue
                flooded.append(Flooded(target.name, family, address, result))
    finally:
        for client in agents.values():
            client.close()
    return flooded


def case_json(result: FloodResult) -> dict[str, Any]:
    """One flood's counts, rates and how it was carried: plain JSON."""
    return {"sent": result.sent, "delivered": result.delivered, "lost": result.lost,
            "dropped": result.dropped, "duplicated": result.duplicated,
            "corrupted": result.corrupted, "refused": result.refused,
            "refused_errno": result.refused_errno, "socket_drops": result.socket_drops,
            "foreign": result.foreign, "accounted": result.accounted,
            "missing": [list(r) for r in result.missing],
            "missing_ranges": result.missing_ranges,
            "send_seconds": round(result.send_seconds, 6),
            "match_seconds": None if result.match_seconds is None else
            round(result.match_seconds, 6),
            "sent_per_s": _rate(result.sent_per_s), "matched_per_s": _rate(result.matched_per_s),
            "batched_send": result.batched_send, "batched_receive": result.batched_receive,
            "receive_buffer": result.receive_buffer, "notes": list(result.notes)}


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def build_document(args: argparse.Namespace, flooded: list[Flooded]) -> dict[str, Any]:
    return {"schema": SCHEMA, "platform": platform_info(),
            "plan": {"count": args.count, "size": args.size, "protocol": args.protocol,
                     "timeout": args.timeout, "latency": LATENCY},
            "cases": [{"target": f.target, "family": f.family, "address": f.address,
                       "error": f.error, **({} if f.result is None else case_json(f.result))}
                      for f in flooded]}


def render_markdown(document: dict[str, Any]) -> str:
    plan = document["plan"]
    lines = ["# hdp stats --flood", "",
             f"{plan['count']:,} HDP probes on protocol {plan['protocol']} to each target, "
             f"unpaced; {plan['size']} data bytes after each probe's 20-byte tag. Latency "
             f"{plan['latency']}.", "",
             "sent = delivered + lost + dropped (by the listening socket's kernel queue).", "",
             "| target | sent | delivered | lost | dropped | duplicated | corrupted | "
             "sent/s | matched/s |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    notes = []
    for case in document["cases"]:
        where = f"{case['target']} ({family_name(case['family'])})"
        if case["error"]:
            notes.append(f"- {where}: not measured: {case['error']}")
            continue
        dropped = "n/a" if case["dropped"] is None else f"{case['dropped']:,}"
        lines.append(f"| {where} | {case['sent']:,} | {case['delivered']:,} | "
                     f"{case['lost']:,} | {dropped} | {case['duplicated']:,} | "
                     f"{case['corrupted']:,} | {_shown(case['sent_per_s'])} | "
                     f"{_shown(case['matched_per_s'])} |")
        if case["refused"]:
            notes.append(f"- {where}: {case['refused']:,} probes refused by the OS at send "
                         f"({case['refused_errno']}), not sent")
        if case["missing_ranges"]:
            shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in case["missing"])
            more = case["missing_ranges"] - len(case["missing"])
            notes.append(f"- {where}: probes not heard: {shown}"
                         + (f" and {more:,} more ranges" if more > 0 else ""))
        if case["dropped"] is None:
            notes.append(f"- {where}: the OS does not count a socket's drops: they are in "
                         "lost")
        notes += [f"- {where}: {note}" for note in case["notes"]]
    return "\n".join(lines + [""] + notes + ([""] if notes else []))


def _shown(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"
