"""A model of macOS's (xnu's) socket layer, on top of this Linux kernel's real sockets.

THIS IS A MODEL, NOT macOS. It lets every CI run drive pytest-hdp's macOS code paths: with
`install()` in place, `sys.platform` and `platform.system()` say Darwin, hdp.osnet serves
its macOS table, Python's socket module carries the option numbers CPython has on macOS
(xnu's, from bsd/sys/socket.h, bsd/netinet/in.h, bsd/netinet6/in6.h) and lacks the
Linux-only names, and every socket the code opens is an `XnuSocket` that applies xnu's
rules (tests/darwin/rules.py, each citing the xnu file and function it comes from) at
socket(), setsockopt(), getsockopt(), sendto() and recvmsg(). Whatever passes a rule is
done for real by the Linux kernel underneath, translated to its numbers, so probes are
really sent and received on loopback.

What it covers: which protocols socket() refuses and with which errno; options xnu does
not have (ENOPROTOOPT / EINVAL, never another OS's meaning of the number); SO_RCVBUF's
ENOBUFS above sbreserve's limit; host-order ip_len/ip_off on header-included IPv4 sends
(EINVAL otherwise); the BSD layout of received IPv4 headers; no TCP/UDP and no
checksum-failing ICMP/IGMP for raw listeners; the byte-swapped quoted length of ICMP
errors; xnu's control-message and flag numbers; DF off by default; no AF_PACKET; the
UDP statistics behind sysctl net.inet.udp.stats.

What it does not: anything the Linux kernel underneath decides (routing, ICMP rate
limits, reassembly, what the IPv6 stack does with extension headers, checksum offload),
address-family numbers (AF_INET6 stays Linux's 10; the code only names it), raw sockets
of protocol 0 or below 0 (Linux cannot open them as xnu does: the model gives Linux's
answer), and timing. It never replaces a run on a Mac.
"""

from __future__ import annotations

import errno
import os
import platform
import select
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hdp import counters, osnet, rawsock
from tests.darwin import rules

_RealSocket = socket.socket
_real_c_socket = rawsock._c_socket
_MAX_READ = 65535 + 128
_PMTUDISC_DONT, _PMTUDISC_DO = 0, 2
_LINUX_IP_MTU_DISCOVER = (0, 10)
_LINUX_SO_NO_CHECK = (1, 11)
_LINUX_SO_ATTACH_FILTER = (1, 26)
_LINUX_IPV6_HDRINCL = (41, 36)
_LINUX_SO_RCVBUF, _LINUX_SO_RCVBUFFORCE = (1, 8), (1, 33)
_LINUX_MSG_DONTWAIT = socket.MSG_DONTWAIT
_LINUX_CMSG = {(1, 29): (rules.SOL_SOCKET, 0x02),  # SCM_TIMESTAMP
               (41, 52): (41, 47), (41, 67): (41, 36), (41, 50): (41, 46)}


def _refuse(number: int, why: str) -> OSError:
    return OSError(number, f"{os.strerror(number)} (xnu model: {why})")


