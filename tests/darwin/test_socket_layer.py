"""pytest-hdp's macOS code paths, one socket call at a time, under the xnu model.

Each test puts a rule of xnu (tests/darwin/rules.py) in front of the code that must cope
with it and checks what a user would: a listener that opens, a send that goes out, a
capability named as missing instead of another OS's option number. Packets go to
127.0.0.1 and ::1 only.
"""

from __future__ import annotations

import errno
import socket
import struct
import time

import pytest

from hdp import osnet, rawsock
from hdp.agent.icmp_watch import icmp_event, network_order_quote
from hdp.agent.messages import UdpOpen
from hdp.agent.socket_ops import _os_options, path_mtu, read_counters
from hdp.capture import Capture
from hdp.wire import icmp, ipv4
from hdp.wire.hdp import Carrier, ProbeTag, encode_tagged
from tests.darwin import rules
from tests.darwin.conftest import requires_model

pytestmark = [requires_model, pytest.mark.usefixtures("xnu_model")]


def _refused(opened: object) -> str:
    assert isinstance(opened, rawsock.OsRefusal), opened
    return opened.errno_name


def test_the_model_says_darwin_and_lacks_af_packet():
    assert osnet.current().system == "darwin"
    assert not hasattr(socket, "AF_PACKET")
    assert socket.SOL_SOCKET == 0xFFFF and socket.IPV6_RECVPKTINFO == 61
    refusal = Capture.open(protocol=17)
    assert isinstance(refusal, rawsock.OsRefusal) and refusal.errno_name == "EAFNOSUPPORT"
    assert "AF_PACKET" in refusal.message and "BPF" in refusal.message


@pytest.mark.parametrize(("family", "protocol", "errno_name"), [
    (4, 256, "EINVAL"),  # raw_ip.c:rip_attach
    (4, 50, "EOPNOTSUPP"), (4, 51, "EOPNOTSUPP"),  # in_proto.c: nousrreqs
    (6, 43, "EOPNOTSUPP"), (6, 44, "EOPNOTSUPP"), (6, 60, "EOPNOTSUPP"),  # in6_proto.c
])
def test_socket_refusals_are_xnus(family, protocol, errno_name):
    assert _refused(rawsock.open_listener(family, protocol)) == errno_name


def test_listener_falls_back_from_enobufs_to_the_largest_buffer_xnu_grants():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain, \
            pytest.raises(OSError) as refused:
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rawsock.RECEIVE_BUFFER)
    assert refused.value.errno == errno.ENOBUFS  # 8 MiB > sbreserve's ~7.1 MiB
    listener = rawsock.open_listener(4, 253)
    assert isinstance(listener, rawsock.RawSocket), listener
    with listener:
        granted = listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert granted == rawsock.RECEIVE_BUFFER // 2 <= rules.RCVBUF_LIMIT


def test_header_included_ipv4_goes_out_in_host_order_and_arrives():
    """A caller-built IPv4 header: network order is EINVAL on xnu; ours is sent."""
    packet = ipv4.encode(ipv4.IPv4Header(src="127.0.0.1", dst="127.0.0.1", protocol=253,
                                         identification=4242), b"host-order probe " * 4)
    sender = rawsock.RawSocket.open(4, rawsock.IPPROTO_RAW, listen=False,
                                    header_included=True)
    listener = rawsock.open_listener(4, 253)
    assert isinstance(sender, rawsock.RawSocket) and isinstance(listener, rawsock.RawSocket)
    with sender, listener:
        with pytest.raises(OSError) as refused:
            sender.sock.sendto(packet, ("127.0.0.1", 0))  # as Linux takes it
        assert refused.value.errno == errno.EINVAL
        result = sender.send(packet, "127.0.0.1")
        assert result.ok, result.refusal
        got = [r for r in rawsock.receive_until([listener], time.monotonic() + 2.0)
               if ipv4.decode(r.data, ipv4.RawQuirk.BSD).header.identification == 4242]
    assert got, "the header-included probe never arrived"
    header = ipv4.decode(got[0].data, osnet.current().raw_quirk).header
    assert header.total_length == len(packet) and header.protocol == 253


