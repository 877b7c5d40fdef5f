"""`hdp send` to `hdp listen` on loopback: what the user sees on both sides.

Each test has a protocol number of its own in this file: 250 (dump), 251 (table), 146
(--count), 145 (--plain), 142 (scoped address), 17 (--udp). Nothing else on the host is
kept off them (another run of these tests, say), so a listener may print other packets
too: each test finds its own by the token in its payload or by its probe tag, then stops
the listener with Ctrl-C, as a user would.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import struct
import sys
import time

import pytest

from hdp import rawsock
from tests.cli.helpers import (
    LISTENER_HEADER,
    Record,
    Result,
    cowsay,
    receive_carrying,
    records_with,
    rfc1071,
    run_hdp,
    sender_rows,
    table_rows,
)
from tests.conftest import requires_raw_v6

HDP_HEADER = 12
PROBE_TAG = 20
UDP_HEADER = 8
SLACK_NS = 5_000_000_000  # "within a few seconds of now"
MANY = 1000  # a listener's --count: it is stopped with Ctrl-C once the test's packets are in
LISTEN_WAIT = 10.0  # seconds for the test's packet to reach a raw socket of its own


def _payload() -> tuple[str, bytes]:
    token = f"hdp-cli-{secrets.token_hex(6)}"
    return token, cowsay(f"moo {token}").encode()


def _assert_recent_ns(value: int, before_ns: int, after_ns: int, what: str) -> None:
    assert before_ns - SLACK_NS <= value <= after_ns + SLACK_NS, (
        f"{what} {value} is not within a few seconds of now ({before_ns}..{after_ns})")


def _one_sender_row(sent: Result, protocol: int) -> list[str]:
    rows = sender_rows(sent)
    assert len(rows) == 1, "expected one row for one probe" + sent.describe()
    assert rows[0][0] == str(protocol), sent.describe()
    return rows[0]


def _stop_after(listener, *texts: str) -> Result:
    """Wait until each of `texts` shows in the listener's output, then Ctrl-C it."""
    for text in texts:
        listener.wait_stdout(text)
    listener.interrupt()
    heard = listener.finish()
    assert heard.returncode == 130, heard.describe()
    assert "timed out" not in heard.stderr, heard.describe()
    return heard


def _only_record(stdout: str, token: str, listener: Result) -> Record:
    found = records_with(stdout, token)
    assert len(found) == 1, f"expected 1 packet carrying {token}, got {len(found)}" \
        + listener.describe()
    return found[0]


def _ipv4_header_checksum(fields: dict[str, str]) -> int:
    """Recompute the header checksum from the dumped fields (no options: IHL 5)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        (int(fields["Version"]) << 4) | int(fields["IHL"]),
        (int(fields["DSCP"]) << 2) | int(fields["ECN"]),
        int(fields["Total Length"]),
        int(fields["Identification"]),
        (int(fields["Flags"]) << 13) | int(fields["Fragment Offset"]),
        int(fields["TTL"]),
        int(fields["Protocol"]),
        0,
        ipaddress.IPv4Address(fields["Source IP"]).packed,
        ipaddress.IPv4Address(fields["Destination IP"]).packed,
    )
    return rfc1071(header)


def test_send_then_listen_dump_shows_every_field(listen, family, loopback):
    token, payload = _payload()
    listener = listen(250, family=family, count=MANY)
    before = time.time_ns()
    sent = run_hdp("send", loopback, "--protocol", 250, stdin=payload)
    heard = _stop_after(listener, token)
    after = time.time_ns()

    assert sent.returncode == 0, sent.describe()
    assert sent.stderr == "", sent.describe()
    _, ok, time_us, byte_sum, reason = _one_sender_row(sent, 250)
    assert ok == "yes", sent.describe()
    assert int(byte_sum) == HDP_HEADER + PROBE_TAG + len(payload), sent.describe()
    assert reason == "-", sent.describe()
    _assert_recent_ns(int(time_us) * 1000, before, after, "the sender's time (µs)")

    record = _only_record(heard.stdout, token, heard)
    f = record.fields
    if family == 4:
        assert record.sections[0] == "~~~ IP Header ~~~", heard.describe()
        assert (f["Version"], f["IHL"], f["DSCP"], f["ECN"]) == ("4", "5", "0", "0"), record.text
        assert int(f["Total Length"]) == 20 + int(byte_sum), record.text
        assert 0 <= int(f["Identification"]) <= 0xFFFF, record.text
        assert int(f["Flags"]) in (0, 2), f"neither DF nor no flags (MF?):\n{record.text}"
        assert f["Fragment Offset"] == "0", record.text
        assert f["TTL"] == "64", record.text
        assert f["Protocol"] == "250", record.text
        match = re.fullmatch(r"(\d+) \(valid\)", f["Header Checksum"])
        assert match, f"header checksum not shown as valid:\n{record.text}"
        assert int(match.group(1)) == _ipv4_header_checksum(f), \
            f"the dumped checksum does not match the dumped header:\n{record.text}"
    else:
        assert record.sections[0] == "~~~ IPv6 Header (from ancillary data) ~~~", heard.describe()
        assert f["Version"] == "6", record.text
        assert f["Hop Limit"] == "64", record.text
        assert f["Next Header"] == "250", record.text
        assert int(f["Payload Length"]) == int(byte_sum), record.text
    assert (f["Source IP"], f["Destination IP"]) == (loopback, loopback), record.text

    assert record.sections[1] == "~~~ HDP Header & Data ~~~", record.text
    assert (f["Source Port"], f["Destination Port"]) == ("420", "420"), record.text
    _assert_recent_ns(int(f["Timestamp"]), before, after, "the HDP timestamp")
    assert re.fullmatch(r"run [0-9a-f]{8}, case 0, probe 0, intact", f["Probe Tag"]), record.text
    assert "Decode error" not in f, record.text
    assert record.data == payload.decode(), record.text


def _kernel_time_us(tap: rawsock.RawSocket, token: str) -> int:
    """The kernel's receive time (µs) of the packet carrying `token`, as `tap` got it."""
    deadline = time.monotonic() + LISTEN_WAIT
    for received in rawsock.receive_until([tap], deadline):
        if token.encode() in received.data and received.kernel_time_ns is not None:
            return received.kernel_time_ns // 1000
    pytest.fail(f"no packet carrying {token!r} reached a raw socket within {LISTEN_WAIT} s",
                pytrace=False)


