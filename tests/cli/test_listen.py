"""`hdp listen` as a user runs it: until Ctrl-C, as NDJSON, filtered by source and run id.

Probes go only to loopback. Each test uses a protocol no other test uses (147-149), and
finds its own packets by a token in their data or by the loopback source address it bound
(127.0.0.5-127.0.0.7), never by protocol alone: other processes on this host may send on
any protocol.
"""

from __future__ import annotations

import json
import re
import secrets
import socket

from hdp.wire import hdp as hdp_wire
from hdp.wire.hdp import HDPHeader, ProbeTag
from tests.cli.helpers import READY_LINE, Listener, hdp_command, run_hdp
from tests.conftest import requires_raw

# `--format json`'s fields, as README.md documents them.
FIELDS = {"time_ns", "family", "protocol", "socket_protocol", "src", "dst", "ttl", "dscp",
          "ecn", "byte_sum", "ip_payload_bytes", "decoded_as", "hdp", "udp", "tag", "intact",
          "latency_us", "data", "data_hex", "note", "error"}


def _start(*args: object) -> Listener:
    listener = Listener(hdp_command("listen", *args))
    listener.wait_ready()
    return listener


def _send_from(source: str, protocol: int, packet: bytes) -> None:
    """One packet from a loopback `source` address to 127.0.0.1 (IPv4, kernel-built header)."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol) as raw:
        raw.bind((source, 0))
        raw.sendto(packet, ("127.0.0.1", 0))


@requires_raw
def test_listen_without_timeout_runs_until_ctrl_c() -> None:
    """The README's first example: no --count, no --timeout. It must be listening (not have
    died at once), print the probe that arrives, and end cleanly on Ctrl-C."""
    token = f"ctrl-c-{secrets.token_hex(6)}"
    listener = _start("--protocol", 147)
    try:
        sent = run_hdp("send", "127.0.0.1", "--protocol", 147, stdin=token.encode())
        assert sent.returncode == 0, sent.describe()
        listener.wait_stdout(token)  # bounded: fails the test after LISTEN_TIMEOUT
        assert listener.proc.poll() is None, "still listening after the packet" \
            + listener.describe()
        listener.interrupt()
        heard = listener.finish()
    finally:
        listener.stop()
    assert heard.returncode == 0, "Ctrl-C is how it ends: not an error" + heard.describe()
    assert "Traceback" not in heard.stderr, heard.describe()
    others = [line for line in heard.stderr_lines if not READY_LINE.fullmatch(line)]
    assert len(others) == 1 and re.fullmatch(r"hdp listen: stopped after \d+ packets?",
                                             others[0]), heard.describe()
    assert token in heard.stdout, "the packet seen before Ctrl-C is kept" + heard.describe()


@requires_raw
def test_json_lines_filtered_by_source_and_run() -> None:
    run, other_run = 0x5EED0000 | secrets.randbits(16), 0x0BAD0000 | secrets.randbits(16)
    token = f"ndjson-{secrets.token_hex(6)}".encode()

    def probe(run_id: int) -> bytes:
        tagged = hdp_wire.encode_tagged(ProbeTag(run_id, 7, 1), token)
        return hdp_wire.encode(HDPHeader(420, 420, 1_700_000_000_000_000_000), tagged)

    listener = _start("--protocol", 148, "--format", "json", "--from", "127.0.0.5",
                      "--run", f"{run:08x}", "--count", 1, "--timeout", 10)
    try:
        _send_from("127.0.0.6", 148, probe(run))  # another source: not shown
        _send_from("127.0.0.5", 148, probe(other_run))  # another run: not shown
        _send_from("127.0.0.5", 148, probe(run))  # the one
        heard = listener.finish()
    finally:
        listener.stop()
    assert heard.returncode == 0, heard.describe()
    lines = heard.stdout.splitlines()
    assert len(lines) == 1, "one object a packet, only the one asked for" + heard.describe()
    packet = json.loads(lines[0])
    assert set(packet) == FIELDS, heard.describe()
    assert (packet["src"], packet["dst"], packet["family"], packet["protocol"]) == (
        "127.0.0.5", "127.0.0.1", 4, 148)
    assert packet["tag"] == {"run": f"{run:08x}", "case": 7, "probe": 1, "carrier": "hdp"}
    assert packet["hdp"] == {"src_port": 420, "dst_port": 420,
                             "timestamp_ns": 1_700_000_000_000_000_000}
    assert packet["data"] == token.decode() and bytes.fromhex(packet["data_hex"]) == token
    assert packet["decoded_as"] == "hdp" and packet["intact"] is True
    assert packet["ip_payload_bytes"] == 12 + 20 + len(token)
    assert packet["byte_sum"] == 20 + packet["ip_payload_bytes"]
    hidden = re.search(r"hdp listen: (\d+) packets? on these protocols not shown "
                       r"\(--from and --run\)", heard.stderr)
    assert hidden and int(hidden[1]) >= 2, heard.describe()


@requires_raw
def test_the_original_clients_hdp_on_protocol_17() -> None:
    """The original client sent HDP on any number, 17 included: its bytes are no UDP
    datagram (the 'length' is the top of a timestamp), so auto reads them as HDP; --decode
    udp shows what a UDP reading makes of them."""
    token = f"orig17-{secrets.token_hex(6)}".encode()
    packet = hdp_wire.encode(HDPHeader(420, 420, 1_739_640_243_546_134_000), token)
    results = {}
    for decode in ("auto", "udp"):
        listener = _start("--protocol", 17, "--from", "127.0.0.7", "--decode", decode,
                          "--count", 1, "--timeout", 10)
        try:
            _send_from("127.0.0.7", 17, packet)
            results[decode] = listener.finish()
        finally:
            listener.stop()
    auto = results["auto"]
    assert auto.returncode == 0, auto.describe()
    assert "~~~ HDP Header & Data ~~~" in auto.stdout, auto.describe()
    assert "Source Port: 420\nDestination Port: 420\n" in auto.stdout, auto.describe()
    assert "Timestamp: 1739640243546134000" in auto.stdout, auto.describe()
    assert "Note: read as HDP: not a consistent UDP datagram" in auto.stdout, auto.describe()
    assert f"Data: {token.decode()}" in auto.stdout and "Decode error" not in auto.stdout
    forced = results["udp"]
    assert forced.returncode == 0, forced.describe()
    assert "Decode error: malformed UDP datagram" in forced.stdout, forced.describe()
