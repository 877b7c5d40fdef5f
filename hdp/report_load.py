"""Reading an hdp-report/1 file back: bounded, and checked field by field (pure but for
`read_report`).

A report is input like any other: `hdp report /dev/zero` must stop at the size cap, and a
report with `protocol: 2**80`, a family 5 or the same case twice is refused in one line
naming the file, the case and the field, instead of rendering nonsense.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from hdp import inputs
from hdp.describe import FAMILIES, kind_of, one_line, short_json
from hdp.describe import family_name as _family
from hdp.errors import HdpError
from hdp.selection import PROTOCOL_MAX, PROTOCOL_MIN
from hdp.verdict import Outcome

SCHEMA = "hdp-report/1"
# error: our own machinery failed; inconclusive: no answer could settle it (no-answer).
VERDICT_LABELS = ("pass", "fail", "xfail", "xpass", "error", "inconclusive")
# 120,000 cases of a sweep; a report is far smaller (512 cases of 0-255 x 2: 300 KiB).
MAX_BYTES = 64 * inputs.MIB
FIX = "give a file written by hdp sweep --format json"

_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
MAX_IP_LENGTH = 65535 + 40  # an IPv6 payload and its header; IPv4 is smaller
CHECK_VERDICTS = ("pass", "xfail", "fail", "xpass", "error", "inconclusive")
_SPANS = re.compile(r"[0-9]{1,5}(?:-[0-9]{1,5})?(?:,[0-9]{1,5}(?:-[0-9]{1,5})?)*"
                    r"(?:,\+[0-9]{1,5} more)?")


def read_report(path: str, fix: str = FIX) -> dict[str, Any]:
    """One hdp-report/1 file, read up to MAX_BYTES and checked; or one HdpError line."""
    try:
        text = inputs.read_text(path, MAX_BYTES)
    except inputs.TooLarge as error:
        raise HdpError(f"{one_line(path)}: {error}, more than any report: {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise HdpError(f"cannot read {one_line(path)} ({reason}): {fix}") from None
    return loads(text, path, fix)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) <= MAX_IP_LENGTH
    except ValueError:
        return False


def _is_spans(text: str) -> bool:
    """Offsets as hdp.rewrites.spans_text names them: `2-3`, `4-11,40`, `...,+3 more`."""
    return len(text) <= 200 and _SPANS.fullmatch(text) is not None


def _int_in(low: int, high: int) -> Callable[[object], bool]:
    return lambda value: _is_int(value) and low <= value <= high  # type: ignore[operator]


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _is_icmp(value: object) -> bool:
    return (isinstance(value, dict) and _int_in(0, 255)(value.get("type"))
            and _int_in(0, 255)(value.get("code"))
            and _optional(_is_str)(value.get("from"))
            and _optional(_int_in(0, 0xFFFFFFFF))(value.get("mtu")))


def _is_number(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


_Check = tuple[Callable[[object], bool], str]
_OUTCOME: _Check = (lambda v: isinstance(v, str) and v in _OUTCOMES,
                    f"one of {', '.join(sorted(_OUTCOMES))}")
_PROTOCOL: _Check = (_int_in(PROTOCOL_MIN, PROTOCOL_MAX),
                     f"a protocol number {PROTOCOL_MIN}..{PROTOCOL_MAX}")
_REQUIRED: dict[str, _Check] = {
    "target": (_is_str, "a string"),
    "path": (_is_str, "a string"),
    "family": (lambda v: _is_int(v) and v in FAMILIES, "4 or 6"),
    "protocol": _PROTOCOL,
    "payload": (_is_str, "a string"),
    "outcome": _OUTCOME,
}
_OPTIONAL: dict[str, _Check] = {
    "size": (_int_in(0, MAX_IP_LENGTH), f"a size 0..{MAX_IP_LENGTH}"),
    "errno": (_optional(_is_str), "a string or null"),
    "wire_protocol": (_optional(_int_in(0, 255)), "a protocol number 0..255 or null"),
    "changes": (lambda v: isinstance(v, list) and all(map(_is_str, v)), "a list of strings"),
    # TTL lost on the way; below 0 where a middlebox raised the TTL.
    "hops": (_optional(_int_in(-255, 255)), "a hop count -255..255 or null"),
    "latency_us": (_optional(_is_number), "a number or null"),
    "expected": (_optional(_OUTCOME[0]), f"null or {_OUTCOME[1]}"),
    "verdict": (_optional(lambda v: isinstance(v, str) and v in VERDICT_LABELS),
                f"null or one of {', '.join(VERDICT_LABELS)}"),
    "inferred": (lambda v: isinstance(v, bool), "true or false"),
    "sent": (lambda v: isinstance(v, bool), "true or false"),
    "received": (lambda v: isinstance(v, bool), "true or false"),
    "bytes_sent": (_optional(_int_in(0, MAX_IP_LENGTH)), f"a byte count 0..{MAX_IP_LENGTH}"
                   " or null"),
    "bytes_received": (_optional(_int_in(0, MAX_IP_LENGTH)),
                       f"a byte count 0..{MAX_IP_LENGTH} or null"),
    "source": (_optional(_is_str), "a string or null"),
    "deliveries": (_int_in(0, 2 ** 32), "a count 0 or more"),
    "icmp": (_optional(_is_icmp), 'null or {"type": 0..255, "code": 0..255, "from", "mtu"}'),
    "note": (_optional(_is_str), "a string or null"),
    "vantage": (_optional(_is_str), "a string or null"),
    "tos": (_int_in(0, 255), "a TOS byte 0..255"),
    "df": (_optional(lambda v: isinstance(v, bool)), "true, false or null"),
    "ttl": (_int_in(1, 255), "a TTL / hop limit 1..255"),
    "data": (lambda v: isinstance(v, str) and _is_hex(v), "the probe's data as hex"),
    # Which bytes after the IP header differ from the probe as sent (hdp.rewrites).
    "payload_changed": (lambda v: isinstance(v, str) and _is_spans(v),
                        "byte offsets such as 2-3 or 4-11,40"),
    # A case of many probes: how many, how fast, and their accounting (hdp.stats).
    "count": (_int_in(1, 1 << 16), "a probe count 1..65536"),
    "rate": (_optional(lambda v: _is_number(v) and 0 < v <= 1e6),  # type: ignore[operator]
             "probes a second, or null"),
    "stats": (lambda v: _is_stats(v), "many-probe statistics as hdp.stats writes them"),
}


def _is_stats(value: object) -> bool:
    from hdp.stats import CaseStats

    try:
        CaseStats.from_json(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True
_TEXTS = (lambda v: isinstance(v, list) and all(map(_is_str, v)), "a list of strings")
_CHECK_FIELDS: dict[str, _Check] = {
    "check": (_is_str, "a string"),
    "family": (_optional(lambda v: _is_int(v) and v in FAMILIES), "4, 6 or null"),
    "expected": (_optional(_TEXTS[0]), f"null or {_TEXTS[1]}"),
    "chapter": (_optional(_TEXTS[0]), f"null or {_TEXTS[1]}"),
    "verdict": (lambda v: isinstance(v, str) and v in CHECK_VERDICTS,
                f"one of {', '.join(CHECK_VERDICTS)}"),
    **{name: (_optional(_is_str), "a string or null")
       for name in ("section", "claim", "target", "path", "why")},
    **{name: (_optional(lambda v: not isinstance(v, (list, dict))), "a value or null")
       for name in ("observed", "detail")},
}


def case_identity(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two entries the same case: a report holds each case once."""
    return (entry["target"], entry.get("vantage"), entry["family"], entry["protocol"],
            entry["payload"], entry.get("size"), entry["path"], entry.get("tos", 0),
            entry.get("df"), entry.get("ttl"), entry.get("data"), entry.get("count"))


