"""Kernel transmit stamps on real sockets: each under the key of its send, never before the
send began, and none trusted once a refused send may have put the kernel's count out of
step; arrival stamps, and the boot id that tells two ends on one clock."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from hdp import timestamps
from hdp.timestamps import TransmitStamps
from tests.conftest import RAW_FIX, RAW_V4

linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                           reason="SO_TIMESTAMPING is Linux's (hdp.osnet says so elsewhere)")


def _drain(stamps: TransmitStamps, wanted: int) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    deadline = time.monotonic() + 2
    while len(found) < wanted and time.monotonic() < deadline:
        found += stamps.collect()
    return found


@pytest.fixture
def udp_pair():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sender, receiver.getsockname()
    sender.close()
    receiver.close()


@linux
@pytest.mark.parametrize("explicit", [True, False], ids=["own-keys", "kernel-count"])
def test_every_send_gets_its_stamp_under_its_key(udp_pair, explicit):
    sender, address = udp_pair
    stamps = TransmitStamps(sender, explicit_keys=explicit)
    assert stamps.enabled
    keys, started = [], []
    for key in (40, 41, 42):
        user, got, refused = stamps.send(b"probe", address, key)
        assert refused is None
        keys.append(got)
        started.append(user)
    assert keys == ([40, 41, 42] if explicit else [0, 1, 2])
    found = dict(_drain(stamps, 3))
    assert sorted(found) == keys
    for key, user in zip(keys, started, strict=True):
        assert found[key] >= user  # the kernel stamps the packet as it leaves, after


@linux
def test_after_a_refused_send_the_kernel_count_is_not_trusted(udp_pair):
    sender, address = udp_pair
    stamps = TransmitStamps(sender, explicit_keys=False)
    stamps.send(b"x", address, 0)
    _, key, refused = stamps.send(b"x" * 70_000, address, 1)  # no datagram is that big
    assert (key, refused) == (None, "EMSGSIZE") and not stamps.in_step
    assert stamps.send(b"x", address, 2)[1] is None
    assert _drain(stamps, 1) == []  # a stamp that may belong to another send: none


@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
@linux
def test_a_raw_socket_stamps_its_sends_too():
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 253) as raw:
        stamps = TransmitStamps(raw)
        user, key, refused = stamps.send(b"\x00" * 40, ("127.0.0.1", 0), 7)
        assert (key, refused) == (7, None)
        ((got, stamp),) = _drain(stamps, 1)
        assert got == 7 and stamp >= user


@linux
def test_tcp_stamps_come_under_the_offset_of_each_send_s_last_byte():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        client = socket.create_connection(listening.getsockname())
        server, _ = listening.accept()
        with client, server:
            stamps = TransmitStamps(client, stream=True)
            for _ in range(3):
                assert stamps.send_stream(b"m" * 84)[1:] == (84, None)
            assert sorted(key for key, _ in _drain(stamps, 3)) == [83, 167, 251]


def test_arrival_stamps_are_the_kernel_s():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        assert timestamps.enable_receive_stamps(receiver)
        before = time.time_ns()
        sender.sendto(b"x", receiver.getsockname())
        _, ancillary, _, _ = receiver.recvmsg(16, 512)
        stamp = timestamps.receive_stamp(ancillary)
        assert stamp is not None and before - 1_000_000 <= stamp <= time.time_ns()
        assert timestamps.receive_stamp([]) is None


@linux
def test_the_boot_id_is_the_kernel_s():
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
        assert timestamps.boot_id() == boot.read().strip()
