"""The agent: owns the raw sockets on one host and streams observations as JSON lines."""

from __future__ import annotations

import errno
import os
import select
import selectors
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hdp import rawsock
from hdp.agent import protocol, sending
from hdp.agent.socket_ops import SocketOps
from hdp.arrival import Arrival, decode_arrival
from hdp.errors import PrivilegeError
from hdp.host import platform_info
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.wire.hdp import ProbeTag

DRAIN_LIMIT = 1 << 16  # packets one drain reads at most, so a flood cannot hold it


@dataclass(frozen=True)
class ProbeRequest:
    """One probe of a `send` request, as plain JSON fields."""

    case: int
    family: int
    protocol: int
    dst: str
    payload: str = "hdp"
    size: int = 64
    header_included: bool = False  # ICMP-only mode: send our own IP header
    ident: int = 0  # IPv4 identification / IPv6 flow label of a header we build
    tos: int = 0  # DSCP << 2 | ECN, as IPv4 TOS or IPv6 traffic class
    df: bool | None = None  # None: kernel default; True: DF (IPv6: no source fragmenting);
    # False: DF cleared, so routers may fragment

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeRequest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


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
    }


class Agent:
    """Serves requests read from `in_fd`, writing events to `out_fd`, until shutdown."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.selector = selectors.DefaultSelector()
        self.buffer = protocol.LineBuffer()
        self.listeners: dict[tuple[int, int], rawsock.RawSocket] = {}
        self.senders: dict[tuple[int, int, bool], rawsock.RawSocket | rawsock.OsRefusal] = {}
        self.icmp: dict[int, Any] = {}  # family -> IcmpWatch
        self.runs: set[int] = set()
        self.drops: dict[str, int] = {}
        self.arrivals = 0
        self.foreign = 0
        self.running = True
        self._sources: dict[tuple[int, str], str] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "listen": self._listen, "icmp": self._icmp, "send": self._send,
            "stats": self._stats, "drain": self._drain, "close": self._close,
            "shutdown": self._shutdown,
        }
        self.ops = SocketOps(self.emit, self._watch, self.selector.unregister)
        self._handlers.update(self.ops.handlers())

    def _watch(self, source: Any, callback: Callable[[], object]) -> None:
        self.selector.register(source, selectors.EVENT_READ, callback)

    def emit(self, event: dict[str, Any]) -> None:
        data = protocol.encode(event)
        while data:
            written = os.write(self.out_fd, data)
            data = data[written:]

    def serve(self) -> None:
        raw_error = None
        try:
            rawsock.check_privilege(4)
        except PrivilegeError as exc:
            raw_error = str(exc)
        self.emit({"event": "ready", "version": protocol.VERSION, "pid": os.getpid(),
                   "platform": platform_info(), "raw": raw_error is None,
                   "raw_error": raw_error})
        self.selector.register(self.in_fd, selectors.EVENT_READ, None)
        try:
            while self.running:
                for key, _ in self.selector.select():
                    if key.data is None:
                        self._read_requests()
                    else:
                        self._serve_source(key)
                    if not self.running:
                        break
        finally:
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
            try:
                request = protocol.decode(line)
            except protocol.ProtocolError as exc:
                self.emit({"event": "error", "id": None, "message": str(exc)})
                continue
            handler = self._handlers.get(str(request.get("op")))
            if handler is None:
                self.emit({"event": "error", "id": request.get("id"),
                           "message": f"unknown op {request.get('op')!r}"})
                continue
            try:
                handler(request)
            except (KeyError, TypeError, ValueError, OSError) as exc:
                self.emit({"event": "error", "id": request.get("id"),
                           "message": f"{request.get('op')}: {type(exc).__name__}: {exc}"})

    def _listen(self, request: dict[str, Any]) -> None:
        family = int(request["family"])
        self.runs.update(int(r) for r in request.get("runs", []))
        opened, refused = [], {}
        for proto in request["protocols"]:
            proto = int(proto)
            if (family, proto) in self.listeners:
                opened.append(proto)
                continue
            raw = rawsock.open_listener(family, proto)
            if isinstance(raw, rawsock.OsRefusal):
                refused[str(proto)] = raw.errno_name
                continue
            self.listeners[(family, proto)] = raw
            self.selector.register(raw.sock, selectors.EVENT_READ,
                                   lambda raw=raw: self._on_packet(raw))
            opened.append(proto)
        self.emit({"event": "listening", "id": request.get("id"), "family": family,
                   "opened": opened, "refused": refused})

    def _icmp(self, request: dict[str, Any]) -> None:
        family = int(request["family"])
        self.runs.update(int(r) for r in request.get("runs", []))
        if family not in self.icmp:
            from hdp.agent.icmp_watch import IcmpWatch

            watch = IcmpWatch.open(family)
            if isinstance(watch, rawsock.OsRefusal):
                self.emit({"event": "icmp-listening", "id": request.get("id"), "family": family,
                           "ok": False, "errno": watch.errno_name})
                return
            self.icmp[family] = watch
            self.selector.register(watch.raw.sock, selectors.EVENT_READ,
                                   lambda w=watch: self._on_icmp(w))
        self.emit({"event": "icmp-listening", "id": request.get("id"), "family": family,
                   "ok": True, "errno": None})

    def _on_packet(self, raw: rawsock.RawSocket) -> None:
        received = raw.receive()
        if received.drops:
            self.drops[f"{raw.family}/{raw.protocol}"] = received.drops
        arrival = decode_arrival(received)
        if arrival.tag is None or arrival.tag.run_id not in self.runs:
            self.foreign += 1
            return
        self.arrivals += 1
        self.emit(arrival_event(arrival))

    def _on_icmp(self, watch: Any) -> None:
        event = watch.read(self.runs)
        if event is not None:
            self.emit(event)

    def _send(self, request: dict[str, Any]) -> None:
        run = int(request["run"])
        for item in request["probes"]:
            self.emit(self._send_one(run, ProbeRequest.from_json(item)))
        self.emit({"event": "send-done", "id": request.get("id")})

    def _send_one(self, run: int, probe: ProbeRequest) -> dict[str, Any]:
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
        except OSError as exc:
            event.update(stage="send", errno=errno.errorcode.get(exc.errno or 0, "EIO"))
            return event
        tag = ProbeTag(run, probe.case)
        body = encode_probe(Probe(PayloadKind(probe.payload), probe_data(probe.size), tag),
                            src, probe.dst)
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
            self._sources[key] = rawsock.source_address_for(dst, family)
        return self._sources[key]

    def _stats(self, request: dict[str, Any]) -> None:
        self.emit({"event": "stats", "id": request.get("id"), "drops": dict(self.drops),
                   "arrivals": self.arrivals, "foreign": self.foreign})

    def _drain(self, request: dict[str, Any]) -> None:
        """Report what the listeners hold right now, then answer (bounded: a flood ends it)."""
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
                self._on_packet(raw)
            read += len(ready)
        self.emit({"event": "drained", "id": request.get("id")})

    def _close(self, request: dict[str, Any]) -> None:
        self._close_all()
        self.emit({"event": "closed", "id": request.get("id"), "drops": dict(self.drops)})

    def _shutdown(self, request: dict[str, Any]) -> None:
        self.emit({"event": "bye", "id": request.get("id")})
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
    """Serve on stdin/stdout: `python -m hdp.agent`."""
    out_fd = os.dup(sys.stdout.fileno())
    # Anything else that prints must not corrupt the protocol stream.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        Agent(sys.stdin.fileno(), out_fd).serve()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0