def loads(text: str, source: str = "<report>", fix: str = FIX) -> dict[str, Any]:
    """Parse and check an hdp-report/1 document; anything else is one HdpError line."""
    where = one_line(source)

    def fail(what: str) -> HdpError:
        return HdpError(f"{where}: {what}: {fix}")

    if not text.strip():
        raise fail("is empty, not an hdp-report/1 file")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise fail(f"not JSON ({error.msg} at line {error.lineno} column {error.colno})") \
            from None
    except (ValueError, TypeError) as error:
        raise fail(f"not JSON ({short_json(one_line(str(error)), 80)[1:-1]})") from None
    except RecursionError:
        raise fail("not JSON that can be read (nested too deeply)") from None
    if not isinstance(data, dict):
        raise fail(f"not an hdp-report/1 file (the JSON is {kind_of(data)}, not an object)")
    if data.get("schema") != SCHEMA:
        schema = f"schema is {_show(data['schema'])}" if "schema" in data else "no schema field"
        raise fail(f"not an hdp-report/1 file ({schema})")
    if "platform" not in data:
        raise fail("has no 'platform' object")
    platform = data["platform"]
    if not isinstance(platform, dict) or not all(map(_is_str, platform.values())):
        raise fail(f"'platform' is {_show(platform)}, expected an object of strings")
    if "meta" in data and not isinstance(data["meta"], dict):
        raise fail(f"'meta' is {kind_of(data['meta'])}, expected an object")
    if "cases" not in data:
        raise fail("has no 'cases' list")
    if not isinstance(data["cases"], list):
        raise fail(f"'cases' is {kind_of(data['cases'])}, expected a list")
    seen: dict[tuple[Any, ...], int] = {}
    for index, entry in enumerate(data["cases"]):
        problem = _problem(entry, _REQUIRED, _OPTIONAL)
        if problem is not None:
            raise fail(f"cases[{index}]{_case_name(entry)} {problem}")
        identity = case_identity(entry)
        if identity in seen:
            raise fail(f"cases[{index}]{_case_name(entry)} is the case of "
                       f"cases[{seen[identity]}] again (a report holds each case once)")
        seen[identity] = index
    checks = data.get("checks", [])
    if not isinstance(checks, list):
        raise fail(f"'checks' is {kind_of(checks)}, expected a list")
    for index, entry in enumerate(checks):
        problem = _problem(entry, {"check": _CHECK_FIELDS["check"]}, _CHECK_FIELDS)
        if problem is not None:
            raise fail(f"checks[{index}] {problem}")
    return data


def _problem(entry: object, required: dict[str, _Check],
             optional: dict[str, _Check]) -> str | None:
    if not isinstance(entry, dict):
        return f"is {kind_of(entry)}, expected an object"
    for name, (check, expected) in required.items():
        if name not in entry:
            return f"has no {name!r} field"
        if not check(entry[name]):
            return f"field {name!r} is {_show(entry[name])}, expected {expected}"
    for name, (check, expected) in optional.items():
        if name in entry and not check(entry[name]):
            return f"field {name!r} is {_show(entry[name])}, expected {expected}"
    return None


def _case_name(entry: object) -> str:
    """` (127.0.0.1 IPv4 protocol 253)` for a case whose identity fields are readable."""
    if not isinstance(entry, dict):
        return ""
    target, family, protocol = entry.get("target"), entry.get("family"), entry.get("protocol")
    if not (_is_str(target) and _is_int(family) and _PROTOCOL[0](protocol)):
        return ""
    return f" ({short_json(target)[1:-1]} {_family(family)} protocol {protocol})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _show(value: object, limit: int = 40) -> str:
    return short_json(value, limit)  # JSON's spelling, one line, a short prefix
