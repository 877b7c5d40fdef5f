"""Addresses as users write them: `127.0.0.1`, `[::1]`, `fe80::1%eth0`, `localhost`."""

from __future__ import annotations

import ipaddress
import socket

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


# getaddrinfo's error codes by name, so an unknown host is reported like an errno.
_EAI_NAMES = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}


def resolve(target: str, family: int) -> tuple[str | None, str | None]:
    """(address, None) or (None, error name) for `target` in `family`."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    try:
        info = socket.getaddrinfo(target, None, af, socket.SOCK_RAW)
    except socket.gaierror as exc:
        return None, _EAI_NAMES.get(exc.errno, "EAI_FAIL")
    except UnicodeError:
        return None, "EAI_NONAME"
    return str(info[0][4][0]), None
