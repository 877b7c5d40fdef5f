"""What the operating system's socket layer offers, as one table per OS.

Option numbers, what a kernel refuses and how it lays out the headers it hands over
differ between Linux and macOS (xnu). Every module that opens or configures a socket
reads them from `current()`, a table chosen once from `sys.platform`; a name the OS
lacks is None, and the caller reports the capability as unavailable instead of passing
another OS's number (10 is IP_MTU_DISCOVER on Linux but IP_MULTICAST_TTL on macOS).
The test model of xnu (tests/darwin) swaps the table with `use()`.

Numbers that Python's socket module exports on every OS (IP_TOS, IPV6_TCLASS,
IPV6_RECVPKTINFO, ...) are read from it, not from here: CPython builds its socket module
on macOS with __APPLE_USE_RFC_3542 (bpo-35569), so the RFC 3542 names there carry
xnu's values (IPV6_RECVPKTINFO 61, IPV6_HOPLIMIT 47; bsd/netinet6/in6.h).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from hdp.wire.ipv4 import RawQuirk, raw_quirk_for


@dataclass(frozen=True)
class SockOpt:
    """A socket option: its (level, name) numbers on this OS."""

    level: int
    name: int


@dataclass(frozen=True)
class DontFragment:
    """How a socket asks for (or against) DF / source fragmentation on this OS.

    `values` maps the modes "dont", "want", "do" to the option's value; a mode the OS
    lacks is missing. `default` is the mode a fresh socket has.
    """

    option: SockOpt
    values: Mapping[str, int]
    default: str


@dataclass(frozen=True)
class PathMtu:
    """A getsockopt that tells a connected socket's path MTU: the 32-bit value at `offset`
    of an answer `size` bytes long (an int, or xnu's struct ip6_mtuinfo)."""

    option: SockOpt
    size: int = 4
    offset: int = 0


@dataclass(frozen=True)
class OsNet:
    system: str  # as platform.system() names it, in lower case
    raw_quirk: RawQuirk  # how received raw IPv4 headers are laid out
    # Header-included IPv4 sends read ip_len and ip_off in host byte order (BSD).
    hdrincl_host_order: bool = False
    # An ICMP error handed to a raw listener quotes the probe's ip_len in host byte order.
    icmp_quote_len_host_order: bool = False
    sol_socket: int = 1
    ipv6_hdrincl: SockOpt | None = None  # caller-built IPv6 headers
    ipv6_checksum: SockOpt | None = None  # RFC 3542 IPV6_CHECKSUM
    rcvbuf_force: SockOpt | None = None  # a receive buffer above the administrator's limit
    # SO_RCVBUF above the limit fails with ENOBUFS instead of being clamped.
    rcvbuf_refuses_above_limit: bool = False
    timestamp_ns: SockOpt | None = None  # its control message type is the option's name
    timestamp: SockOpt | None = None  # struct timeval stamps (SO_TIMESTAMP)
    scm_timestamp: int | None = None  # ... and their control message type
    rxq_ovfl: SockOpt | None = None  # a drop counter with each packet (SO_RXQ_OVFL)
    # SO_TIMESTAMPING: kernel stamps of sent packets, read back from the error queue; its
    # control message type is the option's name.
    timestamping: SockOpt | None = None
    ts_opt_id: int | None = None  # SCM_TS_OPT_ID: a send names its own stamp's key
    ip_recverr: SockOpt | None = None  # the error queue's IPv4 control message (IP_RECVERR)
    ipv6_recverr: SockOpt | None = None  # ... and IPv6's (IPV6_RECVERR)
    boot_id: str | None = None  # how the kernel's boot id is read: "proc" or "sysctl"
    meminfo: SockOpt | None = None  # SO_MEMINFO: the socket's counters, drops among them
    attach_filter: SockOpt | None = None  # a classic BPF program on the socket
    ipv4_dont_fragment: DontFragment | None = None
    ipv6_dont_fragment: DontFragment | None = None
    ipv4_path_mtu: PathMtu | None = None
    ipv6_path_mtu: PathMtu | None = None
    udp_no_checksum: SockOpt | None = None  # send UDP/IPv4 with checksum 0
    udplite: tuple[int, int, int] | None = None  # (SOL_UDPLITE, SEND_CSCOV, RECV_CSCOV)
    packet_capture: bool = False  # AF_PACKET
    counters: str | None = None  # "proc" (/proc/net/snmp), "sysctl" (sysctlbyname) or None
    proc_sys: bool = False  # /proc/sys holds the net.* settings
    # /proc/net/raw and raw6 list this namespace's raw sockets, by protocol and inode
    proc_net_raw: bool = False
    # Every address in a loopback interface's prefix is local, not only those assigned.
    loopback_prefix_local: bool = False
    notes: dict[str, str] = field(default_factory=dict)  # why a capability is missing


_PMTUDISC = {"dont": 0, "want": 1, "do": 2}

# Linux: include/uapi/asm-generic/socket.h, linux/in.h, linux/in6.h, linux/udp.h.
LINUX = OsNet(
    system="linux", raw_quirk=RawQuirk.NONE, sol_socket=1,
    ipv6_hdrincl=SockOpt(41, 36), ipv6_checksum=SockOpt(41, 7),
    rcvbuf_force=SockOpt(1, 33), timestamp_ns=SockOpt(1, 35),
    timestamp=SockOpt(1, 29), scm_timestamp=29, rxq_ovfl=SockOpt(1, 40),
    meminfo=SockOpt(1, 55), attach_filter=SockOpt(1, 26),
    # include/uapi/asm-generic/socket.h: SO_TIMESTAMPING 37 (its 64-bit-time form on 64-bit
    # hosts), SCM_TS_OPT_ID 81 (Linux 6.13+); errqueue.h's cmsgs are IP_RECVERR 11 and
    # IPV6_RECVERR 25.
    timestamping=SockOpt(1, 37), ts_opt_id=81, ip_recverr=SockOpt(0, 11),
    ipv6_recverr=SockOpt(41, 25), boot_id="proc",
    ipv4_dont_fragment=DontFragment(SockOpt(0, 10), _PMTUDISC, "want"),  # IP_MTU_DISCOVER
    ipv6_dont_fragment=DontFragment(SockOpt(41, 23), _PMTUDISC, "want"),  # IPV6_MTU_DISCOVER
    ipv4_path_mtu=PathMtu(SockOpt(0, 14)), ipv6_path_mtu=PathMtu(SockOpt(41, 24)),
    udp_no_checksum=SockOpt(1, 11),  # SO_NO_CHECK (IPv4 only)
    udplite=(136, 10, 11), packet_capture=True, counters="proc", proc_sys=True,
    proc_net_raw=True,
    # net/ipv4/fib_frontend.c:fib_add_ifaddr gives a loopback device's whole prefix
    # (127.0.0.0/8) a local route.
    loopback_prefix_local=True,
)

# macOS: xnu bsd/sys/socket.h, bsd/netinet/in.h, bsd/netinet6/in6.h, bsd/netinet/udp.h.
DARWIN = OsNet(
    system="darwin", raw_quirk=RawQuirk.BSD,
    # bsd/netinet/raw_ip.c:rip_output checks ip_len against the packet in host order, and
    # bsd/netinet/ip_output.c:ip_output_list byte-swaps ip_len/ip_off only before output.
    hdrincl_host_order=True,
    # bsd/netinet/ip_icmp.c:icmp_input applies NTOHS to the quoted ip_len of an error it
    # passes up (to TCP/UDP ctlinput), then hands the same mbuf to rip_input.
    icmp_quote_len_host_order=True,
    sol_socket=0xFFFF, ipv6_checksum=SockOpt(41, 26),
    # bsd/kern/uipc_socket2.c:sbreserve refuses more than sb_max * MCLBYTES /
    # (MSIZE + MCLBYTES), about 7.1 MiB with the default kern.ipc.maxsockbuf of 8 MiB.
    rcvbuf_refuses_above_limit=True,
    timestamp=SockOpt(0xFFFF, 0x400), scm_timestamp=0x02,
    # IP_DONTFRAG 28, IPV6_DONTFRAG 62: a socket sets DF or not; there is no "want" (path
    # MTU discovery for datagrams), and DF is off by default (raw_ip.c:rip_output).
    ipv4_dont_fragment=DontFragment(SockOpt(0, 28), {"dont": 0, "do": 1}, "dont"),
    ipv6_dont_fragment=DontFragment(SockOpt(41, 62), {"dont": 0, "do": 1}, "dont"),
    # IPV6_PATHMTU 44 answers a struct ip6_mtuinfo: a sockaddr_in6 (28 bytes), the MTU.
    ipv6_path_mtu=PathMtu(SockOpt(41, 44), size=32, offset=28),
    udp_no_checksum=SockOpt(17, 0x01),  # UDP_NOCKSUM, IPv4 only (udp_usrreq.c:udp_ctloutput)
    counters="sysctl", boot_id="sysctl",
    notes={
        "timestamping": "macOS has no SO_TIMESTAMPING: xnu stamps packets it receives "
                        "(SO_TIMESTAMP, bsd/netinet/ip_input.c:ip_savecontrol) but never "
                        "those it sends, so a send time is the process's own clock (user)",
        "ipv6_hdrincl": "macOS has no IPV6_HDRINCL: an IPv6 raw socket always builds the "
                        "header itself (bsd/netinet6/raw_ip6.c:rip6_output)",
        "packet_capture": "packet capture needs Linux AF_PACKET; this build has no BPF "
                          "(/dev/bpf*) backend for macOS",
        "ipv4_path_mtu": "macOS has no IP_MTU: an IPv4 socket cannot tell its path MTU",
        "udplite": "macOS has no UDP-Lite (no protosw for protocol 136 in "
                   "bsd/netinet/in_proto.c)",
        "proc_sys": "macOS has no /proc/sys; its settings are sysctl(3) names",
        "proc_net_raw": "macOS has no /proc/net/raw: which other raw sockets are open "
                        "cannot be told",
    },
)


def for_platform(name: str) -> OsNet:
    """The table for a `sys.platform` value; another OS gets a table that claims nothing."""
    if name.startswith("linux"):
        return LINUX
    if name == "darwin":
        return DARWIN
    system = platform.system().lower()
    return OsNet(system=system, raw_quirk=raw_quirk_for(system, platform.release()),
                 sol_socket=0xFFFF if system.endswith("bsd") else 1)


_current = for_platform(sys.platform)


def current() -> OsNet:
    """The table of the OS this process runs on (or the one a test model put in place)."""
    return _current


def use(table: OsNet) -> OsNet:
    """Put `table` in place and return the one it replaces (for a test model of an OS)."""
    global _current
    previous, _current = _current, table
    return previous


def unavailable(capability: str) -> str:
    """Why this OS lacks `capability` (a field name of OsNet), as one line."""
    table = current()
    return table.notes.get(capability, f"{table.system} has no {capability.replace('_', ' ')}")