def test_listen_table_has_one_row_per_packet(listen, family, loopback):
    token, payload = _payload()
    listener = listen(251, family=family, count=MANY, fmt="table")
    # A row shows no tag; a raw socket of our own sees the same packets and finds ours by
    # its token. Both read the kernel's one receive stamp of it, the row's time column.
    tap = rawsock.open_listener(family, 251)
    assert isinstance(tap, rawsock.RawSocket), f"a second raw socket on 251: {tap}"
    try:
        before = time.time_ns()
        sent = run_hdp("send", loopback, "--protocol", 251, stdin=payload)
        stamp = _kernel_time_us(tap, token)
    finally:
        tap.close()
    heard = _stop_after(listener, f"| 251 | {stamp} |")
    after = time.time_ns()

    assert sent.returncode == 0, sent.describe()
    byte_sum = _one_sender_row(sent, 251)[3]
    rows = [row for row in table_rows(heard.stdout, LISTENER_HEADER) if row[1] == str(stamp)]
    assert len(rows) == 1, "one packet, one row" + heard.describe()
    protocol, time_us, source, count = rows[0]
    assert protocol == "251", heard.describe()
    _assert_recent_ns(int(time_us) * 1000, before, after, "the listener's time (µs)")
    assert source == loopback, heard.describe()
    # The listener's Byte Sum counts as the original server's did: what the raw socket read,
    # the IPv4 header included; the client's Byte sum is what send() took.
    ip_header = 20 if family == 4 else 0
    assert int(byte_sum) == HDP_HEADER + PROBE_TAG + len(payload), sent.describe()
    assert int(count) == int(byte_sum) + ip_header, heard.describe()


def test_count_sends_that_many_probes(listen, family, loopback):
    token, payload = _payload()
    listener = listen(146, family=family, count=MANY)
    sent = run_hdp("send", loopback, "--protocol", 146, "--count", 3, stdin=payload)
    run = _run_carrying(listener, token)
    heard = _stop_after(listener, *(f"run {run}, case 0, probe {n}, intact" for n in range(3)))

    assert sent.returncode == 0, sent.describe()
    rows = sender_rows(sent)
    assert len(rows) == 3, sent.describe()
    expected = str(HDP_HEADER + PROBE_TAG + len(payload))
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("146", "yes", expected, "-")] * 3, \
        sent.describe()

    records = records_with(heard.stdout, token)
    assert len(records) == 3, heard.describe()
    tags = [re.fullmatch(r"run ([0-9a-f]{8}), case 0, probe (\d+), intact",
                         r.fields.get("Probe Tag", "")) for r in records]
    assert all(tags), heard.describe()
    assert len({t.group(1) for t in tags if t}) == 1, "one run id for one `hdp send`"
    assert sorted(int(t.group(2)) for t in tags if t) == [0, 1, 2], heard.describe()
    assert all(r.data == payload.decode() for r in records), heard.describe()


def _run_carrying(listener, token: str) -> str:
    """The run id in the probe tag of the first packet whose payload carries `token`."""
    listener.wait_stdout(token)
    # A record is written at once, its Probe Tag line before its data: the last tag line
    # before the token is that packet's own.
    head = listener.stdout[:listener.stdout.index(token)]
    runs = re.findall(r"^Probe Tag: run ([0-9a-f]{8}), ", head, re.M)
    assert runs, "no probe tag before the token" + listener.describe()
    return runs[-1]