class XnuSocket(_RealSocket):
    """A socket that answers as xnu would, doing the rest through the real one."""

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: int | None = None) -> None:
        if fileno is None and family in (rules.AF_INET, rules.AF_INET6):
            refused = rules.socket_refusal(family, type, max(proto, 0))
            if refused is not None:
                raise _refuse(refused, f"socket({family}, {type}, {proto})")
        super().__init__(family, type, proto, fileno)
        self._relay: _Relay | None = None
        self._rcvbuf: int | None = None
        self._hdrincl = False
        kind, protocol = int(self.type) & 0xF, self.proto
        if self.family in (rules.AF_INET, rules.AF_INET6) and kind == rules.SOCK_RAW:
            # raw_ip.c:rip_attach reserves rip_recvspace (8 KiB) for a raw socket.
            super().setsockopt(*_LINUX_SO_RCVBUF, rules.RAW_RECVSPACE)
            if self.family == rules.AF_INET6 and protocol == 255:
                # raw_ip6.c:rip6_output always builds the IPv6 header; Linux would take
                # protocol 255 to mean IPV6_HDRINCL.
                super().setsockopt(*_LINUX_IPV6_HDRINCL, 0)
            if rules.never_to_raw(self.family, protocol):
                _attach_drop_all(self)
            elif self.family == rules.AF_INET and protocol in (1, 2):
                self._relay = _Relay(self)
        if self.family == rules.AF_INET and kind in (rules.SOCK_RAW, rules.SOCK_DGRAM):
            # rip_output/udp_output set DF only for IP_DONTFRAG; Linux sets it by default.
            super().setsockopt(*_LINUX_IP_MTU_DISCOVER, _PMTUDISC_DONT)

    # -- options ---------------------------------------------------------------------
    def _linux_option(self, level: int, name: int) -> tuple[str, tuple[int, int] | None]:
        refused = rules.option_refusal(int(self.type) & 0xF, self.family, level, name)
        if refused is not None:
            raise _refuse(refused, f"option ({level:#x}, {name}) on this socket")
        option = rules.OPTIONS[(level, name)]
        return option.name, option.linux

    def setsockopt(self, level: int, optname: int, value: Any, *rest: Any) -> None:
        name, linux = self._linux_option(level, optname)
        if name == "SO_RCVBUF":
            if int(value) > rules.RCVBUF_LIMIT:
                raise _refuse(errno.ENOBUFS, f"SO_RCVBUF {value} > {rules.RCVBUF_LIMIT} "
                                             "(uipc_socket2.c:sbreserve)")
            self._rcvbuf = int(value)
            try:  # what xnu grants, past Linux's rmem_max
                super().setsockopt(*_LINUX_SO_RCVBUFFORCE, int(value))
            except OSError:
                super().setsockopt(*_LINUX_SO_RCVBUF, int(value))
            return
        if name == "IP_DONTFRAG":
            super().setsockopt(*_LINUX_IP_MTU_DISCOVER,
                               _PMTUDISC_DO if int(value) else _PMTUDISC_DONT)
            return
        if name == "UDP_NOCKSUM":
            super().setsockopt(*_LINUX_SO_NO_CHECK, int(value))
            return
        if name == "IP_HDRINCL":
            self._hdrincl = bool(value)
        assert linux is not None
        super().setsockopt(*linux, value, *rest)

    def getsockopt(self, level: int, optname: int, *buflen: int) -> Any:
        name, linux = self._linux_option(level, optname)
        if name == "SO_RCVBUF" and self._rcvbuf is not None:
            return self._rcvbuf if not buflen else struct.pack("=i", self._rcvbuf)
        if name == "IP_DONTFRAG":
            value = int(super().getsockopt(*_LINUX_IP_MTU_DISCOVER) == _PMTUDISC_DO)
            return value if not buflen else struct.pack("=i", value)
        if linux is None:
            raise _refuse(errno.ENOPROTOOPT, f"{name} is not readable here")
        return super().getsockopt(*linux, *buflen)

    # -- sending ---------------------------------------------------------------------
    def sendto(self, data: Any, *args: Any) -> int:
        packet = bytes(data)
        if self._hdrincl and self.family == rules.AF_INET:
            refused = rules.hdrincl_refusal(packet)
            if refused is not None:
                raise _refuse(refused, "raw_ip.c:rip_output reads ip_len in host order")
            packet = rules.to_network_order(packet)
        elif int(self.type) & 0xF == rules.SOCK_RAW and self.family == rules.AF_INET \
                and len(packet) + 20 > 65535:
            raise _refuse(errno.EMSGSIZE, "raw_ip.c:rip_output: beyond IP_MAXPACKET")
        return int(super().sendto(packet, *args))

    # -- receiving -------------------------------------------------------------------
    def fileno(self) -> int:
        return self._relay.ready_fd if self._relay is not None else super().fileno()

    def recvmsg(self, bufsize: int, ancbufsize: int = 0,
                flags: int = 0) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        if flags:
            raise NotImplementedError("the xnu model translates no recvmsg flags")
        if self._relay is not None:
            data, ancillary, got, address = self._relay.next()
        elif int(self.type) & 0xF == rules.SOCK_STREAM:  # a stream: read no byte too many
            data, ancillary, got, address = super().recvmsg(bufsize, max(ancbufsize, 512))
        else:
            data, ancillary, got, address = super().recvmsg(max(bufsize, _MAX_READ),
                                                            max(ancbufsize, 512))
            if int(self.type) & 0xF == rules.SOCK_RAW and self.family == rules.AF_INET:
                data = rules.bsd_received_ipv4(data, self.proto) or data
        truncated = len(data) > bufsize
        data = data[:bufsize]
        xnu_flags = sum(bit for linux, bit in rules.LINUX_FLAGS.items() if got & linux)
        if truncated:
            xnu_flags |= 0x10
        return data, _xnu_cmsgs(ancillary), xnu_flags, address

    def close(self) -> None:
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        super().close()


def _xnu_cmsgs(ancillary: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Linux's control messages as xnu would write them; others xnu could not produce."""
    out = []
    for level, kind, value in ancillary:
        target = _LINUX_CMSG.get((level, kind))
        if target is None:
            continue
        if target == (rules.SOL_SOCKET, 0x02) and len(value) >= 16:
            sec, usec = struct.unpack_from("@qq", value)
            value = struct.pack("@qi4x", sec, usec)  # macOS: long tv_sec, int tv_usec
        out.append((*target, value))
    return out


def _attach_drop_all(sock: _RealSocket) -> None:
    """Nothing ever queues: a classic BPF program returning 0 on the real socket."""
    import ctypes

    program = (ctypes.c_uint16 * 4)(0x06, 0, 0, 0)
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))
    _RealSocket.setsockopt(sock, *_LINUX_SO_ATTACH_FILTER, fprog)


