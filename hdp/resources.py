"""Where the lab topologies and quirk profiles are: the one lookup every caller uses.

They ship inside the installed package `pytest_hdp.conformance` (the `conformance/` folder of
a checkout, mapped to that name by pyproject's `package-dir`), so a wheel finds them without
a checkout. Reading that package's files imports `pytest_hdp/__init__.py` and
`pytest_hdp/conformance/__init__.py`, two docstrings: no pytest.

The search orders differ on purpose:

- lab topologies (`hdp lab up NAME`, `--hdp-lab NAME`, run as root): a path is taken as
  given; a name comes from the folders in `HDP_LABS`, then the shipped ones. Never from the
  working directory: a root run must not build whatever `./conformance/labs/routed.yaml`
  the directory it happens to start in holds.
- quirk profiles (`--hdp-profile auto`, the chapter checks): an explicit file is taken as
  given; otherwise `conformance/profiles` and then `profiles` beside the user's tests (the
  pytest rootdir) come before the shipped folder, so a user's own profile overrides ours.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import hdp

PACKAGE = "pytest_hdp.conformance"
LABS_ENV = "HDP_LABS"


def shipped() -> Path | None:
    """The folder of the installed conformance package, or None when it is not installed.

    Outside an install (`python -m hdp` in a checkout that was never pip-installed) the
    `conformance/` folder beside the `hdp` package is the same files; it is the code's own
    folder, not the working directory.
    """
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError:
        beside = Path(hdp.__file__).resolve().parents[1] / "conformance"
        return beside if (beside / "__init__.py").is_file() else None
    # A package installed from a wheel is a folder on disk; a zipped one (zipimport) has
    # no paths to hand out, and is treated as not installed.
    return root if isinstance(root, Path) and root.is_dir() else None


def _unique(folders: list[Path]) -> list[Path]:
    """Existing folders, each once (a checkout's rootdir folder is also the shipped one)."""
    seen: set[Path] = set()
    found = []
    for folder in folders:
        resolved = folder.resolve()
        if folder.is_dir() and resolved not in seen:
            seen.add(resolved)
            found.append(folder)
    return found


def lab_folders() -> list[Path]:
    """Where topology names are looked up: `HDP_LABS` (os.pathsep-separated), then shipped."""
    given = [Path(part) for part in os.environ.get(LABS_ENV, "").split(os.pathsep) if part]
    package = shipped()
    return _unique([*given, *([package / "labs"] if package is not None else [])])


def profile_folders(rootdir: Path | None, folder: str = "") -> list[Path]:
    """Folders of profiles for `folder` ("" or "udp"), the user's beside `rootdir` first."""
    candidates = [] if rootdir is None else [rootdir / "conformance" / "profiles" / folder,
                                             rootdir / "profiles" / folder]
    package = shipped()
    if package is not None:
        candidates.append(package / "profiles" / folder)
    return _unique(candidates)
