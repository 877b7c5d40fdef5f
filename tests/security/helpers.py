"""Shared by the security tests: a planted `hdp` package, and running as `nobody`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUDOERS = Path("/etc/sudoers.d")
# What a planted module does when imported: leave a mark (harmless) and refuse to serve.
PLANT = """import os, pathlib
pathlib.Path({marker!r}).write_text(f"imported as uid {{os.getuid()}}")
raise SystemExit("planted code ran")
"""


@dataclass(frozen=True)
class Planted:
    """A directory holding a fake `hdp/agent/__main__.py`; `marker` appears if it runs."""

    directory: Path
    marker: Path

    def ran(self) -> bool:
        return self.marker.exists()


def plant(root: Path) -> Planted:
    """`root/plant/hdp/{__init__,agent/__init__,agent/__main__}.py`, each leaving a mark."""
    directory = root / "plant"
    marker = root / "planted-code-ran"
    (directory / "hdp" / "agent").mkdir(parents=True)
    for name in ("hdp/__init__.py", "hdp/agent/__init__.py", "hdp/agent/__main__.py"):
        (directory / name).write_text(PLANT.format(marker=str(marker)))
    for path in (root, directory, *directory.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)  # any user may run from here
    return Planted(directory, marker)


def as_nobody(*command: str, cwd: Path | None = None, timeout: float = 300,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
         "env", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1",
         *(f"{k}={v}" for k, v in (env or {}).items()), *command],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def nobody_skip_reason() -> str | None:
    """Why the tests that act as `nobody` cannot run here, with the fix; None if they can."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux to stand up an unprivileged user with sudo rights"
    for tool in ("sudo", "setpriv", "visudo"):
        if shutil.which(tool) is None:
            return f"needs {tool}: apt-get install sudo util-linux"
    if as_nobody(sys.executable, "-I", "-c", "import pytest_hdp, hdp").returncode != 0:
        return (f"{sys.executable} (or its install of pytest-hdp) is not usable by an "
                "unprivileged user: create the venv from /usr/bin/python3 (bash "
                "scripts/setup.sh does)")
    return None


@contextmanager
def sudoers_rule(rule: str) -> Iterator[Path]:
    """A sudoers drop-in holding `rule`, checked by visudo, removed whatever happens."""
    drop_in = SUDOERS / f"hdp-test-{uuid.uuid4().hex[:8]}"
    try:
        drop_in.write_text(rule + "\n")
        drop_in.chmod(0o440)
        check = subprocess.run(["visudo", "-cf", str(drop_in)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        yield drop_in
    finally:
        drop_in.unlink(missing_ok=True)


@contextmanager
def shared_directory() -> Iterator[Path]:
    """A directory every user may use (pytest's own temp root is private to root)."""
    work = Path(tempfile.mkdtemp(prefix="hdp-security-"))
    try:
        work.chmod(0o777)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
