"""The project's error types: each renders as one line a user can act on."""

from __future__ import annotations


class HdpError(Exception):
    """An error the CLI prints as one line and turns into a non-zero exit."""


class DecodeError(HdpError, ValueError):
    """Bytes that do not parse as the named wire format."""

    def __init__(self, what: str, offset: int, reason: str) -> None:
        self.what = what
        self.offset = offset
        self.reason = reason
        super().__init__(f"malformed {what} at offset {offset}: {reason}")


class EncodeError(HdpError, ValueError):
    """Field values that cannot be put on the wire."""


class UsageError(HdpError):
    """A bad command-line value; the message names the option and the fix."""


class PrivilegeError(HdpError):
    """The process may not open raw sockets."""

    def __init__(self, detail: str = "") -> None:
        hint = (
            "raw sockets need root or CAP_NET_RAW: run with sudo, or grant the capability "
            "(sudo setcap cap_net_raw+ep \"$(readlink -f \"$(command -v python3)\")\")"
        )
        super().__init__(f"{hint} ({detail})" if detail else hint)
