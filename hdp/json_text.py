"""`json.dumps(value, indent=2, sort_keys=True, allow_nan=False)`, byte for byte, faster.

With an indent, the standard library encodes in pure Python, value by value; without one
it uses its C encoder. A report is thousands of flat case objects, so each container
whose members are all plain values (or empty containers) is encoded by the C encoder
with the indented separator between its members, and only the containers that hold
non-empty ones are assembled here. A report of 16,384 cases encodes about four times
faster (benchmarks/README.md); tests/unit/test_json_text.py holds it to json.dumps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

INDENT = "  "
_ENCODERS: dict[int, json.JSONEncoder] = {}
_CONTAINERS = (dict, list, tuple)


def indented(value: Any) -> str:
    """The text json.dumps(value, indent=2, sort_keys=True, allow_nan=False) gives."""
    return _encode(value, 0)


def _encoder(depth: int) -> json.JSONEncoder:
    """The C encoder that puts each member of a depth-`depth` container on its own line."""
    found = _ENCODERS.get(depth)
    if found is None:
        found = _ENCODERS[depth] = json.JSONEncoder(
            sort_keys=True, allow_nan=False,
            separators=(",\n" + INDENT * (depth + 1), ": "))
    return found


def _flat(members: Iterable[Any]) -> bool:
    """Whether none of `members` is a non-empty container (json writes [] and {} inline)."""
    return not any(isinstance(m, _CONTAINERS) and m for m in members)


def _encode(value: Any, depth: int) -> str:
    if not isinstance(value, _CONTAINERS) or not value:
        return _encoder(depth).encode(value)  # a plain value, or [] / {}
    members = value.values() if isinstance(value, dict) else value
    inner = "\n" + INDENT * (depth + 1)
    if _flat(members):
        text = _encoder(depth).encode(value)
        return f"{text[0]}{inner}{text[1:-1]}\n{INDENT * depth}{text[-1]}"
    if not isinstance(value, dict):
        objects = _flat_objects(value, depth)
        if objects is not None:
            return objects
    if isinstance(value, dict):
        parts = [f"{_key(key)}: {_encode(member, depth + 1)}"
                 for key, member in sorted(value.items())]
        return "{" + inner + ("," + inner).join(parts) + "\n" + INDENT * depth + "}"
    parts = [_encode(member, depth + 1) for member in value]
    return "[" + inner + ("," + inner).join(parts) + "\n" + INDENT * depth + "]"


def _flat_objects(objects: Any, depth: int) -> str | None:
    """A list of non-empty objects of plain values (a report's cases) in one C call, or
    None when `objects` is not such a list.

    Encoded with the separator of their members' depth, the objects are joined by that
    same separator; a real newline appears only in separators (json escapes it inside
    strings), and only a separator between two objects has `}` before it and `{` after
    it (a member starts with its quoted name), so those are re-indented as boundaries.
    Whether an object holds a non-empty container is read off the text, at C speed:
    each non-empty list or object adds a `[` or `{` not followed by its closing bracket,
    and a bracket inside a string can only add more, so the counts below are exact or
    too high (then the caller takes the general way).
    """
    if set(map(type, objects)) != {dict} or not all(objects):
        return None
    text = _encoder(depth + 1).encode(objects)
    if text.count("[") - text.count("[]") != 1 or \
            text.count("{") - text.count("{}") != len(objects):
        return None
    separator = ",\n" + INDENT * (depth + 2)
    outer, inner = INDENT * depth, INDENT * (depth + 1)
    body = text[2:-2].replace("}" + separator + "{",
                              f"\n{inner}}},\n{inner}{{{separator[1:]}")
    return f"[\n{inner}{{{separator[1:]}{body}\n{inner}}}\n{outer}]"


def _key(key: Any) -> str:
    """A member name as json writes it (non-string keys become strings, as json does)."""
    text = _encoder(0).encode({key: 0})
    return text[1:text.rindex(":")]
