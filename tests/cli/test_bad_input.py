"""Bad input and missing privilege: one line on stderr, a non-zero exit, never a traceback.

Nothing here needs a packet to leave the host: the errors come before any send, and the
unknown-host lookup runs in an empty network namespace so no DNS query goes out.
"""

from __future__ import annotations

import os
import pty
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.cli.helpers import Result, run_hdp
from tests.conftest import RAW_V4

USAGE = 2  # argparse's and hdp's exit status for a bad command line
FAILURE = 1


def assert_one_line_error(result: Result, status: int, *mentions: str) -> str:
    """What a user checks: one line saying what is wrong, the exit status, no traceback."""
    assert "Traceback" not in result.stderr, result.describe()
    assert result.returncode == status, result.describe()
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}" \
        + result.describe()
    line = lines[0]
    assert line.startswith("hdp") and "error" in line, result.describe()
    for text in mentions:
        assert text in line, f"the error does not mention {text!r}" + result.describe()
    assert result.stdout == "", "nothing may be printed on stdout before a usage error" \
        + result.describe()
    return line


@pytest.mark.parametrize(("args", "stdin", "mentions"), [
    pytest.param(["send", "127.0.0.1", "--protocol", "abc"], b"x\n", ["'abc'", "--protocol"],
                 id="send-protocol-abc"),
    pytest.param(["send", "127.0.0.1", "--protocol", "70000"], b"x\n", ["70000", "--protocol"],
                 id="send-protocol-70000"),
    pytest.param(["send", "127.0.0.1", "--count", "0"], b"x\n", ["count 0", "--count"],
                 id="send-count-0"),
    pytest.param(["send", "127.0.0.1", "--family", "5"], b"x\n", ["'5'", "--family"],
                 id="send-family-5"),
    pytest.param(["send", "127.0.0.1"], b"", ["standard input"], id="send-empty-stdin"),
    pytest.param(["send", "127.0.0.1", "--family", "6"], b"x\n", ["127.0.0.1", "--family"],
                 id="send-family-mismatch"),
    pytest.param(["send"], b"x\n", ["TARGET"], id="send-without-target"),
    pytest.param([], b"", ["command"], id="no-command"),
    pytest.param(["listen", "--family", "5", "--timeout", "1"], b"", ["'5'", "--family"],
                 id="listen-family-5"),
    pytest.param(["listen", "--count", "0", "--timeout", "1"], b"", ["count 0", "--count"],
                 id="listen-count-0"),
    pytest.param(["listen", "--timeout", "0"], b"", ["timeout 0", "--timeout"],
                 id="listen-timeout-0"),
    pytest.param(["listen", "--protocol", "abc", "--timeout", "1"], b"", ["'abc'"],
                 id="listen-protocol-abc"),
])
def test_bad_command_line_is_one_line(args, stdin, mentions):
    assert_one_line_error(run_hdp(*args, stdin=stdin), USAGE, *mentions)


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


def test_unknown_host_is_one_line():
    result = run_hdp("send", "nosuch.invalid", stdin=b"x\n", prefix=_offline_prefix())
    assert_one_line_error(result, FAILURE, "nosuch.invalid", "resolve")


def test_stdin_on_a_terminal_is_one_line():
    controller, terminal = pty.openpty()
    try:
        result = run_hdp("send", "127.0.0.1", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert_one_line_error(result, USAGE, "standard input")


def test_closed_stdin_is_one_line():
    """BUG (see the report): with stdin closed, sys.stdin is None and hdp send crashes."""
    close_stdin = ["sh", "-c", 'exec "$@" <&-', "sh"]
    result = run_hdp("send", "127.0.0.1", stdin=b"x\n", prefix=close_stdin)
    assert_one_line_error(result, USAGE, "standard input")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="'lo' is Linux's loopback")
def test_ipv4_address_with_a_zone_is_one_line():
    """BUG (see the report): 127.0.0.1%lo is accepted, then sendto fails as "E-2"."""
    result = run_hdp("send", "127.0.0.1%lo", "--protocol", "253", stdin=b"x\n")
    assert "E-2" not in result.stdout, "errno values are names, never numbers" + result.describe()
    assert_one_line_error(result, USAGE, "127.0.0.1%lo")


# --- no privilege ----------------------------------------------------------------------------


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


def test_send_without_privilege_is_one_line():
    result = run_hdp("send", "127.0.0.1", stdin=b"x\n", prefix=_without_net_raw())
    assert_one_line_error(result, FAILURE, "CAP_NET_RAW")


def test_listen_without_privilege_is_one_line():
    result = run_hdp("listen", "--timeout", "1", stdin=b"", prefix=_without_net_raw())
    assert_one_line_error(result, FAILURE, "CAP_NET_RAW")


def test_privilege_drop_really_drops_raw_sockets():
    """The check the two tests above rely on: under the prefix, raw sockets are refused."""
    prefix = _without_net_raw()
    code = "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)"
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True,
                          timeout=30, check=False)
    assert done.returncode != 0 and b"PermissionError" in done.stderr, \
        f"raw socket still allowed under {shlex.join(prefix)}: {done.stderr.decode()}"
