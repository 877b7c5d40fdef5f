"""How values are named in one-line messages and Markdown: kinds, families, details."""

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
