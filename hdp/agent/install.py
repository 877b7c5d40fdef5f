"""What a root agent runs: this interpreter, isolated, importing this installed hdp.

Agents start as ``python -I -m hdp.agent``: no PYTHONPATH, no current directory, no user
site-packages on sys.path, so only the installation's own code runs. That requires hdp
to be installed for the interpreter (an editable install counts); a bare checkout is
refused with the fix. An agent started through sudo runs that code as root for another
user, so it is refused too when that user could change the code: the interpreter, the
directories on its sys.path (a .pth file there runs at start-up) or the files of hdp
and of every module the agent loads, or any directory above them.
"""

from __future__ import annotations

import functools
import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hdp.errors import HdpError

HDP_DIR = Path(__file__).resolve().parents[1]
ROOT_INSTALL_FIX = ("install pytest-hdp where only root can write, e.g. `sudo python3 -m venv "
                    "/opt/hdp && sudo /opt/hdp/bin/pip install pytest-hdp`, and run that "
                    "install's pytest or hdp")
# Run by the isolated interpreter: where it finds hdp, and what the agent's code is made of.
_SURVEY = """
import json, os, sys
import hdp, hdp.agent.server, hdp.agent.icmp_watch, hdp.capture
print(json.dumps({"hdp": os.path.dirname(os.path.realpath(hdp.__file__)),
                  "prefix": sys.prefix, "path": [p for p in sys.path if p],
                  "modules": sorted({m.__file__ for m in list(sys.modules.values())
                                     if getattr(m, "__file__", None)})}))
"""


class InstallError(HdpError):
    """An installation an agent cannot, or must not, be started from."""


def agent_command(python: str | None = None) -> list[str]:
    """The command line of an agent: the same for every launcher and for sudoers."""
    return [python or interpreter(), "-I", "-m", "hdp.agent"]


@functools.lru_cache(maxsize=1)
def interpreter() -> str:
    """This Python under one name, whichever of its names (python, python3, python3.11)
    started this process: a sudoers rule matches the path it was written for."""
    canonical = os.path.join(sys.prefix, "bin", "python3")
    try:
        if os.path.samefile(canonical, sys.executable):
            return canonical
    except OSError:
        pass
    return sys.executable


@dataclass(frozen=True)
class Survey:
    hdp: Path
    paths: tuple[Path, ...]  # everything whose change would change the agent's code


@functools.lru_cache(maxsize=4)
def survey(python: str | None = None) -> Survey:
    """Where the isolated interpreter finds hdp; InstallError when not this one."""
    python = python or interpreter()
    try:
        done = subprocess.run([python, "-I", "-c", _SURVEY], capture_output=True, text=True,
                              timeout=60, cwd="/", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run {python} to check the agent's install: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(
            f"agents run `{' '.join(agent_command(python))}`, which cannot import hdp "
            f"({last}): install this checkout for that Python, e.g. `{python} -m pip install "
            f"-e {HDP_DIR.parent}`")
    found = json.loads(done.stdout)
    hdp = Path(found["hdp"])
    if hdp != HDP_DIR:
        raise InstallError(
            f"agents would import hdp from {hdp}, not this one ({HDP_DIR}): install this "
            f"checkout for {python} (`{python} -m pip install -e {HDP_DIR.parent}`) or run "
            f"the installed one")
    paths = [Path(python), Path(found["prefix"]) / "pyvenv.cfg"]
    paths += [Path(p) for p in found["path"]]
    paths += [Path(m) for m in found["modules"]]
    for where, dirs, files in os.walk(hdp):
        paths += [Path(where) / name for name in (*dirs, *files)]
    return Survey(hdp, tuple(p for p in dict.fromkeys(paths) if os.path.lexists(p)))


def writable_by(paths: Iterable[Path], uid: int, gids: set[int]) -> list[Path]:
    """The paths that user `uid` (groups `gids`) could change or replace; symlinks are
    followed hop by hop, and a path is replaceable through any directory above it."""
    if uid == 0:
        return list(paths)
    found: list[Path] = []
    checked: dict[Path, bool] = {}
    for path in paths:
        for hop in _hops(path):
            if _changeable(hop, uid, gids, checked):
                found.append(path)
                break
    return found


def _hops(path: Path) -> list[Path]:
    """`path` and every link it goes through, up to the file itself (absolute)."""
    hops, current = [], Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on links followed
        hops.append(current)
        if not current.is_symlink():
            break
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    return hops


def _changeable(path: Path, uid: int, gids: set[int], checked: dict[Path, bool]) -> bool:
    """Whether the user may write `path` itself, or replace it through a directory above."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISLNK(info.st_mode) and _may_write(info, uid, gids):
        return True
    return _replaceable(path, info, uid, gids, checked)


def _replaceable(path: Path, info: os.stat_result, uid: int, gids: set[int],
                 checked: dict[Path, bool]) -> bool:
    if path in checked:
        return checked[path]
    parent = path.parent
    result = False
    if parent != path:
        try:
            above = parent.lstat()
        except OSError:
            above = None
        if above is not None:
            # A writable directory lets its entries be renamed away and replaced, unless
            # it is sticky (/tmp) and neither it nor the entry belongs to the user.
            result = _may_write(above, uid, gids) and (
                not above.st_mode & stat.S_ISVTX or uid in (above.st_uid, info.st_uid))
            result = result or _replaceable(parent, above, uid, gids, checked)
    checked[path] = result
    return result


def _may_write(info: os.stat_result, uid: int, gids: set[int]) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IWUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IWGRP)
    return bool(info.st_mode & stat.S_IWOTH)


def user_ids(name: str) -> tuple[int, set[int]]:
    """(uid, groups) of a user by name or number; InstallError when there is none."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise InstallError(f"no user {name!r}: give a user name from /etc/passwd") from None
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
    return entry.pw_uid, groups


def check_root_install(uid: int, gids: set[int], who: str) -> Survey:
    """The survey of this install, or InstallError when `who` could change its code."""
    found = survey()
    writable = writable_by(found.paths, uid, gids)
    if writable:
        more = f" (and {len(writable) - 1} more)" if len(writable) > 1 else ""
        raise InstallError(
            f"{who} can change {writable[0]}{more}, code that a sudo-started agent would "
            f"run as root: {ROOT_INSTALL_FIX}")
    return found
