"""What a run's `meta` says about its evidence, as lines under the report's summary (pure)."""

from __future__ import annotations

from typing import Any

from hdp.selection import fold_ranges


def meta_lines(meta: Any) -> list[str]:
    """What the run itself says about the evidence: interruptions, drops, silence."""
    if not isinstance(meta, dict):
        return []
    lines = []
    if meta.get("interrupted") is True:
        lines.append("The run was interrupted: cases it had not settled are marked.")
    drops = meta.get("kernel_drops")
    if isinstance(drops, dict) and any(isinstance(v, int) and v for v in drops.values()):
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(drops.items()) if v)
        lines.append(f"The kernel dropped packets from full receive queues ({listed}).")
    lines += _broken(meta) + _accounting(meta.get("accounting")) + _budget(meta)
    unaccounted = meta.get("unaccounted")
    if isinstance(unaccounted, int) and unaccounted:
        lines.append(f"{unaccounted} probes were sent and left no evidence before the deadline.")
    return lines


def _broken(meta: dict[str, Any]) -> list[str]:
    broken = meta.get("broken")
    if not isinstance(broken, list) or not broken:
        return []
    return [f"Incomplete: our own machinery failed ({'; '.join(map(str, broken))}); the "
            "cases it left unjudged are `error`, not results."]


def _accounting(totals: Any) -> list[str]:
    if not isinstance(totals, dict) or not totals.get("sent"):
        return []
    if totals.get("dropped") is None:
        return [f"Listened probes: {totals['sent']} sent, {totals.get('delivered')} "
                "delivered; kernel drops unknown on this OS."]
    line = (f"Listened probes: {totals['sent']} sent = {totals.get('delivered')} delivered + "
            f"{totals.get('lost')} lost + {totals.get('dropped')} dropped by the kernel")
    excess = totals.get("excess_drops")
    return [line + (f" (and {excess} drops of other traffic)." if excess else ".")]


def _budget(meta: dict[str, Any]) -> list[str]:
    lines = []
    budgets = meta.get("icmp_budget")
    for target, budget in sorted(budgets.items() if isinstance(budgets, dict) else []):
        if not isinstance(budget, dict):
            continue
        rate = budget.get("rate_per_s")
        learned = (f"a burst of {budget.get('burst')}, then {rate} answers/s" if rate
                   else f"a burst of {budget.get('burst')}, no limit seen after it"
                   if budget.get("burst") is not None else "nothing (no answer limited)")
        lines.append(f"ICMP-only to {target}: its ICMP budget learned as {learned}; "
                     f"{budget.get('answered')} answered, {budget.get('silent')} silent "
                     f"though it had budget, {budget.get('inconclusive')} inconclusive "
                     f"(answers may have been withheld), in {budget.get('asks')} probes.")
    foreign = meta.get("foreign_raw_sockets")
    for target, seen in sorted(foreign.items() if isinstance(foreign, dict) else []):
        if not isinstance(seen, dict):
            continue
        if seen.get("unavailable"):
            lines.append(f"Other raw sockets on {target}: {seen['unavailable']}.")
        elif seen:
            by_family: dict[str, list[int]] = {}
            for key in seen:
                family, _, protocol = str(key).partition("/")
                if protocol.isdigit():
                    by_family.setdefault(family, []).append(int(protocol))
            keys = "; ".join(f"IPv{family} protocols {fold_ranges(protocols)}"
                             for family, protocols in sorted(by_family.items()))
            lines.append(f"Other raw sockets were open on {target} during the run ({keys}): "
                         "while one is open its protocol draws no ICMP there, and a case of "
                         "it left unanswered is no-answer saying so.")
    return lines
