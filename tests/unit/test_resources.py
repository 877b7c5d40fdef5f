"""hdp.resources: where topologies and profiles are looked up, and what the wheel lists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdp import resources

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_folder_is_the_conformance_package() -> None:
    shipped = resources.shipped()
    assert shipped is not None and (shipped / "__init__.py").is_file()
    assert len(list((shipped / "labs").glob("*.yaml"))) == 9
    assert (shipped / "profiles" / "linux.yaml").is_file()
    assert (shipped / "profiles" / "udp" / "linux.yaml").is_file()


def test_the_lookup_imports_no_pytest() -> None:
    """hdp never imports pytest; reading the conformance package's files must not either."""
    code = ("import sys; from hdp import resources; from hdp.lab import topology_names; "
            "assert resources.shipped() is not None and topology_names(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, cwd="/")
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_user_profile_folders_come_before_the_shipped_one(tmp_path: Path) -> None:
    shipped = resources.shipped()
    assert shipped is not None
    assert resources.profile_folders(tmp_path) == [shipped / "profiles"]
    (tmp_path / "profiles" / "udp").mkdir(parents=True)
    (tmp_path / "conformance" / "profiles").mkdir(parents=True)
    assert resources.profile_folders(tmp_path) == [
        tmp_path / "conformance" / "profiles", tmp_path / "profiles", shipped / "profiles"]
    assert resources.profile_folders(tmp_path, "udp") == [
        tmp_path / "profiles" / "udp", shipped / "profiles" / "udp"]


def test_a_checkout_lists_its_own_profiles_once() -> None:
    """In a checkout rootdir/conformance/profiles is the shipped folder itself."""
    assert len(resources.profile_folders(ROOT)) == 1


def test_labs_come_from_hdp_labs_then_the_package_never_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = resources.shipped()
    assert shipped is not None
    (tmp_path / "conformance" / "labs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(resources.LABS_ENV, raising=False)
    assert resources.lab_folders() == [shipped / "labs"]
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv(resources.LABS_ENV, f"{mine}{os.pathsep}{tmp_path / 'missing'}")
    assert resources.lab_folders() == [mine, shipped / "labs"]


def test_pyproject_lists_every_package_of_the_tree() -> None:
    """The package list is explicit (a package-dir mapping); a new folder must join it."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for top in ("hdp", "pytest_hdp") for init in (ROOT / top).rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"pytest_hdp.conformance"}
    assert setuptools["package-dir"] == {"pytest_hdp.conformance": "conformance"}
