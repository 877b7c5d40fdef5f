"""Addresses as users write them: `127.0.0.1`, `[::1]`, `fe80::1%eth0`, `localhost`."""

from __future__ import annotations

import ipaddress

LOOPBACK = {4: "127.0.0.1", 6: "::1"}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def literal_address(text: str) -> Address | None:
    """The address `text` spells (brackets and a %zone allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]").partition("%")[0])
    except ValueError:
        return None


def is_loopback(text: str | None) -> bool:
    """Whether `text` is this host's loopback, where our own sockets shape the answers."""
    if text is None:
        return False
    literal = literal_address(text)
    return literal.is_loopback if literal is not None else text == "localhost"
