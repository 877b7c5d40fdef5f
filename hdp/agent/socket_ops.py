"""The agent's UDP and packet-level requests: what the chapter tests ask of a host.

A UDP/fragmentation conformance test needs more of the two ends of a path than raw
listeners: ordinary UDP and UDP-Lite sockets with their options, whole IP packets sent
exactly as built (fragments, bad checksums), a capture of what arrived, the kernel's
counters, and (inside a lab namespace only) a sysctl. The requests and their answers
are defined in hdp.agent.messages; what a non-root caller may ask, in hdp.agent.powers.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from hdp import osnet, rawsock
from hdp.agent import messages
from hdp.agent.flood import FloodOps
from hdp.agent.powers import Caller, Emit, Ops, OwnFlows, Refused, Register, Unregister
from hdp.agent.stream import StreamOps
from hdp.counters import sysctl_counters
from hdp.probe import probe_data

MAX_WAIT = messages.MAX_WAIT  # no request holds the agent longer than this
MAX_DATAGRAM = messages.MAX_DATAGRAM



def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "EIO")


def _family(family: int) -> int:
    return socket.AF_INET if int(family) == 4 else socket.AF_INET6


def _address(family: int, host: str, port: int) -> tuple[Any, ...]:
    if int(family) == 4:
        return (host, port)
    return socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]


def digest(data: bytes) -> str:
    import hashlib  # OpenSSL's bindings: an agent start pays them only when it digests

    return hashlib.sha256(data).hexdigest()[:16]


def in_lab_netns() -> bool:
    """Whether this process runs in one of our labs' network namespaces (hdp-*)."""
    from hdp.lab.netns import NETNS_DIR, host_of_current_namespace

    try:
        names = [name for name in os.listdir(NETNS_DIR) if name.startswith("hdp-")]
    except OSError:
        return False  # cannot tell: treat as the host's, whose settings we never change
    return host_of_current_namespace({name: name for name in names}) is not None


def read_counters() -> dict[str, int]:
    """The kernel's IP/UDP counters (/proc/net/snmp, snmp6) as {"Udp.InCsumErrors": n}."""
    source = osnet.current().counters
    if source != "proc":  # macOS: the same names from its own statistics, or none
        return sysctl_counters() if source == "sysctl" else {}
    counters: dict[str, int] = {}
    try:
        with open("/proc/net/snmp", encoding="ascii") as snmp:
            lines = snmp.read().splitlines()
    except OSError:
        lines = []
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, keys = names.partition(":")
        for key, value in zip(keys.split(), values.partition(":")[2].split(), strict=False):
            counters[f"{group}.{key}"] = int(value)
    try:
        with open("/proc/net/snmp6", encoding="ascii") as snmp6:
            for line in snmp6:
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                    counters[f"6.{parts[0]}"] = int(parts[1])
    except OSError:
        pass
    return counters


def _os_options(sock: socket.socket, family: int, request: messages.UdpOpen) -> None:
    """The options whose numbers differ between OSes; one this OS lacks is ENOPROTOOPT."""
    table = osnet.current()
    mode = request.pmtudisc
    if mode is not None:
        control = table.ipv4_dont_fragment if family == 4 else table.ipv6_dont_fragment
        if control is None or mode not in control.values:
            raise OSError(errno.ENOPROTOOPT, f"{table.system} has no pmtudisc {mode!r}")
        sock.setsockopt(control.option.level, control.option.name, control.values[mode])
    if request.no_check:  # send with UDP checksum 0 (IPv4 only on Linux and macOS)
        option = table.udp_no_checksum
        if option is None:
            raise OSError(errno.ENOPROTOOPT, osnet.unavailable("udp_no_checksum"))
        sock.setsockopt(option.level, option.name, 1)
    for index, coverage in ((1, request.send_cscov), (2, request.recv_cscov)):
        if coverage is not None:
            if table.udplite is None:
                raise OSError(errno.ENOPROTOOPT, osnet.unavailable("udplite"))
            sock.setsockopt(table.udplite[0], table.udplite[index], coverage)


