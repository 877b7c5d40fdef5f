"""An unprivileged user with one narrow sudoers rule: probes deliver, root powers stay out.

The rule is the one `hdp agent sudoers --user nobody` prints: this interpreter, exactly
`-I -m hdp.agent`, nothing else. pytest runs as `nobody`, its agent through that rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from hdp.agent.cli import sudoers_rule
from hdp.agent.install import agent_command
from hdp.pcap import decode_pcap
from hdp.wire import ipv4, udp
from hdp.wire.hdp import find_tag
from tests.conftest import RAW_FIX, RAW_V4
from tests.plugin.test_plugin import DELIVERY
from tests.security import helpers
from tests.security.helpers import as_nobody, shared_directory

SKIP = helpers.nobody_skip_reason()
pytestmark = [pytest.mark.skipif(SKIP is not None, reason=SKIP or ""),
              pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)]


@pytest.fixture(scope="module")
def narrow_rule() -> Iterator[str]:
    rule = sudoers_rule("nobody")
    with helpers.sudoers_rule(rule):
        yield rule


def test_the_rule_names_one_exact_command(narrow_rule):
    user, _, command = narrow_rule.partition(" ALL=(root) NOPASSWD: ")
    assert user == "nobody" and command.split() == agent_command()
    assert "*" not in command and "env" not in command.split() and "ALL" not in command
    allowed = as_nobody("sudo", "-n", "-l", "--", *agent_command())
    assert allowed.returncode == 0, allowed.stderr
    python = agent_command()[0]
    for other in (["/bin/sh", "-c", "id"], [python, "-m", "hdp.agent"],
                  [python, "-I", "-m", "hdp.agent", "extra"], [python, "-I", "-c", "pass"],
                  ["env", "PYTHONPATH=/tmp", *agent_command()]):
        assert as_nobody("sudo", "-n", "-l", "--", *other).returncode != 0, other


def test_unprivileged_pytest_delivers_through_the_narrow_rule(narrow_rule):
    # The unprivileged process itself may not open a raw socket...
    denied = as_nobody(sys.executable, "-I", "-c",
                       "from hdp import rawsock; rawsock.check_privilege(4)")
    assert denied.returncode != 0 and "CAP_NET_RAW" in denied.stderr
    # ...yet its test run delivers, through the one agent command sudoers allows it.
    with shared_directory() as work:
        (work / "test_delivery.py").write_text(DELIVERY)
        result = as_nobody(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "test_delivery.py", "--hdp-target",
                           "127.0.0.1", "--hdp-protocols", "252,253", "--hdp-payload", "hdp",
                           "--hdp-privilege", "auto", "-v", cwd=work)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed" in output and "agents: sudo" in output


def test_unprivileged_pytest_keeps_each_cases_packets_with_hdp_pcap(narrow_rule):
    """The batch's captures run in the sudo agent, which shows its caller only its own
    flows: each case's pcap still holds that case's probe, and nothing else."""
    with shared_directory() as work:
        (work / "test_delivery.py").write_text(DELIVERY)
        result = as_nobody(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "test_delivery.py", "--hdp-target",
                           "127.0.0.1", "--hdp-protocols", "252,253", "--hdp-payload", "hdp",
                           "--hdp-privilege", "auto", "--hdp-pcap", "all",
                           "--hdp-pcap-dir", "pcaps", "-v", cwd=work)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "2 passed" in output and "agents: sudo" in output
        pcaps = sorted((work / "pcaps").iterdir())
        assert [p.name for p in pcaps] == [
            f"test_delivery.py__test_delivery_127.0.0.1-ipv4-p{n}_.pcap" for n in (252, 253)]
        for protocol, path in zip((252, 253), pcaps, strict=True):
            records = decode_pcap(path.read_bytes())
            assert len(records) == 1, path.name  # the probe as it arrived, nothing else
            packet = ipv4.decode(records[0].data)
            found = find_tag(packet.payload)
            assert packet.header.protocol == protocol and found is not None and found[1].tag


# Runs as nobody: one sudo agent, asked for what only root may have.
POWERS = """
import sys
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.endpoint import Endpoint

