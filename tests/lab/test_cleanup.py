"""Nothing of a lab outlives it: not after a killed owner, a failed or interrupted build,
processes left inside, or `stop_all`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hdp.lab.build
from hdp.lab import Lab, LabError, running_labs, start_lab, stop_all, stop_lab
from hdp.lab.netns import LAB_NAMESPACE
from hdp.lab.state import STATE_DIR, state_path
from tests.lab.conftest import lab_namespaces, requires_lab

pytestmark = requires_lab
ROOT = Path(__file__).resolve().parents[2]
CHILD = """\
import sys, time
from hdp.lab import start_lab
lab = start_lab(sys.argv[1])
print(lab.token, flush=True)
time.sleep(60)
"""


def state_files() -> set[str]:
    return {p.name for p in STATE_DIR.glob("*.json")} if STATE_DIR.is_dir() else set()


def ours() -> set[str]:
    """Lab namespaces and records, less those of labs other live processes own (xdist)."""
    others = {s.token for s in running_labs() if s.alive and s.owner != os.getpid()}
    names = {n for n in lab_namespaces()
             if (m := LAB_NAMESPACE.fullmatch(n)) and m.group(1) not in others}
    return names | {f for f in state_files() if f.removesuffix(".json") not in others}


@pytest.fixture
def unchanged() -> Iterator[None]:
    """The test must leave no namespace or lab record that was not there before."""
    before = ours()
    yield
    assert ours() <= before


def test_a_killed_owner_leaves_a_stale_lab_that_the_next_start_reaps(
        unchanged: None, lab: Callable[[str], Lab]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, "routed"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    token = ""
    try:
        assert child.stdout is not None
        token = child.stdout.readline().strip()
        assert len(token) == 6, child.stderr.read() if child.stderr else token
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        stale = [s for s in running_labs() if s.token == token]
        assert stale and stale[0].owner == child.pid and stale[0].stale
        assert set(stale[0].namespaces) <= lab_namespaces()  # left behind...
        lab("direct")  # ...until the next lab starts
        assert not [n for n in lab_namespaces() if n.startswith(f"hdp-{token}-")]
        assert not state_path(token).exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if token and state_path(token).exists():
            stop_lab(token)


def test_a_lab_whose_owner_lives_is_not_reaped(lab: Callable[[str], Lab]) -> None:
    mine = lab("direct")
    lab("direct")
    assert set(mine.namespaces) <= lab_namespaces()
    assert next(s for s in running_labs() if s.token == mine.token).alive
    with pytest.raises(LabError, match="belongs to a running process"):
        stop_lab("direct")


def test_a_bad_ruleset_fails_the_build_and_leaves_nothing(tmp_path: Path,
                                                          unchanged: None) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("""\
hosts: {client: {role: client}, gate: {role: router}, server: {role: server}}
links: [{ends: [client, gate]}, {ends: [gate, server]}]
nftables:
  gate: |
    table inet hdp { chain forward { type filter hook forward priority 0; policy drip; } }
""")
    with pytest.raises(LabError, match=r"gate's nftables ruleset .* did not load: .*drip"):
        start_lab(str(path))


def test_an_interrupt_in_the_middle_of_a_build_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch, unchanged: None) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hdp.lab.build, "add_routes", interrupted)  # links exist by then
    with pytest.raises(KeyboardInterrupt):
        start_lab("nat")


def test_an_exception_inside_with_still_takes_the_lab_down(unchanged: None) -> None:
    with pytest.raises(RuntimeError), start_lab("routed") as routed:
        assert set(routed.namespaces) <= lab_namespaces()
        raise RuntimeError("a failing test")


def test_down_ends_processes_left_inside(unchanged: None) -> None:
    routed = start_lab("routed")
    sleeper = subprocess.Popen(["ip", "netns", "exec", routed.namespace("server"),
                                "sleep", "30"])
    try:
        routed.down()
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_stop_all_leaves_no_lab_namespace(sole_lab_user: None) -> None:
    before = lab_namespaces()
    start_lab("nat")
    kept = start_lab("direct", keep=True)
    assert next(s for s in running_labs() if s.token == kept.token).kept
    removed = stop_all()
    assert set(kept.namespaces) <= set(removed)
    after = lab_namespaces()
    assert not {n for n in after if LAB_NAMESPACE.fullmatch(n)}
    assert after == {n for n in before if not LAB_NAMESPACE.fullmatch(n)}
    assert state_files() == set()
    assert stop_all() == []