def test_caller_built_ipv6_headers_are_refused_as_unavailable():
    refusal = rawsock.RawSocket.open(6, rawsock.IPPROTO_RAW, listen=False,
                                     header_included=True)
    assert _refused(refusal) == "ENOPROTOOPT"
    assert "IPV6_HDRINCL" in str(refusal)


@pytest.mark.parametrize(("family", "mode", "df"), [(4, "do", 1), (4, "dont", 0),
                                                   (6, "do", 1), (6, "dont", 0)])
def test_dont_fragment_modes_map_to_dontfrag(family, mode, df):
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    with socket.socket(af, socket.SOCK_DGRAM) as sock:
        _os_options(sock, family, UdpOpen(family=family, pmtudisc=mode))
        level = socket.IPPROTO_IP if family == 4 else socket.IPPROTO_IPV6
        name = 28 if family == 4 else socket.IPV6_DONTFRAG  # IP_DONTFRAG: not in Python
        assert sock.getsockopt(level, name) == df


def test_options_macos_lacks_are_refused_not_misread():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError) as want:
            _os_options(sock, 4, UdpOpen(family=4, pmtudisc="want"))  # no PMTU discovery for UDP
        assert want.value.errno == errno.ENOPROTOOPT
        with pytest.raises(OSError) as lite:
            _os_options(sock, 4, UdpOpen(family=4, protocol=136, send_cscov=20))
        assert lite.value.errno == errno.ENOPROTOOPT
        with pytest.raises(OSError) as linux_number:  # SO_NO_CHECK's number, at xnu's level
            sock.setsockopt(socket.SOL_SOCKET, 11, 1)
        assert linux_number.value.errno == errno.ENOPROTOOPT
        _os_options(sock, 4, UdpOpen(family=4, no_check=True))  # UDP_NOCKSUM


def test_path_mtu_ipv6_only():
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4:
        v6.connect(("::1", 9))
        v4.connect(("127.0.0.1", 9))
        assert path_mtu(v4, 4) is None  # no IP_MTU on macOS
        assert path_mtu(v6, 6) == 65536  # IPV6_PATHMTU's struct ip6_mtuinfo, on lo


def test_counters_come_from_sysctl_udpstat():
    counters = read_counters()
    assert counters["Udp.InCsumErrors"] == counters["udpstat.udps_badsum"]
    assert counters["6.Udp6InCsumErrors"] == counters["udpstat.udps_badsum"]


def test_drops_are_unknown_without_so_meminfo():
    listener = rawsock.open_listener(4, 253)
    assert isinstance(listener, rawsock.RawSocket)
    with listener:
        assert listener.drops() is None


def test_icmp_error_quote_is_read_back_in_network_order():
    """icmp_input leaves the quoted ip_len in host order; the ICMP watch restores it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # free again once closed: nobody listens on it
    data = encode_tagged(ProbeTag(0x5EED, 7, carrier=Carrier.UDP), b"closed port " * 8)
    watch = rawsock.open_listener(4, 1)
    assert isinstance(watch, rawsock.RawSocket)
    with watch, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(data, ("127.0.0.1", port))
        answers = [r for r in rawsock.receive_until([watch], time.monotonic() + 2.0)
                   if _port_unreachable_for(r, port)]
    assert answers, "no ICMP port unreachable reached the raw ICMP listener"
    message = ipv4.decode(answers[0].data, osnet.current().raw_quirk).payload
    sent = 20 + 8 + len(data)
    assert struct.unpack_from("=H", message, 10)[0] == sent  # host order, as xnu leaves it
    quote = icmp.quoted_probe(icmp.decode(network_order_quote(message), 4))
    assert quote.total_length == sent
    event = icmp_event(answers[0], {0x5EED})
    assert event is not None and (event["type"], event["code"], event["case"]) == (3, 3, 7)


def _port_unreachable_for(received: rawsock.Received, port: int) -> bool:
    message = ipv4.decode(received.data, ipv4.RawQuirk.BSD).payload
    return message[:2] == b"\x03\x03" and message[30:32] == struct.pack("!H", port)
