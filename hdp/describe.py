"""How a value read from JSON or YAML is named in a one-line error message."""

from __future__ import annotations


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
