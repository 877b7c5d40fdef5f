"""Every message of the agent protocol, defined once and used by both ends.

Requests are frozen dataclasses (one per operation, `OP` its wire name, `ANSWER` the event
that answers it) whose fields carry their bounds; the agent builds them with
`parse_request` from each decoded line, the controller with their constructors, and
`REQUESTS` is the table the agent dispatches on. `EVENTS` lists every event the agent
writes, named by its ``event`` field, with its fields. hdp.agent.protocol puts both on the
wire; nothing else knows the encoding. The requests a sweep never makes are defined in
hdp.agent.messages_tools and reached through this module (see TOOLS).

On the wire a request is ``{"op": OP, "id": N, ...fields}`` and its answer carries the same
``id``. A request that does not match its definition, or that a limit or the caller's
powers refuse, is answered ``{"event": "error", "id": N, "message": ...}`` (with
``"needs": "root"`` when only a root caller may ask it), and the agent keeps serving.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, TypedDict

from hdp.agent.schema import Invalid, Items, Message, Range, Text, freeze_bounds
from hdp.selection import PROTOCOL_MAX, PROTOCOL_MIN

VERSION = 3  # 3: `sent` and `arrival` events come in frames (FRAMES)

# Hard limits, for every caller: the agent runs as root and serves whoever may start it.
MAX_PROBES = 4096  # probes in one `send` request (the engine splits larger batches)
MAX_PROBE_SIZE = 65535  # data bytes of one probe: more cannot be one IP datagram
MAX_RUNS = 64
MAX_SOCKETS = 256  # UDP sockets one agent holds open
MAX_CAPTURES = 8  # captures running at once
MAX_CAPTURE_PACKETS = 10_000  # packets one capture keeps
MAX_CAPTURE_BYTES = 4 << 20  # bytes one capture keeps (its answer is hex: twice that)
MAX_RAW_PACKETS = 1024  # packets in one `raw-send`
MAX_DATAGRAM = 1 << 17
MAX_RECEIVE = 4096  # datagrams one `udp-recv` waits for
MAX_WAIT = 10.0  # seconds any request may hold the agent
MAX_HANDLE = (1 << 53) - 1  # a handle or request id JSON carries exactly
PRIVILEGED_PORTS = 1024  # binding below this needs a root caller

U32 = Annotated[int, Range(0, (1 << 32) - 1)]
Family = Literal[4, 6]
PayloadName = Literal["hdp", "udp", "raw"]
Port = Annotated[int, Range(0, 65535)]
Handle = Annotated[int, Range(1, MAX_HANDLE)]
Seconds = Annotated[float, Range(0, MAX_WAIT)]
# An address or a host name ("" binds every address): never an option, never a path.
Host = Annotated[str, Text(255, r"(?:[0-9A-Za-z_.:%][0-9A-Za-z_.:%-]*)?",
                           "an address or host name")]
Address = Annotated[str, Text(64, r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
                                   r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.-]+)?",
                              "an IPv4 or IPv6 address")]
Hex = Annotated[str, Text(2 * MAX_DATAGRAM, r"(?:[0-9a-fA-F]{2})*", "hex bytes")]
ProbeData = Annotated[str, Text(2 * MAX_PROBE_SIZE, r"(?:[0-9a-fA-F]{2})*", "hex bytes")]
Runs = Annotated[tuple[U32, ...], Items(MAX_RUNS)]
Handles = Annotated[tuple[Handle, ...], Items(MAX_SOCKETS)]


def family(value: int) -> Family:
    """`value` as a request's family, for a caller building one in code; ValueError unless
    it is 4 or 6."""
    if value == 4:
        return 4
    if value == 6:
        return 6
    raise ValueError(f"family {value!r}: give 4 or 6")


def payload(value: str) -> PayloadName:
    """`value` as a probe's payload kind; ValueError unless hdp, udp or raw."""
    if value == "hdp":
        return "hdp"
    if value == "udp":
        return "udp"
    if value == "raw":
        return "raw"
    raise ValueError(f"payload {value!r}: give hdp, udp or raw")


