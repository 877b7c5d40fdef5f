"""Every message of the agent protocol, defined once and used by both ends.

Requests are frozen dataclasses (one per operation, `OP` its wire name, `ANSWER` the event
that answers it) whose fields carry their bounds; the agent builds them with
`parse_request` from each decoded line, the controller with their constructors, and
`REQUESTS` is the table the agent dispatches on. `EVENTS` lists every event the agent
writes, named by its ``event`` field, with its fields. hdp.agent.protocol puts both on the
wire; nothing else knows the encoding.

On the wire a request is ``{"op": OP, "id": N, ...fields}`` and its answer carries the same
``id``. A request that does not match its definition, or that a limit or the caller's
powers refuse, is answered ``{"event": "error", "id": N, "message": ...}`` (with
``"needs": "root"`` when only a root caller may ask it), and the agent keeps serving.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, TypedDict

from hdp.agent.schema import Invalid, Items, Message, Parsed, Range, Text, freeze_bounds
from hdp.flow import Flow
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


# -- UDP and UDP-Lite sockets ---------------------------------------------------------


@dataclass(frozen=True)
class Peer(Message):
    host: Host
    port: Port


@dataclass(frozen=True)
class UdpOpen(Request):
    """A UDP (17) or UDP-Lite (136) socket, bound and connected as asked."""

    OP, ANSWER = "udp-open", "udp-opened"
    family: Family
    protocol: Literal[17, 136] = 17
    bind: Host | None = None
    port: Port = 0
    connect: Peer | None = None
    reuseaddr: bool = False
    v6only: bool | None = None
    rcvbuf: Annotated[int, Range(0, 1 << 26)] | None = None
    sndbuf: Annotated[int, Range(0, 1 << 26)] | None = None
    pmtudisc: Literal["dont", "want", "do"] | None = None
    no_check: bool = False  # send with UDP checksum 0 (IPv4 only on Linux)
    send_cscov: Port | None = None
    recv_cscov: Port | None = None


@dataclass(frozen=True)
class UdpSend(Request):
    """One datagram: `data` (hex) or `size` bytes of filler, to `dst`:`port` or the peer."""

    OP, ANSWER = "udp-send", "udp-sent"
    handle: Handle
    size: Annotated[int, Range(0, MAX_DATAGRAM)] = 0
    data: Hex | None = None
    dst: Host | None = None
    port: Port | None = None


@dataclass(frozen=True)
class UdpRecv(Request):
    """Datagrams on `handles` until `count` arrived, one starting with `until`, or timeout."""

    OP, ANSWER = "udp-recv", "udp-received"
    handles: Handles = ()
    handle: Handle | None = None
    count: Annotated[int, Range(1, MAX_RECEIVE)] = 1
    timeout: Seconds = 1.0
    bufsize: Annotated[int, Range(1, MAX_DATAGRAM)] = MAX_DATAGRAM
    until: Annotated[str, Text(128, r"(?:[0-9a-fA-F]{2})*", "hex bytes")] | None = None


@dataclass(frozen=True)
class UdpInfo(Request):
    """A socket's address, port and (connected) path MTU."""

    OP, ANSWER = "udp-info", "udp-info"
    handle: Handle


@dataclass(frozen=True)
class UdpClose(Request):
    OP, ANSWER = "udp-close", "udp-closed"
    handles: Handles = ()
    handle: Handle | None = None


# -- whole packets, captures, the host --------------------------------------------------


@dataclass(frozen=True)
class RawSend(Request):
    """Caller-built IP packets, header included, sent in order (root callers only)."""

    OP, ANSWER = "raw-send", "raw-sent"
    family: Family
    dst: Address
    packets: Annotated[tuple[Hex, ...], Items(MAX_RAW_PACKETS)]


def _read_flow(value: Any) -> Flow:
    """hdp.flow's one definition of a valid flow; its refusal worded to follow the field
    name, which the message layer puts first (``flow: dport must be ...``)."""
    try:
        return Flow.from_request(value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("flow").lstrip(": ")) from None


@dataclass(frozen=True)
class CaptureStart(Request):
    """Capture what reaches `interface` (all when None), kept if it matches the filter:
    `protocol` and `hosts` first, then, when given, the one exchange `flow` (hdp.flow)."""

    OP, ANSWER = "capture-start", "capture-started"
    flow: Annotated[Flow, Parsed(_read_flow, Flow.to_request)] | None = None
    interface: Annotated[str, Text(15, r"[0-9A-Za-z_.:@-]+", "an interface name")] | None = None
    protocol: Annotated[int, Range(0, 255)] | None = None
    hosts: Annotated[tuple[Address, ...], Items(16)] = ()
    incoming_only: bool = True


@dataclass(frozen=True)
class CaptureStop(Request):
    """Stop a capture, after waiting up to `wait` seconds for `count` packets in all."""

    OP, ANSWER = "capture-stop", "captured"
    handle: Handle
    wait: Seconds = 0.0
    count: Annotated[int, Range(0, MAX_CAPTURE_PACKETS)] | None = None


@dataclass(frozen=True)
class Counters(Request):
    """The kernel's IP/UDP counters (/proc/net/snmp, snmp6)."""

    OP, ANSWER = "counters", "counters"


@dataclass(frozen=True)
class Sysctl(Request):
    """Read a net.* sysctl; write one only inside a lab's network namespace."""

    OP, ANSWER = "sysctl", "sysctl"
    name: Annotated[str, Text(128, r"net(?:\.[0-9A-Za-z_-]+)+",
                              "a net.* name: only net.* settings are served")]
    value: Annotated[str, Text(256, r"[ -~\t]*", "printable text")] | None = None


