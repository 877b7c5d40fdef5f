"""Quirk profiles: recording what a run observed as a compact profile."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp.case import Case, IcmpReport
from hdp.profile.model import (
    _ERRNO_NAME,
    CHANGES,
    ERRNO_OUTCOMES,
    OUTCOMES,
    TOP_KEYS,
)
from hdp.selection import fold_ranges
from hdp.verdict import Outcome, Verdict

# --- recording -------------------------------------------------------------------------

_ICMP_OUTCOMES = ("unreachable", "prohibited", "too-big")
_Label = tuple[str, str | None, tuple[str, ...], int | None]  # outcome, errno, changes, wire
_Cell = tuple[str, str, int, str, int]  # target, path, family, payload, protocol


def record_profile(results: Iterable[tuple[Case, Verdict]], platform: dict[str, str], *,
                   name: str | None = None, path: str | None = None,
                   source: str | None = None) -> dict[str, Any]:
    """A compact profile of what was observed: one rule per kind of non-delivered outcome.

    Rules name a target (and path) only where targets disagree, and drop the family (or
    payload) where every family (payload) seen agrees. A case seen more than once with
    different outcomes keeps its most frequent one. Rules cannot tell sizes apart.
    """
    system = str(platform.get("system", "")).lower()
    if not system:
        raise ValueError("record_profile needs platform['system'], as platform_info() gives")
    seen: dict[_Cell, Counter[_Label]] = {}
    for case, verdict in results:
        if verdict.outcome is Outcome.ERROR:
            continue  # our machinery failed: nothing the platform did
        cell = (case.target, case.path, case.family, case.payload, case.protocol)
        seen.setdefault(cell, Counter())[_label(case, verdict)] += 1
    cells = {cell: min(counts, key=lambda label: (-counts[label], _label_key(label)))
             for cell, counts in seen.items()}
    paths = {cell[1] for cell in cells}
    if path is None and len(paths) == 1:
        path = next(iter(paths))
    width = _scope_width(cells)
    groups: dict[tuple[Any, ...], set[int]] = {}
    for cell, label in cells.items():
        if label[0] != Outcome.DELIVERED.value:
            scope, (family, payload, protocol) = cell[:width], cell[2:]
            groups.setdefault((scope, family, payload, label), set()).add(protocol)
    groups = _merge(groups, 1, cells, width)
    groups = _merge(groups, 2, cells, width)
    rules = [_rule_data(key, protocols) for key, protocols in
             sorted(groups.items(), key=lambda item: _group_order(*item))]
    applies: dict[str, str] = {"system": system}
    if path is not None:
        applies["path"] = path
    facts = {key: str(platform[key]) for key in ("release", "machine", "python")
             if platform.get(key)}
    where = " ".join(str(platform[key]) for key in ("system", "release") if platform.get(key))
    default_source = f"recorded on {where}" + ("" if path is None else f" ({path})")
    return {"profile": name or system, "applies": applies, "source": source or default_source,
            "recorded": facts, "rules": rules}


def _label(case: Case, verdict: Verdict) -> _Label:
    """What makes cases alike, limited to what a rule can say (anything else: not checked)."""
    outcome = verdict.outcome.value
    changes: tuple[str, ...] = ()
    if outcome == Outcome.ALTERED.value and set(verdict.changes) <= set(CHANGES):
        changes = tuple(sorted(set(verdict.changes), key=CHANGES.index))
    errno = verdict.errno if outcome in ERRNO_OUTCOMES and verdict.errno and \
        _ERRNO_NAME.match(verdict.errno) else None
    wire = verdict.wire_protocol
    # An altered packet's renumbering is in its changes; an ICMP error's is worth a rule.
    renumbered = outcome in _ICMP_OUTCOMES and wire is not None and wire != case.protocol \
        and 0 <= wire <= 255
    return (outcome, errno, changes, wire if renumbered else None)


def _label_key(label: _Label) -> tuple[Any, ...]:
    outcome, errno, changes, wire = label
    return (OUTCOMES.index(outcome), errno or "", changes, -1 if wire is None else wire)


def _scope_width(cells: dict[_Cell, _Label]) -> int:
    """How much of (target, path) rules must name so that no two cases they join disagree."""
    for width in (0, 1):
        labels: dict[tuple[Any, ...], _Label] = {}
        if all(labels.setdefault(cell[:width] + cell[2:], label) == label
               for cell, label in cells.items()):
            return width
    return 2


def _merge(groups: dict[tuple[Any, ...], set[int]], slot: int, cells: Iterable[_Cell],
           width: int) -> dict[tuple[Any, ...], set[int]]:
    """Fold groups that differ only in `slot` (1: family, 2: payload) where, within the scope,
    every value of it that was seen gives the same protocol numbers."""
    seen: dict[tuple[Any, ...], set[Any]] = {}
    for cell in cells:
        seen.setdefault(cell[:width], set()).add(cell[slot + 1])
    merged: dict[tuple[Any, ...], set[int]] = {}
    for key, protocols in groups.items():
        values = seen[key[0]]
        alike = all(groups.get((*key[:slot], value, *key[slot + 1:])) == protocols
                    for value in values)
        if len(values) > 1 and key[slot] is not None and alike:
            key = (*key[:slot], None, *key[slot + 1:])
        merged[key] = protocols
    return merged


def _group_order(key: tuple[Any, ...], protocols: set[int]) -> tuple[Any, ...]:
    scope, family, payload, label = key
    return (scope, min(protocols), family or 0, payload or "", _label_key(label))


def _rule_data(key: tuple[Any, ...], protocols: set[int]) -> dict[str, Any]:
    scope, family, payload, (outcome, errno, changes, wire) = key
    rule: dict[str, Any] = {"protocols": fold_ranges(list(protocols))}
    for name, value in (("family", family), ("payload", payload)):
        if value is not None:
            rule[name] = value
    for name, value in zip(("target", "path"), scope, strict=False):
        rule[name] = value
    rule["expect"] = outcome
    if errno is not None:
        rule["errno"] = errno
    if changes:
        rule["changes"] = list(changes)
    if wire is not None:
        rule["wire_protocol"] = wire
    rule["why"] = "observed: " + _observed_text(outcome, errno, changes, wire)
    return rule


_OBSERVED = {
    "delivered": "delivered intact",
    "unreachable": "ICMP said nobody handles it",
    "prohibited": "ICMP said administratively prohibited",
    "too-big": "ICMP said too big for the path MTU",
    "lost": "no evidence of the probe before the deadline",
    "send-error": "send refused",
    "socket-error": "socket() refused",
    "listen-error": "the target could not open a listener",
}


def _observed_text(outcome: str, errno: str | None, changes: tuple[str, ...],
                   wire: int | None) -> str:
    if outcome == Outcome.ALTERED.value:
        text = f"arrived with {', '.join(changes)} changed" if changes else "arrived altered"
    else:
        text = _OBSERVED[outcome]
    if errno is not None:
        text += f" with {errno}"
    if wire is not None:
        text += f" (on the wire as protocol {wire})"
    return text


def dump_profile(data: dict[str, Any]) -> str:
    """Profile YAML with a stable key order and one flow-style line per rule."""
    order = [key for key in TOP_KEYS if key in data] + sorted(set(data) - set(TOP_KEYS))
    lines = ["# Recorded by pytest-hdp. Each why becomes an xfail reason: say why, not what."] \
        if "recorded" in data else []
    for key in order:
        value = data[key]
        if key == "rules" and isinstance(value, list) and value:
            lines.append("rules:")
            lines += [f"  - {_flow_rule(rule)}" for rule in value]
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _flow_rule(rule: object) -> str:
    if not isinstance(rule, dict):
        return _flow(rule)
    # A SPEC is always double-quoted, so that "256" and "256-262" look alike.
    items = [f"{_in_flow(key)}: " + (json.dumps(value) if key == "protocols" and
                                      isinstance(value, str) else _in_flow(value))
             for key, value in rule.items()]
    return "{" + ", ".join(items) + "}"


def _in_flow(value: object) -> str:
    """`value` as it must be written inside a flow collection (`::1` needs quotes there)."""
    return _flow([value])[1:-1]


def _flow(value: object) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                               allow_unicode=True, width=2**31 - 1)
    return text.removesuffix("\n...\n").rstrip("\n")




def record_report(report: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    """The profile of what an hdp-report/1 document's cases observed (see record_profile);
    a report of one path records a profile that applies to that path."""
    # A sweep's one-probe cases only: what a stream of probes shows (a loss ratio, a
    # first-packet-only path) is written by hand as a `many: true` rule, with its why.
    cases = [entry for entry in report["cases"] if entry.get("count") is None]
    pairs = [(Case.from_json(entry), _verdict_of(entry)) for entry in cases]
    paths = {entry["path"] for entry in cases}
    return record_profile(pairs, report["platform"], name=name,
                          path=paths.pop() if len(paths) == 1 else None, source=source)


def _verdict_of(entry: dict[str, Any]) -> Verdict:
    icmp = entry.get("icmp")
    report = IcmpReport(entry["family"], icmp["type"], icmp["code"], icmp.get("from"),
                        icmp.get("mtu"), entry.get("wire_protocol")) if icmp else None
    return Verdict(Outcome(entry["outcome"]), errno=entry.get("errno"),
                   changes=tuple(entry.get("changes") or ()),
                   wire_protocol=entry.get("wire_protocol"), hops=entry.get("hops"),
                   icmp=report, inferred=bool(entry.get("inferred")))
