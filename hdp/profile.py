"""Quirk profiles: the outcome a platform/path is expected to give each case, as YAML (pure)."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp.case import Case
from hdp.errors import HdpError, UsageError
from hdp.selection import PROTOCOL_MAX, PROTOCOL_MIN, fold_ranges, parse_protocols
from hdp.verdict import Outcome, Verdict

OUTCOMES = tuple(outcome.value for outcome in Outcome)
CHANGES = ("src", "dst", "protocol", "dscp", "ecn", "length", "payload")
PAYLOADS = ("hdp", "udp", "raw")
FAMILIES = (4, 6)
TOP_KEYS = ("profile", "applies", "source", "recorded", "rules")
APPLIES_KEYS = ("system", "release", "path")
RULE_KEYS = ("protocols", "family", "payload", "target", "path", "expect", "errno", "changes",
             "wire_protocol", "why")
ERRNO_OUTCOMES = ("socket-error", "send-error", "listen-error")
# Outcomes whose Verdict carries a wire protocol: from a delivery or quoted in an ICMP error.
WIRE_OUTCOMES = ("delivered", "altered", "unreachable", "prohibited", "too-big")

_ERRNO_NAME = re.compile(r"^E[A-Z0-9]+$")
_RELEASE_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)\s*$")
_RELEASE_NUMBERS = re.compile(r"^\s*(\d+(?:\.\d+)*)")
_RELEASE_FORMS = "use forms like '>=5.4', '>=5.4,<7' or '6.18' (that series)"


class ProfileError(HdpError):
    """A profile that cannot be used; one line naming the file, line, rule and the fix."""

    def __init__(self, source: str, problem: str, *, line: int | None = None,
                 rule: int | None = None, spec: str | None = None) -> None:
        self.source, self.problem, self.line, self.rule = source, problem, line, rule
        where = source if line is None else f"{source}:{line}"
        if rule is not None:
            where += f": rule {rule}" + (f" (protocols {spec})" if spec else "")
        super().__init__(_one_line(f"{where}: {problem}"))


@dataclass(frozen=True)
class Rule:
    """One line of a profile: which cases it covers and what they are expected to give."""

    index: int  # 1-based position in the file, as messages name it ("rule 3")
    protocols: frozenset[int]
    expect: str
    why: str
    family: int | None = None
    payload: str | None = None
    target: str | None = None
    path: str | None = None
    errno: str | None = None
    changes: tuple[str, ...] | None = None
    wire_protocol: int | None = None

    @property
    def spec(self) -> str:
        return fold_ranges(list(self.protocols))

    def matches(self, case: Case) -> bool:
        return (case.protocol in self.protocols
                and self.family in (None, case.family)
                and self.payload in (None, case.payload)
                and self.path in (None, case.path)
                and (self.target is None or _same_target(self.target, case.target)))


@dataclass(frozen=True)
class Profile:
    name: str
    applies: dict[str, Any]  # system (lower case), optionally release and path
    rules: tuple[Rule, ...]
    source: str | None
    path: str  # the file it came from (or the source name given to parse_profile)
    recorded: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Expectation:
    outcome: str
    errno: str | None = None
    changes: tuple[str, ...] | None = None
    wire_protocol: int | None = None
    why: str | None = None
    rule: str | None = None  # e.g. "linux.yaml rule 3"; None = no rule, delivered by default


DELIVERED = Expectation(Outcome.DELIVERED.value)


# --- loading ---------------------------------------------------------------------------

def load_profile(path: str | Path) -> Profile:
    """Read and check a profile file; every defect is one ProfileError line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ProfileError(str(path), f"is not UTF-8 text ({error.reason} at byte "
                                      f"{error.start})") from None
    except OSError as error:
        raise ProfileError(str(path), f"cannot be read ({error.strerror or error})") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, source: str) -> Profile:
    """Check profile YAML `text`; `source` names it in messages and becomes Profile.path."""
    return _Parser(source).parse(text)