@dataclass(frozen=True)
class Source(Request):
    """The source address the host's routing picks toward `dst`."""

    OP, ANSWER = "source", "source"
    dst: Address
    family: Family


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


@dataclass(frozen=True)
class Lane(Message):
    """What one lane of a stream sends: IP protocol `protocol` on a raw socket with the
    `payload` carrier (`raw`), or the kernel's own UDP or TCP (a datagram socket, an
    established TCP_NODELAY connection) carrying the same tag and data."""

    kind: Literal["raw", "udp", "tcp"] = "raw"
    # Any number a socket() may be asked for: the OS's refusal is the lane's answer.
    protocol: Annotated[int, Range(PROTOCOL_MIN, PROTOCOL_MAX)] = 253
    payload: PayloadName = "hdp"


@dataclass(frozen=True)
class StreamOpen(Request):
    """One end of a stream: `listen` opens its receivers (raw listeners, a UDP socket, a
    TCP listening socket, on free ports) and with `reflect` sends each probe from `peer`
    back; `send` opens its senders toward `dst` (connecting to the listener's ports) and
    with `reflect` receives the echoes."""

    OP, ANSWER = "stream-open", "stream-opened"
    role: Literal["listen", "send"]
    run: U32
    family: Family
    lanes: Annotated[tuple[Lane, ...], Items(MAX_LANES)]
    count: Annotated[int, Range(1, MAX_STREAM_COUNT)]
    size: Annotated[int, Range(0, MAX_PROBE_SIZE)] = 64  # data bytes after the tag
    dst: Address | None = None  # send: where the listener is
    udp_port: Port = 0  # send: the listener's UDP port; listen: 0 for a free one
    tcp_port: Port = 0
    reflect: bool = False
    peer: Address | None = None  # listen + reflect: whose probes go back (the sender)


@dataclass(frozen=True)
class StreamSend(Request):
    """Probes `first`..`first + count - 1` of every lane of a `send` stream, `rate` a
    second a lane, the lanes interleaved on one monotonic schedule; answered when the last
    has left. count / rate is at most MAX_WAIT seconds: a longer stream is several."""

    OP, ANSWER = "stream-send", "stream-sent"
    handle: Handle
    count: Annotated[int, Range(1, MAX_STREAM_COUNT)]
    rate: Annotated[float, Range(1, MAX_STREAM_RATE)]
    first: Annotated[int, Range(0, MAX_STREAM_COUNT - 1)] = 0


@dataclass(frozen=True)
class StreamRecords(Request):
    """A page of a stream's records from `offset`: what it `sent`, or what it `received`
    (probes at a listener, echoes at a reflecting sender). With `wait`, first serve the
    stream's sockets until `expect` distinct probes have arrived intact (received) or
    every send has its kernel stamp (sent), for at most `wait` seconds."""

    OP, ANSWER = "stream-records", "stream-records"
    handle: Handle
    table: Literal["sent", "received"] = "received"
    offset: Annotated[int, Range(0, 2 * MAX_STREAM_PROBES)] = 0
    wait: Seconds = 0.0
    expect: Annotated[int, Range(0, MAX_STREAM_PROBES)] = 0


@dataclass(frozen=True)
class StreamClose(Request):
    OP, ANSWER = "stream-close", "stream-closed"
    handle: Handle


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


@dataclass(frozen=True)
class FloodOpen(Request):
    """One end of a flood: `listen` opens a raw listener of `protocol` that counts the
    probes of `run` numbered below `count`; `send` opens a raw sender toward `dst`."""

    OP, ANSWER = "flood-open", "flood-opened"
    role: Literal["listen", "send"]
    run: U32
    family: Family
    count: Annotated[int, Range(1, MAX_FLOOD_COUNT)]
    protocol: Annotated[int, Range(PROTOCOL_MIN, PROTOCOL_MAX)] = 253
    size: Annotated[int, Range(0, MAX_FLOOD_SIZE)] = 64
    dst: Address | None = None  # send: where the listener is


@dataclass(frozen=True)
class FloodSend(Request):
    """Probes `first`..`first + count - 1` of a `send` flood as fast as the socket takes
    them, for at most `seconds`; answered when the last has left or the time is up."""

    OP, ANSWER = "flood-send", "flood-sent"
    handle: Handle
    count: Annotated[int, Range(1, MAX_FLOOD_COUNT)]
    first: Annotated[int, Range(0, MAX_FLOOD_COUNT - 1)] = 0
    seconds: Seconds = MAX_WAIT


@dataclass(frozen=True)
class FloodCount(Request):
    """A `listen` flood's counts; with `wait`, first read until `expect` distinct probes
    have arrived intact, for at most `wait` seconds. The missing probes are looked for
    among those numbered below `below` (0: all of the flood's)."""

    OP, ANSWER = "flood-count", "flood-counted"
    handle: Handle
    wait: Seconds = 0.0
    expect: Annotated[int, Range(0, MAX_FLOOD_COUNT)] = 0
    below: Annotated[int, Range(0, MAX_FLOOD_COUNT)] = 0


@dataclass(frozen=True)
class FloodClose(Request):
    OP, ANSWER = "flood-close", "flood-closed"
    handle: Handle


REQUESTS: dict[str, type[Request]] = {cls.OP: cls for cls in (
    Listen, Icmp, Send, RawSockets, Stats, Drain, Close, Shutdown, UdpOpen, UdpSend, UdpRecv,
    UdpInfo, UdpClose, RawSend, CaptureStart, CaptureStop, Counters, Sysctl, Source,
    StreamOpen, StreamSend, StreamRecords, StreamClose, FloodOpen, FloodSend, FloodCount,
    FloodClose)}

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
ANSWERS = frozenset(cls.ANSWER for cls in REQUESTS.values())

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
