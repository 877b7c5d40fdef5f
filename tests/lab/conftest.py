"""Lab fixtures: real namespaces as root; skipped, with the fix, where that cannot work.

Every lab a test starts is taken down however the test ends; the tests send only to
addresses of the lab plan (hdp/lab/addresses.py), inside the lab's namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.lab import Lab, start_lab
from hdp.lab.netns import LAB_NAMESPACE
from hdp.lab.topology import Topology

NETPROBE = str(Path(__file__).with_name("netprobe.py"))
TIMEOUT = 20


def _lab_capability() -> str | None:
    """None if namespaces work here, else the reason with the fix."""
    if not sys.platform.startswith("linux"):
        return "network labs need Linux network namespaces"
    if shutil.which("ip") is None or shutil.which("nft") is None:
        return "needs ip and nft: apt-get install -y iproute2 nftables"
    if os.geteuid() != 0:
        return "network labs need root: run the tests as root (bash scripts/test.sh with sudo)"
    name = f"hdp-probe-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return (f"cannot create a network namespace ({made.stderr.strip()}): run as root "
                "with CAP_SYS_ADMIN and CAP_NET_ADMIN (sudo, or a privileged container)")
    subprocess.run(["ip", "netns", "del", name], check=False)
    return None


LAB_SKIP = _lab_capability()
requires_lab = pytest.mark.skipif(LAB_SKIP is not None, reason=LAB_SKIP or "")


def lab_namespaces() -> set[str]:
    """Namespaces named as labs name theirs; other tests' own namespaces are not labs."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    names = (line.split()[0] for line in out.stdout.splitlines() if line.strip())
    return {name for name in names if LAB_NAMESPACE.fullmatch(name)}


@pytest.fixture
def lab() -> Iterator[Callable[[str | Topology], Lab]]:
    """Start labs by name or Topology; all of them go down when the test ends."""
    started: list[Lab] = []

    def start(name: str | Topology) -> Lab:
        started.append(start_lab(name))
        return started[-1]

    yield start
    for each in started:
        each.down()


@pytest.fixture
def agents() -> Iterator[Callable[[Lab, str], AgentClient]]:
    """Agents inside lab hosts, closed however the test ends."""
    started: list[AgentClient] = []

    def start(lab: Lab, host: str) -> AgentClient:
        agent = AgentClient.start(AgentSpec.parse(lab.agent(host)))
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


def in_namespace(namespace: str, *args: object, timeout: float = TIMEOUT
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", namespace, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def ip_json(namespace: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(["ip", "-j", "-n", namespace, *args], capture_output=True,
                          text=True, check=True)
    return list(json.loads(done.stdout or "[]"))


def _exchange(lab: Lab, receiver: str, listen: list[object], sender: str,
              send: list[object]) -> tuple[Any, subprocess.CompletedProcess[str]]:
    """netprobe `listen` in `receiver`'s namespace until it is ready, then netprobe `send`
    in `sender`'s: the listener's JSON and the finished sender."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lab.namespace(receiver), sys.executable, NETPROBE,
         *map(str, listen)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None
        ready = listener.stdout.readline()
        assert ready.strip() == "ready", listener.stderr.read() if listener.stderr else ready
        sent = in_namespace(lab.namespace(sender), sys.executable, NETPROBE, *send)
        assert sent.returncode == 0, sent.stderr
        out, err = listener.communicate(timeout=TIMEOUT)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    assert listener.returncode == 0, err
    return json.loads(out), sent


def udp_exchange(lab: Lab, sender: str, receiver: str, family: int, size: int = 32,
                 df: bool = True) -> dict[str, object]:
    """One UDP datagram from `sender` to `receiver`'s address toward it, as received."""
    address = lab.address(receiver, family, toward=sender)
    port = 40000 + os.getpid() % 20000
    result, _ = _exchange(lab, receiver, ["listen", address, port, 5], sender,
                          ["send", address, port, size, *([] if df else ["nodf"])])
    return dict(result)


def udp_count(lab: Lab, sender: str, receiver: str, family: int, total: int,
              rate: float) -> dict[str, int]:
    """`total` numbered UDP datagrams from `sender` to `receiver`'s address toward it,
    paced at `rate` a second: how many were sent, and how many distinct ones arrived."""
    address = lab.address(receiver, family, toward=sender)
    port, tag = 40000 + os.getpid() % 20000, int.from_bytes(os.urandom(4), "big") | 1
    counted, burst = _exchange(lab, receiver, ["count", address, port, tag, 5], sender,
                               ["burst", address, port, tag, total, rate])
    # Our own machinery must not be what lost a datagram: the end mark arrived and the
    # receiving socket's queue never overflowed.
    assert counted["ended"], "no end mark arrived: the receiver gave up after 5 s"
    assert counted["kernel_drops"] == 0, counted
    sent = json.loads(burst.stdout)
    assert sent["errors"] == 0, sent
    return {"sent": sent["sent"], "received": counted["received"],
            "duplicates": counted["duplicates"]}


def raw_probe(lab: Lab, sender: str, receiver: str, family: int, protocol: int,
              valid_sum: bool = False, timeout: float = 1.0) -> dict[str, object]:
    """A raw packet of `protocol` from `sender` to `receiver`; the ICMP error it drew."""
    address = lab.address(receiver, family, toward=sender)
    done = in_namespace(lab.namespace(sender), sys.executable, NETPROBE, "raw", address,
                        protocol, timeout, *(["sum"] if valid_sum else []))
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def sole_lab_user() -> None:
    """For a test that removes every lab: skip while anyone else may have one up."""
    from hdp.lab.netns import lab_namespaces as present

    if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
        pytest.skip("removing every lab would also remove other xdist workers': "
                    "run this test without -n")
    if present():
        pytest.skip("other labs are up (another test process, or this run's --hdp-lab): "
                    "removing every lab would pull them from under their owners")
