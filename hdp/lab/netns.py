"""The commands a lab runs: ip, nft, tc and sysctl, each checked, inside a namespace.

Every command names its namespace (`ip -n NS`, `ip netns exec NS`): nothing here changes
the root namespace, except `ip netns add/del`, which only create and remove the names.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hdp.lab.errors import LabError

PREFIX = "hdp-"
# hdp-<token>-<host>, token 6 hex digits: what stop_all() may remove.
LAB_NAMESPACE = re.compile(r"hdp-([0-9a-f]{6})-[a-z0-9-]+")
TIMEOUT = 20.0
NETNS_DIR = "/run/netns"  # where `ip netns add` keeps the names


def run(argv: list[str], input: str | None = None) -> str:
    """Run a command; its stdout, or LabError with the command and its stderr."""
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed: apt-get install -y iproute2 nftables"
                       ) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {TIMEOUT:g} s") from None
    if done.returncode != 0:
        why = " | ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        hint = ("; run as root (labs need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
                if "Operation not permitted" in why else "")
        raise LabError(f"`{' '.join(argv)}` failed (exit {done.returncode}): "
                       f"{why[-800:] or 'no message'}{hint}")
    return done.stdout


def in_namespace(namespace: str, *argv: str, input: str | None = None) -> str:
    return run(["ip", "netns", "exec", namespace, *argv], input=input)


def namespaces() -> list[str]:
    """The names of all network namespaces `ip netns` knows."""
    if shutil.which("ip") is None:
        raise LabError("ip is not installed: apt-get install -y iproute2")
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines()
            if line.strip()]


def lab_namespaces(token: str | None = None) -> list[str]:
    """Namespaces of lab `token`, or of every lab (hdp-<6 hex>-*), whoever made them."""
    found = []
    for name in namespaces():
        match = LAB_NAMESPACE.fullmatch(name)
        if match and (token is None or match.group(1) == token):
            found.append(name)
    return found


def host_of_current_namespace(candidates: dict[str, str]) -> str | None:
    """The value of the namespace in `candidates` (name -> value) this process is in:
    /proc/self/ns/net and /run/netns/NAME are the same nsfs inode when it is."""
    try:
        here = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    for name, value in candidates.items():
        try:
            there = os.stat(f"{NETNS_DIR}/{name}")
        except OSError:
            continue
        if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):
            return value
    return None


def add_namespace(namespace: str) -> None:
    run(["ip", "netns", "add", namespace])
    run(["ip", "-n", namespace, "link", "set", "lo", "up"])


def sysctl(namespace: str, settings: dict[str, str]) -> None:
    """Set net.* sysctls of `namespace` (through /proc/sys, which shows the writer's own
    namespace; no procps needed)."""
    if settings:
        script = 'for s; do printf %s "${s#*=}" > "${s%%=*}" || exit 1; done'
        in_namespace(namespace, "sh", "-c", script, "sh",
                     *(f"/proc/sys/{key.replace('.', '/')}={value}"
                       for key, value in settings.items()))


def delete_namespace(namespace: str) -> bool:
    """End the processes still inside, then remove the namespace; False if it was gone.

    `ip netns del` only drops the name: a process left inside would keep the namespace,
    its interfaces and its nftables alive.
    """
    _end_processes(namespace)
    try:
        run(["ip", "netns", "del", namespace])
    except LabError:
        if namespace in namespaces():
            raise
        return False
    return True


def _pids(namespace: str) -> list[int]:
    try:
        return [int(p) for p in run(["ip", "netns", "pids", namespace]).split()]
    except LabError:
        return []


def _end_processes(namespace: str, grace: float = 2.0) -> None:
    pids = [p for p in _pids(namespace) if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _exists(p)]
            if pids:
                time.sleep(0.02)
        if not pids:
            return


def _exists(pid: int) -> bool:
    """Whether `pid` still runs; a zombie has already left its namespace."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
