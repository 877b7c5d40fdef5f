"""Many-probe streams in the agent: both ends of `hdp stats` and of
`@pytest.mark.hdp(count=...)` (the requests are hdp.agent.messages' StreamOpen,
StreamSend, StreamRecords and StreamClose).

Sending is paced on one monotonic schedule: the i-th probe of all lanes together is due
at start + i / (rate x lanes), the lanes taking turns (each seq starts with the next lane),
so that whatever drifts over a run hits every lane alike. Between sends the loop serves
every stream's sockets, this agent's listening end among them (on loopback one agent is
both ends): it blocks in poll() while the next send is more than 2 ms away and polls
without blocking closer to it, so no read waits long enough for TCP to coalesce two
messages into one segment with one stamp. Nothing sleeps to synchronise: the controller
reads a listener's records with `wait`, which returns as soon as every probe it was told
to expect has arrived.

Results stay in the agent as typed columns (hdp.agent.stream_state) until the controller
reads them a page at a time: a stream never writes an event per packet. Every bound is in
hdp.agent.messages; a caller that is not root gets the same bounds, sends only the probes
the agent builds, binds no privileged port and names the peer it reflects to.
"""

from __future__ import annotations

import itertools
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from hdp.agent import messages
from hdp.agent.powers import Caller, Emit, Ops, OwnFlows, Refused, Register, Unregister
from hdp.agent.stream_io import (
    ECHO,
    FLAG_KERNEL,
    FLAG_REFUSED,
    Arrival,
    DatagramSender,
    TcpConnection,
    read_datagrams,
    read_raw,
    sockaddr,
)
from hdp.agent.stream_state import Stream, Via
from hdp.rawsock import RawSocket
from hdp.timestamps import boot_id

BUSY_WITHIN = 0.002  # seconds before a send within which the loop stops blocking
WAIT_STEP = 0.005  # seconds a `wait` blocks at a time while it checks for completion


