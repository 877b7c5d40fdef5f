"""pytest itself unprivileged, its agent through sudo -n: the plugin finds its way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.plugin.test_plugin import DELIVERY

SUDOERS = Path("/etc/sudoers.d")


def _as_nobody(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
         "env", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", *command],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def nobody_may_sudo():
    """Lets `nobody` run sudo -n for the length of the test; the drop-in is always removed."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("needs root on Linux to stand up an unprivileged user with sudo rights")
    for tool in ("sudo", "setpriv", "visudo"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}: apt-get install sudo util-linux")
    if _as_nobody(sys.executable, "-c", "import pytest_hdp, hdp").returncode != 0:
        pytest.skip(f"{sys.executable} (or this checkout) is not usable by an unprivileged "
                    "user: create the venv from /usr/bin/python3 (bash scripts/setup.sh does)")
    drop_in = SUDOERS / f"hdp-test-{uuid.uuid4().hex[:8]}"
    try:
        drop_in.write_text("nobody ALL=(root) NOPASSWD: ALL\n")
        drop_in.chmod(0o440)
        check = subprocess.run(["visudo", "-cf", str(drop_in)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        yield
    finally:
        drop_in.unlink(missing_ok=True)


@pytest.fixture
def shared_dir():
    """A directory nobody can use (pytest's own temp root is private to root)."""
    work = Path(tempfile.mkdtemp(prefix="hdp-nobody-"))
    try:
        work.chmod(0o777)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_unprivileged_pytest_probes_through_sudo(nobody_may_sudo, shared_dir):
    work = shared_dir
    (work / "test_delivery.py").write_text(DELIVERY)
    # The unprivileged process itself may not open a raw socket...
    denied = _as_nobody(sys.executable, "-c",
                        "from hdp import rawsock; rawsock.check_privilege(4)")
    assert denied.returncode != 0 and "CAP_NET_RAW" in denied.stderr
    # ...yet its test run delivers, through an agent it starts with sudo -n.
    result = _as_nobody(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                        "-p", "no:randomly", "test_delivery.py", "--hdp-target", "127.0.0.1",
                        "--hdp-protocols", "252,253", "--hdp-payload", "hdp",
                        "--hdp-privilege", "auto", "-v", cwd=work)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed" in output and "agents: sudo" in output
