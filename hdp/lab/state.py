"""What labs exist: one JSON file a lab in /run/hdp-lab/, written before anything is built.

A lab belongs to the process that started it (its pid and that process's start time, so a
reused pid is not mistaken for the owner). A lab whose owner has gone is stale and the next
`start_lab` reaps it; owner 0 means the user keeps it (`hdp lab up`) and only
`hdp lab down` removes it. The record also says who brought the lab up: the user (the one
behind sudo, when root runs through sudo) and the login session, so that `hdp lab down NAME`
removes the labs of this user's own session and leaves everyone else's alone.
/run is a tmpfs, so a reboot forgets labs and namespaces alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdp.lab.errors import LabError

STATE_DIR = Path("/run/hdp-lab")
KEPT = 0  # owner pid of a lab the user keeps: never reaped


@dataclass(frozen=True)
class LabState:
    token: str
    topology: str
    owner: int  # pid, or 0: kept by the user
    alive: bool  # the owner still runs (always true for a kept lab)
    namespaces: tuple[str, ...]
    created: float  # seconds since the epoch
    owner_start: int | None = None  # the owner's start time in clock ticks since boot
    user: int | None = None  # uid of who brought it up (SUDO_UID under sudo); None: unknown
    session: int | None = None  # their session id (getsid); None: unknown

    @property
    def kept(self) -> bool:
        return self.owner == KEPT

    @property
    def brought_up_here(self) -> bool:
        """Brought up by this user in this session (a record without them is nobody's)."""
        return (self.user, self.session) == (current_user(), current_session())

    @property
    def who(self) -> str:
        if self.user is None:
            return "an unknown user"
        return f"uid {self.user} in session {self.session}"

    @property
    def stale(self) -> bool:
        return not self.alive


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[19])


def owner_alive(owner: int, start: int | None) -> bool:
    if owner == KEPT:
        return True
    now = process_start(owner)
    return now is not None and (start is None or now == start)


def current_user() -> int:
    """The user behind this process: root's caller under sudo, else the real uid."""
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isdigit():
        return int(sudo_uid)
    return os.getuid()


def current_session() -> int:
    return os.getsid(0)


def state_path(token: str) -> Path:
    return STATE_DIR / f"{token}.json"


def write_state(token: str, topology: str, owner: int, namespaces: list[str]) -> None:
    """Record a lab (atomically), before its first namespace exists."""
    data = {"token": token, "topology": topology, "owner": owner,
            "owner_start": process_start(owner) if owner != KEPT else None,
            "namespaces": namespaces, "created": time.time(),
            "user": current_user(), "session": current_session()}
    partial = STATE_DIR / f".{token}.json.tmp"
    try:
        for attempt in (1, 2):  # another process may remove the empty directory meanwhile
            STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
                os.replace(partial, state_path(token))
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
    except OSError as exc:
        raise LabError(f"cannot record the lab in {STATE_DIR} ({exc.strerror}): "
                       "run as root") from None


def remove_state(token: str) -> None:
    """Forget lab `token`; the directory goes too once it is empty."""
    with contextlib.suppress(FileNotFoundError):
        state_path(token).unlink()
    with contextlib.suppress(OSError):  # not empty, or already gone
        STATE_DIR.rmdir()


def _parse(data: Any) -> LabState:
    owner = int(data["owner"])
    start = data.get("owner_start")
    user, session = data.get("user"), data.get("session")
    return LabState(str(data["token"]), str(data["topology"]), owner,
                    owner_alive(owner, start), tuple(map(str, data["namespaces"])),
                    float(data["created"]), start,
                    None if user is None else int(user),
                    None if session is None else int(session))


def read_state(token: str) -> LabState | None:
    try:
        return _parse(json.loads(state_path(token).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Unreadable: treat as stale so that it can be reaped, never as someone's live lab.
        return LabState(token, "?", -1, False, (), 0.0)


def running_labs() -> list[LabState]:
    """Every recorded lab, oldest first, with whether its owner still runs."""
    if not STATE_DIR.is_dir():
        return []
    found = [read_state(path.stem) for path in STATE_DIR.glob("*.json")]
    return sorted((s for s in found if s is not None), key=lambda s: (s.created, s.token))
