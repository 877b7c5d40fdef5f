"""Quirk profiles: reading and validating the YAML, one-line errors for every defect."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp import errno_names, safe_yaml
from hdp.errors import UsageError
from hdp.profile.model import (
    _ERRNO_NAME,
    _RELEASE_FORMS,
    APPLIES_KEYS,
    CHANGES,
    CHECK_KEYS,
    ERRNO_OUTCOMES,
    FAMILIES,
    OUTCOMES,
    PAYLOADS,
    RULE_KEYS,
    RULE_SOURCE,
    RULE_SOURCE_FORMS,
    TOP_KEYS,
    WIRE_OUTCOMES,
    CheckRule,
    Profile,
    ProfileError,
    Rule,
    _is_int,
    _kind,
    _one_line,
    _or,
    _release_clauses,
    _show,
    _stripped,
)
from hdp.selection import PROTOCOL_MAX, PROTOCOL_MIN, protocol_set
from hdp.verdict import Outcome

# --- loading ---------------------------------------------------------------------------

def load_profile(path: str | Path) -> Profile:
    """Read (at most safe_yaml.MAX_BYTES) and check a profile file; every defect is one
    ProfileError line."""
    try:
        text = safe_yaml.read_text(path)
    except safe_yaml.YamlError as error:
        raise ProfileError(error.source, error.problem, line=error.line) from None
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
            document = safe_yaml.load(text, self.source)
        except safe_yaml.YamlError as error:
            raise ProfileError(self.source, error.problem, line=error.line) from None
        data, root = document.data, document.root
        if not isinstance(data, dict):
            raise self.fail(f"the top level is {_kind(data)}: a profile is a mapping with "
                            "profile, applies and rules", root)
        self.check_keys(data, root, TOP_KEYS, "top-level key")
        nodes = _value_nodes(root)
        for key in ("profile", "applies", "rules"):
            if key == "rules" and "checks" in data:
                continue  # a profile of chapter checks only
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
        rules = data.get("rules", [])
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
                       recorded={str(k): str(v) for k, v in recorded.items()},
                       checks=self.checks(data.get("checks", []), nodes.get("checks")))

    def checks(self, value: object, node: Any) -> tuple[CheckRule, ...]:
        if not isinstance(value, list):
            raise self.fail(f"checks is {_kind(value)}: give a list with one mapping per "
                            "chapter statement the platform answers otherwise", node)
        items = getattr(node, "value", None)
        if not isinstance(items, list) or len(items) != len(value):
            items = [None] * len(value)
        parsed: list[CheckRule] = []
        for index, (entry, item) in enumerate(zip(value, items, strict=True), start=1):
            rule = self.check_rule(index, entry, item)
            if any(prior.check == rule.check and prior.family in (None, rule.family)
                   and prior.path in (None, rule.path) for prior in parsed):
                raise self.fail(f"check {index} ({rule.check}) can never match: an earlier "
                                "check covers it (the first matching one wins)", item)
            parsed.append(rule)
        return tuple(parsed)

    def check_rule(self, index: int, entry: object, node: Any) -> CheckRule:
        from hdp.checks.chapter import BY_NAME

        def fail(problem: str) -> ProfileError:
            return self.fail(f"check {index}: {problem}", node)

        if not isinstance(entry, dict):
            raise fail(f"is {_kind(entry)}: give a mapping such as {{check: NAME, expect: "
                       "ANSWER, why: ...}")
        self.check_keys(entry, node, CHECK_KEYS, "check key")
        name = entry.get("check")
        if name not in BY_NAME:
            close = difflib.get_close_matches(str(name), list(BY_NAME), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                "the statements are listed in hdp/checks/chapter.py"
            raise fail(f"names no chapter statement {_show(name)}: {hint}")
        statement = BY_NAME[name]
        expect = entry.get("expect")
        if not isinstance(expect, (str, int)) or isinstance(expect, bool) or \
                not str(expect).strip():
            raise fail(f"expect is {_show(expect)}: give the answer this platform gives")
        expect = str(expect).strip()
        if statement.answers is not None and expect not in statement.answers:
            raise fail(f"expect {expect!r} is not an answer to {name}: use one of "
                       f"{', '.join(statement.answers)}")
        why = entry.get("why")
        if not isinstance(why, str) or not why.strip():
            raise fail("has no why: say why the platform answers otherwise (it becomes the "
                       "xfail reason)")
        family = entry.get("family")
        if family is not None and (not _is_int(family) or family not in FAMILIES):
            raise fail(f"family is {_show(family)}: give 4 or 6, or leave it out for both")
        path = entry.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise fail(f"path is {_show(path)}: give a path name, or leave it out for any")
        return CheckRule(index, str(name), expect, " ".join(why.split()), family,
                         _stripped(path), _rule_source(entry.get("source"), fail))

    def check_keys(self, data: dict[Any, Any], node: Any, valid: tuple[str, ...], what: str,
                   **where: Any) -> None:
        """Unknown keys, with the closest valid one (safe_yaml refused keys given twice)."""
        key_nodes = {key_node.value: key_node
                     for key_node, _ in getattr(node, "value", None) or ()
                     if isinstance(key_node, yaml.ScalarNode)}
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
        many = entry.get("many")
        if many is not None and not isinstance(many, bool):
            raise fail(f"many is {_show(many)}: give true (cases of many probes only), false "
                       "(of one probe only), or leave it out for both")
        errno = entry.get("errno")
        if errno is not None:
            if expect not in ERRNO_OUTCOMES:
                raise fail(f"errno {_show(errno, quote=False)} given with expect: {expect}; "
                           f"errno goes with {_or(ERRNO_OUTCOMES)}")
            if not isinstance(errno, str) or not _ERRNO_NAME.match(errno):
                fix = f"write {_show(errno.upper())}" if isinstance(errno, str) and \
                    _ERRNO_NAME.match(errno.upper()) else "give its name, like EINVAL"
                raise fail(f"errno {_show(errno)} is not an errno name: {fix} (numbers differ "
                           "between OSes)")
            if errno not in errno_names.KNOWN:
                nearest = errno_names.closest(errno)
                hint = f"did you mean {nearest!r}? " if nearest else ""
                raise fail(f"errno {_show(errno)} is no errno name of Linux, macOS or FreeBSD: "
                           f"{hint}give the name the OS reports, like EINVAL")
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
                    wire_protocol=wire, source=_rule_source(entry.get("source"), fail),
                    many=many)

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
        # Number by number, not one union of the earlier sets: a rule like "263-65535"
        # would make every later rule pay for a set of 65,273 numbers.
        if covering and all(any(number in prior.protocols for prior in covering)
                            for number in rule.protocols):
            names = [str(prior.index) for prior in covering
                     if not prior.protocols.isdisjoint(rule.protocols)]
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
            return protocol_set(value)
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
               for key in ("family", "payload", "target", "path", "many"))


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


def _rule_source(value: object, fail: _Fail) -> str | None:
    """A rule's `source`: run, write-up, or KERNEL FILE:FUNCTION (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, str) or not RULE_SOURCE.match(" ".join(value.split())):
        raise fail(f"source is {_show(value)}: give {RULE_SOURCE_FORMS}")
    return " ".join(value.split())