@dataclass(frozen=True)
class Request(Message):
    OP: ClassVar[str]
    ANSWER: ClassVar[str]


# -- raw probes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listen(Request):
    """Open raw listeners (kept until `close`); arrivals tagged with `runs` are reported."""

    OP, ANSWER = "listen", "listening"
    family: Family
    protocols: Annotated[tuple[Annotated[int, Range(0, 255)], ...], Items(256)]
    runs: Runs = ()


@dataclass(frozen=True)
class Icmp(Request):
    """Open an ICMP/ICMPv6 listener; errors quoting probes of `runs` become `icmp` events."""

    OP, ANSWER = "icmp", "icmp-listening"
    family: Family
    runs: Runs = ()


@dataclass(frozen=True)
class ProbeSpec(Message):
    """One probe of a `send`: the agent builds its bytes (tag, payload, header) itself."""

    case: U32
    family: Family
    protocol: Annotated[int, Range(PROTOCOL_MIN, PROTOCOL_MAX)]
    dst: Address
    payload: PayloadName = "hdp"
    size: Annotated[int, Range(0, MAX_PROBE_SIZE)] = 64
    header_included: bool = False  # ICMP-only mode: the agent builds the IP header too
    ident: U32 = 0  # IPv4 identification / IPv6 flow label of a header the agent builds
    tos: Annotated[int, Range(0, 255)] = 0  # DSCP << 2 | ECN
    df: bool | None = None  # None: kernel default; False: routers may fragment
    ttl: Annotated[int, Range(1, 255)] | None = None  # TTL / hop limit (None: kernel default)
    # The data after the tag the agent writes, in place of `size` bytes of filler: it never
    # replaces a header, so a non-root caller may give it (hdp.agent.powers).
    data: ProbeData | None = None


class ProbeRow(NamedTuple):
    """A ProbeSpec as a plain tuple, its fields in the same order: one probe of `Probes`."""

    case: int
    family: Family
    protocol: int
    dst: str
    payload: PayloadName = "hdp"
    size: int = 64
    header_included: bool = False
    ident: int = 0
    tos: int = 0
    df: bool | None = None
    ttl: int | None = None
    data: str | None = None


