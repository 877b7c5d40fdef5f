"""hdp.lab.hold and the `hdp_sysctl` fixture: a lab host's settings, one user at a time.

Other processes are real processes (xdist workers are), trying the namespace's lock
without waiting, so every assertion is about the state at that moment.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.endpoint import Endpoint
from hdp.lab import Lab
from hdp.lab.hold import HoldError, SettingsHold, namespace_file
from tests.lab.conftest import requires_lab

pytestmark = requires_lab

TIMER = "net.ipv4.ipfrag_time"


@pytest.fixture
def server(lab: Callable[[str], Lab]) -> Iterator[tuple[Lab, Endpoint]]:
    started = lab("direct")
    endpoint = Endpoint(AgentClient.start(AgentSpec("netns", started.namespace("server"))),
                        "server")
    try:
        yield started, endpoint
    finally:
        endpoint.agent.close()


def _elsewhere(path: str, *, exclusive: bool) -> str:
    """What another process gets when it tries the lock now: 'free' or 'busy'."""
    code = textwrap.dedent(f"""
        import fcntl, os
        fd = os.open({path!r}, os.O_RDONLY)
        try:
            fcntl.flock(fd, {'fcntl.LOCK_EX' if exclusive else 'fcntl.LOCK_SH'} | fcntl.LOCK_NB)
        except BlockingIOError:
            print("busy")
        else:
            print("free")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout.strip()


def test_a_change_holds_the_namespace_alone_and_is_written_back(server) -> None:
    _, endpoint = server
    path = namespace_file(endpoint)
    assert path is not None and path.endswith(endpoint.agent.spec.where)
    before = endpoint.sysctl(TIMER)["value"]
    assert before != "1"
    hold = SettingsHold()
    assert hold.change(endpoint, TIMER, 1)["ok"]
    try:
        assert endpoint.sysctl(TIMER)["value"] == "1"
        assert _elsewhere(path, exclusive=False) == "busy"  # a reader waits meanwhile
    finally:
        hold.release()
    assert endpoint.sysctl(TIMER)["value"] == before
    assert _elsewhere(path, exclusive=True) == "free"


def test_readers_share_the_namespace_and_keep_writers_out(server) -> None:
    _, endpoint = server
    path = namespace_file(endpoint)
    assert path is not None
    hold = SettingsHold()
    value = hold.read(endpoint, TIMER)["value"]
    try:
        assert value.isdigit()
        assert _elsewhere(path, exclusive=False) == "free"
        assert _elsewhere(path, exclusive=True) == "busy"
        with pytest.raises(HoldError, match="take the exclusive hold first"):
            hold.change(endpoint, TIMER, 1)  # an upgrade could wait for ever
    finally:
        hold.release()
    assert endpoint.sysctl(TIMER)["value"] == value
    assert _elsewhere(path, exclusive=True) == "free"


def test_a_write_only_setting_is_written_again_on_release(server) -> None:
    _, endpoint = server
    hold = SettingsHold()
    assert hold.change(endpoint, "net.ipv4.route.flush", 1, restore=1)["ok"]
    assert [(c.name, c.restore) for c in hold.changes] == [("net.ipv4.route.flush", "1")]
    hold.release()
    assert hold.changes == [] and hold.locks == {}


SUITE = """
import pytest

@pytest.mark.hdp_check("reassembly-timeout", families=[4])
def test_changes_then_{end}(hdp_path, hdp_sysctl):
    assert hdp_sysctl.change("{name}", 1)["ok"]
    assert hdp_path.receiver.sysctl("{name}")["value"] == "1"
    {end_statement}
"""


@pytest.mark.parametrize(("end", "end_statement", "outcome"), [
    ("failing", "assert False, 'the test failed'", "1 failed"),
    ("interrupted", "raise KeyboardInterrupt", "!! KeyboardInterrupt !!"),
], ids=["failed", "interrupted"])
def test_the_fixture_writes_back_however_the_test_ends(
        server, pytester: pytest.Pytester, end: str, end_statement: str, outcome: str) -> None:
    started, endpoint = server
    before = endpoint.sysctl(TIMER)["value"]
    pytester.makepyfile(SUITE.format(end=end, end_statement=end_statement, name=TIMER))
    namespace = started.namespace("server")
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--hdp-lab", "none", f"--hdp-target=netns://{namespace}",
        "--hdp-family", "4")
    assert outcome in result.stdout.str(), result.stdout.str()
    assert endpoint.sysctl(TIMER)["value"] == before
    assert _elsewhere(f"/run/netns/{namespace}", exclusive=True) == "free"
