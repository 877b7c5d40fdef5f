"""The agent: owns the raw sockets on one host and streams observations as JSON lines.

Each line read is decoded and checked against its message definition (hdp.agent.messages)
before a handler of the dispatch table sees it; whatever a line holds, the agent answers
it (at worst with an `error` event) and keeps serving. What a caller may ask depends on
who it is (hdp.agent.powers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import select
import selectors
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hdp import rawsock
from hdp.agent import messages, protocol, sending
from hdp.agent.fastpath import Templates, arrival_row, plain
from hdp.agent.messages import ProbeRow, ProbeSpec
from hdp.agent.powers import Caller, OwnFlows
from hdp.agent.socket_ops import SocketOps
from hdp.arrival import Arrival, decode_arrival
from hdp.errors import PrivilegeError
from hdp.host import platform_info
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.wire import ipv4
from hdp.wire.hdp import ProbeTag

DRAIN_LIMIT = 1 << 16  # packets one drain reads at most, so a flood cannot hold it
BURST = 64  # packets read from one socket at a time
ARRIVALS, SENTS = protocol.FRAME["arrivals"], protocol.FRAME["sents"]
# The bytes that open each carrier, outside the tag's CRC: HDP's ports and timestamp, the
# UDP header. An arrival reports them as they came, so the controller can name a rewrite.
_HEAD = {"hdp": 12, "udp": 8, "raw": 0}
Handler = Callable[[Any, Any], None]  # (request id, typed request)


def arrival_event(arrival: Arrival) -> dict[str, Any]:
    tag = arrival.tag
    header = arrival.ipv4
    return {
        "event": "arrival", "run": tag.run_id if tag else None,
        "case": tag.case if tag else None, "probe": tag.probe if tag else None,
        "carrier": tag.carrier.name.lower() if tag else None,
        "family": arrival.received.family, "socket_protocol": arrival.received.socket_protocol,
        "wire_protocol": arrival.wire_protocol, "src": arrival.src, "dst": arrival.dst,
        "ttl": arrival.ttl, "dscp": arrival.dscp, "ecn": arrival.ecn,
        "length": arrival.byte_count, "intact": arrival.intact,
        "kernel_time_ns": arrival.received.kernel_time_ns,
        "hdp_time_ns": arrival.hdp.timestamp_ns if arrival.hdp else None,
        "fragment_offset": header.fragment_offset if header else None,
        "more_fragments": header.mf if header else None,
        "truncated": arrival.received.truncated, "error": arrival.error,
        **received_digest(arrival),
    }


def received_digest(arrival: Arrival) -> dict[str, Any]:
    """What the controller compares with the probe as sent (hdp.rewrites): a CRC-32 of
    every byte after the IP header, the carrier's header bytes as they came, and the
    whole payload only when this end already sees it changed."""
    payload = arrival.ip_payload
    carrier = arrival.carrier.name.lower() if arrival.carrier is not None else None
    fields: dict[str, Any] = {
        "digest": zlib.crc32(payload),
        "head": None if carrier is None else payload[:_HEAD[carrier]].hex()}
    if not arrival.intact:
        fields["bytes"] = payload.hex()
    return fields


class Agent:
    """Serves requests read from `in_fd`, writing events to `out_fd`, until shutdown.

    `caller` says whom it serves; an in-process agent serves its own process, root or not.
    """

    def __init__(self, in_fd: int, out_fd: int, caller: Caller | None = None) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.caller = caller or Caller(root=True, uid=None)
        self.own = OwnFlows()
        self.selector = selectors.DefaultSelector()
        self.buffer = protocol.LineBuffer()
        self.writer = protocol.EventWriter(self._write)
        self.templates = Templates()
        self._packet = bytearray(rawsock.MAX_PACKET)  # what _on_packet reads into
        # Where received IPv4 headers are laid out as sent (not BSD's), a packet of ours
        # takes the fast path (hdp.agent.fastpath).
        self._as_sent = ipv4.raw_quirk_for(platform.system(),
                                           platform.release()) is ipv4.RawQuirk.NONE
        self.listeners: dict[tuple[int, int], rawsock.RawSocket] = {}
        self.senders: dict[tuple[int, int, bool], rawsock.RawSocket | rawsock.OsRefusal] = {}
        self.icmp: dict[int, Any] = {}  # family -> IcmpWatch
        self.runs: set[int] = set()
        self.arrivals = 0
        self.foreign = 0
        self.running = True
        self._sources: dict[tuple[int, str], str] = {}
        self.ops = SocketOps(self.emit, self._watch, self.selector.unregister,
                             self.caller, self.own)
        self._handlers: dict[str, Handler] = {
            "listen": self._listen, "icmp": self._icmp,
            "send": self._send, "raw-sockets": self._raw_sockets,
            "stats": self._stats,
            "drain": self._drain, "close": self._close,
            "shutdown": self._shutdown, **self.ops.handlers(),
        }
        missing = set(messages.REQUESTS) - set(self._handlers)
        assert not missing, f"no handler for {sorted(missing)}"

    def _watch(self, source: Any, callback: Callable[[], object]) -> None:
        self.selector.register(source, selectors.EVENT_READ, callback)

    def emit(self, event: dict[str, Any]) -> None:
        self.writer.event(event)

    def _write(self, data: bytes) -> None:
        while data:
            written = os.write(self.out_fd, data)
            data = data[written:]

    def _answer(self, ident: int | None, request: messages.Request, **fields: Any) -> None:
        self.emit({"event": request.ANSWER, "id": ident, **fields})

    def serve(self) -> None:
        raw_error = None
        try:
            rawsock.check_privilege(4)
        except PrivilegeError as exc:
            raw_error = str(exc)
        self.emit({"event": "ready", "version": protocol.VERSION, "pid": os.getpid(),
                   "platform": platform_info(), "raw": raw_error is None,
                   "raw_error": raw_error, "caller": self.caller.name,
                   "hdp": str(Path(__file__).resolve().parents[1])})
        self.selector.register(self.in_fd, selectors.EVENT_READ, None)
        try:
            while self.running:
                # Frames fill while there is work; what is held goes out before a wait.
                ready = self.selector.select(0) if self.writer.pending else []
                if not ready:
                    self.writer.flush()
                    ready = self.selector.select()
                for key, _ in ready:
                    if key.data is None:
                        self._read_requests()
                    else:
                        self._serve_source(key)
                    if not self.running:
                        break
        finally:
            with contextlib.suppress(OSError):  # the controller may be gone already
                self.writer.flush()
            self._close_all()
            self.ops.close()
            self.selector.close()

    def _serve_source(self, key: selectors.SelectorKey) -> None:
        """One readable socket; one that fails is dropped, the agent and its peers go on."""
        if self.selector.get_map().get(key.fd) is not key:
            return  # a request earlier in this batch closed it (e.g. capture-stop)
        try:
            key.data()
        except OSError as exc:
            self.selector.unregister(key.fd)  # by number: the object may be closed already
            self.emit({"event": "error", "id": None,
                       "message": f"dropped a socket that failed: {type(exc).__name__}: {exc}"})

    def _read_requests(self) -> None:
        chunk = os.read(self.in_fd, 1 << 16)
        if not chunk:  # the controller went away: nothing left to serve
            self.running = False
            return
        for line in self.buffer.feed(chunk):
            if not self.running:
                break
            self.serve_line(line)

    def serve_line(self, line: bytes | None) -> None:
        """Answer one line: its handler's events, or one `error` event; never raises."""
        if line is None:
            self._error(None, f"a line longer than {protocol.MAX_LINE} bytes: dropped")
            return
        try:
            ident, request = protocol.decode_request(line)
        except protocol.ProtocolError as exc:
            self._error(exc.ident, str(exc))
            return
        try:
            self._handlers[request.OP](ident, request)
        except messages.Invalid as exc:  # a limit, or a power this caller lacks
            self._error(ident, f"{request.OP}: {exc}", getattr(exc, "needs", None))
        except Exception as exc:  # a request must not end the agent, whatever it hits
            self._error(ident, f"{request.OP}: {type(exc).__name__}: {exc}")

    def _error(self, ident: int | None, message: str, needs: str | None = None) -> None:
        event: dict[str, Any] = {"event": "error", "id": ident, "message": message}
        if needs is not None:
            event["needs"] = needs  # e.g. "root": the caller lacks a power, not a bug
        self.emit(event)

    def _listen(self, ident: int | None, request: messages.Listen) -> None:
        family = request.family
        self.runs.update(request.runs)
        opened, refused = [], {}
        for proto in request.protocols:
            if (family, proto) in self.listeners:
                opened.append(proto)
                continue
            raw = rawsock.open_listener(family, proto)
            if isinstance(raw, rawsock.OsRefusal):
                refused[str(proto)] = raw.errno_name
                continue
            raw.sock.setblocking(False)  # see _on_packet
            self.listeners[(family, proto)] = raw
            self.selector.register(raw.sock, selectors.EVENT_READ,
                                   lambda raw=raw: self._on_packet(raw))
            opened.append(proto)
        self._answer(ident, request, family=family, opened=opened, refused=refused,
                     drops=self._drop_counts(family))

    def _icmp(self, ident: int | None, request: messages.Icmp) -> None:
        family = request.family
        self.runs.update(request.runs)
        if family not in self.icmp:
            from hdp.agent.icmp_watch import IcmpWatch

            watch = IcmpWatch.open(family)
            if isinstance(watch, rawsock.OsRefusal):
                self._answer(ident, request, family=family, ok=False, errno=watch.errno_name)
                return
            watch.raw.sock.setblocking(False)  # see _on_packet
            self.icmp[family] = watch
            self.selector.register(watch.raw.sock, selectors.EVENT_READ,
                                   lambda w=watch: self._on_icmp(w))
        self._answer(ident, request, family=family, ok=True, errno=None)

    def _on_packet(self, raw: rawsock.RawSocket) -> int:
        """Read up to BURST packets `raw` holds (a busy socket does not starve requests);
        how many were read."""
        # A drain earlier in the same select() batch may have read the packet this
        # readiness was about: the socket is non-blocking, so that is no hang.
        if not self._as_sent:  # a header laid out otherwise (BSD): the general path only
            try:
                self._arrived(decode_arrival(raw.receive()))
            except BlockingIOError:
                return 0
            return 1
        buffer, runs = self._packet, self.runs
        for read in range(BURST):
            try:
                length, src, details, truncated = raw.receive_into(buffer)
            except BlockingIOError:
                return read
            row = arrival_row(buffer, length, raw.family, raw.protocol, src, *details[:4],
                              truncated)
            if row is None:
                self._arrived(decode_arrival(rawsock.Received(
                    raw.family, raw.protocol, bytes(buffer[:length]), src, *details,
                    truncated)))
            elif row[0] in runs:
                self.arrivals += 1
                self.writer.row(ARRIVALS, row)
            else:
                self.foreign += 1
        return BURST

    def _arrived(self, arrival: Arrival) -> None:
        if arrival.tag is None or arrival.tag.run_id not in self.runs:
            self.foreign += 1
            return
        self.arrivals += 1
        self.emit(arrival_event(arrival))

    def _on_icmp(self, watch: Any) -> None:
        try:
            event = watch.read(self.runs)
        except BlockingIOError:
            return
        if event is None:
            return
        if not self.caller.root and event.get("run") is None and not self.own.quote_is_ours(
                event["quoted_dst"], event["quoted_protocol"],
                event["quoted_ident"] if event["family"] == 4 else event["quoted_flow"]):
            return  # an untagged quote of someone else's packet: not this caller's to see
        self.emit(event)

    def _send(self, ident: int | None, request: messages.Send) -> None:
        run = request.run
        for probe in request.probes:
            self.emit(self._send_one(run, probe))
        if request.columns is not None:
            self.own.runs.add(run)
            for row in request.columns.rows():
                self._send_row(run, row)
        self._answer(ident, request)

    def _send_row(self, run: int, row: ProbeRow) -> None:
        """A probe of a `send`'s columns: a plain one from a template, if its socket is
        open and its source known, any other as `_send_one` sends it."""
        sender = self.senders.get((row.family, row.protocol, False)) if plain(row) else None
        source = self._sources.get((row.family, row.dst))
        if isinstance(sender, rawsock.RawSocket) and source is not None:
            self.writer.row(SENTS, self.templates.send(sender, run, row, source))
        else:
            self.emit(self._send_one(run, ProbeSpec(*row)))

    def _send_one(self, run: int, probe: ProbeSpec) -> dict[str, Any]:
        event: dict[str, Any] = {"event": "sent", "run": run, "case": probe.case, "ok": False,
                                 "stage": None, "errno": None, "bytes": None, "time_ns": None,
                                 "src": None}
        key = sending.sender_key(probe)
        sender = self.senders.get(key)
        if sender is None:
            sender = rawsock.RawSocket.open(key[0], key[1], listen=False,
                                            header_included=key[2])
            self.senders[key] = sender
        if isinstance(sender, rawsock.OsRefusal):
            event.update(stage="socket", errno=sender.errno_name)
            return event
        try:
            src = self._source_for(probe.dst, probe.family)
        except (OSError, ValueError) as exc:
            number = exc.errno if isinstance(exc, OSError) else errno.EINVAL
            event.update(stage="send", errno=errno.errorcode.get(number or 0, "EIO"))
            return event
        tag = ProbeTag(run, probe.case)
        # The caller's data follows the tag the agent writes (hdp.probe): it never takes
        # the place of a header, so a non-root caller still sends only the agent's probes.
        data = probe_data(probe.size) if probe.data is None else bytes.fromhex(probe.data)
        stamp = time.time_ns() if probe.payload == "hdp" else None
        body = encode_probe(Probe(PayloadKind(probe.payload), data, tag), src, probe.dst,
                            stamp)
        # What left, for the controller to compare with what arrives (hdp.rewrites).
        event.update(digest=zlib.crc32(body), stamp_ns=stamp)
        if sender.header_included:  # our own header: its ident marks the case in quotes
            self.own.probe_sent(run, probe.dst, probe.protocol,
                                probe.ident & (0xFFFF if probe.family == 4 else 0xFFFFF))
        else:
            self.own.runs.add(run)
        result = sending.send_probe(sender, probe, src, body)
        event.update(time_ns=result.time_ns, src=src,
                     icmp_possible=sending.icmp_possible(probe, sender))
        if result.ok:
            event.update(ok=True, bytes=result.sent_bytes)
        else:
            assert result.refusal is not None
            event.update(stage="send", errno=result.refusal.errno_name)
        return event

    def _source_for(self, dst: str, family: int) -> str:
        key = (family, dst)
        if key not in self._sources:
            if len(self._sources) > 1 << 16:
                self._sources.clear()
            self._sources[key] = rawsock.source_address_for(dst, family)
        return self._sources[key]

    def _raw_sockets(self, ident: int | None, request: messages.RawSockets) -> None:
        from hdp.raw_table import foreign_raw_sockets

        own = {os.fstat(raw.sock.fileno()).st_ino for raw in self._raw_sockets_open()}
        sockets, unavailable = foreign_raw_sockets(request.family, request.protocols, own)
        self._answer(ident, request, family=request.family, sockets=sockets,
                     unavailable=unavailable)

    def _raw_sockets_open(self) -> list[rawsock.RawSocket]:
        senders = [s for s in self.senders.values() if isinstance(s, rawsock.RawSocket)]
        return [*self.listeners.values(), *(w.raw for w in self.icmp.values()), *senders]

    def _drop_counts(self, family: int | None = None) -> dict[str, int | None]:
        """Each listener's kernel drops since it opened, exactly, by "family/protocol";
        None where the OS does not count them (rawsock.RawSocket.drops)."""
        return {f"{raw.family}/{raw.protocol}": raw.drops()
                for raw in self.listeners.values() if family in (None, raw.family)}

    def _stats(self, ident: int | None, request: messages.Stats) -> None:
        self._answer(ident, request, drops=self._drop_counts(), arrivals=self.arrivals,
                     foreign=self.foreign)

    def _drain(self, ident: int | None, request: messages.Drain) -> None:
        """Report what the listeners hold right now, then answer with each one's drops."""
        self._read_queued()
        self._answer(ident, request, drops=self._drop_counts())

    def _read_queued(self) -> None:
        """Report every packet the listeners hold (bounded: a flood cannot hold it)."""
        poller = select.poll()
        by_fd = {raw.sock.fileno(): raw for raw in self.listeners.values()}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        read = 0
        while read < DRAIN_LIMIT:
            ready = [by_fd[fd] for fd, _ in poller.poll(0)]
            if not ready:
                break
            for raw in ready:
                read += max(1, self._on_packet(raw))

    def _close(self, ident: int | None, request: messages.Close) -> None:
        # What is still queued was received, not dropped: report it before counting, so
        # that received + dropped is every packet that reached each listener.
        self._read_queued()
        drops = self._drop_counts()
        self._close_all()
        self._answer(ident, request, drops=drops)

    def _shutdown(self, ident: int | None, request: messages.Shutdown) -> None:
        self._answer(ident, request)
        self.running = False

    def _close_all(self) -> None:
        for raw in self.listeners.values():
            self.selector.unregister(raw.sock)
            raw.close()
        self.listeners.clear()
        for watch in self.icmp.values():
            self.selector.unregister(watch.raw.sock)
            watch.raw.close()
        self.icmp.clear()
        for sender in self.senders.values():
            if isinstance(sender, rawsock.RawSocket):
                sender.close()
        self.senders.clear()


def main() -> int:
    """Serve on stdin/stdout: `python -I -m hdp.agent`."""
    out_fd = os.dup(sys.stdout.fileno())
    # Anything else that prints must not corrupt the protocol stream.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        Agent(sys.stdin.fileno(), out_fd, Caller.from_environment(os.environ)).serve()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0

