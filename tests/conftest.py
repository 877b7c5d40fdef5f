"""Shared fixtures: capability probes that skip with the fix in the reason."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from hdp import rawsock

# Tests leave no files behind: no example database, and hypothesis's caches go to a
# temporary directory removed at exit instead of .hypothesis/ in the checkout.
settings.register_profile("hdp", database=None)
settings.load_profile("hdp")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hdp-tests-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, True)

RAW_FIX = ("raw sockets need root or CAP_NET_RAW: run the tests as root "
           "(bash scripts/test.sh, with sudo if you are not root) "
           "or grant CAP_NET_RAW to the venv's python")


def _raw_ok(family: int) -> bool:
    opened = rawsock.open_sender(family, 253)
    if isinstance(opened, rawsock.OsRefusal):
        return False
    opened.close()
    return True


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


RAW_V4 = _raw_ok(4)
RAW_V6 = _ipv6_loopback() and _raw_ok(6)

requires_raw = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
requires_raw_v6 = pytest.mark.skipif(
    not RAW_V6,
    reason=RAW_FIX if _ipv6_loopback() else
    "IPv6 loopback ::1 is unavailable: enable IPv6 (sysctl net.ipv6.conf.lo.disable_ipv6=0)")

LOOPBACK = {4: "127.0.0.1", 6: "::1"}


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> int:
    """Each address family whose raw loopback works here; the other skips with its fix."""
    fam: int = request.param
    if fam == 4 and not RAW_V4:
        pytest.skip(RAW_FIX)
    if fam == 6 and not RAW_V6:
        pytest.skip("IPv6 raw loopback unavailable: " + RAW_FIX)
    return fam


@pytest.fixture
def loopback(family: int) -> str:
    return LOOPBACK[family]


@pytest.fixture
def raw_sockets() -> Iterator[list[rawsock.RawSocket]]:
    """Sockets a test opens, closed however the test ends."""
    opened: list[rawsock.RawSocket] = []
    yield opened
    for raw in opened:
        raw.close()


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of our own with loopback up; removed however the test ends."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command: apt-get install iproute2")
    name = f"hdp-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace ({made.stderr.strip()}): run as root")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
