"""UDP servers' bindings as the chapter states them (10.11): which endpoint gets a datagram."""

from __future__ import annotations

import pytest

from hdp import netinfo
from hdp.checks.support import ENOUGH, MARK, WAIT, payload, receive_tagged, tag

WILDCARD = {4: "0.0.0.0", 6: "::"}
HELLO, WANTED = tag(b"HELLO"), tag(b"WANTED")
LOOPBACK = {4: "127.0.0.1", 6: "::1"}


def _other_local_address(hdp_path) -> str:
    """A second address of the receiving host, other than the one the path reaches."""
    if hdp_path.dst not in LOOPBACK.values():
        return LOOPBACK[hdp_path.family]
    other = netinfo.other_loopback(hdp_path.family, hdp_path.dst)
    if other is None:  # macOS's lo0 answers only for its own addresses, unlike Linux's 127/8
        pytest.skip(f"{hdp_path.id}: this host has no second loopback address (on macOS: "
                    "sudo ifconfig lo0 alias 127.0.0.2); run on a lab path (--hdp-lab)")
    return other


def _bind(hdp_path, address, port, **options):
    opened = hdp_path.receiver.open_udp(hdp_path.family, bind=address, port=port, **options)
    return opened


def _free_port(hdp_path) -> int:
    opened = _bind(hdp_path, WILDCARD[hdp_path.family], 0)
    hdp_path.receiver.close(opened.handle)
    return int(opened.port)


def _which(hdp_path, handles, *, via, dst, port):
    """Send one marked datagram from `via` (an endpoint) to dst:port; which handle got it."""
    sender = via.open_udp(hdp_path.family)
    via.send(sender.handle, data=payload(48), dst=dst, port=port)
    via.close(sender.handle)
    got = receive_tagged(hdp_path, list(handles.values()))
    names = [name for name, handle in handles.items() if any(d.handle == handle for d in got)]
    return names[0] if len(names) == 1 else "both" if names else "none"


@pytest.mark.hdp_check("bind-specific-beats-wildcard")
def test_specific_address_wins(hdp_path, hdp_check):
    port = _free_port(hdp_path)
    wildcard = _bind(hdp_path, WILDCARD[hdp_path.family], port, reuseaddr=True)
    specific = _bind(hdp_path, hdp_path.dst, port, reuseaddr=True)
    assert wildcard.ok and specific.ok, (wildcard, specific)
    answer = _which(hdp_path, {"wildcard": wildcard.handle, "specific": specific.handle},
                    via=hdp_path.sender, dst=hdp_path.dst, port=port)
    hdp_path.receiver.close(wildcard.handle, specific.handle)
    hdp_check.observe(answer, f"to {hdp_path.dst}:{port}")


@pytest.mark.hdp_check("bind-wildcard-gets-the-rest")
def test_wildcard_gets_the_rest(hdp_path, hdp_check):
    other = _other_local_address(hdp_path)
    port = _free_port(hdp_path)
    wildcard = _bind(hdp_path, WILDCARD[hdp_path.family], port, reuseaddr=True)
    specific = _bind(hdp_path, hdp_path.dst, port, reuseaddr=True)
    assert wildcard.ok and specific.ok, (wildcard, specific)
    answer = _which(hdp_path, {"wildcard": wildcard.handle, "specific": specific.handle},
                    via=hdp_path.receiver, dst=other, port=port)
    hdp_path.receiver.close(wildcard.handle, specific.handle)
    hdp_check.observe(answer, f"to {other}:{port}, the specific endpoint on {hdp_path.dst}")


@pytest.mark.hdp_check("bind-same-address-twice")
def test_same_address_twice_refused(hdp_path, hdp_check):
    hdp_check.observe(*_second_bind(hdp_path, hdp_path.dst))


@pytest.mark.hdp_check("bind-shared-port-needs-reuseaddr")
def test_shared_port_without_reuseaddr(hdp_path, hdp_check):
    hdp_check.observe(*_second_bind(hdp_path, _other_local_address(hdp_path)))


def _second_bind(hdp_path, address):
    """Bind the path's address, then `address`, to one port without SO_REUSEADDR: the
    second bind's answer (bound, or its errno) and what was tried."""
    port = _free_port(hdp_path)
    first = _bind(hdp_path, hdp_path.dst, port)
    second = _bind(hdp_path, address, port)
    hdp_path.receiver.close(first.handle, second.handle)
    assert first.ok, first
    return ("bound" if second.ok else str(second.errno),
            f"{hdp_path.dst}:{port} then {address}:{port}, no SO_REUSEADDR")


