"""Starting agents where they must run, and talking to them from the controller.

Launchers: ``inprocess`` (a thread of this process), ``child`` (``python -I -m hdp.agent``),
``sudo`` (the same through ``sudo -n``, so the caller may be unprivileged),
``userns`` (an unprivileged user + network namespace: loopback only),
``netns:NAME`` (through ``ip netns exec NAME``) and ``ssh://[user@]host`` (through ssh,
which then does the authentication; the remote host needs pytest-hdp installed).

Every agent process runs isolated (``-I``: neither PYTHONPATH nor the working directory
on sys.path) and imports the installed hdp (hdp.agent.install); a sudo agent starts only
from an install its caller cannot change. See README "Security model".
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hdp.agent import install, messages, protocol
from hdp.agent.powers import environment_without_caller
from hdp.errors import HdpError, UsageError

STARTUP_TIMEOUT = 15.0
_NAMESPACE = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.-]*")


class AgentError(HdpError):
    """An agent that could not start, or went away; the message carries its stderr."""


@dataclass(frozen=True)
class AgentSpec:
    kind: str  # inprocess | child | sudo | userns | netns | ssh
    where: str | None = None  # namespace name or ssh destination

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        text = text.strip()
        if text in ("inprocess", "local", "child", "sudo", "userns"):
            return cls("inprocess" if text == "local" else text)
        for prefix in ("netns://", "netns:"):  # the longer first: netns://X is X
            if text.startswith(prefix) and text[len(prefix):]:
                name = text[len(prefix):]
                if not _NAMESPACE.fullmatch(name):
                    raise AgentError(f"agent {text!r}: a namespace name is letters, digits, "
                                     "'_', '.' and '-', not starting with '-'")
                return cls("netns", name)
        if text.startswith("ssh://") and len(text) > len("ssh://"):
            check_ssh_destination(text[len("ssh://"):])
            return cls("ssh", text[len("ssh://"):])
        raise AgentError(f"unknown agent {text!r}: give inprocess, child, sudo, userns, netns:NAME "
                         "or ssh://[user@]host[:port]")

    def command(self) -> list[str]:
        """The command line that starts this agent (empty for an in-process one)."""
        module = install.agent_command()
        if self.kind == "child":
            return module
        if self.kind == "sudo":
            return ["sudo", "-n", "--", *module]
        if self.kind == "userns":
            # An unprivileged user namespace with a network namespace of its own: root
            # there may open raw sockets, but it sees only its own loopback.
            script = 'ip link set lo up || exit 1; exec "$@"'
            return ["unshare", "--user", "--map-root-user", "--net", "--", "sh", "-c", script,
                    "sh", *module]
        if self.kind == "netns":
            return ["ip", "netns", "exec", str(self.where), *module]
        if self.kind == "ssh":
            return ssh_command(str(self.where))
        return []

    def check_install(self) -> None:
        """InstallError when this launcher's agent would not run this installed hdp, or
        (sudo) when the caller could change the code it would run as root."""
        if self.kind in ("child", "userns", "netns"):
            install.survey()
        elif self.kind == "sudo" and os.geteuid() != 0:
            install.check_root_install(os.getuid(), {os.getgid(), *os.getgroups()},
                                       f"this user (uid {os.getuid()})")

    def __str__(self) -> str:
        return self.kind if self.where is None else f"{self.kind}:{self.where}"


def check_ssh_destination(where: str) -> None:
    """UsageError for an ssh destination that ssh would read as an option."""
    destination = split_ssh(where)[0]
    if not destination or destination.startswith("-") or \
            destination.rpartition("@")[2].startswith("-") or any(c.isspace() for c in where):
        raise UsageError(f"ssh destination {where!r} is not [user@]host[:port] (a leading "
                         "'-' would be an ssh option): give ssh://[user@]host[:port]")


def split_ssh(where: str) -> tuple[str, str | None]:
    """`[user@]host[:port]` -> (`[user@]host` without brackets, port or None)."""
    destination, port = where, None
    host = where.rpartition("@")[2]
    head, sep, tail = where.rpartition(":")
    # host:port or [v6]:port; a bare IPv6 address has more than one colon and no port.
    if sep and tail.isdigit() and (host.startswith("[") or host.count(":") == 1):
        destination, port = head, tail
    return destination.replace("[", "").replace("]", ""), port


def ssh_command(where: str) -> list[str]:
    """ssh to `[user@]host[:port]` and start the agent there.

    HDP_SSH_OPTIONS adds ssh options (e.g. "-i key -o StrictHostKeyChecking=accept-new");
    HDP_REMOTE_PYTHON is the remote command that runs Python with pytest-hdp installed
    (default "python3"; shell-quoted words, so a path with spaces can be given quoted).
    """
    check_ssh_destination(where)
    destination, port = split_ssh(where)
    command = ["ssh", "-o", "BatchMode=yes", "-T"]
    if port:
        command += ["-p", port]
    command += shlex.split(os.environ.get("HDP_SSH_OPTIONS", ""))
    remote = shlex.split(os.environ.get("HDP_REMOTE_PYTHON", "python3"))
    # ssh joins its arguments with spaces for the remote shell: quote them ourselves.
    return [*command, "--", destination, shlex.join([*remote, "-I", "-m", "hdp.agent"])]


Event = tuple["AgentClient", dict[str, Any]]


class EventQueue:
    """The events of one or more agents, in order: queue.Queue's `get`, `get_nowait` and
    `put`, plus `put_many`, which hands a frame's events over in one lock."""

    def __init__(self) -> None:
        self._items: collections.deque[Event] = collections.deque()
        self._ready = threading.Condition(threading.Lock())

    def put(self, item: Event) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def put_many(self, items: Iterable[Event]) -> None:
        with self._ready:
            self._items.extend(items)
            self._ready.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Event:
        """The next event; queue.Empty when none came within `timeout` (or at once)."""
        try:
            return self._items.popleft()  # atomic: the lock is for waiting only
        except IndexError:
            if not block:
                raise queue.Empty from None
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout):
                raise queue.Empty
            return self._items.popleft()

    def get_nowait(self) -> Event:
        return self.get(block=False)

    def get_all(self, timeout: float | None = None) -> list[Event]:
        """Every event queued, once there is one (queue.Empty if none within `timeout`)."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout):
                raise queue.Empty
            items = list(self._items)
            self._items.clear()
            return items


class AgentClient:
    """A running agent: write requests, read its events from a (shareable) queue."""

    _ids = itertools.count(1)

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec
        self.events = EventQueue()
        self._events_lock = threading.Lock()
        self.ready: dict[str, Any] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._write_fd = -1
        self._stderr_thread: threading.Thread | None = None
        self._closed = False
        self.exited = threading.Event()

    # -- start-up -------------------------------------------------------------------

    @classmethod
    def start(cls, spec: AgentSpec, *, timeout: float = STARTUP_TIMEOUT,
              require_raw: bool = True) -> AgentClient:
        client = cls(spec)
        client._launch()
        client._await_ready(timeout, require_raw)
        return client

    def attach(self, events: EventQueue) -> None:
        """Deliver this agent's events to `events` from now on (shared by several agents)."""
        with self._events_lock:
            while True:
                try:
                    events.put(self.events.get_nowait())
                except queue.Empty:
                    break
            self.events = events

    def _put(self, event: dict[str, Any]) -> None:
        with self._events_lock:
            self.events.put((self, event))

    def _put_many(self, events: list[dict[str, Any]]) -> None:
        with self._events_lock:
            self.events.put_many([(self, event) for event in events])

    def _launch(self) -> None:
        if self.spec.kind == "inprocess":
            from hdp.agent.server import Agent

            request_r, request_w = os.pipe()
            event_r, event_w = os.pipe()
            agent = Agent(request_r, event_w)

            def serve() -> None:
                try:
                    agent.serve()
                except Exception as exc:  # reported like a child's stderr
                    self._stderr.append(f"{type(exc).__name__}: {exc}")
                finally:
                    os.close(request_r)
                    os.close(event_w)

            self.thread = threading.Thread(target=serve, name="hdp-agent", daemon=True)
            self.thread.start()
            self._write_fd, read_fd = request_w, event_r
        else:
            try:
                self.spec.check_install()
            except install.InstallError as exc:
                raise AgentError(f"agent {self.spec}: {exc}") from None
            command = self.spec.command()
            try:
                # A session of its own: Ctrl-C at the terminal reaches the controller,
                # which then shuts the agent down in order and reports what it learned.
                # Only sudo may tell the agent who called (SUDO_UID, hdp.agent.powers).
                self.process = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True,
                    env=None if self.spec.kind == "sudo" else environment_without_caller())
            except OSError as exc:
                raise AgentError(f"cannot start agent {self.spec} ({command[0]}: "
                                 f"{exc.strerror})") from None
            assert self.process.stdin and self.process.stdout and self.process.stderr
            self._write_fd = self.process.stdin.fileno()
            read_fd = self.process.stdout.fileno()
            self._stderr_thread = threading.Thread(
                target=self._pump_stderr, args=(self.process.stderr,), daemon=True)
            self._stderr_thread.start()
        threading.Thread(target=self._pump_events, args=(read_fd,), daemon=True).start()

    def _await_ready(self, timeout: float, require_raw: bool) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close(timeout=1)
                raise AgentError(f"agent {self.spec} did not start within {timeout:g} s"
                                 f"{self.stderr_note()}")
            try:
                _, event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event.get("event") == "exit":
                raise AgentError(f"agent {self.spec} exited before it was ready"
                                 f"{self.stderr_note()}")
            if event.get("event") == "ready":
                self.ready = event
                break
        if require_raw and not event.get("raw"):
            self.close(timeout=1)
            raise AgentError(f"agent {self.spec}: {event.get('raw_error')}")

    # -- streams --------------------------------------------------------------------

    def _pump_events(self, fd: int) -> None:
        buffer = protocol.LineBuffer()
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                events: list[dict[str, Any]] = []
                for line in buffer.feed(chunk):
                    if line is None:
                        self._stderr.append(f"bad line from agent: longer than "
                                            f"{protocol.MAX_LINE} bytes")
                        continue
                    try:
                        events += protocol.decode_events(line)
                    except protocol.ProtocolError as exc:
                        self._stderr.append(f"bad line from agent: {exc}")
                if events:  # what one read held, handed over at once
                    self._put_many(events)
        except OSError as exc:
            self._stderr.append(f"reading from agent: {exc}")
        finally:
            if self.process is None:
                os.close(fd)
            code = self.process.wait() if self.process is not None else 0
            if self._stderr_thread is not None:
                # Its last words (why ssh or sudo refused) belong in the exit's message.
                self._stderr_thread.join(2.0)
            self.exited.set()
            self._put({"event": "exit", "returncode": code, "stderr": self.stderr_tail()})

    def _pump_stderr(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def stderr_note(self) -> str:
        tail = " | ".join(line for line in self._stderr if line)[-600:]
        return f"; its stderr: {tail}" if tail else "; it wrote nothing on stderr"

    # -- requests -------------------------------------------------------------------

    def request(self, request: messages.Request) -> int:
        """Send a request; returns its id, which the answer carries."""
        ident = next(self._ids)
        data = protocol.encode_request(ident, request)
        try:
            while data:
                data = data[os.write(self._write_fd, data):]
        except OSError as exc:
            raise AgentError(f"agent {self.spec} is gone ({exc.strerror})"
                             f"{self.stderr_note()}") from None
        return ident

    def next_event(self, match: Callable[[dict[str, Any]], bool], timeout: float,
                   aside: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The first new event for which `match` holds within `timeout`, or None; others
        are appended to `aside` for whoever wants them. An exited agent is an AgentError."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                _, event = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if event.get("event") == "exit":
                raise AgentError(f"agent {self.spec} exited{self.stderr_note()}")
            if match(event):
                return event
            aside.append(event)
        return None

    def alive(self) -> bool:
        return not self.exited.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Shut down: ask, then terminate, then kill; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.alive():
            with contextlib.suppress(AgentError):
                self.request(messages.Shutdown())
        try:  # end of input also stops an agent that missed the shutdown request
            if self.process is not None and self.process.stdin is not None:
                self.process.stdin.close()
            elif self._write_fd >= 0:
                os.close(self._write_fd)
        except OSError:
            pass
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        elif self.thread is not None:
            self.thread.join(timeout)
