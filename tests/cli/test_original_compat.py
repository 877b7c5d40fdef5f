"""Wire compatibility with the original HDP client and server (DESIGN.md, "HDP on the wire").

The original header is `struct.pack("!HHQ", 420, 420, time.time_ns())` right after a
kernel-built IP header (IP_HDRINCL off), then the text, with no length and no checksum.
These tests build and parse that format here, independently of hdp.wire, on protocols
254, 252 and 143, which no other test uses.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import time

import pytest

from tests.cli.helpers import (
    LISTENER_HEADER,
    Listener,
    cowsay,
    hdp_command,
    receive_carrying,
    records_with,
    run_hdp,
    sender_rows,
    table_rows,
)
from tests.conftest import requires_raw, requires_raw_v6

ORIGINAL = struct.Struct("!HHQ")  # src port, dst port, ns timestamp: the original client's
IPV4_HEADER = 20  # the original server skips exactly this much


def _af(family: int) -> socket.AddressFamily:
    return socket.AF_INET if family == 4 else socket.AF_INET6


def _address(loopback: str, family: int) -> tuple:
    return (loopback, 0) if family == 4 else (loopback, 0, 0, 0)


def test_listen_decodes_the_original_clients_packet(listen, family, loopback):
    token = f"orig-{secrets.token_hex(6)}"
    text = cowsay(f"from the original client {token}").encode("ascii")
    stamp = time.time_ns()
    packet = ORIGINAL.pack(420, 420, stamp) + text
    listener = listen(254, family=family, count=1)
    with socket.socket(_af(family), socket.SOCK_RAW, 254) as client:
        if family == 4:
            assert client.getsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL) == 0
        assert client.sendto(packet, _address(loopback, family)) == len(packet)
    heard = listener.finish()

    assert heard.returncode == 0, heard.describe()
    found = records_with(heard.stdout, token)
    assert len(found) == 1, heard.describe()
    record = found[0]
    f = record.fields
    assert f.get("Protocol", f.get("Next Header")) == "254", record.text
    if family == 4:
        assert int(f["Total Length"]) == IPV4_HEADER + len(packet), record.text
    assert "~~~ HDP Header & Data ~~~" in record.sections, record.text
    assert (f["Source Port"], f["Destination Port"]) == ("420", "420"), record.text
    assert f["Timestamp"] == str(stamp), record.text
    assert not any(line.startswith("Probe Tag") for line in record.text.splitlines()), \
        "the original client sends no probe tag" + heard.describe()
    assert "Decode error" not in f, record.text
    assert record.data == text.decode("ascii"), record.text


def _original_server_parse(datagram: bytes, family: int) -> tuple[int, int, int, bytes]:
    """What the original server does with a received datagram."""
    if family == 4:  # an IPv4 raw socket hands over the IP header too
        assert datagram[0] == 0x45, f"not a 20-byte IPv4 header: {datagram[:20].hex()}"
        datagram = datagram[IPV4_HEADER:]
    src_port, dst_port, stamp = ORIGINAL.unpack_from(datagram)
    return src_port, dst_port, stamp, datagram[ORIGINAL.size:]


@pytest.mark.parametrize(("protocol", "plain"), [(252, True), (143, False)],
                         ids=["plain", "tagged"])
def test_original_server_accepts_what_hdp_send_sends(family, loopback, protocol, plain):
    token = f"srv-{secrets.token_hex(6)}".encode()
    # Bytes a text-only tool would mangle: the original server takes them as they are.
    data = b"\x00\x01binary\xff\xfe " + token + b"\r\n\t\x7f" + cowsay("moo").encode()
    with socket.socket(_af(family), socket.SOCK_RAW, protocol) as server:
        before = time.time_ns()
        sent = run_hdp("send", loopback, "--protocol", protocol,
                       *(["--plain"] if plain else []), stdin=data)
        after = time.time_ns()
        datagram = receive_carrying(server, token)

    assert sent.returncode == 0, sent.describe()
    (row,) = sender_rows(sent)
    src_port, dst_port, stamp, body = _original_server_parse(datagram, family)
    assert (src_port, dst_port) == (420, 420)
    slack = 5_000_000_000
    assert before - slack <= stamp <= after + slack, \
        f"timestamp {stamp} is not the time of the send ({before}..{after})"
    if plain:
        assert body == data, "--plain must carry stdin byte for byte after the 12-byte header"
        assert int(row[3]) == ORIGINAL.size + len(data), sent.describe()
    else:
        # The probe tag sits inside what the original server calls its data.
        assert len(body) == 20 + len(data) and body.endswith(data), body
        assert int(row[3]) == ORIGINAL.size + 20 + len(data), sent.describe()
    if family == 4:
        assert len(datagram) == IPV4_HEADER + int(row[3]), "nothing after the payload"


# --- the write-up's columns -----------------------------------------------------------------


def _original_server_sizes(server: socket.socket, count: int, keep) -> list[int]:
    """What the original server logs as "Byte Sum (Server)": recv()'s size, for the first
    `count` packets `keep` accepts (others on the protocol are someone else's)."""
    server.settimeout(0.2)
    sizes: list[int] = []
    deadline = time.monotonic() + 10
    while len(sizes) < count and time.monotonic() < deadline:
        try:
            datagram = server.recv(65535)
        except TimeoutError:
            continue
        if keep(datagram):
            sizes.append(len(datagram))
    return sizes


@requires_raw
def test_byte_sum_is_counted_as_the_original_server_counted_it_ipv4():
    """The issue's figures: 13 and 14 bytes sent; the original server logs 33 and 34."""
    source = "127.0.0.8"  # bound by this test alone: the --from filter keeps its packets
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 149) as server:
        listener = Listener(hdp_command("listen", "-p", 149, "--format", "table",
                                        "--from", source, "--count", 2, "--timeout", 10))
        try:
            listener.wait_ready()
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, 149) as client:
                client.bind((source, 0))
                for data in (b"a", b"ab"):
                    packet = ORIGINAL.pack(420, 420, time.time_ns()) + data
                    assert client.sendto(packet, ("127.0.0.1", 0)) == len(packet) in (13, 14)
            heard = listener.finish()
        finally:
            listener.stop()
        original = _original_server_sizes(
            server, 2, lambda d: socket.inet_ntoa(d[12:16]) == source)
    assert original == [33, 34]
    rows = table_rows(heard.stdout, LISTENER_HEADER)
    assert [int(row[3]) for row in rows] == original, heard.describe()


@requires_raw_v6
def test_byte_sum_is_counted_as_the_original_server_counted_it_ipv6():
    """An IPv6 raw socket hands over no header: the original counted the payload alone."""
    token = secrets.token_hex(6).encode()
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, 149) as server:
        listener = Listener(hdp_command("listen", "-p", 149, "--family", 6, "--format", "json",
                                        "--timeout", 10))
        try:
            listener.wait_ready()
            with socket.socket(socket.AF_INET6, socket.SOCK_RAW, 149) as client:
                packet = ORIGINAL.pack(420, 420, time.time_ns()) + token
                client.sendto(packet, ("::1", 0, 0, 0))
            listener.wait_stdout(token.decode())
            listener.interrupt()
            heard = listener.finish()
        finally:
            listener.stop()
        original = _original_server_sizes(server, 1, lambda d: token in d)
    ours = [json.loads(line) for line in heard.stdout.splitlines() if token.decode() in line]
    assert [packet["byte_sum"] for packet in ours] == original == [12 + len(token)]
