"""A namespace's kernel settings, held steady or changed by one user at a time.

A test that changes a sysctl of a lab host (the server's reassembly timer, the client's
learned path MTUs) must not overlap a test that reads or relies on it, and pytest-xdist
workers are separate processes. The namespace itself is the lock: flock() on its nsfs
file (/run/netns/NAME, or /proc/self/ns/net for an agent in our own namespace), exclusive
for a user that changes settings, shared for one whose result depends on them. Every
process that reaches the namespace contends for that one inode, whatever name it knows the
namespace by; there is no lock file to clean up, and the lock goes with the namespace.

Changed settings are written back (or, for a write-only one such as route.flush, written
again) before the lock is released, in `release()`: a pytest fixture calls it from its
finalizer, which runs after a failure and, after an interrupt, at the session's end. A
killed process cannot restore anything; its lab's namespaces, and with them the
settings, are removed with the lab.

Waiting for a lock has no deadline of its own: a holder's work is bounded by its agent's
request limits. A user takes the exclusive hold first and takes no other; shared holds
never wait for each other, so no two users can wait on each other in a cycle.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from typing import Any

from hdp.errors import HdpError
from hdp.lab.netns import NETNS_DIR

OWN_NAMESPACE = "/proc/self/ns/net"
# Agents that run in this process's network namespace (or a child's, which inherits it).
_HERE = ("inprocess", "child", "sudo")


class HoldError(RuntimeError):
    """A hold that cannot be taken as asked (an upgrade, a second exclusive hold)."""


def namespace_file(endpoint: Any) -> str | None:
    """The nsfs file of the network namespace `endpoint`'s agent runs in, where this
    process can reach it; None for an agent elsewhere (ssh, a private user namespace),
    whose settings no test changes."""
    spec = endpoint.agent.spec
    if spec.kind == "netns" and spec.where:
        return os.path.join(NETNS_DIR, str(spec.where))
    if spec.kind in _HERE:
        return OWN_NAMESPACE
    return None


@dataclass
class _Lock:
    path: str
    fd: int
    exclusive: bool


@dataclass
class _Change:
    endpoint: Any  # hdp.endpoint.Endpoint
    name: str
    restore: str


@dataclass
class SettingsHold:
    """The namespaces one user holds, and the settings it changed in them."""

    locks: dict[tuple[int, int], _Lock] = field(default_factory=dict)
    changes: list[_Change] = field(default_factory=list)

    def steady(self, endpoint: Any) -> None:
        """Keep `endpoint`'s settings as they are until `release()`: a shared hold."""
        self._take(endpoint, exclusive=False)

    def alone(self, endpoint: Any) -> None:
        """Hold `endpoint`'s namespace alone until `release()`: an exclusive hold."""
        self._take(endpoint, exclusive=True)

    def read(self, endpoint: Any, name: str) -> dict[str, Any]:
        """A setting's value (the agent's sysctl answer), held steady until `release()`."""
        self.steady(endpoint)
        return dict(endpoint.sysctl(name))

    def change(self, endpoint: Any, name: str, value: str | int, *,
               restore: str | int | None = None) -> dict[str, Any]:
        """Hold `endpoint`'s namespace alone and set `name`; the old value (or `restore`,
        for a write-only setting) is written back at `release()`. The agent's answer."""
        self._take(endpoint, exclusive=True)
        answer = dict(endpoint.sysctl(name, value))
        if answer.get("ok"):
            back = restore if restore is not None else answer.get("old")
            if back is not None:
                self.changes.append(_Change(endpoint, name, str(back)))
        return answer

    def release(self) -> None:
        """Write back every change (latest first), then let the namespaces go. Raises
        HoldError naming what could not be written back, after releasing all."""
        failed: list[str] = []
        for change in reversed(self.changes):
            try:
                answer = change.endpoint.sysctl(change.name, change.restore)
            except HdpError as exc:  # a dead agent: the other changes get their chance
                failed.append(f"{change.name}={change.restore}: {exc}")
                continue
            if not answer.get("ok"):
                failed.append(f"{change.name}={change.restore}: {answer.get('errno')}")
        self.changes.clear()
        for lock in self.locks.values():
            os.close(lock.fd)  # closing the descriptor releases its flock
        self.locks.clear()
        if failed:
            raise HoldError(f"could not restore {'; '.join(failed)}")

    def _take(self, endpoint: Any, *, exclusive: bool) -> None:
        path = namespace_file(endpoint)
        if path is None:
            return  # nothing here changes that namespace's settings
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.fstat(fd)
            identity = (stat.st_dev, stat.st_ino)
            held = self.locks.get(identity)
            if held is not None:
                if exclusive and not held.exclusive:
                    raise HoldError(f"{path} is held shared; take the exclusive hold first "
                                    "(upgrading could wait on another upgrader forever)")
                os.close(fd)
                return
            if exclusive and self.locks:
                raise HoldError(f"{path}: an exclusive hold must be the first and only one "
                                "(two could wait on each other)")
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self.locks[identity] = _Lock(path, fd, exclusive)
