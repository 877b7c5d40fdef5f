"""The agent's sudo and ssh launchers, for real: sudo -n, and an sshd of our own on loopback."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdp.agent.install import agent_command
from hdp.agent.launch import AgentClient, AgentError, AgentSpec, ssh_command
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import RAW_FIX, RAW_V4

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)


def _sweep_253(agent: AgentClient) -> Outcome:
    result = Engine(agent, {"127.0.0.1": agent}).run([Case("127.0.0.1", 4, 253)], timeout=2)
    return judge(result.observations[0]).outcome


def _parent_command(pid: int) -> str:
    ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    return Path(f"/proc/{ppid}/comm").read_text().strip()


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo: apt-get install sudo")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_agent_through_sudo():
    check = subprocess.run(["sudo", "-n", "true"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"sudo -n is not allowed here ({check.stderr.strip()}): "
                    "allow it in sudoers (NOPASSWD) for this user")
    agent = AgentClient.start(AgentSpec.parse("sudo"))
    try:
        assert agent.ready["raw"] is True
        assert _parent_command(agent.ready["pid"]) == "sudo"
        assert _sweep_253(agent) is Outcome.DELIVERED
    finally:
        agent.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An sshd of our own on 127.0.0.1 accepting one key; killed by PID afterwards."""
    daemon, keygen = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh-keygen")
    if not os.path.exists(daemon) or keygen is None or shutil.which("ssh") is None:
        pytest.skip("needs OpenSSH: apt-get install openssh-server openssh-client")
    if os.geteuid() != 0:
        pytest.skip("starting an sshd needs root: run the tests as root")
    for name in ("host", "client"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
                       check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "client.pub").read_text())
    os.chmod(tmp_path, 0o700)
    port = _free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / 'host'}\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\nPidFile {tmp_path / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        "StrictModes no\nAcceptEnv none\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    process = subprocess.Popen([daemon, "-D", "-e", "-f", str(config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # "Server listening on 127.0.0.1 port N."
        if "Server listening" not in line:
            pytest.fail(f"sshd did not start: {line}{process.stderr.read()}")
        yield port, tmp_path / "client"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_agent_over_ssh(sshd, monkeypatch):
    port, key = sshd
    monkeypatch.setenv("HDP_SSH_OPTIONS", f"-i {key} -o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    # The "remote" host is this one: run the hdp installed for this interpreter.
    monkeypatch.setenv("HDP_REMOTE_PYTHON", shlex.quote(sys.executable))
    started = time.monotonic()
    agent = AgentClient.start(AgentSpec.parse(f"ssh://root@127.0.0.1:{port}"))
    try:
        assert agent.ready["raw"] is True and agent.ready["pid"] != os.getpid()
        assert _sweep_253(agent) is Outcome.DELIVERED
    finally:
        agent.close()
    assert time.monotonic() - started < 30


def test_ssh_authentication_failure_is_one_line_with_ssh_stderr(sshd, monkeypatch):
    port, _ = sshd
    monkeypatch.setenv("HDP_SSH_OPTIONS", "-o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes "
                       "-o IdentityFile=/dev/null")
    with pytest.raises(AgentError) as caught:
        AgentClient.start(AgentSpec.parse(f"ssh://root@127.0.0.1:{port}"), timeout=20)
    message = str(caught.value)
    assert "exited before it was ready" in message and "Permission denied" in message
    assert "\n" not in message


@pytest.mark.parametrize(("where", "options", "destination"), [
    ("host", [], "host"),
    ("root@host:2222", ["-p", "2222"], "root@host"),
    ("[::1]:22", ["-p", "22"], "::1"),
    ("2001:db8:0:1:2:3:4:5", [], "2001:db8:0:1:2:3:4:5"),
])
def test_ssh_destinations(where, options, destination, monkeypatch):
    monkeypatch.delenv("HDP_SSH_OPTIONS", raising=False)
    monkeypatch.delenv("HDP_REMOTE_PYTHON", raising=False)
    command = ssh_command(where)
    assert command[:4] == ["ssh", "-o", "BatchMode=yes", "-T"]
    # `--` ends ssh's options before the destination; the remote command is one word
    # that ssh hands to the remote shell as it is.
    assert command[4:] == [*options, "--", destination, "python3 -I -m hdp.agent"]


@pytest.mark.parametrize("text", ["netns:lab-a1b2c3-server", "netns://lab-a1b2c3-server"])
def test_netns_agents_name_the_namespace_without_the_scheme(text):
    spec = AgentSpec.parse(text)
    assert (spec.kind, spec.where) == ("netns", "lab-a1b2c3-server")
    assert spec.command() == ["ip", "netns", "exec", "lab-a1b2c3-server", *agent_command()]
