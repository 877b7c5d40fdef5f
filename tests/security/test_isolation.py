"""No launcher lets the caller's directory or PYTHONPATH put code into an agent.

Each test plants `hdp/agent/__main__.py` (and `hdp/__init__.py`) in the working directory
and on PYTHONPATH, then starts a real agent through one launcher: the agent must come up,
report the installed hdp, and the planted code must never run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdp.agent import install
from hdp.agent.launch import AgentClient, AgentSpec
from tests.conftest import RAW_FIX, RAW_V4
from tests.integration.test_launchers import sshd  # noqa: F401 (a fixture)
from tests.lab.conftest import lab, requires_lab  # noqa: F401 (a fixture)
from tests.security.helpers import Planted, plant

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planted]:
    """Work from a directory holding planted code, with it on PYTHONPATH too."""
    found = plant(tmp_path)
    monkeypatch.chdir(found.directory)
    monkeypatch.setenv("PYTHONPATH", str(found.directory))
    yield found


def _start_and_check(spec: AgentSpec, planted: Planted) -> None:
    agent = AgentClient.start(spec)
    try:
        assert agent.ready["hdp"] == str(install.HDP_DIR)
        assert agent.ready["caller"] == "root"
    finally:
        agent.close()
    assert not planted.ran(), planted.marker.read_text()


def test_child_agent_ignores_planted_code(planted):
    assert install.agent_command()[1:] == ["-I", "-m", "hdp.agent"]
    _start_and_check(AgentSpec("child"), planted)


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo: apt-get install sudo")
def test_sudo_agent_ignores_planted_code(planted):
    if subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("sudo -n is not allowed here: allow it in sudoers (NOPASSWD)")
    assert "PYTHONPATH" not in " ".join(AgentSpec("sudo").command())
    _start_and_check(AgentSpec("sudo"), planted)


def test_userns_agent_ignores_planted_code(planted):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) and Linux user namespaces")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are off here ({probe.stderr.strip()})")
    _start_and_check(AgentSpec("userns"), planted)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A bare network namespace of this test's own (not a lab: no hdp- prefix)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    name = f"sec-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_netns_agent_ignores_planted_code(planted, namespace):
    _start_and_check(AgentSpec.parse(f"netns:{namespace}"), planted)


def test_ssh_agent_ignores_planted_code_and_keeps_a_path_with_spaces(
        sshd, planted, tmp_path, monkeypatch):  # noqa: F811
    port, key = sshd
    # This interpreter's venv, reached through a directory whose name has spaces.
    spaced = tmp_path / "py with spaces"
    (spaced / "bin").mkdir(parents=True)
    prefix = Path(sys.prefix)
    shutil.copy(prefix / "pyvenv.cfg", spaced / "pyvenv.cfg")
    (spaced / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    lib = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (spaced / "lib" / lib).mkdir(parents=True)
    (spaced / "lib" / lib / "site-packages").symlink_to(prefix / "lib" / lib / "site-packages")
    monkeypatch.setenv("HDP_SSH_OPTIONS", f"-i {key} -o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    # The caller tries PYTHONPATH on the remote side as well: -I ignores it there too.
    monkeypatch.setenv("HDP_REMOTE_PYTHON", shlex.join(
        ["env", f"PYTHONPATH={planted.directory}", str(spaced / "bin" / "python3")]))
    _start_and_check(AgentSpec.parse(f"ssh://root@127.0.0.1:{port}"), planted)


@requires_lab
def test_vantage_worker_ignores_planted_code(lab, tmp_path, monkeypatch):  # noqa: F811
    started = lab("direct")
    planted = plant(tmp_path)
    monkeypatch.chdir(planted.directory)
    # The launcher itself is this user's own process and reads PYTHONPATH like any
    # Python; the worker it starts must not: a module only there stays out of reach.
    elsewhere = tmp_path / "pythonpath"
    elsewhere.mkdir()
    (elsewhere / "planted_probe.py").write_text(f"open({str(planted.marker)!r}, 'w')")
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    # As xdist runs it: the console script (`python -m hdp` would itself put the working
    # directory first on sys.path, before any of our code could say otherwise).
    result = subprocess.run(
        [str(Path(sys.executable).with_name("hdp")), "lab", "python", f"{started.token}/client",
         "-c", "import hdp, sys; print(hdp.__file__, sys.flags.isolated); import planted_probe"],
        capture_output=True, text=True, timeout=60, check=False)
    assert "No module named 'planted_probe'" in result.stderr, result.stderr
    path, isolated = result.stdout.split()
    assert Path(path).parent == install.HDP_DIR and isolated == "1"
    assert not planted.ran()
