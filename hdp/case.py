"""Cases and observations: what to probe, and what was seen. Plain JSON across processes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hdp.quick_init import quick_init

if TYPE_CHECKING:
    from hdp.stats import CaseStats


@quick_init
@dataclass(frozen=True)
class Case:
    """One probe to run: target x family x protocol x payload kind x size."""

    target: str
    family: int
    protocol: int
    payload: str = "hdp"  # hdp | udp | raw
    size: int = 64  # data bytes after the headers and our tag
    path: str = "loopback"
    # Don't-fragment: None leaves the kernel's default (Linux sets DF on what fits its
    # path MTU), True forces DF (path MTU discovery), False clears it (routers may cut).
    df: bool | None = None
    tos: int = 0  # DSCP << 2 | ECN the probe is marked with
    ttl: int | None = None  # TTL / hop limit it leaves with; None: the kernel's default
    # The bytes it carries after its headers and tag, as hex (plain JSON across processes);
    # None: `size` bytes of filler.
    data: str | None = None
    # A stream of `count` probes (hdp.measure), `rate` a second (None: the default), whose
    # Observation carries their statistics; None: the one probe of a sweep's batch.
    count: int | None = None
    rate: float | None = None

    @property
    def id(self) -> str:
        """A readable test id such as `127.0.0.1-ipv4-p253` (payload added unless hdp)."""
        kind = "" if self.payload == "hdp" else f"-{self.payload}"
        return f"{self.target}-ipv{self.family}-p{self.protocol}{kind}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@quick_init
@dataclass(frozen=True)
class Delivery:
    """One packet of the case that reached the listener, with its header fields as received."""

    src: str
    dst: str | None
    wire_protocol: int | None
    ttl: int | None
    dscp: int | None
    ecn: int | None
    length: int  # bytes after the IP header
    intact: bool
    kernel_time_ns: int | None = None
    latency_us: float | None = None
    fragment_offsets: tuple[int, ...] = ()
    # Offsets after the IP header of the bytes that differ from the probe as sent, e.g.
    # "2-3" (hdp.rewrites); None when none do, or where they cannot be told.
    changed_bytes: str | None = None


@quick_init
@dataclass(frozen=True)
class IcmpReport:
    """An ICMP or ICMPv6 error about the probe, as the sender's socket got it."""

    family: int
    type: int
    code: int
    source: str | None
    mtu: int | None = None
    quoted_protocol: int | None = None  # the protocol byte of the probe as the router saw it


@quick_init
@dataclass(frozen=True)
class Observation:
    """Everything the engine saw of one case; failures are data here, never exceptions."""

    case: Case
    socket_errno: str | None = None
    send_errno: str | None = None
    listen_errno: str | None = None
    sent_bytes: int | None = None
    sent_src: str | None = None  # the source address the sender's kernel chose
    sent_dst: str | None = None  # the address the probe was sent to
    sent_ttl: int = 64
    sent_dscp: int = 0
    sent_ecn: int = 0
    deliveries: tuple[Delivery, ...] = ()
    icmp: tuple[IcmpReport, ...] = ()
    listened: bool = True  # False: no listener on the target, verdicts come from ICMP
    # False: no ICMP answer could come (our own raw socket of the protocol sits on the
    # target and takes the probe), so silence proves nothing
    icmp_possible: bool = True
    # What of our own machinery failed, not the OS or the path: "send" (the sender agent
    # died before the probe left), "listen" (the listener went away), "queue" (a full
    # kernel queue on the listener may have hidden it), "agent" (no agent could start).
    # The verdict is `error`, and `note` says what broke.
    failure_stage: str | None = None
    note: str | None = None  # e.g. "interrupted", "sender agent exited (code -9)"
    # A many-probe case's accounting and latency (hdp.stats), instead of deliveries.
    stats: CaseStats | None = None
