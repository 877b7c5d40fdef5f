"""One stream's state in the agent: its lanes' sockets, and its records as columns.

A `send` stream keeps one record per probe sent (`sent`) and, when reflected, one per
echo received; a `listen` stream one per copy received, with the hold time of each echo
it sent back. Records are typed arrays (14 bytes each), bounded by the stream's size.
"""

from __future__ import annotations

import socket
from array import array
from typing import Any

from hdp import rawsock
from hdp.agent import messages
from hdp.agent.stream_io import (
    ECHO,
    FLAG_HOLD_KERNEL,
    FLAG_INTACT,
    FLAG_KERNEL,
    Arrival,
    DatagramSender,
    TcpConnection,
    errno_name,
    sockaddr,
    socket_drops,
)
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.timestamps import enable_receive_stamps
from hdp.wire import hdp as hdp_wire
from hdp.wire.hdp import Carrier, ProbeTag

CONNECT_TIMEOUT = 5.0
Via = tuple[str, int]  # ("raw", protocol), ("udp", 0) or ("tcp", 0): where a copy came in


class Table:
    """Records as columns: lane, seq, stamp (ns), flags, hold time (ns, -1: none)."""

    def __init__(self) -> None:
        self.lane = array("H")
        self.seq = array("H")
        self.ns = array("q")
        self.flags = array("B")
        self.hold = array("q")

    def __len__(self) -> int:
        return len(self.lane)

    def add(self, lane: int, seq: int, ns: int, flags: int) -> int:
        self.lane.append(lane)
        self.seq.append(seq)
        self.ns.append(ns)
        self.flags.append(flags)
        self.hold.append(-1)
        return len(self.lane) - 1

    def page(self, offset: int, size: int) -> dict[str, list[int]]:
        end = offset + size
        return {"lane": self.lane[offset:end].tolist(), "seq": self.seq[offset:end].tolist(),
                "ns": self.ns[offset:end].tolist(), "flags": self.flags[offset:end].tolist(),
                "hold_ns": self.hold[offset:end].tolist()}