@dataclass(frozen=True)
class Probes(Message):
    """The probes of a `send` field by field: ProbeSpec's fields as columns, one value a
    probe, each as long as `case`. A column left out holds its field's default for every
    probe. Checked column by column at C speed, and sent as they are: a batch of probes
    costs the agent a fraction of what as many ProbeSpec objects do."""

    case: Annotated[tuple[U32, ...], Items(MAX_PROBES)]
    family: Annotated[tuple[Family, ...], Items(MAX_PROBES)]
    protocol: Annotated[tuple[Annotated[int, Range(PROTOCOL_MIN, PROTOCOL_MAX)], ...],
                        Items(MAX_PROBES)]
    dst: Annotated[tuple[Address, ...], Items(MAX_PROBES)]
    payload: Annotated[tuple[PayloadName, ...], Items(MAX_PROBES)] | None = None
    size: Annotated[tuple[Annotated[int, Range(0, MAX_PROBE_SIZE)], ...],
                    Items(MAX_PROBES)] | None = None
    header_included: Annotated[tuple[bool, ...], Items(MAX_PROBES)] | None = None
    ident: Annotated[tuple[U32, ...], Items(MAX_PROBES)] | None = None
    tos: Annotated[tuple[Annotated[int, Range(0, 255)], ...], Items(MAX_PROBES)] | None = None
    df: Annotated[tuple[bool | None, ...], Items(MAX_PROBES)] | None = None
    ttl: Annotated[tuple[Annotated[int, Range(1, 255)] | None, ...],
                   Items(MAX_PROBES)] | None = None
    data: Annotated[tuple[ProbeData | None, ...], Items(MAX_PROBES)] | None = None

    def validate(self) -> None:
        count = len(self.case)
        for name in ProbeRow._fields:
            column = getattr(self, name)
            if column is not None and len(column) != count:
                raise Invalid(f"{len(column)} values, for {count} probes", name)

    def __len__(self) -> int:
        return len(self.case)

    @classmethod
    def of(cls, rows: Sequence[ProbeRow | ProbeSpec]) -> Probes:
        """The columns of `rows`; a column whose every value is the default is left out."""
        tuples = [tuple(row) if isinstance(row, tuple) else astuple(row) for row in rows]
        columns = dict(zip(ProbeRow._fields, zip(*tuples, strict=True), strict=True)) \
            if tuples else dict.fromkeys(ProbeRow._fields, ())
        defaults = ProbeRow._field_defaults
        for name, default in defaults.items():
            if all(value == default and type(value) is type(default)
                   for value in columns[name]):
                columns[name] = None  # type: ignore[assignment]
        probes = object.__new__(cls)
        probes.__dict__.update(columns)
        return probes

    def rows(self) -> Iterator[ProbeRow]:
        """Each probe, defaults filled in, in order."""
        count = len(self.case)
        defaults = ProbeRow._field_defaults
        columns = [getattr(self, name) or itertools.repeat(defaults.get(name), count)
                   for name in ProbeRow._fields]
        return map(ProbeRow._make, zip(*columns))  # noqa: B905 - lengths checked


@dataclass(frozen=True)
class Send(Request):
    """Send every probe at once: one `sent` event a probe, then `send-done`. `probes` one
    object each, `columns` field by field (what hdp.engine sends), or both."""

    OP, ANSWER = "send", "send-done"
    run: U32
    probes: Annotated[tuple[ProbeSpec, ...], Items(MAX_PROBES)] = ()
    columns: Probes | None = None

    def validate(self) -> None:
        count = len(self.probes) + len(self.columns or ())
        if count > MAX_PROBES:
            raise Invalid(f"{count} probes are over the limit of {MAX_PROBES}")


@dataclass(frozen=True)
class RawSockets(Request):
    """Raw sockets of `protocols` open in the agent's network namespace that are not its
    own: each takes the packets of its protocol, so the kernel answers them no ICMP."""

    OP, ANSWER = "raw-sockets", "raw-sockets"
    family: Family
    protocols: Annotated[tuple[Annotated[int, Range(0, 255)], ...], Items(256)] = ()


@dataclass(frozen=True)
class Stats(Request):
    """Kernel receive-queue drops and arrival counts so far."""

    OP, ANSWER = "stats", "stats"


@dataclass(frozen=True)
class Drain(Request):
    """A barrier: report every packet a listener already holds, then answer."""

    OP, ANSWER = "drain", "drained"


@dataclass(frozen=True)
class Close(Request):
    """Close every raw listener and sender."""

    OP, ANSWER = "close", "closed"


@dataclass(frozen=True)
class Shutdown(Request):
    """Answer `bye` and exit."""

    OP, ANSWER = "shutdown", "bye"


# -- many-probe streams (hdp.agent.stream) ---------------------------------------------
# A stream sends COUNT probes down each of its lanes, paced and interleaved, and keeps one
# record per probe sent or copy received, which the controller reads back in pages of
# columns: never an event per packet. Its bounds hold for every caller; a caller that is
# not root sends only probes the agent builds (as with `send`), binds no privileged port,
# and has probes reflected only to the `peer` it names.

