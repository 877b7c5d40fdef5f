"""What the kernel does to and for a raw socket: exact drop counts, checksum rewrites.

Real raw sockets on loopback. The drop count is checked against /proc/net/raw, the
kernel's own per-socket listing, after a bounded burst the listener cannot hold; it runs
in a network namespace of its own so that the burst is the only traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdp import rawsock
from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="SO_MEMINFO, /proc/net/raw and the IPV6_CHECKSUM defaults are Linux's")

BURST = """
import json, os, socket, time
from hdp import rawsock
listener = rawsock.open_listener(4, 253)
listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a queue for a few
sender = rawsock.open_sender(4, 253)
sent = sum(sender.send(b"x" * 200, "127.0.0.1").ok for _ in range({count}))
inode = os.fstat(listener.fileno()).st_ino
def proc_drops():
    with open("/proc/net/raw") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[9]) == inode:
                return int(fields[12])
before, drops, after = proc_drops(), listener.drops(), proc_drops()
listener.sock.setblocking(False)
received = 0
while True:
    try:
        listener.sock.recv(65535)
    except BlockingIOError:
        break
    received += 1
print(json.dumps(dict(sent=sent, received=received, drops=drops, before=before, after=after)))
"""


def _private(python_code: str) -> dict[str, int]:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs root and unshare/ip for a loopback of its own (run as root)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"',
                           "sh", sys.executable, "-c", python_code],
                          capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@linux_only
@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_drops_are_exact_and_match_proc_net_raw():
    """2,000 probes at a listener with a 4 KiB queue: every one is received or counted
    as dropped, and the count is the one /proc/net/raw shows for that socket."""
    counts = _private(BURST.format(count=2000))
    assert counts["sent"] == 2000
    assert counts["drops"] == counts["before"] == counts["after"]
    assert counts["drops"] > 0, "the burst never overflowed the queue"
    assert counts["received"] + counts["drops"] == counts["sent"]


@linux_only
@pytest.mark.skipif(not RAW_V6, reason=RAW_FIX)
def test_ipv6_checksum_offset_is_turned_off_except_for_icmpv6():
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135) as plain:
        assert plain.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM) == 4  # Linux's
    for listen in (True, False):
        mobility = rawsock.RawSocket.open(6, 135, listen=listen)
        icmpv6 = rawsock.RawSocket.open(6, 58, listen=listen)
        assert isinstance(mobility, rawsock.RawSocket)
        assert isinstance(icmpv6, rawsock.RawSocket)
        with mobility, icmpv6:
            assert mobility.checksum_offset is None
            assert mobility.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM) == -1
            assert icmpv6.checksum_offset == 2  # RFC 3542 3.1: cannot be turned off


@linux_only
@pytest.mark.skipif(not RAW_V6, reason=RAW_FIX)
def test_probe_on_135_arrives_byte_for_byte():
    """With no checksum offset, nothing of the probe is rewritten on the way."""
    payload = bytes(range(256)) * 2
    listener = rawsock.open_listener(6, 135)
    sender = rawsock.open_sender(6, 135)
    assert isinstance(listener, rawsock.RawSocket) and isinstance(sender, rawsock.RawSocket)
    with listener, sender:
        assert sender.send(payload, "::1").ok
        got = [r.data for r in rawsock.receive_until([listener], time.monotonic() + 2.0)
               if r.data[16:64] == payload[16:64]]
    assert got == [payload]
