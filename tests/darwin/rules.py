"""xnu's socket-layer rules as data, each with the source file and function it comes from.

Read from apple-oss-distributions/xnu (bsd/netinet/raw_ip.c, in_proto.c, ip_input.c,
ip_icmp.c, igmp.c, udp_usrreq.c; bsd/netinet6/in6_proto.c, raw_ip6.c; bsd/kern/
uipc_socket.c, uipc_socket2.c, uipc_domain.c; bsd/netinet/in.h, bsd/netinet6/in6.h,
bsd/sys/socket.h). These are written out again here, not imported from hdp.osnet, so that
a wrong number in the product's table shows up as a refusal of the model.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

AF_INET, AF_INET6 = 2, 10  # address families keep Linux's numbers (see xnu.py)
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3

# -- socket(): the protosw tables ---------------------------------------------------------
# bsd/netinet/in_proto.c inetsw[] and bsd/netinet6/in6_proto.c inet6sw[]: (type, protocol)
# entries; a raw socket of any other protocol attaches to the raw wildcard entry.
_RAW_INET = (255, 1, 2, 47, 51, 50, 4, 41)  # raw, ICMP, IGMP, GRE, AH, ESP, IPv4, IPv6
_RAW_INET6 = (255, 58, 60, 43, 44, 51, 50, 4, 41)  # raw, ICMPv6, ext. headers, AH, ESP, ...
PROTOSW = {
    AF_INET: {(SOCK_DGRAM, 17), (SOCK_STREAM, 6), (SOCK_DGRAM, 1),
              *((SOCK_RAW, p) for p in _RAW_INET)},
    AF_INET6: {(SOCK_DGRAM, 17), (SOCK_STREAM, 6), (SOCK_DGRAM, 58),
               *((SOCK_RAW, p) for p in _RAW_INET6)},
}
# Entries whose pr_usrreqs is `nousrreqs`: attach_proto -> pru_sanitize fills pru_attach
# with pru_attach_notsupp (uipc_domain.c, uipc_socket2.c), so socreate_internal
# (uipc_socket.c) fails with EOPNOTSUPP. IPsec's AH/ESP, and IPv6's extension headers.
NO_USRREQS = {AF_INET: {50, 51}, AF_INET6: {43, 44, 50, 51, 60}}
# errno names as macOS spells them where Linux's table names the number otherwise.
ERRNO_NAMES = {errno.EOPNOTSUPP: "EOPNOTSUPP"}


def socket_refusal(family: int, kind: int, protocol: int) -> int | None:
    """The errno xnu's socket() gives, or None when it opens the socket."""
    if family not in PROTOSW or kind not in (SOCK_DGRAM, SOCK_RAW):
        return None
    if kind == SOCK_RAW:
        if family == AF_INET and protocol > 255:
            return errno.EINVAL  # raw_ip.c:rip_attach: proto > UINT8_MAX
        if protocol in NO_USRREQS[family]:
            return errno.EOPNOTSUPP
        return None
    if protocol == 0 or (kind, protocol) in PROTOSW[family]:
        return None
    # uipc_socket.c:socreate_internal: no protosw of this type; EPROTOTYPE when the
    # protocol exists with another type (pffindprotonotype), else EPROTONOSUPPORT.
    if any(p == protocol for _, p in PROTOSW[family]):
        return errno.EPROTOTYPE
    return errno.EPROTONOSUPPORT


# -- socket options -----------------------------------------------------------------------
SOL_SOCKET = 0xFFFF  # bsd/sys/socket.h
IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPPROTO_ICMPV6 = 0, 41, 17, 58
IPPROTO_TCP = 6
LINUX_SOL_SOCKET = 1


@dataclass(frozen=True)
class Option:
    name: str
    linux: tuple[int, int] | None  # (level, name) that does the same on Linux