@pytest.mark.hdp_check("bind-reuseaddr-shares-port")
def test_reuseaddr_shares_port(hdp_path, hdp_check):
    other = _other_local_address(hdp_path)
    port = _free_port(hdp_path)
    opened = [_bind(hdp_path, address, port, reuseaddr=True)
              for address in (hdp_path.dst, other, WILDCARD[hdp_path.family])]
    hdp_path.receiver.close(*(o.handle for o in opened))
    refused = [o.errno for o in opened if not o.ok]
    hdp_check.observe(str(refused[0]) if refused else "bound",
                      f"{hdp_path.dst}, {other} and the wildcard on port {port}")


@pytest.mark.hdp_check("bind-v6-wildcard-receives-ipv4", families=[4])
def test_ipv6_wildcard_receives_ipv4(hdp_path, hdp_check):
    """An IPv4 datagram over the path reaches an IPv6 wildcard socket (as ::ffff:a.b.c.d)."""
    opened = hdp_path.receiver.open_udp(6, bind="::", port=0, v6only=False)
    if not opened.ok:
        pytest.skip(f"{hdp_path.id}: no IPv6 socket on the receiver ({opened.errno})")
    sender = hdp_path.sender.open_udp(4)
    hdp_path.sender.send(sender.handle, data=payload(48), dst=hdp_path.dst, port=opened.port)
    hdp_path.sender.close(sender.handle)
    got = receive_tagged(hdp_path, opened.handle)
    hdp_path.receiver.close(opened.handle)
    hdp_check.observe("received" if got else "not-received",
                      f"from {got[0].src}" if got else "nothing within 2 s")


@pytest.mark.hdp_check("bind-v6only-excludes-ipv4", families=[4])
def test_v6only_excludes_ipv4(hdp_path, hdp_check):
    """With IPV6_V6ONLY an IPv4 socket can share the port, and it gets the IPv4 datagram."""
    v6 = hdp_path.receiver.open_udp(6, bind="::", port=0, v6only=True)
    if not v6.ok:
        pytest.skip(f"{hdp_path.id}: no IPv6 socket on the receiver ({v6.errno})")
    v4 = hdp_path.receiver.open_udp(4, bind="0.0.0.0", port=v6.port)
    assert v4.ok, f"IPv4 wildcard beside an IPV6_V6ONLY socket on {v6.port}: {v4.errno}"
    answer = _which(hdp_path, {"v6": v6.handle, "v4": v4.handle}, via=hdp_path.sender,
                    dst=hdp_path.dst, port=v6.port)
    hdp_path.receiver.close(v6.handle, v4.handle)
    hdp_check.observe({"v4": "not-received", "v6": "received"}.get(answer, answer),
                      f"the IPv4 datagram went to: {answer}")


@pytest.mark.hdp_check("bind-connected-ignores-others")
def test_connected_socket_ignores_other_sources(hdp_path, hdp_check):
    """A socket connected to one peer (as the receiver sees it, NAT or not) shares the
    port with an unconnected one: datagrams from another source port go to the latter."""
    family = hdp_path.family
    wanted = hdp_path.sender.open_udp(family, bind="", port=0)
    other = hdp_path.sender.open_udp(family, bind="", port=0)
    server = _bind(hdp_path, hdp_path.dst, 0, reuseaddr=True)
    hdp_path.sender.send(wanted.handle, data=payload(32, HELLO), dst=hdp_path.dst,
                         port=server.port)
    hello = receive_tagged(hdp_path, server.handle, HELLO)
    assert hello, f"{hdp_path.id}: no datagram from the sender arrived"
    peer = (hello[0].src, hello[0].port)
    connected = hdp_path.receiver.open_udp(family, bind=hdp_path.dst, port=server.port,
                                           reuseaddr=True, connect=peer)
    assert connected.ok, connected
    hdp_path.sender.send(other.handle, data=payload(48), dst=hdp_path.dst, port=server.port)
    hdp_path.sender.send(wanted.handle, data=payload(48, WANTED), dst=hdp_path.dst,
                         port=server.port)
    got = hdp_path.receiver.receive(connected.handle, count=ENOUGH, timeout=WAIT,
                                    until=WANTED)
    hdp_path.sender.close(wanted.handle, other.handle)
    hdp_path.receiver.close(server.handle, connected.handle)
    assert any(d.head.startswith(WANTED) for d in got), (
        f"{hdp_path.id}: the connected peer's own datagram did not reach the connected socket")
    hdp_check.observe("received" if any(d.head.startswith(MARK) for d in got) else "ignored",
                      f"connected to {peer[0]}:{peer[1]} as the receiver sees it; another "
                      f"source port sent too")
