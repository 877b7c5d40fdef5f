"""Helpers to run the `hdp` command line for real: `hdp listen` in the background,
`hdp send` to loopback.

Packets go only to 127.0.0.1 and ::1. Every listener is started with `--count` and
`--timeout`, so it exits by itself; the `listen` fixture (conftest.py) kills it by PID
if a test fails.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The readiness line, whole: with PYTHONUNBUFFERED its text and newline are separate writes.
READY_LINE = re.compile(r"Listening on protocol .+ \(IPv[46]\)")
READY = re.compile(rf"^{READY_LINE.pattern}\n", re.M)
LISTEN_TIMEOUT = 10  # seconds: every listener exits by itself after this
READY_TIMEOUT = 15.0
RUN_TIMEOUT = 30.0
# A record of `hdp listen`'s dump starts with one of these section headers.
_RECORD_START = re.compile(r"^~~~ IP(?:v6)? Header.*~~~$", re.M)


def hdp_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "hdp", *(str(a) for a in args)]


def hdp_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Result:
    """A finished `hdp` process, with what it wrote."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    def describe(self) -> str:
        return (f"\n$ {' '.join(self.command)}\nexit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")


def run_hdp(*args: object, stdin: bytes | int = b"", prefix: list[str] | None = None,
            timeout: float = RUN_TIMEOUT) -> Result:
    """Run `[PREFIX] hdp ARGS` to completion; `stdin` is piped in (bytes) or a file descriptor."""
    command = [*(prefix or []), *hdp_command(*args)]
    feed = {"stdin": stdin} if isinstance(stdin, int) else {"input": stdin}
    done = subprocess.run(command, cwd=ROOT, env=hdp_env(), capture_output=True,
                          timeout=timeout, check=False, **feed)
    return Result(command, done.returncode, done.stdout.decode("utf-8", "replace"),
                  done.stderr.decode("utf-8", "replace"))


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Listener:
    """A running `hdp listen`; its output so far is in `stdout` / `stderr`."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        # A test runner started in the background inherits SIGINT ignored, and so would the
        # listener; give it the default disposition a shell in a terminal gives it.
        self.proc = subprocess.Popen(command, cwd=ROOT, env=hdp_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_default_sigint)
        self._out = b""
        self._err = b""
        self._open = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}  # type: ignore[union-attr]
        self.result: Result | None = None

    @property
    def stdout(self) -> str:
        return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self._err.decode("utf-8", "replace")

    def describe(self) -> str:
        return (f"\n$ {' '.join(self.command)}\nexit {self.proc.poll()}\n"
                f"--- listener stdout ---\n{self.stdout}--- listener stderr ---\n{self.stderr}")

    def _pump(self, done: Callable[[], bool], timeout: float) -> bool:
        """Read both pipes until `done()` holds; False on timeout or when both pipes close."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for fd in self._open:
                selector.register(fd, selectors.EVENT_READ)
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._open:
                    return False
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        del self._open[key.fd]
                    elif self._open[key.fd] == "out":
                        self._out += chunk
                    else:
                        self._err += chunk
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        if not self._pump(lambda: READY.search(self.stderr) is not None, timeout):
            pytest.fail(f"hdp listen did not print its readiness line within {timeout} s"
                        + self.describe(), pytrace=False)

    def wait_stdout(self, text: str, timeout: float = LISTEN_TIMEOUT) -> None:
        """Wait until `text` shows in the listener's output (packets print as they arrive)."""
        if not self._pump(lambda: text in self.stdout, timeout):
            pytest.fail(f"{text!r} never appeared in hdp listen's output" + self.describe(),
                        pytrace=False)

    def interrupt(self) -> None:
        """Ctrl-C, as a user at the terminal would."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = LISTEN_TIMEOUT + 10) -> Result:
        """Let the listener exit by itself (`--count` or `--timeout`) and collect its output."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hdp listen did not exit within {timeout} s" + self.describe(),
                        pytrace=False)
        self._out += out
        self._err += err
        self.result = Result(self.command, self.proc.returncode, self.stdout, self.stderr)
        return self.result

    def stop(self) -> None:
        """Teardown: end the listener by its PID if it still runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# --- reading what hdp prints -------------------------------------------------------------


@dataclass
class Record:
    """One packet in `hdp listen`'s dump: its section headers, `Key: value` fields, data."""

    text: str
    sections: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    data: str = ""


def parse_dump(stdout: str) -> list[Record]:
    starts = [m.start() for m in _RECORD_START.finditer(stdout)]
    records = []
    for begin, end in zip(starts, [*starts[1:], len(stdout)], strict=True):
        text = stdout[begin:end]
        head, sep, data = text.partition("\nData: ")
        assert sep, f"a dump record without a 'Data: ' line:\n{text}"
        # The record ends with the data's own text, then "\n" ending the record, then a blank line.
        assert data.endswith("\n\n"), f"a dump record that does not end in a blank line:\n{text!r}"
        record = Record(text, data=data[:-2])
        for line in head.splitlines():
            if line.startswith("~~~"):
                record.sections.append(line)
            elif ": " in line:
                key, value = line.split(": ", 1)
                record.fields[key] = value
        records.append(record)
    return records


def records_with(stdout: str, token: str) -> list[Record]:
    """The dump records whose data carries `token` (other traffic on the protocol is ignored)."""
    return [record for record in parse_dump(stdout) if token in record.data]


def table_rows(stdout: str, first_header: str) -> list[list[str]]:
    """Cells of a Markdown table's body rows; checks the header starts with `first_header`."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert len(lines) >= 2, f"no table in:\n{stdout}"
    assert lines[0].startswith(first_header), f"unexpected table header {lines[0]!r}"
    assert set(lines[1].replace("|", "").split()) <= {"---:", ":---", "---"}, lines[1]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


SENDER_HEADER = ("| Protocol Number | Succeeded (Client) | Time (μs) (Client) | Byte sum (Client) "
                 "| Failure reason (Client) |")
LISTENER_HEADER = ("| Protocol Number | Time (μs) (Server) | Source IP (Server) "
                   "| Byte Sum (Server) |")


def sender_rows(result: Result) -> list[list[str]]:
    rows = table_rows(result.stdout, SENDER_HEADER)
    for row in rows:
        assert len(row) == 5, f"a sender row without 5 cells: {row}" + result.describe()
    return rows


def rfc1071(data: bytes) -> int:
    """The Internet checksum, written out independently of hdp.wire.checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def cowsay(text: str) -> str:
    """ASCII art like the original experiment's `fortune | cowsay` payload."""
    bar = "_" * (len(text) + 2)
    return (f" {bar}\n< {text} >\n {'-' * (len(text) + 2)}\n"
            "        \\   ^__^\n"
            "         \\  (oo)\\_______\n"
            "            (__)\\       )\\/\\\n"
            "                ||----w |\n"
            "                ||     ||\n")


def receive_carrying(sock: socket.socket, token: bytes, timeout: float = 5.0) -> bytes:
    """The first packet on `sock` carrying `token` (others on the protocol are someone else's)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        if token in data:
            return data
    pytest.fail(f"no packet carrying {token!r} within {timeout} s", pytrace=False)
