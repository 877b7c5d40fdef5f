"""How the agent puts one probe on the wire: which raw socket, which header, which options.

A probe is sent on a raw socket of its own protocol (the kernel builds the IP header), or,
in ICMP-only mode, with a header we build on an IPPROTO_RAW socket so that no raw socket
of the probed protocol exists on the sending host to swallow the target's ICMP answer.
macOS cannot send a caller-built IPv6 header (xnu has no IPV6_HDRINCL), so there an
ICMP-only IPv6 probe goes out on a socket of its own protocol after all; a target on this
very host then hands the probe to that socket (bsd/netinet6/raw_ip6.c:rip6_input) instead
of answering "unrecognized next header", and the probe is marked as one no ICMP can
answer, for a `no-answer` verdict rather than a wrong `lost`.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

from hdp import rawsock
from hdp.agent.messages import ProbeSpec
from hdp.osnet import current
from hdp.wire import ipv4, ipv6


def sender_key(probe: ProbeSpec) -> tuple[int, int, bool]:
    """The (family, protocol, header_included) of the socket that sends `probe`."""
    if probe.header_included and (probe.family == 4 or current().ipv6_hdrincl is not None):
        return (probe.family, rawsock.IPPROTO_RAW, True)
    return (probe.family, probe.protocol, False)


def icmp_possible(probe: ProbeSpec, sender: rawsock.RawSocket) -> bool:
    """False for an ICMP-only probe whose answer our own socket is bound to swallow: one
    sent on a socket of its own protocol to an address of this host."""
    if not probe.header_included or sender.header_included:
        return True
    from hdp.netinfo import is_local

    return not is_local(probe.dst)


def send_probe(sender: rawsock.RawSocket, probe: ProbeSpec, src: str,
               body: bytes) -> rawsock.SendResult:
    """Send `body` as `probe` asks: behind our own IP header on a header-included socket,
    else with the probe's TOS / traffic class, TTL / hop limit and DF set for this one send."""
    if sender.header_included:
        return sender.send(with_ip_header(probe, src, body), probe.dst)
    return _send_with_options(sender, body, probe)


def _send_with_options(sender: rawsock.RawSocket, body: bytes,
                       probe: ProbeSpec) -> rawsock.SendResult:
    """Send with the probe's TOS / traffic class, TTL / hop limit and DF, then restore the
    socket's defaults.

    A DF mode the OS lacks is a refusal (ENOPROTOOPT), never another OS's option number.
    """
    if not probe.tos and probe.df is None and probe.ttl is None:
        return sender.send(body, probe.dst)
    v4 = probe.family == 4
    level = socket.IPPROTO_IP if v4 else socket.IPPROTO_IPV6
    tos_name = socket.IP_TOS if v4 else socket.IPV6_TCLASS
    # IP_TTL and IPV6_UNICAST_HOPS are POSIX names: the socket module has this OS's numbers.
    ttl_name = socket.IP_TTL if v4 else socket.IPV6_UNICAST_HOPS
    table = current()
    control = table.ipv4_dont_fragment if v4 else table.ipv6_dont_fragment
    mode = None if probe.df is None else "do" if probe.df else "dont"
    if mode is not None and (control is None or mode not in control.values):
        return rawsock.SendResult(False, 0, 0, rawsock.OsRefusal(
            "ENOPROTOOPT", f"{table.system} cannot set DF mode {mode!r} on a raw socket"))
    if probe.tos:
        sender.sock.setsockopt(level, tos_name, probe.tos)
    # Back to the default afterwards: IPv6 has -1 for "the route's" (RFC 3493); IPv4 the
    # value the socket had.
    default_ttl = None if probe.ttl is None else -1 if not v4 else \
        sender.sock.getsockopt(level, ttl_name)
    if probe.ttl is not None:
        sender.sock.setsockopt(level, ttl_name, probe.ttl)
    if mode is not None and control is not None:
        # DO: too big means EMSGSIZE or ICMP too-big; DONT: routers may cut it.
        sender.sock.setsockopt(control.option.level, control.option.name,
                               control.values[mode])
    try:
        return sender.send(body, probe.dst)
    finally:
        sender.sock.setsockopt(level, tos_name, 0)
        if default_ttl is not None:
            sender.sock.setsockopt(level, ttl_name, default_ttl)
        if mode is not None and control is not None:
            sender.sock.setsockopt(control.option.level, control.option.name,
                                   control.values[control.default])


def with_ip_header(probe: ProbeSpec, src: str, body: bytes) -> bytes:
    """The whole packet for a header-included send; ident marks the case in ICMP quotes."""
    wire = probe.protocol & 0xFF
    dscp, ecn = probe.tos >> 2, probe.tos & 3
    if probe.family == 4:
        header = ipv4.IPv4Header(src=IPv4Address(src), dst=IPv4Address(probe.dst),
                                 protocol=wire, identification=probe.ident & 0xFFFF,
                                 dscp=dscp, ecn=ecn, ttl=64 if probe.ttl is None else probe.ttl)
        return ipv4.encode(header, body)
    header6 = ipv6.IPv6Header(src=IPv6Address(src.split("%")[0]),
                              dst=IPv6Address(probe.dst.split("%")[0]),
                              next_header=wire, flow_label=probe.ident & 0xFFFFF,
                              dscp=dscp, ecn=ecn,
                              hop_limit=64 if probe.ttl is None else probe.ttl)
    return ipv6.encode(header6, body)
