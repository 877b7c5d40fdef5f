"""The agent's UDP and packet-level requests: what the chapter tests ask of a host.

A UDP/fragmentation conformance test needs more of the two ends of a path than raw
listeners: ordinary UDP and UDP-Lite sockets with their options, whole IP packets sent
exactly as built (fragments, bad checksums), a capture of what arrived, the kernel's
counters, and (inside a lab namespace only) a sysctl. The requests and their answers
are documented in hdp.agent.protocol.
"""

from __future__ import annotations

import errno
import hashlib
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from hdp import osnet, rawsock
from hdp.counters import sysctl_counters
from hdp.probe import probe_data

MAX_WAIT = 10.0  # no request holds the agent longer than this
MAX_DATAGRAM = 1 << 17

Emit = Callable[[dict[str, Any]], None]
Register = Callable[[Any, Callable[[], object]], None]
Unregister = Callable[[Any], object]


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "EIO")


def _family(family: int) -> int:
    return socket.AF_INET if int(family) == 4 else socket.AF_INET6


def _address(family: int, host: str, port: int) -> tuple[Any, ...]:
    if int(family) == 4:
        return (host, port)
    return socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]


def digest(data: bytes) -> str:
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


def _os_options(sock: socket.socket, family: int, request: dict[str, Any]) -> None:
    """The options whose numbers differ between OSes; one this OS lacks is ENOPROTOOPT."""
    table = osnet.current()
    mode = request.get("pmtudisc")
    if mode:
        if mode not in ("dont", "want", "do"):
            raise ValueError(f"pmtudisc {mode!r}: give dont, want or do")
        control = table.ipv4_dont_fragment if family == 4 else table.ipv6_dont_fragment
        if control is None or str(mode) not in control.values:
            raise OSError(errno.ENOPROTOOPT, f"{table.system} has no pmtudisc {mode!r}")
        sock.setsockopt(control.option.level, control.option.name, control.values[str(mode)])
    if request.get("no_check"):  # send with UDP checksum 0 (IPv4 only on Linux and macOS)
        option = table.udp_no_checksum
        if option is None:
            raise OSError(errno.ENOPROTOOPT, osnet.unavailable("udp_no_checksum"))
        sock.setsockopt(option.level, option.name, 1)
    for index, key in ((1, "send_cscov"), (2, "recv_cscov")):
        if request.get(key) is not None:
            if table.udplite is None:
                raise OSError(errno.ENOPROTOOPT, osnet.unavailable("udplite"))
            sock.setsockopt(table.udplite[0], table.udplite[index], int(request[key]))


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