def path_mtu(sock: socket.socket, family: int) -> int | None:
    """A connected socket's path MTU; None when not connected or the OS cannot tell."""
    table = osnet.current()
    query = table.ipv4_path_mtu if family == 4 else table.ipv6_path_mtu
    if query is None:
        return None
    try:
        answer = sock.getsockopt(query.option.level, query.option.name, query.size)
    except OSError:
        return None  # not connected: no path to ask about
    if len(answer) < query.offset + 4:
        return None
    return int.from_bytes(answer[query.offset:query.offset + 4], sys.byteorder)


class SocketOps(Ops):
    """UDP sockets, header-included sends, captures, counters and sysctls of one agent,
    and its many-probe streams (hdp.agent.stream)."""

    def __init__(self, emit: Emit, register: Register, unregister: Unregister,
                 caller: Caller | None = None, own: OwnFlows | None = None) -> None:
        super().__init__(emit, register, unregister, caller, own)
        self.sockets: dict[int, socket.socket] = {}
        self.captures: dict[int, Any] = {}
        self.raw: dict[int, rawsock.RawSocket | rawsock.OsRefusal] = {}
        self._handles = iter(range(1, messages.MAX_HANDLE))
        # Many-probe streams are sockets of this agent too, served by its own loop.
        self.streams = StreamOps(emit, register, unregister, self.caller, self.own)
        self.floods = FloodOps(emit, register, unregister, self.caller, self.own)

    def handlers(self) -> dict[str, Callable[[Any, Any], None]]:
        return {"udp-open": self._open, "udp-send": self._send,
                "udp-recv": self._recv, "udp-info": self._info,
                "udp-close": self._close, "raw-send": self._raw_send,
                "capture-start": self._capture_start,
                "capture-stop": self._capture_stop, "counters": self._counters,
                "sysctl": self._sysctl, "source": self._source,
                **self.streams.handlers(), **self.floods.handlers()}

    def _answer(self, ident: int | None, request: messages.Request, **fields: Any) -> None:
        self.emit({"event": request.ANSWER, "id": ident, **fields})

    # -- UDP and UDP-Lite sockets ----------------------------------------------------

    def _open(self, ident: int | None, request: messages.UdpOpen) -> None:
        if len(self.sockets) >= messages.MAX_SOCKETS:
            raise Refused(f"{messages.MAX_SOCKETS} UDP sockets are open, the limit: "
                          "close some first")
        if 0 < request.port < messages.PRIVILEGED_PORTS:
            self.caller.require_root(f"binding port {request.port} (below "
                                     f"{messages.PRIVILEGED_PORTS})")
        family = request.family
        stage = "socket"
        try:
            sock = socket.socket(_family(family), socket.SOCK_DGRAM, request.protocol)
        except OSError as exc:
            self._answer(ident, request, ok=False, stage=stage, errno=errno_name(exc))
            return
        try:
            stage = "setsockopt"
            self._options(sock, family, request)
            stage = "bind"
            if request.bind is not None or request.port:
                sock.bind(_address(family, request.bind or ("0.0.0.0" if family == 4
                                                            else "::"), request.port))
            stage = "connect"
            if request.connect is not None:
                sock.connect(_address(family, request.connect.host, request.connect.port))
        except OSError as exc:
            sock.close()
            self._answer(ident, request, ok=False, stage=stage, errno=errno_name(exc))
            return
        sock.setblocking(False)
        handle = next(self._handles)
        self.sockets[handle] = sock
        name = sock.getsockname()
        self.own.socket_opened(request.protocol, name[0], name[1])
        self._answer(ident, request, ok=True, handle=handle, address=name[0], port=name[1],
                     stage=None, errno=None)

    @staticmethod
    def _options(sock: socket.socket, family: int, request: messages.UdpOpen) -> None:
        if request.reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == 6 and request.v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(request.v6only))
        for size, name in ((request.rcvbuf, socket.SO_RCVBUF),
                           (request.sndbuf, socket.SO_SNDBUF)):
            if size:
                sock.setsockopt(socket.SOL_SOCKET, name, size)
        _os_options(sock, family, request)

    def _socket(self, handle: int) -> socket.socket:
        if handle not in self.sockets:
            raise Refused(f"no UDP socket with handle {handle}")
        return self.sockets[handle]

    def _send(self, ident: int | None, request: messages.UdpSend) -> None:
        sock = self._socket(request.handle)
        data = bytes.fromhex(request.data) if request.data is not None \
            else probe_data(request.size)
        try:
            if request.dst is None:
                sent = sock.send(data)
            else:
                if request.port is None:
                    raise Refused("a datagram to dst needs a port")
                family = 4 if sock.family == socket.AF_INET else 6
                sent = sock.sendto(data, _address(family, request.dst, request.port))
        except OSError as exc:
            self._answer(ident, request, ok=False, errno=errno_name(exc), bytes=0,
                         digest=digest(data))
            return
        self._answer(ident, request, ok=True, errno=None, bytes=sent, digest=digest(data))

    def _recv(self, ident: int | None, request: messages.UdpRecv) -> None:
        """Datagrams on `handles` until `count` arrived, one starting with `until` (hex)
        arrived, or `timeout` passed (bounded by MAX_WAIT)."""
        handles = request.handles or ((request.handle,) if request.handle else ())
        socks = {handle: self._socket(handle) for handle in handles}
        if not socks:
            raise Refused("give the handles of the sockets to receive on")
        bufsize = request.bufsize
        count = request.count
        until = bytes.fromhex(request.until) if request.until else None
        deadline = time.monotonic() + request.timeout
        got: list[dict[str, Any]] = []
        with selectors.DefaultSelector() as selector:
            for handle, sock in socks.items():
                selector.register(sock, selectors.EVENT_READ, handle)
            while len(got) < count and (remaining := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(remaining):
                    try:
                        data, _, flags, address = socks[key.data].recvmsg(bufsize)
                    except BlockingIOError:
                        continue
                    except OSError as exc:  # e.g. ECONNREFUSED queued on a connected socket
                        got.append({"handle": key.data, "error": errno_name(exc)})
                        continue
                    got.append({"handle": key.data, "length": len(data),
                                "truncated": bool(flags & socket.MSG_TRUNC),
                                "src": address[0], "port": address[1],
                                "digest": digest(data), "head": data[:64].hex()})
                    if until is not None and data.startswith(until):
                        count = len(got)
        self._answer(ident, request, datagrams=got)

    def _info(self, ident: int | None, request: messages.UdpInfo) -> None:
        sock = self._socket(request.handle)
        v4 = sock.family == socket.AF_INET
        mtu = path_mtu(sock, 4 if v4 else 6)
        table = osnet.current()
        why = None if (table.ipv4_path_mtu if v4 else table.ipv6_path_mtu) else \
            osnet.unavailable("ipv4_path_mtu" if v4 else "ipv6_path_mtu")
        name = sock.getsockname()
        self._answer(ident, request, address=name[0], port=name[1], mtu=mtu, unavailable=why)

    def _close(self, ident: int | None, request: messages.UdpClose) -> None:
        for handle in request.handles or ((request.handle,) if request.handle else ()):
            sock = self.sockets.pop(handle, None)
            if sock is not None:
                sock.close()
        self._answer(ident, request)

    # -- whole packets ---------------------------------------------------------------

    def _raw_send(self, ident: int | None, request: messages.RawSend) -> None:
        """Send caller-built IP packets (header included) in order, as fast as possible."""
        self.caller.require_root("raw-send (caller-built packets, any source address)")
        family = request.family
        sender = self.raw.get(family)
        if sender is None:
            sender = rawsock.RawSocket.open(family, rawsock.IPPROTO_RAW, listen=False,
                                            header_included=True)
            self.raw[family] = sender
        results: list[dict[str, Any]] = []
        for packet in request.packets:
            if isinstance(sender, rawsock.OsRefusal):
                results.append({"ok": False, "errno": sender.errno_name})
                continue
            result = sender.send(bytes.fromhex(packet), request.dst)
            results.append({"ok": result.ok, "time_ns": result.time_ns,
                            "errno": None if result.refusal is None
                            else result.refusal.errno_name})
        self._answer(ident, request, results=results)

    def _capture_start(self, ident: int | None, request: messages.CaptureStart) -> None:
        """Only the packets of the request's flow are kept when it gives one (hdp.flow);
        `protocol` and `hosts` are a coarser filter applied first. A capture without a
        flow keeps every packet of the protocol, whoever's it is: for a root caller in a
        private namespace. A non-root caller sees only its own flows either way."""
        from hdp.capture import Capture

        if len(self.captures) >= messages.MAX_CAPTURES:
            raise Refused(f"{messages.MAX_CAPTURES} captures are running, the limit: "
                          "stop one first")
        capture = Capture.open(interface=request.interface, protocol=request.protocol,
                               hosts=request.hosts, incoming_only=request.incoming_only,
                               max_packets=messages.MAX_CAPTURE_PACKETS,
                               max_bytes=messages.MAX_CAPTURE_BYTES, flow=request.flow)
        if isinstance(capture, rawsock.OsRefusal):
            self._answer(ident, request, ok=False, errno=capture.errno_name, handle=None,
                         reason=capture.message)
            return
        handle = next(self._handles)
        self.captures[handle] = capture
        self.register(capture, capture.read_available)
        self._answer(ident, request, ok=True, errno=None, handle=handle)

    def _capture_stop(self, ident: int | None, request: messages.CaptureStop) -> None:
        capture = self.captures.pop(request.handle, None)
        if capture is None:
            raise Refused(f"no capture with handle {request.handle}")
        self.unregister(capture)
        # Optionally wait (bounded) for the packets a test knows must come, e.g. an ICMP.
        capture.read_until(time.monotonic() + request.wait, request.count)
        capture.read_available()
        capture.close()
        packets = capture.packets
        if not self.caller.root:  # only the flows this agent opened and sent
            packets = self.own.keep(packets)
        # Over a limit the capture keeps what it has and counts the rest: the answer
        # says so rather than turn into an error that would lose what was seen.
        limit = {} if not capture.dropped else {"limit": (
            f"a capture keeps at most {messages.MAX_CAPTURE_PACKETS} packets and "
            f"{messages.MAX_CAPTURE_BYTES >> 20} MiB; {capture.dropped} more were dropped")}
        self._answer(ident, request, dropped=capture.dropped,
                     unattributed=capture.unattributed, **limit, packets=[
            {"time_ns": p.time_ns, "interface": p.interface, "direction": p.direction,
             "data": p.data.hex()} for p in packets])

    # -- the host --------------------------------------------------------------------

    def _counters(self, ident: int | None, request: messages.Counters) -> None:
        self._answer(ident, request, counters=read_counters())

    def _sysctl(self, ident: int | None, request: messages.Sysctl) -> None:
        """Read a net.* sysctl; write one only inside a private network namespace."""
        name = request.name
        if not osnet.current().proc_sys:
            self._answer(ident, request, ok=False, errno="ENOENT", value=None,
                         reason=osnet.unavailable("proc_sys"))
            return
        path = "/proc/sys/" + name.replace(".", "/")
        old: str | None = None
        try:
            private = not os.stat(path).st_mode & stat.S_IROTH  # e.g. a TCP Fast Open key
        except OSError:
            private = False  # answered below, like any other caller's
        if private:
            self.caller.require_root(f"reading sysctl {name} (readable by root only)")
        try:
            with open(path, encoding="ascii") as current:
                old = current.read(4096).strip()
        except PermissionError:
            if request.value is None:  # write-only, like net.ipv4.route.flush
                self._answer(ident, request, ok=False, errno="EACCES", value=None)
                return
        except (OSError, UnicodeDecodeError) as exc:
            number = errno_name(exc) if isinstance(exc, OSError) else "EIO"
            self._answer(ident, request, ok=False, errno=number, value=None)
            return
        if request.value is None:
            self._answer(ident, request, ok=True, errno=None, value=old)
            return
        if not in_lab_netns():
            self._answer(ident, request, ok=False, errno="EPERM", value=old,
                         reason="the agent does not run in a lab namespace (hdp-*); no "
                                "other settings are changed")
            return
        try:
            with open(path, "w", encoding="ascii") as setting:
                setting.write(request.value)
        except OSError as exc:
            self._answer(ident, request, ok=False, errno=errno_name(exc), value=old)
            return
        self._answer(ident, request, ok=True, errno=None, value=request.value, old=old)

    def _source(self, ident: int | None, request: messages.Source) -> None:
        try:
            src = rawsock.source_address_for(request.dst, request.family)
        except OSError as exc:
            self._answer(ident, request, address=None, errno=errno_name(exc))
            return
        self._answer(ident, request, address=src, errno=None)

    def close(self) -> None:
        self.streams.close()
        self.floods.close()
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
        for capture in self.captures.values():
            self.unregister(capture)
            capture.close()
        self.captures.clear()
        for raw in self.raw.values():
            if isinstance(raw, rawsock.RawSocket):
                raw.close()
        self.raw.clear()