MAX_STREAMS = 16  # streams one agent holds open
MAX_LANES = 512  # lanes of one stream (a protocol and payload, or the kernel's UDP or TCP)
MAX_STREAM_COUNT = 1 << 16  # probes a lane: the probe tag numbers them in 16 bits
MAX_STREAM_PROBES = 1 << 20  # lanes x count of one stream: what its records may hold
MAX_STREAM_RATE = 100_000.0  # probes a second, each lane
MAX_STREAM_PPS = 200_000.0  # probes a second, all lanes of a stream together
STREAM_PAGE = 8192  # records one `stream-records` answer carries

# -- floods (hdp.agent.flood) -----------------------------------------------------------
# A flood sends COUNT probes of one protocol unpaced, each tagged with its number, and the
# listening end only counts: a bit a probe, duplicates and corrupt copies counted, the
# kernel's drops read exactly. No stamps and no record a packet: the answers carry counts
# and the numbers of the probes that never came, as ranges. Every caller gets the same
# bounds; the probes are always the agent's own (its tag, its run, the named dst).

MAX_FLOODS = 4  # floods one agent holds open
MAX_FLOOD_COUNT = 10_000_000  # probes a flood: a listener's map is COUNT / 8 bytes
MAX_FLOOD_SIZE = 1400  # data bytes after the tag: a flood is about packets, not bytes
MAX_MISSING = 64  # ranges of missing probes one answer lists


# The requests a sweep and a conformance run make are defined above; the others (UDP
# sockets, whole packets and captures, the host, streams, floods) in
# hdp.agent.messages_tools, which loads on the first use of one of them: building their
# dataclasses cost every process that talks to an agent 9 ms at start. They are reached
# here all the same (messages.UdpOpen, REQUESTS["udp-open"]).
TOOLS = (
    "Peer", "UdpOpen", "UdpSend", "UdpRecv", "UdpInfo", "UdpClose", "RawSend",
    "CaptureStart", "CaptureStop", "Counters", "Sysctl", "Source", "Lane", "StreamOpen",
    "StreamSend", "StreamRecords", "StreamClose", "FloodOpen", "FloodSend", "FloodCount",
    "FloodClose",
)
# Every operation in the order of the protocol's documentation: its class and its answer.
_OPS: dict[str, tuple[str, str]] = {
    "listen": ("Listen", "listening"),
    "icmp": ("Icmp", "icmp-listening"),
    "send": ("Send", "send-done"),
    "raw-sockets": ("RawSockets", "raw-sockets"),
    "stats": ("Stats", "stats"),
    "drain": ("Drain", "drained"),
    "close": ("Close", "closed"),
    "shutdown": ("Shutdown", "bye"),
    "udp-open": ("UdpOpen", "udp-opened"),
    "udp-send": ("UdpSend", "udp-sent"),
    "udp-recv": ("UdpRecv", "udp-received"),
    "udp-info": ("UdpInfo", "udp-info"),
    "udp-close": ("UdpClose", "udp-closed"),
    "raw-send": ("RawSend", "raw-sent"),
    "capture-start": ("CaptureStart", "capture-started"),
    "capture-stop": ("CaptureStop", "captured"),
    "counters": ("Counters", "counters"),
    "sysctl": ("Sysctl", "sysctl"),
    "source": ("Source", "source"),
    "stream-open": ("StreamOpen", "stream-opened"),
    "stream-send": ("StreamSend", "stream-sent"),
    "stream-records": ("StreamRecords", "stream-records"),
    "stream-close": ("StreamClose", "stream-closed"),
    "flood-open": ("FloodOpen", "flood-opened"),
    "flood-send": ("FloodSend", "flood-sent"),
    "flood-count": ("FloodCount", "flood-counted"),
    "flood-close": ("FloodClose", "flood-closed"),
}