# (xnu level, xnu name) -> the option. socket.h: SO_*; in.h: IP_*; in6.h (RFC 3542 names,
# which CPython exposes on macOS); udp.h: UDP_NOCKSUM.
OPTIONS: dict[tuple[int, int], Option] = {
    (SOL_SOCKET, 0x0004): Option("SO_REUSEADDR", (1, 2)),
    (SOL_SOCKET, 0x0020): Option("SO_BROADCAST", (1, 6)),
    (SOL_SOCKET, 0x0200): Option("SO_REUSEPORT", (1, 15)),
    (SOL_SOCKET, 0x0400): Option("SO_TIMESTAMP", (1, 29)),
    (SOL_SOCKET, 0x1001): Option("SO_SNDBUF", (1, 7)),
    (SOL_SOCKET, 0x1002): Option("SO_RCVBUF", (1, 8)),
    (SOL_SOCKET, 0x1007): Option("SO_ERROR", (1, 4)),
    (SOL_SOCKET, 0x1008): Option("SO_TYPE", (1, 3)),
    (IPPROTO_IP, 2): Option("IP_HDRINCL", (0, 3)),
    (IPPROTO_IP, 3): Option("IP_TOS", (0, 1)),
    (IPPROTO_IP, 4): Option("IP_TTL", (0, 2)),
    (IPPROTO_IP, 10): Option("IP_MULTICAST_TTL", (0, 33)),
    (IPPROTO_IP, 11): Option("IP_MULTICAST_LOOP", (0, 34)),
    (IPPROTO_IP, 24): Option("IP_RECVTTL", (0, 12)),
    (IPPROTO_IP, 27): Option("IP_RECVTOS", (0, 13)),
    (IPPROTO_IP, 28): Option("IP_DONTFRAG", None),  # modelled with IP_MTU_DISCOVER
    (IPPROTO_IPV6, 4): Option("IPV6_UNICAST_HOPS", (41, 16)),
    (IPPROTO_IPV6, 26): Option("IPV6_CHECKSUM", (41, 7)),
    (IPPROTO_IPV6, 27): Option("IPV6_V6ONLY", (41, 26)),
    (IPPROTO_IPV6, 35): Option("IPV6_RECVTCLASS", (41, 66)),
    (IPPROTO_IPV6, 36): Option("IPV6_TCLASS", (41, 67)),
    (IPPROTO_IPV6, 37): Option("IPV6_RECVHOPLIMIT", (41, 51)),
    (IPPROTO_IPV6, 43): Option("IPV6_RECVPATHMTU", (41, 60)),
    (IPPROTO_IPV6, 44): Option("IPV6_PATHMTU", (41, 61)),
    (IPPROTO_IPV6, 46): Option("IPV6_PKTINFO", (41, 50)),
    (IPPROTO_IPV6, 47): Option("IPV6_HOPLIMIT", (41, 52)),
    (IPPROTO_IPV6, 61): Option("IPV6_RECVPKTINFO", (41, 49)),
    (IPPROTO_IPV6, 62): Option("IPV6_DONTFRAG", (41, 62)),
    (IPPROTO_UDP, 0x01): Option("UDP_NOCKSUM", None),  # modelled with SO_NO_CHECK
    (IPPROTO_TCP, 0x01): Option("TCP_NODELAY", (6, 1)),  # bsd/netinet/tcp.h
}
# What CPython's socket module calls these on macOS, with xnu's values.
MODULE_VALUES = {
    "SOL_SOCKET": SOL_SOCKET, "SO_REUSEADDR": 0x0004, "SO_BROADCAST": 0x0020,
    "SO_REUSEPORT": 0x0200, "SO_SNDBUF": 0x1001, "SO_RCVBUF": 0x1002, "SO_ERROR": 0x1007,
    "SO_TYPE": 0x1008, "IP_HDRINCL": 2, "IP_TOS": 3, "IP_TTL": 4, "IP_MULTICAST_TTL": 10,
    "IP_MULTICAST_LOOP": 11, "IP_RECVTOS": 27, "IPV6_UNICAST_HOPS": 4, "IPV6_CHECKSUM": 26,
    "IPV6_V6ONLY": 27, "IPV6_RECVTCLASS": 35, "IPV6_TCLASS": 36, "IPV6_RECVHOPLIMIT": 37,
    "IPV6_RECVPATHMTU": 43, "IPV6_PATHMTU": 44, "IPV6_PKTINFO": 46, "IPV6_HOPLIMIT": 47,
    "IPV6_RECVPKTINFO": 61, "IPV6_DONTFRAG": 62, "MSG_TRUNC": 0x10, "MSG_CTRUNC": 0x20,
    "TCP_NODELAY": 0x01,
}
# Names CPython's socket module has on Linux but not on macOS (no such facility in xnu).
LINUX_ONLY_PREFIXES = (
    "AF_PACKET", "PF_PACKET", "PACKET_", "AF_NETLINK", "NETLINK_", "AF_TIPC", "TIPC_",
    "SOL_TIPC", "AF_CAN", "CAN_", "SOL_CAN", "AF_ALG", "ALG_", "SOL_ALG", "AF_RDS", "RDS_",
    "SOL_RDS", "AF_QIPCRTR", "SO_BINDTODEVICE", "SO_MARK", "SO_PRIORITY", "SO_PASSCRED",
    "SO_PEERCRED", "SO_PASSSEC", "SO_PEERSEC", "SO_DOMAIN", "SO_PROTOCOL", "SO_INCOMING_CPU",
    "IP_TRANSPARENT", "IP_BIND_ADDRESS_NO_PORT", "IP_RECVERR", "IPV6_RECVERR",
)
LINUX_FLAGS = {0x20: 0x10, 0x08: 0x20}  # MSG_TRUNC, MSG_CTRUNC: Linux bit -> xnu bit


