"""The agent's wire format: one JSON object a line over a byte stream, both ways.

The controller writes requests, the agent writes events; what each one holds is defined
once in hdp.agent.messages, which also lists every operation and its answer. Everything
is plain JSON, so an agent can run anywhere a byte stream reaches (a thread, a child
process, ``sudo -n``, ``ip netns exec``, ``ssh``). This module is the only one that
knows the encoding: a change of it (say, batched events) stays here.

Start-up
    The agent's first line is ``{"event": "ready", "version": 3, "pid": ..,
    "platform": {..}, "raw": true|false, "raw_error": null|"EPERM ..",
    "caller": "root"|"user", "hdp": "/path/to/hdp"}``.

Requests
    ``{"op": OP, "id": N, ...}`` with OP one of ``listen``, ``icmp``, ``send``,
    ``raw-sockets``, ``stats``,
    ``drain``, ``close``, ``shutdown``, ``udp-open``, ``udp-send``, ``udp-recv``,
    ``udp-info``, ``udp-close``, ``raw-send``, ``capture-start``, ``capture-stop``,
    ``counters``, ``sysctl``, ``source``, ``stream-open``, ``stream-send``,
    ``stream-records``, ``stream-close``, ``flood-open``, ``flood-send``, ``flood-count``,
    ``flood-close``: the fields, their bounds and the answer of each
    are the dataclasses of hdp.agent.messages, and every event's fields are its EVENTS.

Frames
    ``sent`` and ``arrival`` events come many to a line, their fields as columns:
    ``{"event": "arrivals", "run": [7, 7], "case": [0, 1], ...}`` holds two arrivals,
    each field an array with one value per event (at most MAX_FRAME). A frame holds
    events with exactly its fields (messages.FRAMES); any other event ends the frame
    before it goes out, and the agent sends what it holds before it waits for input, so
    events keep their order and are never held back. `decode_events` gives the events of
    a line. (Version 3; an agent of version 2 wrote every event alone.)

Fields with more to them than their type
    ``capture-start`` ``flow``: the one exchange a capture keeps, ``{"protocol": 17,
    "src": "198.18.0.2", "dst": "198.18.1.2", "sport": 40000, "dport": 5000,
    "identifications": [..]}`` (null or absent: any; ``identifications``: the IP IDs of
    packets the caller built, kept whatever their ports say). Only that flow's packets
    are kept: its own, the later fragments of its datagrams, and ICMP errors quoting
    them; ``protocol`` and ``hosts`` are a coarser filter applied first. What a valid
    flow is, and how a packet is shown to be in it, is hdp.flow's. Without a flow every
    packet of the protocol is kept, whoever's: for a private namespace. A caller that
    is not root sees only its own flows, whatever flow it gives (hdp.agent.powers).
    ``capture-started`` ``reason``: when not ok, why (``EAFNOSUPPORT``: no AF_PACKET on
    this OS). ``captured`` ``unattributed``: packets too broken to show whose they are,
    not kept; ``dropped``: matching packets past the capture's packet or byte limit,
    which ``limit`` then names.
    ``send`` probe ``ttl`` (1..255) and ``data`` (hex, at most MAX_PROBE_SIZE bytes): the
    TTL / hop limit the probe leaves with (absent: the kernel's, or 64 in a header the agent
    builds), and the bytes after the tag in place of ``size`` bytes of filler. The agent
    still builds every header and the tag, so a caller that is not root may give both.
    Optional fields at their default are left out of a request (hdp.agent.schema), so an
    agent that predates one still serves every request that does not use it.
    ``sent`` ``icmp_possible``: false for an ICMP-only probe that had to go out on a raw
    socket of its own protocol to an address of this host (macOS has no IPV6_HDRINCL):
    that socket takes the probe in, so no ICMP error can answer it and a missing answer
    is ``no-answer``, not ``lost`` (hdp.agent.sending).
    ``drops`` (``listening``, ``stats``, ``drained``, ``closed``): each raw listener's
    kernel drops since it opened, exactly (Linux ``SO_MEMINFO``), as
    ``{"4/253": 0, ..}``; null for a listener whose OS does not count them. ``closed``
    and ``drained`` first report every packet still queued, so received + dropped is
    every packet that reached a listener; the controller takes the difference between
    ``listening`` and ``closed`` as a batch's drops (hdp.accounting).
    ``sent`` ``digest`` and ``stamp_ns``: a CRC-32 of the bytes after the IP header as
    built, and the HDP timestamp in them (null for UDP and raw payloads). ``arrival``
    ``digest``, ``head`` and ``bytes``: the same CRC-32 of what arrived, the carrier's
    header as it arrived (hex: HDP's 12 bytes, UDP's 8, nothing for raw; null when
    undecodable), and every byte (hex) only when the tag's CRC, the HDP ports or the
    UDP checksum already show a change. The controller compares the two digests, and
    names the changed bytes where they differ (hdp.rewrites).
    ``raw-sockets`` ``sockets``: the raw sockets of the asked protocols open in the
    agent's network namespace that are not its own, ``[{"protocol": 253, "inode":
    4873320}]`` (at most 1024; Linux /proc/net/raw and raw6): each makes the kernel
    answer no ICMP for its protocol (hdp.raw_table). ``unavailable``: why none can be
    told (no /proc/net/raw on macOS), else null.
    ``udp-info`` ``unavailable``: why ``mtu`` is null when the OS cannot tell a path MTU
    (IPv4 on macOS), null when it can. ``sysctl`` ``reason``: why a setting was not read
    or written (no /proc/sys on macOS, not a lab namespace).
    ``udp-open`` options whose numbers differ between OSes (``pmtudisc``, ``no_check``,
    ``send_cscov``, ``recv_cscov``) come from hdp.osnet's table; one the OS lacks fails
    the open at stage ``setsockopt`` with ``ENOPROTOOPT``, never another OS's number.

Streams (many probes per case; hdp.agent.stream, hdp.measure)
    ``stream-open`` opens one end of a stream: ``role`` ``listen`` (raw listeners of its
    lanes' protocols, a UDP socket and a TCP listening socket on free ports, answered as
    ``udp_port`` and ``tcp_port``) or ``send`` (raw senders, a UDP socket connected to
    ``dst``:``udp_port``, a TCP_NODELAY connection to ``dst``:``tcp_port``). A ``lane`` is
    ``{"kind": "raw", "protocol": 253, "payload": "hdp"}``, ``{"kind": "udp"}`` or
    ``{"kind": "tcp"}``; probe SEQ of lane L carries the tag (run, case L, probe SEQ), an
    echo case L | 1 << 31. ``stream-opened`` ``lanes``: each lane's ``ok``, ``stage``
    and ``errno`` (the OS's refusal is the lane's, never the request's); ``tx_stamps``:
    ``kernel`` where this end's sends get SO_TIMESTAMPING transmit stamps, ``user``
    otherwise (``stamps_note`` says why); ``boot_id``: the kernel's, which tells two
    ends that share a clock. ``stream-send`` sends probes ``first``.. of every open lane,
    ``rate`` a second a lane, interleaved on one monotonic schedule, and answers
    ``sent``, ``refused``, ``late_us`` (how far behind its schedule it fell at worst) and
    ``seconds``; count / rate may not exceed MAX_WAIT. ``stream-records`` answers one page
    (STREAM_PAGE records) of a table as ``columns``: ``lane``, ``seq``, ``ns`` (the stamp,
    CLOCK_REALTIME), ``flags`` (1: the stamp is the kernel's; 2: the tag's CRC held; 4:
    the hold time is from kernel stamps; 8: the OS refused the send, ``refusals`` has its
    errno by record index) and ``hold_ns`` (a reflected probe's time at the listener, -1
    where none); ``sent`` is what the sender sent, ``received`` the copies a listener
    read (or the echoes a reflecting sender read back). With ``wait`` it first serves the
    stream until ``expect`` distinct probes arrived intact (or every send has its kernel
    stamp), so a reader never sleeps to be sure. ``drops``: each receiving socket's
    kernel drops since it opened (``raw/253``, ``udp``, ``tcp``). A listening end with
    ``reflect`` sends each probe's first intact copy back to its source; a caller that
    is not root must name that source as ``peer`` and binds no port below 1024.

Floods (many probes, counted only; hdp.agent.flood, hdp.flood)
    ``flood-open`` opens one end of a flood of ``count`` probes (at most MAX_FLOOD_COUNT)
    of IP protocol ``protocol``: ``role`` ``listen`` (a raw listener with a large receive
    queue and no stamps, answered with ``receive_buffer``) or ``send`` (a raw sender
    toward ``dst``). Probe N carries the tag (run, case N, probe 0) after an HDP header.
    ``flood-opened`` has ``ok``, ``stage`` and ``errno`` (an OS refusal is an answer, with
    a null ``handle``), ``batched`` (sendmmsg/recvmmsg carry it) and ``boot_id``.
    ``flood-send`` sends probes ``first``.. unpaced for at most ``seconds`` and answers
    ``sent`` (taken by the kernel), ``refused`` (with the last ``errno``), ``began_ns``
    and ``ended_ns`` (CLOCK_MONOTONIC). ``flood-count`` (with ``wait``: first read until
    ``expect`` probes arrived intact) answers ``delivered``, ``duplicated``,
    ``corrupted`` (copies of the run whose CRC failed), ``foreign``, ``drops`` (the
    socket's kernel drops, exact, null where the OS does not count them), ``first_ns``
    and ``last_ns`` of the matches, and ``missing``: up to MAX_MISSING [first, last]
    ranges of the probes numbered below ``below`` (0: all) never heard
    (``missing_ranges`` of them in all). No answer carries anything per packet.

Hostile input
    The agent runs as root and reads whatever its caller writes. A line longer than
    MAX_LINE is dropped as it arrives (never buffered whole), one nested deeper than
    MAX_DEPTH is refused before it is parsed, NaN and Infinity are refused, strings must
    be valid UTF-8, and every value must lie within its field's bounds. Each such line is
    answered ``{"event": "error", "id": N|null, "message": ..}`` and the agent serves on.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import sys
from collections.abc import Callable
from typing import Any

from hdp.agent import messages
from hdp.agent.messages import VERSION, Invalid, Request

__all__ = ["MAX_DEPTH", "MAX_LINE", "VERSION", "EventWriter", "LineBuffer", "ProtocolError",
           "decode", "decode_events", "decode_request", "encode", "encode_request"]

MAX_LINE = 16 << 20  # MAX_PROBES probes without data stay well below this (with
# data, hdp.engine.send_requests splits a batch to fit)
MAX_DEPTH = 8  # requests nest 3 deep; json's parser recurses once per level
MAX_DIGITS = 40  # the longest integer parsed where Python itself does not bound int()

# A quote that ends or starts a string: not preceded by an odd run of backslashes.
_QUOTE = re.compile(rb'(?<!\\)(?:\\\\)*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class ProtocolError(ValueError):
    """A line that is not a request (or event) this protocol defines; `ident` is the
    request's id when the line got far enough to tell it."""

    def __init__(self, message: str, ident: int | None = None) -> None:
        super().__init__(message)
        self.ident = ident


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class EventWriter:
    """The agent's side of the events: `sent` and `arrival` events go out in frames of up
    to MAX_FRAME (messages.FRAMES), every other event alone after the frame before it.

    `write` is called with whole lines. The frame being built goes out when full, before
    any other event, and on `flush`, which the agent calls before it waits for input:
    an event is never held while the agent sleeps.
    """

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._frame: _Frame | None = None
        self._rows: list[tuple[Any, ...]] = []

    def event(self, event: dict[str, Any]) -> None:
        frame = _FRAME_OF.get(event.get("event"))  # type: ignore[arg-type]
        if frame is not None and event.keys() == frame.keys:
            self.row(frame, frame.values(event))
            return
        self.flush()
        self._write(encode(event))

    def row(self, frame: _Frame, values: tuple[Any, ...]) -> None:
        """One event of `frame`, as its fields' values in `frame.fields` order."""
        if frame is not self._frame:
            self.flush()
            self._frame = frame
        self._rows.append(values)
        if len(self._rows) >= messages.MAX_FRAME:
            self.flush()

    @property
    def pending(self) -> bool:
        return bool(self._rows)

    def flush(self) -> None:
        if not self._rows:
            return
        frame, rows = self._frame, self._rows
        assert frame is not None
        self._rows = []
        columns = {"event": frame.name,
                   **dict(zip(frame.fields, map(list, zip(*rows, strict=True)), strict=True))}
        self._write(encode(columns))