if TYPE_CHECKING:
    from hdp.agent.messages_tools import (
        CaptureStart as CaptureStart,
    )
    from hdp.agent.messages_tools import (
        CaptureStop as CaptureStop,
    )
    from hdp.agent.messages_tools import (
        Counters as Counters,
    )
    from hdp.agent.messages_tools import (
        FloodClose as FloodClose,
    )
    from hdp.agent.messages_tools import (
        FloodCount as FloodCount,
    )
    from hdp.agent.messages_tools import (
        FloodOpen as FloodOpen,
    )
    from hdp.agent.messages_tools import (
        FloodSend as FloodSend,
    )
    from hdp.agent.messages_tools import (
        Lane as Lane,
    )
    from hdp.agent.messages_tools import (
        Peer as Peer,
    )
    from hdp.agent.messages_tools import (
        RawSend as RawSend,
    )
    from hdp.agent.messages_tools import (
        Source as Source,
    )
    from hdp.agent.messages_tools import (
        StreamClose as StreamClose,
    )
    from hdp.agent.messages_tools import (
        StreamOpen as StreamOpen,
    )
    from hdp.agent.messages_tools import (
        StreamRecords as StreamRecords,
    )
    from hdp.agent.messages_tools import (
        StreamSend as StreamSend,
    )
    from hdp.agent.messages_tools import (
        Sysctl as Sysctl,
    )
    from hdp.agent.messages_tools import (
        UdpClose as UdpClose,
    )
    from hdp.agent.messages_tools import (
        UdpInfo as UdpInfo,
    )
    from hdp.agent.messages_tools import (
        UdpOpen as UdpOpen,
    )
    from hdp.agent.messages_tools import (
        UdpRecv as UdpRecv,
    )
    from hdp.agent.messages_tools import (
        UdpSend as UdpSend,
    )


def __getattr__(name: str) -> Any:
    if name in TOOLS:
        from hdp.agent import messages_tools

        return getattr(messages_tools, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Requests(Mapping[str, "type[Request]"]):
    """op -> its Request class; a class of hdp.agent.messages_tools loads with it."""

    def __getitem__(self, op: str) -> type[Request]:
        cls: type[Request] = getattr(sys.modules[__name__], _OPS[op][0])
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_OPS)

    def __len__(self) -> int:
        return len(_OPS)


REQUESTS: Mapping[str, type[Request]] = _Requests()

Ident = Annotated[int, Range(0, MAX_HANDLE)]


def parse_request(data: dict[str, Any]) -> tuple[int | None, Request]:
    """(id, request) from a decoded line; Invalid names the field and the limit."""
    ident = data.get("id")
    if ident is not None and (type(ident) is not int or not 0 <= ident <= MAX_HANDLE):
        raise Invalid(f"id: give an integer 0..{MAX_HANDLE} or null")
    op = data.get("op")
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        shown = op[:40] if isinstance(op, str) else op if op is None else type(op).__name__
        raise Invalid(f"unknown op {shown!r}: give one of {', '.join(REQUESTS)}")
    fields = {k: v for k, v in data.items() if k not in ("op", "id")}
    try:
        return ident, cls.from_json(fields)
    except Invalid as exc:
        raise Invalid(f"{cls.OP}: {exc}") from None


def request_json(ident: int, request: Request) -> dict[str, Any]:
    """The wire form of a request: op and id first, fields left at None omitted."""
    fields = {k: v for k, v in request.to_json().items() if v is not None}
    return {"op": request.OP, "id": ident, **fields}


# -- events ---------------------------------------------------------------------------
# Each event is a JSON object whose "event" names its type. An event that answers a request
# carries its "id"; `sent`, `arrival` and `icmp` carry the run and case instead. EVENTS
# lists every field of every event: (always present, present only sometimes).

EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # stream events
    "ready": (("version", "pid", "platform", "raw", "raw_error", "caller", "hdp"), ()),
    "error": (("id", "message"), ("needs",)),  # needs: "root" when only root may ask it
    # icmp_possible, once the probe was handed to a socket: False when no ICMP error can
    # come back for it (hdp.agent.sending), so a missing answer is `no-answer`; digest
    # (CRC-32 of the bytes after the IP header) and stamp_ns (the HDP timestamp in them,
    # null for other payloads), once the probe was built
    "sent": (("run", "case", "ok", "stage", "errno", "bytes", "time_ns", "src"),
             ("icmp_possible", "digest", "stamp_ns")),
    # digest: CRC-32 of the bytes after the IP header as they came; head: the carrier's
    # header bytes (hex; null when undecodable); bytes: all of them (hex), only when the
    # tag's CRC, the HDP ports or the UDP checksum already say the probe was changed
    "arrival": (("run", "case", "probe", "carrier", "family", "socket_protocol",
                 "wire_protocol", "src", "dst", "ttl", "dscp", "ecn", "length", "intact",
                 "kernel_time_ns", "hdp_time_ns", "fragment_offset", "more_fragments",
                 "truncated", "error", "digest", "head"), ("bytes",)),
    "icmp": (("family", "type", "code", "from", "mtu", "run", "case", "quoted_protocol",
              "quoted_dst", "quoted_ident", "quoted_flow", "kernel_time_ns"), ()),
    # answers, one per request (Request.ANSWER)
    # drops (listening, stats, drained, closed): each listener's exact kernel drops since
    # it opened, by "family/protocol" (null where the OS does not count them)
    "listening": (("id", "family", "opened", "refused", "drops"), ()),
    "icmp-listening": (("id", "family", "ok", "errno"), ()),
    "send-done": (("id",), ()),
    "stats": (("id", "drops", "arrivals", "foreign"), ()),
    "drained": (("id", "drops"), ()),
    # sockets: [{"protocol": P, "inode": N}] not the agent's own; unavailable: why none
    # can be told (null when they can)
    "raw-sockets": (("id", "family", "sockets", "unavailable"), ()),
    "closed": (("id", "drops"), ()),
    "bye": (("id",), ()),
    "udp-opened": (("id", "ok", "stage", "errno"), ("handle", "address", "port")),
    "udp-sent": (("id", "ok", "errno", "bytes", "digest"), ()),
    "udp-received": (("id", "datagrams"), ()),
    "udp-info": (("id", "address", "port", "mtu", "unavailable"), ()),  # why no mtu: OS
    "udp-closed": (("id",), ()),
    "raw-sent": (("id", "results"), ()),
    "capture-started": (("id", "ok", "errno", "handle"), ("reason",)),  # reason: if not ok
    "captured": (("id", "dropped", "unattributed", "packets"),
                 ("limit",)),  # limit: which one, if hit
    "counters": (("id", "counters"), ()),
    "sysctl": (("id", "ok", "errno", "value"), ("old", "reason")),
    "source": (("id", "address", "errno"), ()),
    # streams (hdp.agent.stream). lanes: per lane {"ok", "stage", "errno"} (stage socket,
    # bind, connect...); tx_stamps / rx_stamps: "kernel" or "user" (stamps_note: why
    # user); boot_id: the kernel's (hdp.stats.clock), null where the OS hides it
    "stream-opened": (("id", "handle", "lanes", "udp_port", "tcp_port", "boot_id",
                       "tx_stamps", "rx_stamps", "stamps_note"), ()),
    "stream-sent": (("id", "handle", "sent", "refused", "late_us", "seconds"), ()),
    # columns: {"lane": [..], "seq": [..], "ns": [..], "flags": [..], "hold_ns": [..]}
    # (hdp.agent.stream: flags); refusals: {"record index": errno}; drops: the kernel
    # drops of each receiving socket since it opened ("raw/253", "udp", "tcp")
    "stream-records": (("id", "handle", "table", "offset", "total", "columns", "refusals",
                        "complete", "drops", "foreign"), ()),
    "stream-closed": (("id", "handle"), ()),
    # floods (hdp.agent.flood). opened: ok false with the stage and errno where the OS
    # refused the socket (handle null); batched: whether sendmmsg/recvmmsg carry it;
    # receive_buffer: the bytes asked for and granted (null: the OS default)
    "flood-opened": (("id", "handle", "ok", "stage", "errno", "batched", "receive_buffer",
                      "boot_id"), ()),
    # sent: taken by the kernel; refused: not (errno: the last refusal's); began_ns and
    # ended_ns: CLOCK_MONOTONIC around the sends
    "flood-sent": (("id", "handle", "sent", "refused", "errno", "began_ns", "ended_ns"), ()),
    # delivered: probes with an intact copy; duplicated: further intact copies;
    # corrupted: copies of this run whose CRC failed; foreign: other packets read;
    # drops: the socket's kernel drops since it opened (null: the OS does not say);
    # first_ns, last_ns: CLOCK_MONOTONIC of the first and last match (null: none);
    # missing: up to MAX_MISSING [first, last] ranges of probes below `below` not heard,
    # missing_ranges: how many ranges there are
    "flood-counted": (("id", "handle", "delivered", "duplicated", "corrupted", "foreign",
                       "drops", "first_ns", "last_ns", "below", "missing", "missing_ranges",
                       "complete"), ()),
    "flood-closed": (("id", "handle"), ()),
}
ANSWERS = frozenset(answer for _, answer in _OPS.values())