def option_refusal(kind: int, family: int, level: int, name: int) -> int | None:
    """The errno xnu's setsockopt/getsockopt gives for an option it does not have."""
    if level == SOL_SOCKET:  # uipc_socket.c:sosetopt/sogetopt: default ENOPROTOOPT
        return None if (level, name) in OPTIONS else errno.ENOPROTOOPT
    allowed = {AF_INET: (IPPROTO_IP,), AF_INET6: (IPPROTO_IPV6, IPPROTO_ICMPV6)}[family]
    if kind == SOCK_DGRAM:
        allowed = (*allowed, IPPROTO_UDP)
    if kind == SOCK_STREAM:  # tcp_usrreq.c:tcp_ctloutput takes IPPROTO_TCP's options
        allowed = (*allowed, IPPROTO_TCP)
    if level not in allowed:
        # raw_ip.c:rip_ctloutput / raw_ip6.c:rip6_ctloutput: another level is EINVAL.
        return errno.EINVAL
    if (level, name) not in OPTIONS:
        return errno.ENOPROTOOPT  # ip_output.c:ip_ctloutput / ip6_output.c:ip6_ctloutput
    if OPTIONS[(level, name)].name == "UDP_NOCKSUM" and family != AF_INET:
        return errno.EINVAL  # udp_usrreq.c:udp_ctloutput: "settable only for UDP over IPv4"
    return None


# bsd/kern/uipc_socket2.c:sbreserve: more than sb_max * MCLBYTES / (MSIZE + MCLBYTES)
# is refused (ENOBUFS from sosetopt), sb_max being kern.ipc.maxsockbuf (8 MiB default).
SB_MAX, MCLBYTES, MSIZE = 8 << 20, 2048, 256
RCVBUF_LIMIT = SB_MAX * MCLBYTES // (MSIZE + MCLBYTES)
RAW_RECVSPACE = 8192  # raw_ip.c: RIPRCVQ, what rip_attach reserves


# -- header-included sends ----------------------------------------------------------------
def hdrincl_refusal(packet: bytes) -> int | None:
    """raw_ip.c:rip_output on an IP_HDRINCL socket: EMSGSIZE above IP_MAXPACKET; EINVAL
    when ip_len, read in host byte order, exceeds the packet or undercuts its header."""
    if len(packet) > 65535:
        return errno.EMSGSIZE
    if len(packet) < 20:
        return errno.EINVAL
    (ip_len,) = struct.unpack_from("=H", packet, 2)
    header = (packet[0] & 0x0F) * 4
    if ip_len > len(packet) or ip_len < header:
        return errno.EINVAL
    return None


def to_network_order(packet: bytes) -> bytes:
    """ip_output.c:ip_output_list converts ip_len/ip_off to network order before output."""
    ip_len, ip_off = struct.unpack_from("=H2xH", packet, 2)
    return packet[:2] + struct.pack("!H", ip_len) + packet[4:6] + struct.pack("!H", ip_off) \
        + packet[8:]


# -- what reaches a raw listener ----------------------------------------------------------
def internet_checksum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


# ICMP types icmp_input passes to the transport (deliver:), with the codes it accepts.
ICMP_DELIVER = {3: range(16), 4: range(1), 11: range(2), 12: range(2)}


def bsd_received_ipv4(packet: bytes, socket_protocol: int) -> bytes | None:
    """The packet as xnu hands it to a raw IPv4 listener, or None when it never does.

    ip_input.c:ip_input converts ip_len and ip_off to host order and subtracts the header
    length from ip_len before the protocol's input routine; the write-up saw a zero
    checksum. tcp_input and udp_input never call rip_input (6, 17); icmp_input and
    igmp_input drop a message whose checksum fails and reflect an echo request (1, 2);
    icmp_input leaves the quoted ip_len of an error it passed up in host order.
    """
    if len(packet) < 20:
        return None
    header = (packet[0] & 0x0F) * 4
    protocol = packet[9]
    body = packet[header:]
    if protocol in (6, 17):
        return None
    if protocol == 1:
        delivered = _icmp_as_delivered(body)
        if delivered is None:
            return None
        body = delivered
    elif protocol == 2 and (len(body) < 8 or not internet_checksum_ok(body)):
        return None  # igmp.c:igmp_input: too short or a bad checksum
    total, offset = struct.unpack_from("!H2xH", packet, 2)
    rewritten = (packet[:2] + struct.pack("=H", total - header) + packet[4:6]
                 + struct.pack("=H", offset) + packet[8:10] + b"\0\0" + packet[12:header])
    return rewritten + body


def _icmp_as_delivered(message: bytes) -> bytes | None:
    """ip_icmp.c:icmp_input: None where the message is dropped or reflected."""
    if len(message) < 8 or not internet_checksum_ok(message):
        return None  # ICMP_MINLEN, then in_cksum
    kind, code = message[0], message[1]
    if kind == 8:
        return None  # ICMP_ECHO: answered by icmp_reflect, not passed on
    if kind in ICMP_DELIVER and code in ICMP_DELIVER[kind]:
        quoted = (message[8] & 0x0F) * 4 if len(message) > 8 else 0
        if len(message) < 36 or quoted < 20 or len(message) < 8 + quoted + 8:
            return None  # ICMP_ADVLENMIN / ICMP_ADVLEN: icps_badlen, freed
        (length,) = struct.unpack_from("!H", message, 10)
        return message[:10] + struct.pack("=H", length) + message[12:]  # NTOHS, in place
    return message


def never_to_raw(family: int, protocol: int) -> bool:
    """Protocols whose packets no raw listener of that protocol ever sees: TCP and UDP
    (in_proto.c/in6_proto.c give them input routines that never call rip(6)_input)."""
    return protocol in (6, 17)
