"""What the engine hands the statistics: one record per probe of a many-probe case (pure).

Timestamps are integer nanoseconds of CLOCK_REALTIME (the clock of SO_TIMESTAMPING software
stamps and of `time.time_ns()`), each labelled with the kind of clock that took it: a
latency is only as good as its worst stamp, and the two kinds are never mixed silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ClockKind(str, enum.Enum):
    """Who took a timestamp."""

    KERNEL = "kernel"  # the kernel, as the packet left or arrived (SO_TIMESTAMPING software)
    USER = "user"  # the process, before the send call or after the receive call


class Measure(str, enum.Enum):
    """What a latency sample spans."""

    ONE_WAY = "one-way"  # sender's send stamp -> listener's receive stamp
    RTT = "rtt"  # reflect mode: sender's send stamp -> sender's receive stamp of the echo


@dataclass(frozen=True)
class Reception:
    """One copy of a probe that the listener read, matched to the probe by its tag."""

    received_ns: int
    intact: bool = True  # the tag's CRC matched; False: a corrupted copy
    clock: ClockKind = ClockKind.KERNEL
    # Reflect mode: how long the reflector held the probe (its receive-to-send time, t3 - t2
    # on its own clock), taken out of the round trip; 0 when unknown or one-way.
    hold_ns: int = 0

    def __post_init__(self) -> None:
        # "kernel" given as text becomes the member: the code compares kinds by identity.
        object.__setattr__(self, "clock", ClockKind(self.clock))
        if self.hold_ns < 0:
            raise ValueError(f"hold_ns must be >= 0, not {self.hold_ns}")


@dataclass(frozen=True)
class ProbeRecord:
    """One probe of a case: whether it left, when, and every copy of it that came back.

    `refused` is the errno name when the local OS refused to send it (EOPNOTSUPP, ENOBUFS);
    such a probe has no send stamp and no receptions. A sent probe has `sent_ns`.
    """

    seq: int
    sent_ns: int | None
    clock: ClockKind = ClockKind.KERNEL
    receptions: tuple[Reception, ...] = ()
    refused: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "clock", ClockKind(self.clock))
        if self.seq < 0:
            raise ValueError(f"probe seq must be >= 0, not {self.seq}")
        if self.refused is not None:
            if self.receptions:
                raise ValueError(f"probe {self.seq} was refused ({self.refused}) "
                                 "but has receptions")
        elif self.sent_ns is None:
            raise ValueError(f"probe {self.seq} was sent but has no send timestamp")

    @property
    def sent(self) -> bool:
        return self.refused is None


class SyncKind(str, enum.Enum):
    """How the sender's and the listener's clocks relate."""

    SHARED = "shared"  # one kernel (same host, or network namespaces of it): one clock
    ESTIMATED = "estimated"  # two hosts; the offset comes from an echo exchange
    NONE = "none"  # two hosts, no estimate: no one-way latency can be trusted


@dataclass(frozen=True)
class ClockSync:
    """The listener's clock minus the sender's, and how far that figure can be off."""

    kind: SyncKind
    offset_ns: int = 0
    uncertainty_ns: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SyncKind(self.kind))
        if self.uncertainty_ns < 0:
            raise ValueError(f"uncertainty_ns must be >= 0, not {self.uncertainty_ns}")
        if self.kind is not SyncKind.ESTIMATED and (self.offset_ns or self.uncertainty_ns):
            raise ValueError(f"a {self.kind.value} clock has no offset")

    def describe(self) -> str:
        """'shared clock', 'offset +12.0 ± 3.5 µs' or 'unsynchronised clocks'."""
        if self.kind is SyncKind.SHARED:
            return "shared clock"
        if self.kind is SyncKind.NONE:
            return "unsynchronised clocks"
        return (f"offset {self.offset_ns / 1000:+.1f} ± "
                f"{self.uncertainty_ns / 1000:.1f} µs")


SHARED_CLOCK = ClockSync(SyncKind.SHARED)
NO_SYNC = ClockSync(SyncKind.NONE)
