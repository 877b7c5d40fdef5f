"""Running pytest-hdp under the xnu model: in this process for one test, or as a whole
process (`python -m tests.darwin.run`) inside a network namespace of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 600

# The model drives Linux's raw sockets underneath; without them nothing can be modelled.
requires_model = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and RAW_V4 and RAW_V6),
    reason=f"the xnu model runs on Linux raw sockets: {RAW_FIX}")


@pytest.fixture
def xnu_model() -> Iterator[None]:
    """The model in place for one test; every socket the test opened must be closed."""
    if not (sys.platform.startswith("linux") and RAW_V4 and RAW_V6):
        pytest.skip(f"the xnu model runs on Linux raw sockets: {RAW_FIX}")
    from tests.darwin import xnu

    with xnu.installed():
        yield


def private_loopback() -> list[str]:
    """A command prefix that runs in a fresh network namespace with its loopback up, so
    other processes' raw sockets and ICMP budget cannot touch the run; [] where that
    needs privileges this process lacks (the run then uses the host's loopback)."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        return []
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def run_under_model(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`python -m tests.darwin.run ARGS` from the checkout, its output captured."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("PYTEST_ADDOPTS", None)
    command = [*private_loopback(), sys.executable, "-m", "tests.darwin.run", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