class _Relay:
    """For raw ICMP and IGMP listeners, whose delivery depends on a checksum no socket
    filter can compute: a thread reads the real socket and queues what xnu would hand
    over; the socket's fileno() is a pipe with one byte per queued packet, so readiness
    and blocking reads behave as on a socket."""

    def __init__(self, sock: XnuSocket) -> None:
        self.sock = sock
        self.queue: deque[tuple[bytes, list[tuple[int, int, bytes]], int, Any]] = deque()
        self.ready_fd, self._ready_w = os.pipe()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"xnu-model-relay-{sock.proto}")
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()  # not select(): an agent's descriptors pass 1024
        poller.register(_RealSocket.fileno(self.sock), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            if any(fd == self._stop_r for fd, _ in poller.poll()):
                return
            try:
                data, ancillary, flags, address = _RealSocket.recvmsg(
                    self.sock, _MAX_READ, 512, _LINUX_MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                return
            delivered = rules.bsd_received_ipv4(data, self.sock.proto)
            if delivered is not None:
                self.queue.append((delivered, ancillary, flags, address))
                os.write(self._ready_w, b"\1")

    def next(self) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        os.read(self.ready_fd, 1)  # blocks, as a blocking socket's read would
        return self.queue.popleft()

    def stop(self) -> None:
        os.write(self._stop_w, b"\1")
        self._thread.join(timeout=5)
        for fd in (self.ready_fd, self._ready_w, self._stop_r, self._stop_w):
            os.close(fd)


def _xnu_c_socket(domain: int, kind: int, protocol: int) -> int | rawsock.OsRefusal:
    """rawsock's socket(2), refusing what xnu's socreate_internal refuses."""
    refused = rules.socket_refusal(domain, kind, protocol) if protocol > 0 else None
    if refused is not None:
        # By xnu's name: Linux's errno table calls 95 ENOTSUP, macOS's EOPNOTSUPP is 102.
        name = rules.ERRNO_NAMES.get(refused) or errno.errorcode[refused]
        return rawsock.OsRefusal(name, os.strerror(refused))
    return _real_c_socket(domain, kind, protocol)


def _xnu_sysctlbyname(name: str, size: int) -> bytes | None:
    """sysctl net.inet.udp.stats: struct udpstat (bsd/netinet/udp_var.h), filled from
    Linux's /proc/net/snmp and snmp6 (xnu counts IPv4 and IPv6 UDP together); sysctl
    kern.bootsessionuuid: the boot id of the kernel underneath, as a C string."""
    if name == "kern.bootsessionuuid":
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return (boot.read().strip().upper().encode() + b"\0")[:size]
    if name != "net.inet.udp.stats":
        return None
    linux: dict[str, int] = {}
    with open("/proc/net/snmp", encoding="ascii") as snmp:
        lines = snmp.read().splitlines()
    for names, row in zip(lines[::2], lines[1::2], strict=False):
        group, _, keys = names.partition(":")
        for key, value in zip(keys.split(), row.partition(":")[2].split(), strict=False):
            linux[f"{group}.{key}"] = int(value)
    with open("/proc/net/snmp6", encoding="ascii") as snmp6:
        for line in snmp6:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                linux[f"6.{parts[0]}"] = int(parts[1])

    def both(v4: str, v6: str) -> int:
        return linux.get(f"Udp.{v4}", 0) + linux.get(f"6.Udp6{v6}", 0)

    values: dict[str, int] = dict.fromkeys(counters.UDPSTAT_FIELDS, 0)
    values.update(udps_ipackets=both("InDatagrams", "InDatagrams"),
                  udps_badsum=both("InCsumErrors", "InCsumErrors"),
                  udps_noport=both("NoPorts", "NoPorts"),
                  udps_fullsock=both("RcvbufErrors", "RcvbufErrors"),
                  udps_opackets=both("OutDatagrams", "OutDatagrams"))
    data = struct.pack(f"@{len(values)}I", *(v & 0xFFFFFFFF for v in values.values()))
    return data[:size]


@contextmanager
def installed() -> Iterator[None]:
    """The model in place for the block; everything it changed is put back after."""
    undo = install()
    try:
        yield
    finally:
        undo()


def install() -> Callable[[], None]:
    """Put the model in place for this whole process; returns the function that undoes it."""
    saved_module = dict(vars(socket))
    saved = (sys.platform, platform.system, platform.release, rawsock._c_socket,
             counters.sysctlbyname)
    previous_table = osnet.use(osnet.DARWIN)
    for name in list(vars(socket)):
        if name.startswith(rules.LINUX_ONLY_PREFIXES) or (
                name.startswith(("IP_", "IPV6_", "SO_", "SCM_", "MSG_"))
                and name not in rules.MODULE_VALUES):
            delattr(socket, name)
    for name, value in rules.MODULE_VALUES.items():
        setattr(socket, name, value)
    socket.socket = XnuSocket  # type: ignore[misc]
    sys.platform = "darwin"
    platform.system = lambda: "Darwin"
    platform.release = lambda: "23.6.0"
    rawsock._c_socket = _xnu_c_socket
    counters.sysctlbyname = _xnu_sysctlbyname

    def undo() -> None:
        (sys.platform, platform.system, platform.release, rawsock._c_socket,
         counters.sysctlbyname) = saved
        osnet.use(previous_table)
        for name in set(vars(socket)) - set(saved_module):
            delattr(socket, name)
        for name, value in saved_module.items():
            setattr(socket, name, value)

    return undo