# Frames: a run of stream events of one kind in one line, their fields as columns. A
# frame holds events that have exactly its fields; each field is a JSON array with that
# field of every event, in order, all as long as the frame (1..MAX_FRAME). The agent
# writes `sent` and `arrival` events in frames; one of another shape (a refusal before
# the probe was built, an arrival whose bytes are shown) goes alone, and every other
# event (an answer, `icmp`, `error`) first ends the frame being built, so the order of
# events is the order they happened. hdp.agent.protocol.decode_events gives them back.
MAX_FRAME = 256
FRAMES: dict[str, tuple[str, tuple[str, ...]]] = {  # frame -> (its events, their fields)
    "sents": ("sent", EVENTS["sent"][0] + EVENTS["sent"][1]),
    "arrivals": ("arrival", EVENTS["arrival"][0]),
}
EVENTS.update({frame: (fields, ()) for frame, (_, fields) in FRAMES.items()})


class Ready(TypedDict):
    """The agent's first line."""

    event: Literal["ready"]
    version: int
    pid: int
    platform: dict[str, str]
    raw: bool
    raw_error: str | None
    caller: Literal["root", "user"]  # "user": started through sudo by a non-root user
    hdp: str  # the directory of the hdp package the agent imported


def is_answer(event: dict[str, Any]) -> bool:
    """Whether `event` ends a request (its answer or an error), not a stream event."""
    kind = event.get("event")
    return kind == "error" or (kind in ANSWERS and "id" in event)


def event_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with an event against EVENTS, or None: for tests and debugging."""
    kind = event.get("event")
    if kind not in EVENTS:
        return f"unknown event {kind!r}"
    always, sometimes = EVENTS[str(kind)]
    keys = set(event) - {"event"}
    if missing := set(always) - keys:
        return f"{kind} lacks {sorted(missing)}"
    if extra := keys - set(always) - set(sometimes):
        return f"{kind} has undefined {sorted(extra)}"
    if kind in FRAMES:
        lengths = {len(v) if type(v) is list else -1 for k, v in event.items() if k != "event"}
        if len(lengths) != 1 or not 1 <= min(lengths) <= MAX_FRAME:
            return f"{kind}: columns of lengths {sorted(lengths)}, not one of 1..{MAX_FRAME}"
    return None


# Each class's checks compile on its first use, against the bounds as defined here.
freeze_bounds(__name__, globals())

__all__ = ["EVENTS", "FRAMES", "MAX_FRAME", "REQUESTS", "Invalid", "Request", "event_problem",
           "is_answer", "parse_request", "request_json"]