def attempt(call):
    try:
        call()
        return "allowed"
    except AgentError as exc:
        return "refused: " + str(exc)

agent = AgentClient.start(AgentSpec("sudo"))
end = Endpoint(agent, "sudo")
print("caller", agent.ready["caller"], flush=True)
print("bind", attempt(lambda: end.open_udp(4, bind="127.0.0.1", port=53)), flush=True)
forged = bytes.fromhex(sys.stdin.readline().strip())
print("forge", attempt(lambda: end.send_packets(4, "127.0.0.1", [forged])), flush=True)
mine, peer = end.open_udp(4, bind="127.0.0.1"), end.open_udp(4, bind="127.0.0.1")
with end.capture(interface="lo", wait=0.5) as seen:
    print("capturing", flush=True)
    sys.stdin.readline()  # the other user's datagram has gone by
    end.send(mine.handle, data=b"own-flow", dst="127.0.0.1", port=peer.port)
print("own", any(b"own-flow" in data for _, data in seen.packets), flush=True)
print("foreign", any(b"private-secret" in data for _, data in seen.packets), flush=True)
agent.close()
"""


def test_the_same_user_cannot_sniff_forge_or_bind_a_privileged_port(narrow_rule):
    import socket

    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind(("127.0.0.1", 0))
    victim.settimeout(0.5)
    port = victim.getsockname()[1]
    datagram = udp.encode(4242, port, b"forged", "127.0.0.99", "127.0.0.1")
    forged = ipv4.encode(ipv4.IPv4Header(src=IPv4Address("127.0.0.99"),
                                         dst=IPv4Address("127.0.0.1"), protocol=17), datagram)
    process = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
         "env", "HOME=/tmp", sys.executable, "-I", "-c", POWERS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd="/")
    lines: dict[str, str] = {}
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(forged.hex() + "\n")
        process.stdin.flush()
        for line in process.stdout:
            key, _, value = line.rstrip("\n").partition(" ")
            lines[key] = value
            if key == "capturing":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.sendto(b"private-secret", ("127.0.0.1", port))
                assert victim.recv(100) == b"private-secret"  # it did go by
                process.stdin.write("\n")
                process.stdin.flush()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        victim_got = _drain(victim)
    assert process.returncode == 0, (lines, process.stderr.read() if process.stderr else "")
    assert lines["caller"] == "user"
    assert lines["bind"].startswith("refused") and "root caller" in lines["bind"]
    assert lines["forge"].startswith("refused") and "root caller" in lines["forge"]
    assert b"forged" not in victim_got
    assert (lines["own"], lines["foreign"]) == ("True", "False")


def _drain(sock) -> list[bytes]:
    got = []
    sock.settimeout(0.2)
    try:
        while True:
            got.append(sock.recv(100))
    except OSError:
        pass
    sock.close()
    return got


def test_a_sudo_agent_is_refused_from_an_install_its_user_can_change(narrow_rule):
    with shared_directory() as work:
        venv = work / "venv"
        made = as_nobody("/usr/bin/python3", "-m", "venv", "--without-pip", str(venv))
        assert made.returncode == 0, made.stderr
        # The nobody-owned venv reaches pytest-hdp through a .pth file it could rewrite.
        lib = f"python{sys.version_info.major}.{sys.version_info.minor}"
        real = os.path.join(sys.prefix, "lib", lib, "site-packages")
        (venv / "lib" / lib / "site-packages" / "hdp-real.pth").write_text(
            f"import site; site.addsitedir({real!r})\n")
        python = str(venv / "bin" / "python3")
        started = as_nobody(python, "-I", "-c", (
            "from hdp.agent.launch import AgentClient, AgentSpec\n"
            "AgentClient.start(AgentSpec('sudo'))"), cwd=work)
        sudoers = as_nobody(python, "-I", "-m", "hdp", "agent", "sudoers", cwd=work)
    assert started.returncode != 0
    last = started.stderr.strip().splitlines()[-1]
    assert "uid" in last and "can change" in last and "only root can write" in last
    assert sudoers.returncode != 0 and "user nobody can change" in sudoers.stderr
    assert sudoers.stderr.count("\n") == 1
