"""Which raw sockets are open in this network namespace, and which of them are not ours.

A raw socket of protocol P on a host takes every P packet that reaches it, and then the
kernel answers no "protocol unreachable" (net/ipv4/ip_input.c:ip_protocol_deliver_rcu,
net/ipv6/ip6_input.c:ip6_protocol_deliver_rcu: a raw socket counts as a handler). So an
ICMP-only sweep of a host where another process holds such a socket (another sweep's
listeners, a routing daemon) hears nothing for P: the agent reads Linux's tables of raw
sockets (/proc/net/raw, raw6: the "port" of a raw socket's local address is its protocol)
and leaves out its own sockets by inode. Whatever these files hold is parsed without
trusting it: a line that does not parse is skipped.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from hdp.osnet import current, unavailable

MAX_LISTED = 1024  # sockets one answer names at most
_TABLES = {4: "/proc/net/raw", 6: "/proc/net/raw6"}


def parse_table(text: str) -> list[tuple[int, int]]:
    """(protocol, inode) of each raw socket a /proc/net/raw(6) text lists."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        _, _, port = fields[1].rpartition(":")
        try:
            found.append((int(port, 16), int(fields[9])))
        except ValueError:
            continue
    return found


def foreign_raw_sockets(family: int, protocols: Collection[int], own: Collection[int]
                        ) -> tuple[list[dict[str, int]], str | None]:
    """Raw sockets of `protocols` in this namespace whose inode is not in `own`, and why
    none can be told (None when they can)."""
    if not current().proc_net_raw:
        return [], unavailable("proc_net_raw")
    try:
        text = Path(_TABLES[family]).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        return [], f"cannot read {_TABLES[family]}: {exc.strerror}"
    wanted = set(protocols)
    sockets = [{"protocol": protocol, "inode": inode}
               for protocol, inode in parse_table(text[:1 << 22])
               if protocol in wanted and inode not in own]
    return sockets[:MAX_LISTED], None