class Stream:
    """The sockets and records of one stream (see hdp.agent.messages.StreamOpen)."""

    def __init__(self, handle: int, request: messages.StreamOpen) -> None:
        self.handle = handle
        self.request = request
        self.role = request.role
        self.run = request.run
        self.family = request.family
        self.lanes = request.lanes
        self.count = request.count
        self.data = probe_data(request.size)
        self.length = hdp_wire.TAG_LENGTH + request.size  # a TCP message
        self.status: list[dict[str, Any]] = [{"ok": True, "stage": None, "errno": None}
                                             for _ in request.lanes]
        self.sent = Table()
        self.received = Table()
        self.refusals: dict[int, str] = {}
        self.seen = bytearray(len(request.lanes) * request.count)
        self.distinct = 0  # probes (or echoes) of which an intact copy arrived
        self.foreign = 0  # packets on our sockets that are not this stream's
        self.limit = 2 * len(request.lanes) * request.count  # copies kept: duplicates too
        self.senders: dict[Via, DatagramSender] = {}
        self.raw_listeners: dict[int, rawsock.RawSocket] = {}
        self.udp: socket.socket | None = None
        self.tcp_listener: socket.socket | None = None
        self.tcp: list[TcpConnection] = []
        self.udp_port = self.tcp_port = 0
        self.source: str | None = None  # send: the address probes leave from

    # -- opening ------------------------------------------------------------------------

    def refuse(self, kinds: set[str] | int, stage: str, why: str) -> None:
        """Mark the lanes of `kinds` (or one protocol's raw lanes) as not open."""
        for index, lane in enumerate(self.lanes):
            if (lane.kind in kinds if isinstance(kinds, set)
                    else lane.kind == "raw" and lane.protocol == kinds):
                self.status[index] = {"ok": False, "stage": stage, "errno": why}

    def open(self) -> None:
        """Open every lane's sockets; a refusal is the lane's status, never an error."""
        family, request = self.family, self.request
        kind = socket.AF_INET if family == 4 else socket.AF_INET6
        if self.role == "send":
            assert request.dst is not None
            self.source = rawsock.source_address_for(request.dst, family)
        for protocol in dict.fromkeys(lane.protocol for lane in self.lanes
                                      if lane.kind == "raw"):
            if self.role == "send" or request.reflect:
                sender = rawsock.RawSocket.open(family, protocol, listen=False)
                if isinstance(sender, rawsock.OsRefusal):
                    self.refuse(protocol, "socket", sender.errno_name)
                    continue
                address = sockaddr(family, request.dst, 0) if request.dst else None
                self.senders[("raw", protocol)] = DatagramSender(sender.sock, address)
            if self.role == "listen" or request.reflect:
                listener = rawsock.open_listener(family, protocol)
                if isinstance(listener, rawsock.OsRefusal):
                    self.refuse(protocol, "listen", listener.errno_name)
                    continue
                listener.sock.setblocking(False)
                self.raw_listeners[protocol] = listener
        wildcard = "0.0.0.0" if family == 4 else "::"
        if any(lane.kind == "udp" for lane in self.lanes):
            udp = socket.socket(kind, socket.SOCK_DGRAM)
            try:
                if family == 6:
                    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if self.role == "listen":
                    udp.bind(sockaddr(family, wildcard, request.udp_port))
                else:
                    udp.connect(sockaddr(family, str(request.dst), request.udp_port))
            except OSError as exc:
                udp.close()
                self.refuse({"udp"}, "bind" if self.role == "listen" else "connect",
                            errno_name(exc))
            else:
                udp.setblocking(False)
                enable_receive_stamps(udp)
                rawsock.grow_receive_buffer(udp)
                self.udp = udp
                self.udp_port = udp.getsockname()[1]
                if self.role == "send" or request.reflect:
                    self.senders[("udp", 0)] = DatagramSender(udp, None)
        if any(lane.kind == "tcp" for lane in self.lanes):
            self._open_tcp(kind, wildcard)

    def _open_tcp(self, kind: int, wildcard: str) -> None:
        tcp = socket.socket(kind, socket.SOCK_STREAM)
        request = self.request
        try:
            if kind == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.role == "listen":
                tcp.bind(sockaddr(self.family, wildcard, request.tcp_port))
                tcp.listen(4)
                tcp.setblocking(False)
                self.tcp_listener = tcp
                self.tcp_port = tcp.getsockname()[1]
                return
            tcp.settimeout(CONNECT_TIMEOUT)
            tcp.connect(sockaddr(self.family, str(request.dst), request.tcp_port))
        except OSError as exc:
            tcp.close()
            self.refuse({"tcp"}, "bind" if self.role == "listen" else "connect",
                        "ETIMEDOUT" if isinstance(exc, TimeoutError) else errno_name(exc))
            return
        self.tcp.append(TcpConnection(tcp, self.length))

    def accept(self) -> TcpConnection | None:
        """The next connection to the listening socket (at most four are kept)."""
        assert self.tcp_listener is not None
        try:
            sock, _ = self.tcp_listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        if len(self.tcp) >= 4:
            sock.close()
            return None
        connection = TcpConnection(sock, self.length)
        self.tcp.append(connection)
        return connection

    # -- probes -------------------------------------------------------------------------

    def body(self, lane_index: int, seq: int, src: str, dst: str, echo: bool = False
             ) -> bytes:
        """The bytes of probe `seq` of a lane: after the IP header for a raw lane, the
        message itself for UDP and TCP; an echo is marked in its tag's case."""
        lane = self.lanes[lane_index]
        case = lane_index | (ECHO if echo else 0)
        if lane.kind == "raw":
            tag = ProbeTag(self.run, case, seq)
            return encode_probe(Probe(PayloadKind(lane.payload), self.data, tag), src, dst)
        carrier = Carrier.UDP if lane.kind == "udp" else Carrier.RAW
        return hdp_wire.encode_tagged(ProbeTag(self.run, case, seq, carrier), self.data)

    def arrived(self, arrival: Arrival, via: Via) -> tuple[int, bool] | None:
        """Record a copy read from the socket `via`: (its record index, whether it is the
        first intact copy of its probe), or None when it is not this stream's (another
        run, the other end's direction, another lane's kind) or past the stream's bound."""
        tag = arrival.tag
        lane = tag.case & ~ECHO
        echo = bool(tag.case & ECHO)
        if tag.run_id != self.run:
            self.foreign += 1
            return None
        if echo != (self.role == "send") or lane >= len(self.lanes) or \
                tag.probe >= self.count or not self._came_by(lane, via):
            return None  # the other direction of this run, or a copy another socket takes
        if len(self.received) >= self.limit:
            return None  # a flood of copies: what is kept already says enough
        flags = (FLAG_KERNEL if arrival.kernel else 0) | (FLAG_INTACT if arrival.intact else 0)
        index = self.received.add(lane, tag.probe, arrival.ns, flags)
        first = arrival.intact and not self.seen[lane * self.count + tag.probe]
        if first:
            self.seen[lane * self.count + tag.probe] = 1
            self.distinct += 1
        return index, first

    def _came_by(self, lane_index: int, via: Via) -> bool:
        lane = self.lanes[lane_index]
        return via == (lane.kind, lane.protocol if lane.kind == "raw" else 0)

    def unstamped(self, index: int) -> None:
        """Received record `index` has no kernel stamp of its own after all (a TCP
        message merged into a later segment): its stamp is not the kernel's for it."""
        self.received.flags[index] &= ~FLAG_KERNEL

    def hold(self, index: int, sent_ns: int, kernel: bool) -> None:
        """An echo of received record `index` left at `sent_ns`: its hold time."""
        received_kernel = bool(self.received.flags[index] & FLAG_KERNEL)
        self.received.hold[index] = max(0, sent_ns - self.received.ns[index])
        if kernel and received_kernel:
            self.received.flags[index] |= FLAG_HOLD_KERNEL

    def drops(self) -> dict[str, int | None]:
        """Each receiving socket's kernel drops since it opened."""
        found: dict[str, int | None] = {f"raw/{protocol}": raw.drops()
                                        for protocol, raw in self.raw_listeners.items()}
        if self.udp is not None:
            found["udp"] = socket_drops(self.udp)
        if self.tcp:
            counts = [socket_drops(connection.sock) for connection in self.tcp]
            found["tcp"] = None if None in counts else sum(c for c in counts if c)
        return found

    def waiting(self) -> int:
        """Sends whose kernel stamp (or, on TCP, whose turn on the wire) has not come."""
        return sum(sender.waiting for sender in self.senders.values()) + \
            sum(connection.waiting for connection in self.tcp)

    def close(self) -> None:
        for sender in self.senders.values():
            if sender.sock is not self.udp:
                sender.close()
        for raw in self.raw_listeners.values():
            raw.close()
        for connection in self.tcp:
            connection.close()
        for sock in (self.udp, self.tcp_listener):
            if sock is not None:
                sock.close()