class StreamOps(Ops):
    """The streams of one agent, and the poll loop that serves their sockets."""

    def __init__(self, emit: Emit, register: Register, unregister: Unregister,
                 caller: Caller | None = None, own: OwnFlows | None = None) -> None:
        super().__init__(emit, register, unregister, caller, own)
        self.streams: dict[int, Stream] = {}
        self.poller = select.poll()
        # fd -> (its stream, the socket, what reads it (None: it only sends), whose
        # transmit stamps its error queue holds)
        self.sockets: dict[int, tuple[Stream, socket.socket, Callable[[], object] | None,
                                      DatagramSender | TcpConnection | None]] = {}
        self._handles = itertools.count(1)

    def handlers(self) -> dict[str, Callable[[Any, Any], None]]:
        return {"stream-open": self._open, "stream-send": self._send,
                "stream-records": self._records, "stream-close": self._close}

    def _answer(self, ident: int | None, request: messages.Request, **fields: Any) -> None:
        self.emit({"event": request.ANSWER, "id": ident, **fields})

    # -- stream-open --------------------------------------------------------------------

    def _open(self, ident: int | None, request: messages.StreamOpen) -> None:
        self._check_open(request)
        handle = next(self._handles)
        stream = Stream(handle, request)
        try:
            stream.open()
        except OSError as exc:  # no route to dst: nothing of the stream can be sent
            stream.close()
            raise Refused(f"no route to {request.dst} ({exc.strerror or exc})") from None
        self.streams[handle] = stream
        self._watch_stream(stream)
        self.own.runs.add(request.run)
        if stream.udp is not None:
            self.own.socket_opened(17, stream.udp.getsockname()[0], stream.udp_port)
        kernel_tx = [s.stamps.enabled for s in stream.senders.values()] + \
            [c.stamps.enabled for c in stream.tcp]
        note = next((s.stamps.why for s in stream.senders.values() if s.stamps.why), None)
        self._answer(ident, request, handle=handle, lanes=stream.status,
                     udp_port=stream.udp_port, tcp_port=stream.tcp_port, boot_id=boot_id(),
                     tx_stamps="kernel" if kernel_tx and all(kernel_tx) else "user",
                     rx_stamps="kernel" if _receives_kernel_stamps() else "user",
                     stamps_note=note)

    def _check_open(self, request: messages.StreamOpen) -> None:
        if len(self.streams) >= messages.MAX_STREAMS:
            raise Refused(f"{messages.MAX_STREAMS} streams are open: close one first")
        if not request.lanes:
            raise Refused("lanes: give at least one")
        if len(request.lanes) * request.count > messages.MAX_STREAM_PROBES:
            raise Refused(f"{len(request.lanes)} lanes x count {request.count} is more than "
                          f"{messages.MAX_STREAM_PROBES} probes: send fewer")
        for kind in ("udp", "tcp"):
            if sum(lane.kind == kind for lane in request.lanes) > 1:
                raise Refused(f"lanes: one {kind} lane a stream")
        if request.role == "send":
            if request.dst is None:
                raise Refused("dst: a sending end needs the listener's address")
            for kind, port in (("udp", request.udp_port), ("tcp", request.tcp_port)):
                if port == 0 and any(lane.kind == kind for lane in request.lanes):
                    raise Refused(f"{kind}_port: give the listener's {kind} port")
        elif not self.caller.root:
            if 0 < min(request.udp_port or 1 << 16, request.tcp_port or 1 << 16) < \
                    messages.PRIVILEGED_PORTS:
                self.caller.require_root(f"a port below {messages.PRIVILEGED_PORTS}")
            if request.reflect and request.peer is None:
                raise Refused("peer: a caller that is not root reflects probes only to the "
                              "address it names")

    def _watch_stream(self, stream: Stream) -> None:
        for protocol, raw in stream.raw_listeners.items():
            self._watch(stream, raw.sock, self._raw_reader(stream, raw, protocol))
        for via, sender in stream.senders.items():
            if via[0] == "raw":  # send-only: polled for its error queue, its kernel stamps
                self._watch(stream, sender.sock, None, sender)
        udp = stream.udp
        if udp is not None:
            def read_udp() -> None:
                for arrival, address in read_datagrams(udp):
                    self._arrived(stream, arrival, ("udp", 0), address=address)

            self._watch(stream, udp, read_udp, stream.senders.get(("udp", 0)))
        if stream.tcp_listener is not None:
            self._watch(stream, stream.tcp_listener, lambda: self._accept(stream))
        for connection in stream.tcp:
            self._watch_tcp(stream, connection)

    def _raw_reader(self, stream: Stream, raw: RawSocket, protocol: int
                    ) -> Callable[[], None]:
        def read() -> None:
            for arrival in read_raw(raw):
                self._arrived(stream, arrival, ("raw", protocol))

        return read

    def _watch(self, stream: Stream, sock: socket.socket, read: Callable[[], object] | None,
               stamps: DatagramSender | TcpConnection | None = None) -> None:
        """Serve `sock` in this loop, and in the agent's own between requests. poll() and
        epoll report POLLERR whenever a socket's error queue holds something, asked for
        or not: that is when its kernel transmit stamps are read, before the queue (which
        counts against the socket's receive buffer) could overflow."""
        fd = sock.fileno()
        self.poller.register(fd, select.POLLIN if read is not None else 0)
        self.sockets[fd] = (stream, sock, read, stamps)
        self.register(sock, lambda: self._serve(fd, select.POLLIN | select.POLLERR))

    def _watch_tcp(self, stream: Stream, connection: TcpConnection) -> None:
        fd = connection.sock.fileno()
        last: dict[str, int] = {}  # the message read last: its record and stamp

        def read() -> None:
            for arrival in connection.read():
                index = self._arrived(stream, arrival, ("tcp", 0), connection=connection)
                if arrival is None or index is None:
                    continue
                before = last.get("index")
                if before is not None and arrival.kernel and last["ns"] == arrival.ns:
                    stream.unstamped(before)  # it was merged into this message's segment
                last.update(index=index, ns=arrival.ns)
            self._flushed(stream, connection)
            if connection.closed and fd in self.sockets:
                self._unwatch(fd)

        self._watch(stream, connection.sock, read, connection)

    def _accept(self, stream: Stream) -> None:
        while (connection := stream.accept()) is not None:
            self._watch_tcp(stream, connection)

    def _unwatch(self, fd: int) -> None:
        _, sock, _, _ = self.sockets.pop(fd)
        self.poller.unregister(fd)
        self.unregister(sock)

    # -- serving the sockets ------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Serve whatever the streams' sockets hold, waiting up to `timeout` seconds."""
        for fd, events in self.poller.poll(max(0, int(timeout * 1000))):
            if fd in self.sockets:
                self._serve(fd, events)

    def _serve(self, fd: int, events: int) -> None:
        stream, _, read, stamps = self.sockets[fd]
        if stamps is not None and events & select.POLLERR:
            self._stamps(stream, stamps)
        if read is not None and events & ~select.POLLERR:
            read()

    def _arrived(self, stream: Stream, arrival: Arrival | None, via: Via, *,
                 address: Any = None, connection: TcpConnection | None = None) -> int | None:
        """Record a copy (and reflect it, if asked); its record index, if it was kept."""
        if arrival is None:
            stream.foreign += 1
            return None
        found = stream.arrived(arrival, via)
        request = stream.request
        if found is None or not found[1] or stream.role != "listen" or not request.reflect:
            return None if found is None else found[0]
        if request.peer is None or arrival.src == request.peer.split("%")[0]:
            # (a caller that is not root names the peer: only it gets echoes)
            self._reflect(stream, found[0], arrival, via, address, connection)
        return found[0]

    def _reflect(self, stream: Stream, index: int, arrival: Arrival, via: Via,
                 address: Any, connection: TcpConnection | None) -> None:
        """Send probe `arrival` back to where it came from: an echo, tagged as one."""
        lane, seq = arrival.tag.case & ~ECHO, arrival.tag.probe
        body = stream.body(lane, seq, arrival.dst or "", arrival.src, echo=True)
        if via[0] == "tcp":
            assert connection is not None
            for record, started in connection.queue(body, index):
                stream.hold(record, started, kernel=False)
            return
        sender = stream.senders.get(via)
        if sender is None:
            return
        target = address if via[0] == "udp" else sockaddr(stream.family, arrival.src, 0)
        started, refused = sender.send(body, index, target)
        if refused is None:
            stream.hold(index, started, kernel=False)  # until the kernel's stamp comes

    def _collect(self, stream: Stream) -> None:
        for sender in stream.senders.values():
            self._stamps(stream, sender)
        for connection in stream.tcp:
            self._stamps(stream, connection)

    @staticmethod
    def _stamps(stream: Stream, source: DatagramSender | TcpConnection) -> None:
        for index, stamp in source.collect():
            if stream.role == "send":
                stream.sent.ns[index] = stamp
                stream.sent.flags[index] |= FLAG_KERNEL
            else:
                stream.hold(index, stamp, kernel=True)

    def _flushed(self, stream: Stream, connection: TcpConnection) -> None:
        """Send what waits in a connection's outbox; each message taken gets its stamp."""
        for index, started in connection.flush():
            if stream.role == "send":
                stream.sent.ns[index] = started
            else:
                stream.hold(index, started, kernel=False)

    # -- stream-send --------------------------------------------------------------------

    def _send(self, ident: int | None, request: messages.StreamSend) -> None:
        stream = self._stream(request.handle, "stream-send")
        if stream.role != "send":
            raise Refused(f"stream {request.handle} is a listening end: it sends nothing")
        lanes = [i for i, status in enumerate(stream.status) if status["ok"]]
        if request.first + request.count > stream.count:
            raise Refused(f"probes {request.first}..{request.first + request.count - 1}: "
                          f"the stream has {stream.count} a lane")
        if request.rate * max(1, len(lanes)) > messages.MAX_STREAM_PPS:
            raise Refused(f"rate {request.rate:g} x {len(lanes)} lanes is more than "
                          f"{messages.MAX_STREAM_PPS:g} probes a second")
        if request.count / request.rate > messages.MAX_WAIT:
            raise Refused(f"count / rate is {request.count / request.rate:.1f} s, more than "
                          f"{messages.MAX_WAIT:g} s a request: send the stream in parts")
        before = len(stream.sent)
        interval = 1.0 / (request.rate * max(1, len(lanes)))
        start = time.monotonic()
        late = 0.0
        due_index = 0
        for seq in range(request.first, request.first + request.count):
            turn = seq % len(lanes) if lanes else 0
            for lane in lanes[turn:] + lanes[:turn]:
                due = start + due_index * interval
                due_index += 1
                self._until(due)
                late = max(late, time.monotonic() - due)
                self._send_probe(stream, lane, seq)
        sent = list(stream.sent.flags[before:])
        refused = sum(1 for flags in sent if flags & FLAG_REFUSED)
        self._answer(ident, request, handle=stream.handle, sent=len(sent) - refused,
                     refused=refused, late_us=round(late * 1e6, 1),
                     seconds=round(time.monotonic() - start, 6))

    def _until(self, due: float) -> None:
        """Serve the sockets until `due` (monotonic)."""
        for stream in self.streams.values():
            for connection in stream.tcp:
                if connection.outbox:
                    self._flushed(stream, connection)
        # At least one look, even when late: a schedule catching up sends in a burst, and
        # the stamps of a burst must be read before they overflow their error queues.
        self.pump(0.0)
        while (remaining := due - time.monotonic()) > 0:
            self.pump(remaining - BUSY_WITHIN / 2 if remaining > BUSY_WITHIN else 0.0)

    def _send_probe(self, stream: Stream, lane_index: int, seq: int) -> None:
        lane = stream.lanes[lane_index]
        index = len(stream.sent)
        if lane.kind == "tcp":
            connection = stream.tcp[0]
            if connection.closed:
                stream.sent.add(lane_index, seq, time.time_ns(), FLAG_REFUSED)
                stream.refusals[index] = "ECONNRESET"
                return
            stream.sent.add(lane_index, seq, time.time_ns(), 0)
            body = stream.body(lane_index, seq, "", "")
            for record, started in connection.queue(body, index):
                stream.sent.ns[record] = started
            return
        sender = stream.senders[(lane.kind, lane.protocol if lane.kind == "raw" else 0)]
        body = stream.body(lane_index, seq, str(stream.source), str(stream.request.dst))
        started, refused = sender.send(body, index)
        stream.sent.add(lane_index, seq, started, FLAG_REFUSED if refused else 0)
        if refused is not None:
            stream.refusals[index] = refused

    # -- stream-records, stream-close ---------------------------------------------------

    def _records(self, ident: int | None, request: messages.StreamRecords) -> None:
        stream = self._stream(request.handle, "stream-records")
        sent = request.table == "sent"
        deadline = time.monotonic() + request.wait

        def complete() -> bool:
            return stream.waiting() == 0 if sent else stream.distinct >= request.expect

        self._collect(stream)
        while not complete() and (remaining := deadline - time.monotonic()) > 0:
            self._until(time.monotonic())  # the outboxes
            self.pump(min(WAIT_STEP, remaining))
        table = stream.sent if sent else stream.received
        end = request.offset + messages.STREAM_PAGE
        refusals = {index: why for index, why in stream.refusals.items()
                    if request.offset <= index < end} if sent else {}
        if sent:  # messages a TCP connection never took: they did not leave
            for connection in stream.tcp:
                refusals.update({i: "EAGAIN" for i in connection.unsent()
                                 if request.offset <= i < end})
        self._answer(ident, request, handle=stream.handle, table=request.table,
                     offset=request.offset, total=len(table),
                     columns=table.page(request.offset, messages.STREAM_PAGE),
                     refusals={str(i): why for i, why in sorted(refusals.items())},
                     complete=complete(), drops=stream.drops(), foreign=stream.foreign)

    def _close(self, ident: int | None, request: messages.StreamClose) -> None:
        stream = self._stream(request.handle, "stream-close")
        self._drop(stream)
        self._answer(ident, request, handle=request.handle)

    def _stream(self, handle: int, op: str) -> Stream:
        stream = self.streams.get(handle)
        if stream is None:
            raise Refused(f"no stream {handle}: open one with stream-open")
        return stream

    def _drop(self, stream: Stream) -> None:
        for fd in [fd for fd, (owner, *_) in self.sockets.items() if owner is stream]:
            self._unwatch(fd)
        stream.close()
        del self.streams[stream.handle]

    def close(self) -> None:
        for stream in list(self.streams.values()):
            self._drop(stream)


def _receives_kernel_stamps() -> bool:
    from hdp.osnet import current

    table = current()
    return table.timestamp_ns is not None or table.timestamp is not None
