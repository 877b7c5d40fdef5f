"""Every bad input, through the real command line: one line on stderr, a non-zero exit,
never a traceback, nothing on stdout.

One table holds them all: command-line values, standard input, report files, quirk
profiles (read by `pytest --hdp-profile`), lab topologies (read by `hdp lab up`), and the
missing privilege. Nothing here sends a packet: every error comes before any send, and the
unknown-host lookup runs in an empty network namespace so no DNS query goes out.
"""

from __future__ import annotations

import json
import os
import pty
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.helpers import ROOT, Result, hdp_env, run_hdp
from tests.conftest import RAW_V4

USAGE = 2  # argparse's and hdp's exit status for a bad command line
FAILURE = 1
PYTEST_USAGE = 4  # pytest's exit status for a usage error


@dataclass(frozen=True)
class Call:
    """One run of `hdp ARGV` (or `pytest ARGV`), with what it reads on stdin."""

    argv: list[str]
    stdin: bytes | int = b""
    prefix: list[str] | None = None
    tool: str = "hdp"


Make = Callable[[Path, ExitStack], Call]


def hdp(*argv: object, stdin: bytes = b"") -> Make:
    return lambda tmp, stack: Call([str(a) for a in argv], stdin)


def with_file(name: str, content: bytes | Callable[[Path], None], *argv: str,
              tool: str = "hdp") -> Make:
    """Write `content` to tmp/`name`, then run ARGV with {file} standing for its path."""

    def make(tmp: Path, stack: ExitStack) -> Call:
        path = tmp / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        args = [a.replace("{file}", str(path)).replace("{tmp}", str(tmp)) for a in argv]
        if tool == "pytest":
            (tmp / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
            args = ["-p", "no:cacheprovider", "--hdp-lab", "none", "-q", *args,
                    str(tmp / "test_nothing.py")]
        return Call(args, tool=tool)

    return make


def sparse(size: int) -> Callable[[Path], None]:
    """A file of `size` zero bytes that takes no disk space."""
    def write(path: Path) -> None:
        with path.open("wb") as out:
            out.truncate(size)
    return write


def _report(*cases: dict[str, object], **top: object) -> bytes:
    case = {"target": "127.0.0.1", "path": "loopback", "family": 4, "protocol": 253,
            "payload": "hdp", "outcome": "delivered"}
    document = {"schema": "hdp-report/1", "platform": {"system": "linux"},
                "cases": [{**case, **c} for c in cases] or [case], **top}
    return json.dumps(document).encode()


def _laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


PROFILE = b"profile: bad\napplies: {system: linux}\nrules:\n"
TOPOLOGY = b"hosts:\n  client: {role: client}\n  router: {role: router}\nlinks:\n"


def profile(name: str, text: bytes | Callable[[Path], None]) -> Make:
    return with_file(name, text, "--hdp-profile", "{file}", tool="pytest")


def topology(name: str, text: bytes | Callable[[Path], None]) -> Make:
    return with_file(name, text, "lab", "up", "{file}")


# --- what cannot be a row of plain arguments -------------------------------------------------


def _offline_prefix() -> list[str]:
    """A command prefix that runs in a new network namespace (only a downed loopback)."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs util-linux unshare on Linux, to resolve a name without sending a "
                    "DNS query off this host")
    prefix = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--net", "--map-root-user"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace ({probe.stderr.decode().strip()}): run "
                    "as root, or allow unprivileged user namespaces")
    return prefix


def _without_net_raw() -> list[str]:
    """A command prefix that runs the command without CAP_NET_RAW (or skips, saying why)."""
    if not RAW_V4:
        return []  # this process has no raw-socket privilege to drop
    if os.geteuid() != 0:
        pytest.skip("dropping CAP_NET_RAW from the bounding set needs root")
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--reuid=0"]
    capsh = shutil.which("capsh")
    if capsh:
        return [capsh, "--drop=cap_net_raw", "--", "-c", 'exec "$0" "$@"']
    pytest.skip("neither setpriv (util-linux) nor capsh (libcap) is installed to drop "
                "CAP_NET_RAW: apt-get install util-linux libcap2-bin")


def unknown_host(tmp: Path, stack: ExitStack) -> Call:
    return Call(["send", "nosuch.invalid"], b"x\n", _offline_prefix())


def stdin_on_a_terminal(tmp: Path, stack: ExitStack) -> Call:
    controller, terminal = pty.openpty()
    stack.callback(os.close, controller)
    stack.callback(os.close, terminal)
    return Call(["send", "127.0.0.1"], terminal)


def stdin_closed(tmp: Path, stack: ExitStack) -> Call:
    return Call(["send", "127.0.0.1"], b"x\n", ["sh", "-c", 'exec "$@" <&-', "sh"])


def stdin_write_only(tmp: Path, stack: ExitStack) -> Call:
    descriptor = os.open(tmp / "sink", os.O_WRONLY | os.O_CREAT, 0o600)
    stack.callback(os.close, descriptor)
    return Call(["send", "127.0.0.1", "--protocol", "253"], descriptor)


def send_without_privilege(tmp: Path, stack: ExitStack) -> Call:
    return Call(["send", "127.0.0.1"], b"x\n", _without_net_raw())


def listen_without_privilege(tmp: Path, stack: ExitStack) -> Call:
    return Call(["listen", "--timeout", "1"], b"", _without_net_raw())


def row(name: str, make: Make, status: int, *mentions: str) -> object:
    return pytest.param(make, status, mentions, id=name)


ROWS = [
    # command-line values
    row("send-protocol-abc", hdp("send", "127.0.0.1", "--protocol", "abc", stdin=b"x\n"),
        USAGE, "'abc'", "--protocol"),
    row("send-protocol-70000", hdp("send", "127.0.0.1", "--protocol", "70000", stdin=b"x\n"),
        USAGE, "70000", "--protocol"),
    row("send-count-0", hdp("send", "127.0.0.1", "--count", "0", stdin=b"x\n"),
        USAGE, "count 0", "--count"),
    row("send-family-5", hdp("send", "127.0.0.1", "--family", "5", stdin=b"x\n"),
        USAGE, "'5'", "--family"),
    row("send-family-mismatch", hdp("send", "127.0.0.1", "--family", "6", stdin=b"x\n"),
        USAGE, "127.0.0.1", "--family"),
    row("send-ipv4-with-zone", hdp("send", "127.0.0.1%lo", "--protocol", "253", stdin=b"x\n"),
        USAGE, "127.0.0.1%lo"),
    row("send-without-target", hdp("send", stdin=b"x\n"), USAGE, "TARGET"),
    row("send-unknown-host", unknown_host, FAILURE, "nosuch.invalid", "resolve"),
    row("no-command", hdp(), USAGE, "command"),
    row("listen-family-5", hdp("listen", "--family", "5", "--timeout", "1"),
        USAGE, "'5'", "--family"),
    row("listen-count-0", hdp("listen", "--count", "0", "--timeout", "1"),
        USAGE, "count 0", "--count"),
    row("listen-timeout-0", hdp("listen", "--timeout", "0"), USAGE, "timeout 0", "--timeout"),
    row("listen-protocol-abc", hdp("listen", "--protocol", "abc", "--timeout", "1"),
        USAGE, "'abc'"),
    row("listen-protocols-the-os-refuses",
        hdp("listen", "-p", "263-65535", "--timeout", "1"), FAILURE,
        *(("protocols 263-65535", "EINVAL") if RAW_V4 else ("CAP_NET_RAW",))),
    row("listen-from-not-an-address", hdp("listen", "--from", "nowhere", "--timeout", "1"),
        USAGE, "'nowhere'", "--from"),
    row("listen-run-not-hex", hdp("listen", "--run", "xyz", "--timeout", "1"),
        USAGE, "'xyz'", "--run"),
    row("listen-decode-unknown", hdp("listen", "--decode", "tcp", "--timeout", "1"),
        USAGE, "'tcp'", "--decode"),
    row("sweep-fail-on-unknown", hdp("sweep", "127.0.0.1", "--fail-on", "lots"),
        USAGE, "'lots'", "--fail-on"),
    row("sweep-format-unknown", hdp("sweep", "127.0.0.1", "--format", "html"),
        USAGE, "'html'", "--format"),
    row("sweep-out-a-directory", with_file("x", b"", "sweep", "127.0.0.1", "--out", "{tmp}"),
        USAGE, "is a directory", "--out"),
    row("sweep-out-no-such-directory",
        with_file("x", b"", "sweep", "127.0.0.1", "--out", "{tmp}/none/r.json"),
        USAGE, "there is no directory", "--out"),
    # standard input
    row("send-empty-stdin", hdp("send", "127.0.0.1", stdin=b""), USAGE, "standard input"),
    row("send-stdin-on-a-terminal", stdin_on_a_terminal, USAGE, "standard input"),
    row("send-stdin-closed", stdin_closed, USAGE, "standard input is closed"),
    row("send-stdin-write-only", stdin_write_only, USAGE, "cannot read standard input"),
    row("send-stdin-too-large", hdp("send", "127.0.0.1", stdin=b"x" * 70_000),
        USAGE, "more than 65535 bytes"),
    # report files
    row("report-dev-zero", hdp("report", "/dev/zero"), FAILURE, "/dev/zero",
        "larger than 64 MiB"),
    row("report-too-large", with_file("big.json", sparse(64 * 2 ** 20 + 1), "report", "{file}"),
        FAILURE, "larger than 64 MiB"),
    row("report-missing", hdp("report", "/nonexistent/r.json"), FAILURE, "r.json"),
    row("report-not-json", with_file("r.json", b"{'schema'", "report", "{file}"),
        FAILURE, "not JSON"),
    row("report-protocol-2-80", with_file("r.json", _report({"protocol": 2 ** 80}),
                                          "report", "{file}"),
        FAILURE, "'protocol' is 1208925819614629174706176", "-1..65535"),
    row("report-family-5", with_file("r.json", _report({"family": 5}), "report", "{file}"),
        FAILURE, "'family' is 5"),
    row("report-payload-changed-not-offsets",
        with_file("r.json", _report({"outcome": "altered", "payload_changed": "2-3; rm"}),
                  "report", "{file}"),
        FAILURE, "'payload_changed' is \"2-3; rm\"", "byte offsets"),
    row("report-duplicate-case", with_file("r.json", _report({}, {}), "report", "{file}"),
        FAILURE, "cases[1]", "is the case of cases[0] again"),
    row("report-wrong-type", with_file("r.json", _report({"target": ["x"] * 100_000}),
                                       "report", "{file}"),
        FAILURE, "'target'"),
    row("report-merge-dev-zero", with_file("r.json", _report(), "report", "merge", "{file}",
                                           "/dev/zero"),
        FAILURE, "/dev/zero", "larger than 64 MiB"),
    row("report-merge-duplicate", with_file("r.json", _report({}, {}), "report", "merge",
                                            "{file}", "{file}"),
        FAILURE, "is the case of cases[0] again"),
    # quirk profiles, as pytest --hdp-profile reads them
    row("profile-billion-laughs", profile("p.yaml", PROFILE + _laughs().encode()),
        PYTEST_USAGE, "expands to more than 100,000 values"),
    row("profile-deep", profile("p.yaml", PROFILE + b"  - " + b"[" * 5000 + b"]" * 5000),
        PYTEST_USAGE, "nested more than 32 levels deep"),
    row("profile-duplicate-key", profile("p.yaml", PROFILE.replace(b"applies:", b"profile: x\n"
                                                                   b"applies:")),
        PYTEST_USAGE, "p.yaml:2:", "'profile' appears twice"),
    row("profile-unknown-errno",
        profile("p.yaml", PROFILE + b"  - {protocols: [50], expect: send-error, "
                b"errno: EBOGUS, why: x}\n"),
        PYTEST_USAGE, "p.yaml:4:", "'EBOGUS' is no errno name"),
    row("profile-too-large", profile("p.yaml", sparse(2 ** 20 + 1)), PYTEST_USAGE,
        "larger than 1 MiB"),
    row("profile-not-utf8", profile("p.yaml", PROFILE + b"  # caf\xe9\n"), PYTEST_USAGE,
        "not UTF-8"),
    # lab topologies, as hdp lab up reads them (before anything is built)
    row("lab-billion-laughs", topology("t.yaml", TOPOLOGY + _laughs().encode()),
        FAILURE, "expands to more than 100,000 values"),
    row("lab-deep", topology("t.yaml", b"hosts: " + b"[" * 5000 + b"]" * 5000),
        FAILURE, "nested more than 32 levels deep"),
    row("lab-duplicate-host", topology("t.yaml", TOPOLOGY.replace(
        b"links:", b"  client: {role: server}\nlinks:") + b"  - ends: [client, router]\n"),
        FAILURE, "t.yaml:4:", "'client' appears twice"),
    row("lab-nested-ends", topology("t.yaml", TOPOLOGY + b"  - ends: [[client], router]\n"),
        FAILURE, "t.yaml:5:", "ends lists ['client']"),
    row("lab-include", topology("t.yaml", TOPOLOGY + b"  - ends: [client, router]\n"
                                b"nftables:\n  router: |\n    include \"/etc/shadow\"\n"),
        FAILURE, "t.yaml:8:", "'include'", "may not read files"),
    row("lab-too-large", topology("t.yaml", sparse(2 ** 20 + 1)), FAILURE, "larger than 1 MiB"),
    # privilege
    row("send-without-privilege", send_without_privilege, FAILURE, "CAP_NET_RAW"),
    row("listen-without-privilege", listen_without_privilege, FAILURE, "CAP_NET_RAW"),
]


def run(call: Call, cwd: Path) -> Result:
    if call.tool == "hdp":
        return run_hdp(*call.argv, stdin=call.stdin, prefix=call.prefix)
    command = [sys.executable, "-m", "pytest", *call.argv]
    done = subprocess.run(command, cwd=cwd, env=hdp_env(), capture_output=True, timeout=120,
                          check=False, input=call.stdin)
    return Result(command, done.returncode, done.stdout.decode("utf-8", "replace"),
                  done.stderr.decode("utf-8", "replace"))


@pytest.mark.parametrize(("make", "status", "mentions"), ROWS)
def test_bad_input_is_one_line(tmp_path: Path, make: Make, status: int,
                               mentions: tuple[str, ...]) -> None:
    with ExitStack() as stack:
        call = make(tmp_path, stack)
        result = run(call, tmp_path)
    assert "Traceback" not in result.stderr, result.describe()
    assert result.returncode == status, result.describe()
    lines = result.stderr_lines
    if call.tool == "pytest":  # pytest ends its usage error with a blank line
        lines = [line for line in lines if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}" \
        + result.describe()
    line = lines[0]
    if call.tool == "hdp":
        assert line.startswith("hdp") and "error" in line, result.describe()
        assert result.stdout == "", "nothing on stdout before an error" + result.describe()
    else:
        assert line.startswith("ERROR: --hdp-profile: "), result.describe()
    assert len(line) < 400, "a message names values by a short prefix" + result.describe()
    for text in mentions:
        assert text in line, f"the error does not mention {text!r}" + result.describe()


def test_the_table_runs_from_the_checkout() -> None:
    """The rows run `python -m hdp` from this checkout (helpers.ROOT), not an older install."""
    assert (ROOT / "hdp" / "__main__.py").is_file()


def test_privilege_drop_really_drops_raw_sockets() -> None:
    """What the privilege rows rely on: under the prefix, raw sockets are refused."""
    prefix = _without_net_raw()
    code = "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)"
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True,
                          timeout=30, check=False)
    assert done.returncode != 0 and b"PermissionError" in done.stderr, \
        f"raw socket still allowed under {shlex.join(prefix)}: {done.stderr.decode()}"
