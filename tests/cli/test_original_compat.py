"""Wire compatibility with the original HDP client and server (DESIGN.md, "HDP on the wire").

The original header is `struct.pack("!HHQ", 420, 420, time.time_ns())` right after a
kernel-built IP header (IP_HDRINCL off), then the text, with no length and no checksum.
These tests build and parse that format here, independently of hdp.wire, on protocols
254, 252 and 143, which no other test uses.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time

import pytest

from tests.cli.helpers import cowsay, receive_carrying, records_with, run_hdp, sender_rows

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