class _Frame:
    """A frame of messages.FRAMES: its name, and the event and fields it holds."""

    def __init__(self, name: str, event: str, fields: tuple[str, ...]) -> None:
        self.name = name
        self.event = event
        self.fields = fields
        self.keys = frozenset(("event", *fields))
        self.values = operator.itemgetter(*fields)
        self.row_keys = ("event", *fields)


FRAME = {name: _Frame(name, event, fields) for name, (event, fields) in messages.FRAMES.items()}
_FRAME_OF = {frame.event: frame for frame in FRAME.values()}


def encode_request(ident: int, request: Request) -> bytes:
    return encode(messages.request_json(ident, request))


def decode(line: bytes) -> dict[str, Any]:
    """One JSON object from a line, parsed without recursing deeper than MAX_DEPTH."""
    if not nesting_within(line, MAX_DEPTH):
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_no_constant,
                             parse_int=_PARSE_INT)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not UTF-8 at byte {exc.start}") from None
    except ValueError as exc:  # JSONDecodeError, and what our hooks refuse
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:  # unreachable past the nesting check; never fatal all the same
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    return message


def decode_events(line: bytes) -> list[dict[str, Any]]:
    """The events one line from an agent holds: a frame's, in order, or the one it is."""
    message = decode(line)
    frame = FRAME.get(message.get("event"))  # type: ignore[arg-type]
    if frame is None:
        return [message]
    if message.keys() != frame.keys:
        raise ProtocolError(f"{frame.name}: fields {sorted(message.keys() - {'event'})[:30]}"
                            f" are not {', '.join(frame.fields)}")
    columns = [message[name] for name in frame.fields]
    if any(type(column) is not list for column in columns):
        raise ProtocolError(f"{frame.name}: every field is an array")
    count = len(columns[0])
    if not 1 <= count <= messages.MAX_FRAME or any(len(c) != count for c in columns):
        raise ProtocolError(f"{frame.name}: columns of lengths "
                            f"{sorted({len(c) for c in columns})}, not one of "
                            f"1..{messages.MAX_FRAME}")
    keys = frame.row_keys
    # Every column is `count` long (checked above); repeat() is as long as they are.
    return [dict(zip(keys, row, strict=True))
            for row in zip(itertools.repeat(frame.event, count), *columns, strict=True)]


