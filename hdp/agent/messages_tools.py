"""The agent's requests that a sweep never makes: UDP sockets, whole packets and
captures, the host, many-probe streams and floods (hdp.agent.messages: the protocol, its
bounds and the rest of its messages; it loads this module on their first use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from hdp.agent import messages
from hdp.agent.messages import (
    MAX_CAPTURE_PACKETS,
    MAX_DATAGRAM,
    MAX_FLOOD_COUNT,
    MAX_FLOOD_SIZE,
    MAX_LANES,
    MAX_PROBE_SIZE,
    MAX_RAW_PACKETS,
    MAX_RECEIVE,
    MAX_STREAM_COUNT,
    MAX_STREAM_PROBES,
    MAX_STREAM_RATE,
    MAX_WAIT,
    U32,
    Address,
    Family,
    Handle,
    Handles,
    Hex,
    Host,
    PayloadName,
    Port,
    Request,
    Seconds,
)
from hdp.agent.schema import Items, Message, Parsed, Range, Text, freeze_bounds
from hdp.flow import Flow
from hdp.selection import PROTOCOL_MAX, PROTOCOL_MIN

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


# Each class's checks compile on its first use, against the bounds as defined here; the
# names its base classes' annotations use (ClassVar, ...) are hdp.agent.messages'.
freeze_bounds(__name__, {**vars(messages), **globals()})