class SocketOps:
    """UDP sockets, header-included sends, captures, counters and sysctls of one agent."""

    def __init__(self, emit: Emit, register: Register, unregister: Unregister) -> None:
        self.emit = emit
        self.register = register
        self.unregister = unregister
        self.sockets: dict[int, socket.socket] = {}
        self.captures: dict[int, Any] = {}
        self.raw: dict[int, rawsock.RawSocket | rawsock.OsRefusal] = {}
        self._handles = iter(range(1, 1 << 62))

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {"udp-open": self._open, "udp-send": self._send, "udp-recv": self._recv,
                "udp-info": self._info, "udp-close": self._close, "raw-send": self._raw_send,
                "capture-start": self._capture_start, "capture-stop": self._capture_stop,
                "counters": self._counters, "sysctl": self._sysctl, "source": self._source}

    def _answer(self, request: dict[str, Any], event: str, **fields: Any) -> None:
        self.emit({"event": event, "id": request.get("id"), **fields})

    # -- UDP and UDP-Lite sockets ----------------------------------------------------

    def _open(self, request: dict[str, Any]) -> None:
        family = int(request["family"])
        proto = int(request.get("protocol", 17))
        stage = "socket"
        try:
            sock = socket.socket(_family(family), socket.SOCK_DGRAM, proto)
        except OSError as exc:
            self._answer(request, "udp-opened", ok=False, stage=stage, errno=errno_name(exc))
            return
        try:
            stage = "setsockopt"
            self._options(sock, family, request)
            stage = "bind"
            if request.get("bind") is not None or request.get("port"):
                sock.bind(_address(family, request.get("bind") or
                                   ("0.0.0.0" if family == 4 else "::"),
                                   int(request.get("port", 0))))
            stage = "connect"
            if request.get("connect"):
                host, port = request["connect"]
                sock.connect(_address(family, host, int(port)))
        except OSError as exc:
            sock.close()
            self._answer(request, "udp-opened", ok=False, stage=stage, errno=errno_name(exc))
            return
        sock.setblocking(False)
        handle = next(self._handles)
        self.sockets[handle] = sock
        name = sock.getsockname()
        self._answer(request, "udp-opened", ok=True, handle=handle, address=name[0],
                     port=name[1], stage=None, errno=None)

    @staticmethod
    def _options(sock: socket.socket, family: int, request: dict[str, Any]) -> None:
        if request.get("reuseaddr"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == 6 and request.get("v6only") is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(request["v6only"]))
        for key, name in (("rcvbuf", socket.SO_RCVBUF), ("sndbuf", socket.SO_SNDBUF)):
            if request.get(key):
                sock.setsockopt(socket.SOL_SOCKET, name, int(request[key]))
        _os_options(sock, family, request)

    def _socket(self, request: dict[str, Any]) -> socket.socket:
        handle = int(request["handle"])
        if handle not in self.sockets:
            raise ValueError(f"no UDP socket with handle {handle}")
        return self.sockets[handle]

    def _send(self, request: dict[str, Any]) -> None:
        sock = self._socket(request)
        if "data" in request:
            data = bytes.fromhex(str(request["data"]))
        else:
            data = probe_data(int(request.get("size", 0)))
        try:
            if request.get("dst") is None:
                sent = sock.send(data)
            else:
                family = 4 if sock.family == socket.AF_INET else 6
                sent = sock.sendto(data, _address(family, str(request["dst"]),
                                                  int(request["port"])))
        except OSError as exc:
            self._answer(request, "udp-sent", ok=False, errno=errno_name(exc), bytes=0,
                         digest=digest(data))
            return
        self._answer(request, "udp-sent", ok=True, errno=None, bytes=sent, digest=digest(data))

    def _recv(self, request: dict[str, Any]) -> None:
        """Datagrams on `handles` until `count` arrived, one starting with `until` (hex)
        arrived, or `timeout` passed (bounded by MAX_WAIT)."""
        handles = [int(h) for h in request.get("handles", [request.get("handle")])]
        socks = {handle: self._socket({"handle": handle}) for handle in handles}
        bufsize = min(int(request.get("bufsize", MAX_DATAGRAM)), MAX_DATAGRAM)
        count = int(request.get("count", 1))
        until = bytes.fromhex(str(request["until"])) if request.get("until") else None
        deadline = time.monotonic() + min(float(request.get("timeout", 1.0)), MAX_WAIT)
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
        self._answer(request, "udp-received", datagrams=got)

    def _info(self, request: dict[str, Any]) -> None:
        sock = self._socket(request)
        v4 = sock.family == socket.AF_INET
        mtu = path_mtu(sock, 4 if v4 else 6)
        table = osnet.current()
        why = None if (table.ipv4_path_mtu if v4 else table.ipv6_path_mtu) else \
            osnet.unavailable("ipv4_path_mtu" if v4 else "ipv6_path_mtu")
        name = sock.getsockname()
        self._answer(request, "udp-info", address=name[0], port=name[1], mtu=mtu,
                     unavailable=why)

    def _close(self, request: dict[str, Any]) -> None:
        for handle in [int(h) for h in request.get("handles", [request.get("handle")])]:
            sock = self.sockets.pop(handle, None)
            if sock is not None:
                sock.close()
        self._answer(request, "udp-closed")

    # -- whole packets ---------------------------------------------------------------

    def _raw_send(self, request: dict[str, Any]) -> None:
        """Send caller-built IP packets (header included) in order, as fast as possible."""
        family = int(request["family"])
        sender = self.raw.get(family)
        if sender is None:
            sender = rawsock.RawSocket.open(family, rawsock.IPPROTO_RAW, listen=False,
                                            header_included=True)
            self.raw[family] = sender
        results: list[dict[str, Any]] = []
        for packet in request["packets"]:
            if isinstance(sender, rawsock.OsRefusal):
                results.append({"ok": False, "errno": sender.errno_name})
                continue
            result = sender.send(bytes.fromhex(packet), str(request["dst"]))
            results.append({"ok": result.ok, "time_ns": result.time_ns,
                            "errno": None if result.refusal is None
                            else result.refusal.errno_name})
        self._answer(request, "raw-sent", results=results)

    def _capture_start(self, request: dict[str, Any]) -> None:
        """``{"op": "capture-start", "id": N, "flow": {...}, "protocol": P, "hosts": [..],
        "interface": NAME|null, "incoming_only": true}``: capture what arrives (or leaves)
        until ``capture-stop``; answers ``{"event": "capture-started", "ok": .., "errno":
        .., "handle": H}``.

        ``flow`` is the exchange to keep, ``{"protocol": 17, "src": "198.18.0.2", "dst":
        "198.18.1.2", "sport": 40000, "dport": 5000, "identifications": [..]}`` (see
        hdp.flow.Flow: null or absent means any; ``identifications`` are the IP IDs of
        packets the caller built). Only packets of that flow are kept: its own, the later
        fragments of its datagrams, and ICMP errors quoting them. ``protocol`` and
        ``hosts`` are a coarser filter applied first; a capture without a flow keeps every
        packet of the protocol, whoever's it is, and is meant for a private namespace.
        A malformed flow is an error answer naming the field.
        """
        from hdp.capture import Capture
        from hdp.flow import Flow

        flow = None if request.get("flow") is None else Flow.from_request(request["flow"])
        capture = Capture.open(interface=request.get("interface"),
                               protocol=request.get("protocol"),
                               hosts=tuple(request.get("hosts", ())),
                               incoming_only=bool(request.get("incoming_only", True)),
                               flow=flow)
        if isinstance(capture, rawsock.OsRefusal):
            self._answer(request, "capture-started", ok=False, errno=capture.errno_name,
                         handle=None, reason=capture.message)
            return
        handle = next(self._handles)
        self.captures[handle] = capture
        self.register(capture, capture.read_available)
        self._answer(request, "capture-started", ok=True, errno=None, handle=handle)

    def _capture_stop(self, request: dict[str, Any]) -> None:
        capture = self.captures.pop(int(request["handle"]), None)
        if capture is None:
            raise ValueError(f"no capture with handle {request['handle']}")
        self.unregister(capture)
        # Optionally wait (bounded) for the packets a test knows must come, e.g. an ICMP.
        wait = min(float(request.get("wait", 0.0)), MAX_WAIT)
        capture.read_until(time.monotonic() + wait, request.get("count"))
        capture.read_available()
        capture.close()
        self._answer(request, "captured", dropped=capture.dropped,
                     unattributed=capture.unattributed, packets=[
            {"time_ns": p.time_ns, "interface": p.interface, "direction": p.direction,
             "data": p.data.hex()} for p in capture.packets])

    # -- the host --------------------------------------------------------------------

    def _counters(self, request: dict[str, Any]) -> None:
        self._answer(request, "counters", counters=read_counters())

    def _sysctl(self, request: dict[str, Any]) -> None:
        """Read a net.* sysctl; write one only inside a private network namespace."""
        name = str(request["name"])
        if not name.startswith("net.") or ".." in name or "/" in name:
            raise ValueError(f"sysctl {name!r}: only net.* settings are served")
        if not osnet.current().proc_sys:
            self._answer(request, "sysctl", ok=False, errno="ENOENT", value=None,
                         reason=osnet.unavailable("proc_sys"))
            return
        path = "/proc/sys/" + name.replace(".", "/")
        old: str | None = None
        try:
            with open(path, encoding="ascii") as current:
                old = current.read().strip()
        except PermissionError:
            if request.get("value") is None:  # write-only, like net.ipv4.route.flush
                self._answer(request, "sysctl", ok=False, errno="EACCES", value=None)
                return
        except OSError as exc:
            self._answer(request, "sysctl", ok=False, errno=errno_name(exc), value=None)
            return
        if request.get("value") is None:
            self._answer(request, "sysctl", ok=True, errno=None, value=old)
            return
        if not in_lab_netns():
            self._answer(request, "sysctl", ok=False, errno="EPERM", value=old,
                         reason="the agent does not run in a lab namespace (hdp-*); no "
                                "other settings are changed")
            return
        try:
            with open(path, "w", encoding="ascii") as setting:
                setting.write(str(request["value"]))
        except OSError as exc:
            self._answer(request, "sysctl", ok=False, errno=errno_name(exc), value=old)
            return
        self._answer(request, "sysctl", ok=True, errno=None, value=str(request["value"]),
                     old=old)

    def _source(self, request: dict[str, Any]) -> None:
        try:
            src = rawsock.source_address_for(str(request["dst"]), int(request["family"]))
        except OSError as exc:
            self._answer(request, "source", address=None, errno=errno_name(exc))
            return
        self._answer(request, "source", address=src, errno=None)

    def close(self) -> None:
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
