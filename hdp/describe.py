"""How values are named in one-line messages and Markdown: kinds, families, details."""

from __future__ import annotations

import json
import reprlib


def kind_of(value: object, *, yaml: bool = False) -> str:
    """'a list', 'a string', ... in the vocabulary of the format being read."""
    if isinstance(value, dict):
        return "a mapping" if yaml else "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "empty" if yaml else "null"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


FAMILIES = {4: "IPv4", 6: "IPv6"}


def family_name(family: object) -> str:
    """'IPv4' / 'IPv6', or what was there instead."""
    if isinstance(family, int) and family in FAMILIES:
        return FAMILIES[family]
    return f"family {family}"


def one_line(text: str) -> str:
    return " ".join(text.splitlines())


def with_details(outcome: str, details: list[str]) -> str:
    """`send-error (EOPNOTSUPP)`: an outcome and its details in brackets."""
    return f"{outcome} ({', '.join(details)})" if details else outcome


def markdown_cell(text: str) -> str:
    """Text that stays inside one Markdown table cell or heading."""
    return one_line(text).replace("|", "\\|")


class _Bounded(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        return _int_text(x)


def _bounded_repr() -> reprlib.Repr:
    # A few items of a few levels: the text of a value is bounded before it is built, so
    # a YAML alias bomb or a huge JSON list costs no more to name than a small one.
    bounded = _Bounded()
    bounded.maxlevel = 3
    bounded.maxlist = bounded.maxtuple = bounded.maxset = bounded.maxfrozenset = 4
    bounded.maxdict = 4
    bounded.maxstring = bounded.maxother = bounded.maxlong = 40
    return bounded


_BOUNDED = _bounded_repr()


def _int_text(value: int) -> str:
    # Python refuses to print an int of more than 4300 digits (CVE-2020-10735); say its size.
    if value.bit_length() > 128:
        return f"a number of {value.bit_length()} bits"
    return str(value)


def short(value: object, limit: int = 40, *, quote: bool = True) -> str:
    """At most `limit` characters of one line naming `value`, whatever its size."""
    text = value[:limit + 1] if isinstance(value, str) and not quote else _BOUNDED.repr(value)
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def short_json(value: object, limit: int = 40) -> str:
    """Like `short`, in JSON's spelling (null, true, "text") for messages about JSON files."""
    text = _json_prefix(value, limit + 1, 3)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _json_prefix(value: object, budget: int, depth: int) -> str:
    """JSON text of `value`, cut once `budget` characters are reached (never built whole)."""
    if isinstance(value, str):
        return json.dumps(value[:budget])
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_text(value)[:budget]
    if isinstance(value, (bool, float)) or value is None:
        return json.dumps(value)[:budget]
    if isinstance(value, (list, dict)):
        if depth == 0:
            return "[...]" if isinstance(value, list) else "{...}"
        pieces: list[str] = []
        used = 2
        items = iter(value.items()) if isinstance(value, dict) else iter(value)
        for item in items:
            if used >= budget:
                pieces.append("...")
                break
            if isinstance(value, dict):
                key, inner = item
                piece = f"{json.dumps(str(key)[:budget])}: " \
                        f"{_json_prefix(inner, budget - used, depth - 1)}"
            else:
                piece = _json_prefix(item, budget - used, depth - 1)
            pieces.append(piece)
            used += len(piece) + 2
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        return opening + ", ".join(pieces) + closing
    return short(value, budget)
