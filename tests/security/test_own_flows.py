"""Who the agent takes its caller for, and what a capture shows one that is not root: its
own flows, nothing else.

Packets are built with the project's codecs and judged by the same policy the agent
applies when such a caller stops a capture (hdp.agent.powers.OwnFlows).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from hdp.agent.powers import Caller, OwnFlows
from hdp.capture import Captured
from hdp.probe import PayloadKind, Probe, encode_probe
from hdp.wire import icmp, ipv4, ipv6, udp
from hdp.wire.fragment import fragment_ipv4
from hdp.wire.hdp import ProbeTag

ME, PEER, OTHER = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def _captured(data: bytes) -> Captured:
    return Captured(0, False, "lo", 1, 0, data[0] >> 4, data, len(data))


def _udp4(src: str, sport: int, dst: str, dport: int, data: bytes = b"x" * 32,
          ident: int = 1) -> bytes:
    header = ipv4.IPv4Header(src=IPv4Address(src), dst=IPv4Address(dst), protocol=17,
                             identification=ident)
    return ipv4.encode(header, udp.encode(sport, dport, data, src, dst))


def _flows() -> OwnFlows:
    own = OwnFlows()
    own.socket_opened(17, ME, 40000)
    own.socket_opened(136, "0.0.0.0", 41000)
    return own


def test_datagrams_of_our_sockets_are_kept_and_others_are_not():
    own = _flows()
    mine = [_udp4(ME, 40000, PEER, 9), _udp4(PEER, 9, ME, 40000)]
    theirs = [_udp4(OTHER, 40000, PEER, 9),  # our port, another address
              _udp4(PEER, 5353, OTHER, 5353), _udp4(ME, 40001, PEER, 9)]
    packets = [_captured(p) for p in (*mine, *theirs)]
    assert [p.data for p in own.keep(packets)] == mine


def test_later_fragments_follow_their_first_fragment_whatever_the_order():
    own = _flows()

    def pieces(src: str, sport: int, ident: int) -> list[bytes]:
        header = ipv4.IPv4Header(src=IPv4Address(src), dst=IPv4Address(PEER), protocol=17,
                                 identification=ident)
        return fragment_ipv4(header, udp.encode(sport, 9, b"y" * 3000, src, PEER), 1500)
    mine, theirs = pieces(ME, 40000, 77), pieces(OTHER, 5000, 78)
    assert len(mine) == 3
    packets = [_captured(p) for p in (mine[2], theirs[1], mine[1], theirs[0], mine[0])]
    assert [p.data for p in own.keep(packets)] == [mine[2], mine[1], mine[0]]


def test_icmp_errors_are_kept_only_when_they_quote_our_own_packets():
    own = _flows()

    def unreachable(quoted: bytes) -> bytes:
        message = icmp.encode(3, 3, quoted[:28], family=4)
        return ipv4.encode(ipv4.IPv4Header(src=IPv4Address(PEER), dst=IPv4Address(ME),
                                           protocol=1), message)
    ours = unreachable(_udp4(ME, 40000, PEER, 9))
    theirs = unreachable(_udp4(OTHER, 5000, PEER, 9))
    assert [p.data for p in own.keep([_captured(ours), _captured(theirs)])] == [ours]


def test_tagged_probes_of_our_runs_and_quotes_of_our_headers_are_kept():
    own = _flows()
    own.runs.add(7)

    def probe(run: int) -> bytes:
        body = encode_probe(Probe(PayloadKind.HDP, b"z" * 16, ProbeTag(run, 1)), "::1", "::1")
        return ipv6.encode(ipv6.IPv6Header(src=IPv6Address("::1"), dst=IPv6Address("::1"),
                                           next_header=253), body)
    ours, theirs = probe(7), probe(8)
    assert [p.data for p in own.keep([_captured(ours), _captured(theirs)])] == [ours]
    # A header-included probe's ICMP quote carries no tag: its (dst, protocol, ident) does.
    own.probe_sent(7, "127.0.0.2", 253, 1234)
    assert own.quote_is_ours("127.0.0.2", 253, 1234)
    assert not own.quote_is_ours("127.0.0.2", 253, 1235)


def test_unreadable_packets_are_never_shown():
    assert OwnFlows().keep([_captured(b"\x45\x00"), _captured(b"\x60" + bytes(10))]) == []


@pytest.mark.parametrize(("environ", "root", "uid"), [
    ({}, True, None),
    ({"SUDO_UID": "0"}, True, None),  # root itself went through sudo
    ({"SUDO_UID": "65534"}, False, 65534),
    ({"SUDO_UID": "x"}, False, None),  # unreadable: not root
    ({"PKEXEC_UID": "1000"}, False, 1000),
    ({"DOAS_USER": "nobody"}, False, 65534),
    ({"DOAS_USER": "root"}, True, None),
])
def test_the_caller_is_root_unless_a_privilege_tool_says_otherwise(environ, root, uid):
    assert Caller.from_environment(environ) == Caller(root, uid)
