"""Quirk profiles: the data model, its error, and small helpers shared by the others."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from hdp.case import Case
from hdp.describe import kind_of, one_line, short, with_details
from hdp.errors import HdpError
from hdp.selection import fold_ranges
from hdp.verdict import Outcome

# `error` is our own machinery failing, never something a platform or path is expected
# to do: no profile may expect it.
OUTCOMES = tuple(outcome.value for outcome in Outcome if outcome is not Outcome.ERROR)
CHANGES = ("src", "dst", "protocol", "dscp", "ecn", "length", "payload", "src-not-translated")
PAYLOADS = ("hdp", "udp", "raw")
FAMILIES = (4, 6)
TOP_KEYS = ("profile", "applies", "source", "recorded", "rules", "checks")
APPLIES_KEYS = ("system", "release", "path")
RULE_KEYS = ("protocols", "family", "payload", "target", "path", "expect", "errno", "changes",
             "wire_protocol", "why", "source", "many")
CHECK_KEYS = ("check", "family", "path", "expect", "why", "source")
# Where a rule comes from: a run on the platform, the write-up, or the kernel's source
# read as "KERNEL FILE:FUNCTION[, FILE:FUNCTION...]".
RULE_SOURCE = re.compile(r"^(run|write-up|[a-z][a-z0-9-]* [\w./-]+:\w+(, [\w./-]+:\w+)*)$")
RULE_SOURCE_FORMS = ("run, write-up, or the kernel source as 'xnu bsd/netinet/raw_ip.c:"
                     "rip_attach' (several FILE:FUNCTION separated by ', ')")
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
    source: str | None = None  # run, write-up, or "KERNEL FILE:FUNCTION"
    # True: only cases of many probes (count >= 2, hdp.measure); False: only of one; None:
    # both. What only a second probe of a flow shows (a first-packet-only middlebox)
    # needs a rule of its own.
    many: bool | None = None

    @property
    def spec(self) -> str:
        return fold_ranges(list(self.protocols))

    def matches(self, case: Case) -> bool:
        return (case.protocol in self.protocols
                and self.many in (None, (case.count or 1) > 1)
                and self.family in (None, case.family)
                and self.payload in (None, case.payload)
                and self.path in (None, case.path)
                and (self.target is None or _same_target(self.target, case.target)))


@dataclass(frozen=True)
class CheckRule:
    """Where a platform answers one of the chapter's statements otherwise (hdp.checks.chapter)."""

    index: int
    check: str
    expect: str
    why: str
    family: int | None = None
    path: str | None = None
    source: str | None = None  # run, write-up, or "KERNEL FILE:FUNCTION"

    def matches(self, check: str, family: int | None, path: str | None) -> bool:
        return (self.check == check and self.family in (None, family)
                and self.path in (None, path))


@dataclass(frozen=True)
class Profile:
    name: str
    applies: dict[str, Any]  # system (lower case), optionally release and path
    rules: tuple[Rule, ...]
    source: str | None
    path: str  # the file it came from (or the source name given to parse_profile)
    recorded: dict[str, str] = field(default_factory=dict)
    checks: tuple[CheckRule, ...] = ()


@dataclass(frozen=True)
class Expectation:
    outcome: str
    errno: str | None = None
    changes: tuple[str, ...] | None = None
    wire_protocol: int | None = None
    why: str | None = None
    rule: str | None = None  # e.g. "linux.yaml rule 3"; None = no rule, delivered by default


DELIVERED = Expectation(Outcome.DELIVERED.value)



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
    return kind_of(value, yaml=True)


def _show(value: object, limit: int = 40, quote: bool = True) -> str:
    return short(value, limit, quote=quote)


def _platform_text(platform: dict[str, str]) -> str:
    return " ".join(str(platform[key]) for key in ("system", "release") if platform.get(key))


_with_details = with_details
_one_line = one_line


def _release_clauses(text: str) -> list[tuple[str, tuple[int, ...]]] | None:
    clauses = []
    for part in text.split(","):
        match = _RELEASE_CLAUSE.match(part)
        if not match:
            return None
        clauses.append((match.group(1) or "==", tuple(map(int, match.group(2).split(".")))))
    return clauses
