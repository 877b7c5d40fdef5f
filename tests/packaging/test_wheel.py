"""The product as a user gets it: the built wheel in a fresh venv, used from a folder outside
the checkout, with no ini file and no conformance/ folder in sight.

Slow (a wheel and a venv with its dependencies, about 20 s), so both are made once per
session and shared by the tests here (and by xdist workers, under a lock).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RAW_FIX, RAW_V4, RAW_V6
from tests.lab.conftest import lab_namespaces, requires_lab
from tests.plugin.readme import examples

ROOT = Path(__file__).resolve().parents[2]
LABS = ("direct", "firewall-drop", "firewall-reject", "first-packet", "lossy", "mtu-1280",
        "mtu-576", "nat", "routed")
# What a wheel is built from: the checkout less its caches, venv and earlier builds.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".tools", "build", "dist", "*.egg-info",
                                     "__pycache__", ".*_cache", ".hypothesis")
USER_TEST = '''
def test_my_path(hdp_result):
    hdp_result.check()
'''
requires_linux_raw = pytest.mark.skipif(
    not (RAW_V4 and sys.platform.startswith("linux")),
    reason=RAW_FIX + " (the shipped profile checked here is Linux's)")


@dataclass(frozen=True)
class Installed:
    """A venv holding only the wheel and its dependencies, and a user's empty folder."""

    wheel: Path
    venv: Path
    home: Path

    def run(self, *command: str, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`command` (a script of the venv: hdp, python) as a user runs it in `home`."""
        program = str(self.venv / "bin" / command[0])
        return subprocess.run([program, *command[1:]], cwd=cwd or self.home, env=_user_env(
            self.venv), capture_output=True, text=True, timeout=timeout, check=False)


def _user_env(venv: Path) -> dict[str, str]:
    """This environment less what ties a process to the checkout or to this test run."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HDP_", "PYTEST_", "PYTHON")) and key != "VIRTUAL_ENV"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _must(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                    f"{done.stderr[-3000:]}", pytrace=False)