def test_plain_sends_without_the_probe_tag(listen, family, loopback):
    token, payload = _payload()
    listener = listen(145, family=family, count=MANY)
    sent = run_hdp("send", loopback, "--protocol", 145, "--plain", stdin=payload)
    heard = _stop_after(listener, token)

    assert sent.returncode == 0, sent.describe()
    _, ok, _, byte_sum, reason = _one_sender_row(sent, 145)
    assert (ok, int(byte_sum), reason) == ("yes", HDP_HEADER + len(payload), "-"), sent.describe()
    record = _only_record(heard.stdout, token, heard)
    assert not any(line.startswith("Probe Tag") for line in record.text.splitlines()), \
        record.text
    assert (record.fields["Source Port"], record.fields["Destination Port"]) == ("420", "420")
    assert record.data == payload.decode(), record.text


# --- --udp ----------------------------------------------------------------------------------


def _udp_checksum(src: str, dst: str, datagram: bytes) -> int:
    """RFC 768 / RFC 8200 pseudo-header checksum, independent of hdp.wire.udp."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 17, len(datagram))
    else:
        pseudo = s.packed + d.packed + struct.pack("!I3xB", len(datagram), 17)
    return rfc1071(pseudo + datagram) or 0xFFFF


def _udp_listen(listen, family: int):
    # Protocol 17 carries all the host's UDP: look for our token, then Ctrl-C the listener.
    return listen(17, family=family, count=MANY)


def test_udp_plain_checksum_is_valid_and_correct(listen, family, loopback):
    token, payload = _payload()
    listener = _udp_listen(listen, family)
    sent = run_hdp("send", loopback, "--udp", "--plain", stdin=payload)  # protocol 17 by default
    heard = _stop_after(listener, token)

    assert sent.returncode == 0, sent.describe()
    _, ok, _, byte_sum, _ = _one_sender_row(sent, 17)
    assert (ok, int(byte_sum)) == ("yes", UDP_HEADER + len(payload)), sent.describe()
    record = _only_record(heard.stdout, token, heard)
    f = record.fields
    assert "~~~ UDP Header & Data ~~~" in record.sections, record.text
    assert f.get("Protocol", f.get("Next Header")) == "17", record.text
    assert (f["Source Port"], f["Destination Port"]) == ("420", "420"), record.text
    assert int(f["Length"]) == UDP_HEADER + len(payload), record.text
    match = re.fullmatch(r"(\d+) \(valid\)", f["Checksum"])
    assert match, record.text
    datagram = struct.pack("!HHHH", 420, 420, UDP_HEADER + len(payload), 0) + payload
    assert int(match.group(1)) == _udp_checksum(loopback, loopback, datagram), record.text
    assert record.data == payload.decode(), record.text


def test_udp_tagged_checksum_verified_by_scapy(listen, family, loopback):
    scapy_inet = pytest.importorskip("scapy.layers.inet")
    scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
    token, payload = _payload()
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    listener = _udp_listen(listen, family)
    with socket.socket(af, socket.SOCK_RAW, socket.IPPROTO_UDP) as tap:
        sent = run_hdp("send", loopback, "--udp", stdin=payload)
        captured = receive_carrying(tap, token.encode())
    heard = _stop_after(listener, token)

    assert sent.returncode == 0, sent.describe()
    _, ok, _, byte_sum, _ = _one_sender_row(sent, 17)
    assert (ok, int(byte_sum)) == ("yes", UDP_HEADER + PROBE_TAG + len(payload)), sent.describe()

    udp_cls = scapy_inet.UDP
    if family == 4:
        packet = scapy_inet.IP(captured)
        on_wire = packet[udp_cls].chksum
        del packet[udp_cls].chksum
        del packet[scapy_inet.IP].chksum
        recomputed = scapy_inet.IP(bytes(packet))[udp_cls].chksum
    else:  # an IPv6 raw socket hands over the payload only
        packet = scapy_inet6.IPv6(src="::1", dst="::1", nh=17) / udp_cls(captured)
        on_wire = packet[udp_cls].chksum
        del packet[udp_cls].chksum
        recomputed = scapy_inet6.IPv6(bytes(packet))[udp_cls].chksum
    assert on_wire == recomputed, f"scapy computes {recomputed:#06x}, the wire has {on_wire:#06x}"

    record = _only_record(heard.stdout, token, heard)
    assert record.fields["Checksum"] == f"{on_wire} (valid)", record.text
    assert re.fullmatch(r"run [0-9a-f]{8}, case 0, probe 0, intact",
                        record.fields["Probe Tag"]), record.text
    assert record.data == payload.decode(), record.text


# --- scoped addresses (bug: see the report) -----------------------------------------------


@requires_raw_v6
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the loopback interface is named 'lo' on Linux")
def test_scoped_ipv6_loopback_is_delivered(listen):
    """`resolve()` accepts ADDRESS%ZONE, but the send then fails with "E-2 (Unknown error -2)"."""
    token, payload = _payload()
    listener = listen(142, family=6, count=MANY)
    sent = run_hdp("send", "::1%lo", "--protocol", 142, stdin=payload)
    _, ok, _, _, reason = _one_sender_row(sent, 142)
    assert (sent.returncode, ok, reason) == (0, "yes", "-"), sent.describe()
    heard = _stop_after(listener, token)
    assert _only_record(heard.stdout, token, heard).data == payload.decode()
