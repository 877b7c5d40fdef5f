"""Whose clock a one-way latency is read on: shared, estimated from echoes, or unknown (pure).

A one-way latency subtracts a send stamp taken on one host from a receive stamp taken on
another, so it is only as good as what relates their clocks:

- Ends on one kernel share CLOCK_REALTIME, whatever namespaces they are in: network
  namespaces do not have clocks of their own, and time namespaces shift only the monotonic
  and boot clocks, never the realtime clock that timestamps packets. The kernel's boot id
  (/proc/sys/kernel/random/boot_id on Linux, sysctl kern.bootsessionuuid on macOS), which
  each agent can report, tells whether two ends are one kernel; an ssh agent on the same
  machine is too.
- Two hosts: an echo exchange (NTP's on-wire method, RFC 5905 section 8) estimates the
  listener's clock minus the sender's. Each round gives t1 (sender sends), t2 (peer
  receives), t3 (peer sends back), t4 (sender receives). Since nothing arrives before it
  leaves, the true offset lies within [t3 - t4, t2 - t1], an interval as wide as the
  round's network delay (t4 - t1) - (t3 - t2); its midpoint is NTP's offset. As in NTP's
  clock filter, the round of least delay is kept: its interval is the narrowest, and its
  half-width is a bound on the error, not a standard deviation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hdp.stats.records import NO_SYNC, SHARED_CLOCK, ClockSync, SyncKind


@dataclass(frozen=True)
class Echo:
    """One round of an echo exchange: t1, t4 on the sender's clock; t2, t3 on the peer's."""

    t1_ns: int
    t2_ns: int
    t3_ns: int
    t4_ns: int

    @property
    def delay_ns(self) -> int:
        """The round trip less the peer's turnaround: the time spent on the network."""
        return (self.t4_ns - self.t1_ns) - (self.t3_ns - self.t2_ns)

    @property
    def plausible(self) -> bool:
        """Both ends saw time move forward, and the network took no negative time."""
        return self.t4_ns >= self.t1_ns and self.t3_ns >= self.t2_ns and self.delay_ns >= 0


@dataclass(frozen=True)
class OffsetEstimate:
    """The peer's clock minus the sender's, within ± `uncertainty_ns` (a hard bound)."""

    offset_ns: int
    uncertainty_ns: int
    delay_ns: int  # the network delay of the round the estimate comes from
    rounds: int  # rounds used
    rejected: int  # rounds left out as implausible (a clock step, a bad stamp)

    def sync(self) -> ClockSync:
        """The estimate as the clock relation that `case_stats` takes."""
        return ClockSync(SyncKind.ESTIMATED, self.offset_ns, self.uncertainty_ns)


def estimate_offset(echoes: Iterable[Echo]) -> OffsetEstimate:
    """NTP's offset from the round of least delay, with half that delay as its bound.

    Integer nanoseconds: the offset is rounded down and the bound rounded up, so the
    true offset is always within offset_ns ± uncertainty_ns when the stamps are right.
    """
    rounds = list(echoes)
    plausible = [echo for echo in rounds if echo.plausible]
    if not plausible:
        raise ValueError(f"no plausible round among {len(rounds)} echo rounds: "
                         "cannot estimate the clock offset")
    best = min(plausible, key=lambda echo: echo.delay_ns)
    offset = ((best.t2_ns - best.t1_ns) + (best.t3_ns - best.t4_ns)) // 2
    return OffsetEstimate(offset_ns=offset, uncertainty_ns=(best.delay_ns + 1) // 2,
                          delay_ns=best.delay_ns, rounds=len(plausible),
                          rejected=len(rounds) - len(plausible))


def shared_clock(sender_boot_id: str | None, listener_boot_id: str | None) -> bool:
    """Whether both ends run on one kernel, hence read one realtime clock.

    Unknown ids (an agent that did not report one) never count as shared.
    """
    return bool(sender_boot_id) and sender_boot_id == listener_boot_id


def clock_sync(sender_boot_id: str | None, listener_boot_id: str | None,
               estimate: OffsetEstimate | None = None) -> ClockSync:
    """How to read one-way latencies between two ends: a shared clock when they are one
    kernel, else the estimated offset when there is one, else unsynchronised clocks."""
    if shared_clock(sender_boot_id, listener_boot_id):
        return SHARED_CLOCK
    return NO_SYNC if estimate is None else estimate.sync()