def _build(folder: Path) -> Installed:
    sources, wheels, venv, home = (folder / name for name in ("src", "wheels", "venv", "home"))
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)  # builds leave build/ in the tree
    _must(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(wheels), str(sources)], capture_output=True, text=True,
                         timeout=600, check=False), "pip wheel")
    (wheel,) = wheels.glob("pytest_hdp-*.whl")
    _must(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                         text=True, timeout=300, check=False),
          "python -m venv (apt-get install python3-venv)")
    _must(subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          str(wheel)], capture_output=True, text=True, timeout=600,
                         check=False), "pip install of the wheel")
    shutil.rmtree(sources)
    home.mkdir()
    return Installed(wheel, venv, home)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.getbasetemp()
    # xdist workers' base folders sit in one folder of this session: share one venv there.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "wheel"
    with (shared / "wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / "home").is_dir():
                shutil.rmtree(folder, ignore_errors=True)  # a build that failed halfway
                folder.mkdir()
                _build(folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    product = Installed(next((folder / "wheels").glob("*.whl")), folder / "venv", folder / "home")
    assert ROOT not in product.home.parents
    yield product


def test_the_wheel_carries_the_code_the_suite_labs_and_profiles(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {str(path.relative_to(ROOT)) for top in ("hdp", "pytest_hdp")
                for path in (ROOT / top).rglob("*.py") if "__pycache__" not in path.parts}
    conformance = ROOT / "conformance"
    expected |= {"pytest_hdp/conformance/" + str(path.relative_to(conformance))
                 for pattern in ("*.py", "labs/*.yaml", "profiles/**/*.yaml")
                 for path in conformance.glob(pattern)}
    assert len([name for name in expected if "/labs/" in name]) == len(LABS)
    assert expected - names == set()
    assert not any(name.startswith(("tests/", "conformance/")) for name in names)


def test_hdp_lab_list_shows_every_topology_and_none_of_the_working_directory(
        installed: Installed, tmp_path: Path) -> None:
    planted = tmp_path / "conformance" / "labs"
    planted.mkdir(parents=True)
    (planted / "planted.yaml").write_text("lab: planted\nhosts: {a: {}}\nlinks: []\n")
    done = installed.run("hdp", "lab", "list", cwd=tmp_path)
    _must(done, "hdp lab list")
    listed = re.findall(r"^  (\S+)  ", done.stdout.split("running labs")[0], re.MULTILINE)
    assert listed == list(LABS)


@requires_lab
def test_a_lab_comes_up_and_goes_down_from_the_wheel(installed: Installed) -> None:
    up = installed.run("hdp", "lab", "up", "routed")
    found = re.search(r"token ([0-9a-f]+)", up.stdout)
    if found is None:
        _must(up, "hdp lab up routed")
        pytest.fail(f"hdp lab up printed no token:\n{up.stdout}", pytrace=False)
    token = found.group(1)
    try:
        _must(up, "hdp lab up routed")
        assert {f"hdp-{token}-{host}" for host in ("client", "router", "server")} <= \
            lab_namespaces()
    finally:
        down = installed.run("hdp", "lab", "down", token)  # only the lab this test made
    _must(down, f"hdp lab down {token}")
    assert not {name for name in lab_namespaces() if name.startswith(f"hdp-{token}-")}


@requires_linux_raw
def test_a_users_own_check_is_held_to_the_shipped_linux_profile(installed: Installed) -> None:
    """From the wheel, with no ini and no profile folder of one's own: the default target is
    loopback and `--hdp-profile auto` finds the shipped Linux profile, so the platform's
    known quirks xfail instead of failing (before the wheel shipped it: 7 failures)."""
    (installed.home / "test_mine.py").write_text(USER_TEST, encoding="utf-8")
    done = installed.run("python", "-m", "pytest", "test_mine.py", "--hdp-profile", "auto",
                         "-p", "no:cacheprovider", "-q")
    _must(done, "pytest test_mine.py")
    profile = re.search(r"^profile: (.*)$", done.stdout, re.MULTILINE)
    assert profile is not None and profile.group(1).endswith(
        "site-packages/pytest_hdp/conformance/profiles/linux.yaml"), done.stdout[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ xfailed in .*", summary), summary
    targets = {"127.0.0.1 IPv4"} | ({"::1 IPv6"} if RAW_V6 else set())
    assert all(f"  {target} " in done.stdout for target in targets), done.stdout[-2000:]


@requires_linux_raw
@pytest.mark.parametrize("mode", ["prepend", "importlib"])
def test_the_installed_suite_runs_green_from_anywhere(installed: Installed, mode: str) -> None:
    done = installed.run("python", "-m", "pytest", "--pyargs", "pytest_hdp.conformance",
                         "--hdp-target=127.0.0.1", "-p", "no:cacheprovider",
                         f"--import-mode={mode}", "-q", "-rfE")
    _must(done, "pytest --pyargs pytest_hdp.conformance")
    counts = dict((word, int(number)) for number, word in
                  re.findall(r"(\d+) (passed|failed|errors?)", done.stdout.splitlines()[-1]))
    assert counts.get("passed", 0) > 100 and not counts.get("failed"), done.stdout[-2000:]


def test_the_collected_suite_is_the_installed_one(installed: Installed) -> None:
    where = installed.run("python", "-c", "import pytest_hdp.conformance as suite; "
                                          "print(suite.__file__)")
    _must(where, "import pytest_hdp.conformance")
    assert Path(where.stdout.strip()).parent == next(
        installed.venv.glob("lib/python*/site-packages/pytest_hdp/conformance"))
    done = installed.run("python", "-m", "pytest", "--pyargs", "pytest_hdp.conformance",
                         "--collect-only", "-p", "no:cacheprovider", "--hdp-target=127.0.0.1")
    _must(done, "pytest --collect-only")
    assert f"rootdir: {installed.home}" in done.stdout
    assert "<Package pytest_hdp>" in done.stdout and "<Package conformance>" in done.stdout
    modules = set(re.findall(r"<Module (test_\w+\.py)>", done.stdout))
    assert modules == {path.name for path in (ROOT / "conformance").glob("test_*.py")}


@requires_linux_raw
@pytest.mark.parametrize("lab", ["none", pytest.param("routed", marks=requires_lab)])
def test_the_readmes_path_tests_pass_from_the_wheel(installed: Installed, tmp_path: Path,
                                                    lab: str) -> None:
    """The README's "Writing path tests" examples, in a folder of a user's own, against
    the installed plugin: on loopback and across the routed lab."""
    for name, source in examples().items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    done = installed.run("python", "-m", "pytest", "-p", "no:cacheprovider", "--hdp-lab", lab,
                         "-q", "-rfEs", cwd=tmp_path)
    _must(done, f"pytest of the README's examples (--hdp-lab {lab})")
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), done.stdout[-2000:]