_Fail = Callable[[str], ProfileError]


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = _one_line(source)

    def fail(self, problem: str, node: Any = None, **where: Any) -> ProfileError:
        line = None if node is None else node.start_mark.line + 1
        return ProfileError(self.source, problem, line=line, **where)

    def parse(self, text: str) -> Profile:
        if not text.strip():
            raise self.fail("is empty: a profile needs profile, applies and rules")
        try:
            data = yaml.safe_load(text)
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = error.problem or error.context or "unreadable"
            notes = [] if mark is None else [f"column {mark.column + 1}"]
            start = error.context_mark
            if error.context and start is not None and start is not mark \
                    and start.line != getattr(mark, "line", None):
                notes.append(f"{error.context} that starts at line {start.line + 1}")
            detail = f" ({'; '.join(notes)})" if notes else ""
            raise ProfileError(self.source, f"not valid YAML: {problem}{detail}",
                               line=None if mark is None else mark.line + 1) from None
        except yaml.reader.ReaderError as error:
            char = error.character
            shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
            raise self.fail(f"not valid YAML: {error.reason} ({shown} at offset "
                            f"{error.position})") from None
        except yaml.YAMLError as error:
            raise self.fail(f"not valid YAML: {error}") from None
        except RecursionError:
            raise self.fail("not valid YAML: nested too deeply") from None
        if not isinstance(data, dict):
            raise self.fail(f"the top level is {_kind(data)}: a profile is a mapping with "
                            "profile, applies and rules", root)
        self.check_keys(data, root, TOP_KEYS, "top-level key")
        nodes = _value_nodes(root)
        for key in ("profile", "applies", "rules"):
            if key not in data:
                raise self.fail(f"has no {key!r}: {_NEEDED[key]}", root)
        name = data["profile"]
        if not isinstance(name, str) or not name.strip():
            raise self.fail(f"profile is {_show(name)}: give the profile a name (a string)",
                            nodes.get("profile"))
        applies = self.applies(data["applies"], nodes.get("applies"))
        source = data.get("source")
        if source is not None and not isinstance(source, str):
            raise self.fail(f"source is {_kind(source)}: give free text (a string)",
                            nodes.get("source"))
        recorded = data.get("recorded", {})
        if not isinstance(recorded, dict) or any(isinstance(v, (dict, list))
                                                 for v in recorded.values()):
            raise self.fail("recorded is not a mapping of platform facts (release, machine, "
                            "python)", nodes.get("recorded"))
        rules = data["rules"]
        if not isinstance(rules, list):
            fix = "write rules: [] for a platform without quirks" if rules is None else \
                "give a list with one mapping per rule"
            raise self.fail(f"rules is {_kind(rules)}: {fix}", nodes.get("rules"))
        items = getattr(nodes.get("rules"), "value", None)
        if not isinstance(items, list) or len(items) != len(rules):
            items = [None] * len(rules)  # built by a merge key: no line numbers to give
        parsed: list[Rule] = []
        for index, (entry, node) in enumerate(zip(rules, items, strict=True), start=1):
            rule = self.rule(index, entry, node)
            self.check_reachable(rule, parsed, node)
            parsed.append(rule)
        return Profile(name=name.strip(), applies=applies, rules=tuple(parsed),
                       source=None if source is None else _one_line(source).strip(),
                       path=self.source,
                       recorded={str(k): str(v) for k, v in recorded.items()})

    def check_keys(self, data: dict[Any, Any], node: Any, valid: tuple[str, ...], what: str,
                   **where: Any) -> None:
        """Unknown keys (with the closest valid one) and keys given twice, which YAML allows."""
        key_nodes: dict[str, Any] = {}
        for key_node, _ in getattr(node, "value", None) or ():
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in key_nodes:
                raise self.fail(f"{key_node.value!r} appears twice: keep one", key_node,
                                **where)
            key_nodes[key_node.value] = key_node
        for key in data:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use {', '.join(valid)}"
                raise self.fail(f"unknown {what} {_show(key)}: {hint}",
                                key_nodes.get(str(key), node), **where)

    def applies(self, value: object, node: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"applies is {_kind(value)}: give a mapping such as "
                            "{system: linux, path: loopback}", node)
        self.check_keys(value, node, APPLIES_KEYS, "applies key")
        system = value.get("system")
        if not isinstance(system, str) or not system.strip():
            raise self.fail(f"applies has system {_show(system)}: name the OS as Python's "
                            "platform.system() does, in lower case (linux, darwin, freebsd)",
                            node)
        applies: dict[str, Any] = {"system": system.strip().lower()}
        release = value.get("release")
        if release is not None:
            if not isinstance(release, str):
                raise self.fail(f"applies release is {_show(release)}: quote it, e.g. "
                                "release: \">=6.10\" (a bare 6.10 reads as the number 6.1)",
                                node)
            if _release_clauses(release) is None:
                raise self.fail(f"applies release {release!r} is not a release range: "
                                f"{_RELEASE_FORMS}", node)
            applies["release"] = release.strip()
        path = value.get("path")
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                raise self.fail(f"applies path is {_show(path)}: give loopback, network or a "
                                "lab name", node)
            applies["path"] = path.strip()
        return applies

    def rule(self, index: int, entry: object, node: Any) -> Rule:
        spec = _raw_spec(entry.get("protocols")) if isinstance(entry, dict) else None

        def fail(problem: str) -> ProfileError:
            return self.fail(problem, node, rule=index, spec=spec)

        if not isinstance(entry, dict):
            raise fail(f"is {_kind(entry)}: give a mapping such as "
                       "{protocols: [50, 51], expect: send-error, errno: EOPNOTSUPP, why: ...}")
        self.check_keys(entry, node, RULE_KEYS, "rule key", rule=index, spec=spec)
        if "protocols" not in entry:
            raise fail("has no protocols: add protocols: [50, 51] or \"253-255\"")
        protocols = _protocols(entry["protocols"], fail)
        if "expect" not in entry:
            raise fail(f"has no expect: add one of {', '.join(OUTCOMES)}")
        expect = entry["expect"]
        if expect not in OUTCOMES:
            close = difflib.get_close_matches(str(expect), OUTCOMES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise fail(f"expect {_show(expect)} is not an outcome: {hint}"
                       f"use one of {', '.join(OUTCOMES)}")
        why = entry.get("why")
        if why is None:
            raise fail("has no why: say why the platform does this (it becomes the xfail "
                       "reason)")
        if not isinstance(why, str) or not why.strip():
            raise fail(f"why is {_show(why)}: give the reason as non-empty text")
        family = entry.get("family")
        if family is not None and (not _is_int(family) or family not in FAMILIES):
            raise fail(f"family is {_show(family)}: give 4 or 6, or leave it out for both")
        payload = entry.get("payload")
        if payload is not None and payload not in PAYLOADS:
            raise fail(f"payload is {_show(payload)}: give one of {', '.join(PAYLOADS)}, or "
                       "leave it out for any")
        for key in ("target", "path"):
            if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
                raise fail(f"{key} is {_show(entry[key])}: give a name, or leave it out for any")
        errno = entry.get("errno")
        if errno is not None:
            if expect not in ERRNO_OUTCOMES:
                raise fail(f"errno {_show(errno, quote=False)} given with expect: {expect}; "
                           f"errno goes with {_or(ERRNO_OUTCOMES)}")
            if not isinstance(errno, str) or not _ERRNO_NAME.match(errno):
                fix = f"write {errno.upper()!r}" if isinstance(errno, str) and \
                    _ERRNO_NAME.match(errno.upper()) else "give its name, like EINVAL"
                raise fail(f"errno {_show(errno)} is not an errno name: {fix} (numbers differ "
                           "between OSes)")
        changes = entry.get("changes")
        if changes is not None:
            changes = self.changes(expect, changes, fail)
        wire = entry.get("wire_protocol")
        if wire is not None:
            if expect not in WIRE_OUTCOMES:
                raise fail(f"wire_protocol given with expect: {expect}; it goes with "
                           f"{_or(WIRE_OUTCOMES)} (nothing reached the wire to have one)")
            if not _is_int(wire) or not 0 <= wire <= 255:
                raise fail(f"wire_protocol is {_show(wire)}: give the number the IP header "
                           "carries, 0..255")
        return Rule(index=index, protocols=protocols, expect=expect, why=" ".join(why.split()),
                    family=family, payload=payload, target=_stripped(entry.get("target")),
                    path=_stripped(entry.get("path")), errno=errno, changes=changes,
                    wire_protocol=wire)

    @staticmethod
    def changes(expect: str, value: object, fail: _Fail) -> tuple[str, ...]:
        if expect != Outcome.ALTERED.value:
            raise fail(f"changes given with expect: {expect}; changes go with altered")
        if not isinstance(value, list) or not value:
            raise fail(f"changes is {_show(value)}: give a non-empty list of "
                       f"{', '.join(CHANGES)}, or leave it out for any change")
        for item in value:
            if item not in CHANGES:
                close = difflib.get_close_matches(str(item), CHANGES, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise fail(f"changes names {_show(item)}: {hint}use {', '.join(CHANGES)}")
        repeated = [item for item, count in Counter(value).items() if count > 1]
        if repeated:
            raise fail(f"changes names {repeated[0]!r} twice: keep one")
        return tuple(sorted(value, key=CHANGES.index))

    def check_reachable(self, rule: Rule, earlier: list[Rule], node: Any) -> None:
        """A rule whose every case an earlier rule already answers is dead: say which."""
        covering = [prior for prior in earlier if _broader(prior, rule)]
        covered: set[int] = set().union(*(prior.protocols for prior in covering))
        if rule.protocols <= covered:
            names = [str(prior.index) for prior in covering if prior.protocols & rule.protocols]
            which = f"rule {names[0]} already covers" if len(names) == 1 else \
                f"rules {', '.join(names)} already cover"
            raise self.fail(f"can never match: {which} all its cases "
                            "(the first matching rule wins); remove it or narrow the earlier "
                            "rule", node, rule=rule.index, spec=rule.spec)


_NEEDED = {"profile": "add profile: NAME",
           "applies": "add applies: {system: linux} (optionally release and path)",
           "rules": "add rules: a list of mappings, or [] for none"}


def _protocols(value: object, fail: _Fail) -> frozenset[int]:
    if _is_int(value):
        value = [value]
    if isinstance(value, str):
        try:
            return frozenset(parse_protocols(value))
        except UsageError as error:
            raise fail(str(error)) from None
    if not isinstance(value, list) or not value:
        raise fail(f"protocols is {_show(value)}: give a list of numbers like [50, 51] or a "
                   "range like \"253-255\"")
    for number in value:
        if not _is_int(number):
            raise fail(f"protocols lists {_show(number)}: give whole numbers, or one string "
                       "like \"1,6,17,253-255\"")
        if not PROTOCOL_MIN <= number <= PROTOCOL_MAX:
            raise fail(f"protocol {number} is out of range: give {PROTOCOL_MIN}..{PROTOCOL_MAX}")
    repeated = [number for number, count in Counter(value).items() if count > 1]
    if repeated:
        raise fail(f"protocols lists {repeated[0]} twice: keep one")
    return frozenset(value)


def _broader(prior: Rule, rule: Rule) -> bool:
    """True if `prior` matches every case `rule` matches, protocol numbers aside."""
    return all(getattr(prior, key) in (None, getattr(rule, key))
               for key in ("family", "payload", "target", "path"))


def _value_nodes(mapping: Any) -> dict[str, Any]:
    return {key.value: value for key, value in mapping.value if isinstance(key, yaml.ScalarNode)}


def _raw_spec(value: object) -> str | None:
    if isinstance(value, list):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, (str, int)):
        text = str(value)
    else:
        return None
    text = _one_line(text).strip()
    return text if len(text) <= 40 else text[:37] + "..."


# --- choosing a profile ----------------------------------------------------------------

def applies_to(profile: Profile, platform: dict[str, str], path: str | None = None) -> bool:
    """Whether `profile` is meant for this platform and path; an unknown path or release
    (None, or no "release" in `platform`) does not rule a profile out."""
    applies = profile.applies
    if str(platform.get("system", "")).lower() != applies["system"]:
        return False
    if "path" in applies and path is not None and path != applies["path"]:
        return False
    if "release" in applies and platform.get("release") is not None:
        return _release_matches(applies["release"], str(platform["release"]))
    return True


def select_profile(directory: str | Path, platform: dict[str, str],
                   path: str | None = None) -> Profile | None:
    """The profile in `directory` that applies; a path, then a release range, makes it win."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ProfileError(str(folder), "is not a directory of profiles")
    # `*.obtained.yaml` is what a run recorded beside a profile, for diffing: not a profile.
    files = sorted(file for file in folder.iterdir()
                   if file.suffix in (".yaml", ".yml") and file.is_file()
                   and not file.stem.endswith(".obtained"))
    fitting = [profile for profile in map(load_profile, files)
               if applies_to(profile, platform, path)]
    if not fitting:
        return None
    best = max(map(_specificity, fitting))
    winners = [profile for profile in fitting if _specificity(profile) == best]
    if len(winners) > 1:
        names = " and ".join(Path(profile.path).name for profile in winners)
        raise ProfileError(str(folder), f"{names} apply equally to {_platform_text(platform)}"
                                        f"{'' if path is None else f' ({path})'}: narrow one "
                                        "with applies path or release, or name one profile")
    return winners[0]


def _specificity(profile: Profile) -> tuple[bool, bool]:
    return ("path" in profile.applies, "release" in profile.applies)


def _release_clauses(text: str) -> list[tuple[str, tuple[int, ...]]] | None:
    clauses = []
    for part in text.split(","):
        match = _RELEASE_CLAUSE.match(part)
        if not match:
            return None
        clauses.append((match.group(1) or "==", tuple(map(int, match.group(2).split(".")))))
    return clauses


def _release_matches(spec: str, release: str) -> bool:
    """Each clause compares the release cut to the clause's length: 6.18.44 is `==6.18`."""
    found = _RELEASE_NUMBERS.match(release)
    clauses = _release_clauses(spec)
    if found is None or clauses is None:
        return False
    numbers = tuple(map(int, found.group(1).split(".")))
    for op, version in clauses:
        have = (numbers + (0,) * len(version))[:len(version)]
        if not {">=": have >= version, "<=": have <= version, ">": have > version,
                "<": have < version, "==": have == version, "!=": have != version}[op]:
            return False
    return True


# --- expectations ----------------------------------------------------------------------

def expect(profile: Profile | None, case: Case) -> Expectation:
    """What the first matching rule expects of `case`; delivered when none matches."""
    if profile is None:
        return DELIVERED
    for rule in profile.rules:
        if rule.matches(case):
            return Expectation(rule.expect, errno=rule.errno, changes=rule.changes,
                               wire_protocol=rule.wire_protocol, why=rule.why,
                               rule=f"{Path(profile.path).name} rule {rule.index}")
    return DELIVERED


def satisfied(expectation: Expectation, verdict: Verdict) -> bool:
    """Exactly the expected outcome, with the errno, changes and wire protocol it names."""
    return (verdict.outcome.value == expectation.outcome
            and expectation.errno in (None, verdict.errno)
            and (expectation.changes is None or set(expectation.changes) == set(verdict.changes))
            and expectation.wire_protocol in (None, verdict.wire_protocol))


def describe_mismatch(expectation: Expectation, verdict: Verdict) -> str:
    """`expected send-error (EOPNOTSUPP) by linux.yaml rule 3, observed delivered`."""
    details: list[str] = [] if expectation.errno is None else [expectation.errno]
    details += list(expectation.changes or ())
    if expectation.wire_protocol is not None:
        details.append(f"wire protocol {expectation.wire_protocol}")
    expected = _with_details(expectation.outcome, details)
    if expectation.rule:
        expected += f" by {expectation.rule}"
    same_outcome = verdict.outcome.value == expectation.outcome
    seen: list[str] = []
    if verdict.errno or (expectation.errno and same_outcome):
        seen.append(verdict.errno or "no errno")
    seen += list(verdict.changes)
    if expectation.wire_protocol is not None:
        seen.append(f"wire protocol {verdict.wire_protocol}")
    return _one_line(f"expected {expected}, observed {_with_details(verdict.outcome.value, seen)}")


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


# --- small helpers ---------------------------------------------------------------------

def _same_target(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stripped(value: object) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _or(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "empty"
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


def _show(value: object, limit: int = 40, quote: bool = True) -> str:
    text = repr(value) if quote or not isinstance(value, str) else value
    text = _one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _platform_text(platform: dict[str, str]) -> str:
    return " ".join(str(platform[key]) for key in ("system", "release") if platform.get(key))


def _with_details(outcome: str, details: list[str]) -> str:
    return f"{outcome} ({', '.join(details)})" if details else outcome


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