def decode_request(line: bytes) -> tuple[int | None, Request]:
    """(id, request) from one line; ProtocolError says what is wrong with it."""
    data = decode(line)
    try:
        return messages.parse_request(data)
    except Invalid as exc:
        ident = data.get("id")
        valid_id = type(ident) is int and 0 <= ident <= messages.MAX_HANDLE
        raise ProtocolError(str(exc), ident if valid_id else None) from None


def nesting_within(line: bytes, limit: int) -> bool:
    """Whether the arrays and objects of a JSON text nest at most `limit` deep.

    Works on the bytes at C speed: strings are cut out at their unescaped quotes, every
    byte but brackets dropped, then innermost pairs removed once a level. Anything
    unbalanced counts as too deep; json would refuse it anyway.
    """
    if line.count(b"[") + line.count(b"{") <= limit:
        return True
    # Without a backslash every quote ends or starts a string: split at C speed.
    parts = line.split(b'"') if b"\\" not in line else _QUOTE.split(line)
    outside = b"".join(parts[::2])
    brackets = outside.translate(None, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return True
        brackets = _INNERMOST.sub(b"", brackets)
    return not brackets


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _short_int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


# int() of a long digit string takes quadratic time; Pythons that bound it themselves
# (3.11, and 3.10.7 on: 4300 digits) need no hook on this hot path. Numbers out of a
# field's range, and floats like 1e400 that parse to infinity, fail the field's check.
_PARSE_INT = None if hasattr(sys, "get_int_max_str_digits") else _short_int


class LineBuffer:
    """Splits a byte stream into lines, never holding more than `max_line` bytes of one.

    `feed` returns the complete lines; a line that grows past the limit comes back once
    as None, as soon as it is over, and the rest of it is skipped up to its newline.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._tail = bytearray()
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes | None]:
        *complete, rest = chunk.split(b"\n")
        lines: list[bytes | None] = []
        for index, piece in enumerate(complete):
            if index == 0 and (self._tail or self._skipping):
                if self._skipping:  # the end of a line already reported
                    self._skipping = False
                    continue
                if len(self._tail) + len(piece) > self.max_line:
                    self._tail.clear()
                    lines.append(None)
                    continue
                self._tail += piece
                piece = bytes(self._tail)
                self._tail.clear()
            if len(piece) > self.max_line:
                lines.append(None)
            elif piece.strip():
                lines.append(piece)
        if self._skipping:
            return lines
        if len(self._tail) + len(rest) > self.max_line:
            self._tail.clear()
            self._skipping = True
            lines.append(None)
        else:
            self._tail += rest
        return lines
