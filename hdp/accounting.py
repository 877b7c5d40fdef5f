"""A batch's accounting, per listener socket and for the run: sent = delivered + lost +
dropped, to the packet (pure).

Each listened probe was sent to one raw listener socket (an agent, a family, the protocol
it arrives with). Its agent reads the socket's kernel drop counter exactly (Linux
SO_MEMINFO) when the batch's listeners open and when they close, having first read every
packet still queued; the difference is the batch's drops on that socket. Per socket:

- `delivered`: probes of which something arrived;
- `stopped`: probes an ICMP error from a host other than the target accounts for (a
  router or firewall answered: they never reached the socket);
- `missing`: the rest, `sent - delivered - stopped`;
- `dropped = min(kernel_drops, missing)` and `lost = stopped + missing - dropped`, the
  rule hdp.probe_rules.split_missing states for many-probe cases; `excess` is the
  rest of the counter (other traffic of that protocol on the host).

A missing probe on a socket that dropped packets during the batch may be one of the
dropped: the counter counts packets, not which ones. Such a case is `error` ("kernel
queue overflow on LISTENER hid the answer"), never `lost`, whatever the split says of the
totals: no probe of that socket is shown to be lost while any could have been dropped.
Where the OS gives no counter (macOS), drops are unknown: `lost` and `dropped` are None
and the cases keep their outcomes, with the run's totals saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hdp.probe_rules import split_missing
from hdp.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class Probe:
    """What one listened probe left behind, for the accounting."""

    socket: str  # "AGENT family/protocol" of the listener it was sent to
    delivered: bool
    stopped: bool  # an ICMP error from another host than the target accounts for it


@dataclass(frozen=True)
class SocketCount:
    socket: str
    sent: int
    delivered: int
    stopped: int
    kernel_drops: int | None

    @property
    def missing(self) -> int:
        return self.sent - self.delivered - self.stopped

    @property
    def dropped(self) -> int | None:
        return split_missing(self.missing, self.kernel_drops)[1]

    @property
    def lost(self) -> int | None:
        lost = split_missing(self.missing, self.kernel_drops)[0]
        return None if lost is None else lost + self.stopped

    @property
    def excess(self) -> int | None:
        dropped = self.dropped
        return None if dropped is None or self.kernel_drops is None else \
            self.kernel_drops - dropped

    @property
    def hides(self) -> bool:
        """Whether a missing probe here may have been one the kernel dropped."""
        return bool(self.kernel_drops) and self.missing > 0

    def as_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "delivered": self.delivered, "lost": self.lost,
                "dropped": self.dropped, "kernel_drops": self.kernel_drops,
                "excess_drops": self.excess}


@dataclass(frozen=True)
class Accounting:
    sockets: tuple[SocketCount, ...] = ()

    def total(self, name: str) -> int | None:
        values = [getattr(count, name) for count in self.sockets]
        return None if any(v is None for v in values) else sum(values)

    def as_json(self) -> dict[str, Any]:
        """The run's totals (None where a socket's drops are unknown), and per socket."""
        totals = {name: self.total(name) for name in
                  ("sent", "delivered", "lost", "dropped", "kernel_drops", "excess")}
        totals["excess_drops"] = totals.pop("excess")
        return {**totals, "listeners": {c.socket: c.as_json() for c in self.sockets}}


def account(probes: Iterable[Probe], drops: Mapping[str, int | None]) -> Accounting:
    """Count each socket's probes against its drops over the batch (`drops`: by socket;
    a socket missing from it has an unknown counter)."""
    counts: dict[str, list[int]] = {}
    for probe in probes:
        sent, delivered, stopped = counts.setdefault(probe.socket, [0, 0, 0])
        counts[probe.socket] = [sent + 1, delivered + probe.delivered,
                                stopped + (probe.stopped and not probe.delivered)]
    return Accounting(tuple(SocketCount(socket, sent, delivered, stopped, drops.get(socket))
                            for socket, (sent, delivered, stopped) in sorted(counts.items())))


def batch_drops(before: Mapping[str, int | None], after: Mapping[str, int | None]
                ) -> dict[str, int | None]:
    """Each socket's drops between two readings; None where either is unknown. A socket
    first seen at the end counts from zero (it opened during the batch)."""
    result: dict[str, int | None] = {}
    for socket, end in after.items():
        start = before.get(socket, 0)
        result[socket] = None if end is None or start is None else max(0, end - start)
    return result


def queue_note(socket: str, drops: int) -> str:
    return f"kernel queue overflow on {socket} hid the answer: {drops} drops"
