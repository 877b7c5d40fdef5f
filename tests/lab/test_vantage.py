"""Vantage points: xdist workers inside lab hosts, started with `hdp lab python HOST`.

Runs pytest as its users would (pytester, in a subprocess) on the nat lab that the run
brings up and takes down itself; every probe stays inside that lab's namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hdp.lab import Lab, load_topology
from hdp.lab.state import running_labs
from tests.conftest import RAW_FIX, RAW_V4
from tests.lab.conftest import lab_namespaces, requires_lab

pytestmark = [requires_lab, pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)]

DELIVERY = """
def test_delivery(hdp_result):
    hdp_result.check()
"""


# pytest-rerunfailures's workers report back to a server on the controller's loopback,
# which a worker in a lab host's namespace cannot reach.
NO_RERUNS = ("-p", "no:rerunfailures")


def _worker(host: str) -> str:
    # The value execnet shell-splits: arguments are fine, `//` is not.
    return f"popen//python={sys.executable} -m hdp lab python {host}"


def _hdp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hdp", *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def test_workers_in_two_nat_clients_report_each_vantage_point(pytester):
    before = lab_namespaces()
    pytester.makepyfile(test_delivery=DELIVERY)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", *NO_RERUNS, "--hdp-lab", "nat",
        "--hdp-protocols", "17,253", "--hdp-profile", "none", "--hdp-report", "r.json",
        "--dist", "each", "--tx", _worker("client1"), "--tx", _worker("client2"))
    # Other processes' labs may come up meanwhile: theirs have an owner that still runs.
    live = {name for state in running_labs() if state.alive for name in state.namespaces}
    left = lab_namespaces() - before - live
    assert not left, f"the run left namespaces behind: {sorted(left)}"
    result.stdout.fnmatch_lines(["*vantage points: nat/client1, nat/client2*",
                                 "*nat/server IPv4 hdp from nat/client1: *",
                                 "*nat/server IPv4 hdp from nat/client2: *"])
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    by = {(c["vantage"], c["family"], c["protocol"], c["payload"]): c for c in cases}
    assert len(by) == len(cases) == 2 * 2 * 2 * 2  # vantages x families x protocols x payloads
    nat = Lab.attach(load_topology("nat"), "000000")  # addresses only: the run's lab is gone
    router = nat.translated_source("client1", "server", 4)
    assert router == nat.address("router", 4, toward="server")
    for client in ("client1", "client2"):
        vantage = f"nat/{client}"
        # IPv6 is routed: each client's own address arrives, untouched.
        for protocol in (17, 253):
            v6 = by[(vantage, 6, protocol, "hdp")]
            assert (v6["outcome"], v6["source"]) == ("delivered", nat.address(client, 6))
        # Real UDP is masqueraded like any flow: the router's address arrives.
        udp = by[(vantage, 4, 17, "udp")]
        assert (udp["outcome"], udp["changes"], udp["source"]) == ("altered", ["src"], router)
        # UDP with an HDP body is invalid to conntrack: the private address leaks.
        leak = by[(vantage, 4, 17, "hdp")]
        assert (leak["outcome"], leak["changes"], leak["source"]) == (
            "altered", ["src-not-translated"], nat.address(client, 4))
    # A protocol without ports: one NAT mapping to the server, so exactly one client gets
    # through (masqueraded) and the other is dropped, whichever sent first.
    first = {by[(f"nat/{c}", 4, 253, "hdp")]["outcome"]: c for c in ("client1", "client2")}
    assert set(first) == {"altered", "lost"}
    assert by[(f"nat/{first['altered']}", 4, 253, "hdp")]["source"] == router


def test_the_vantage_label_of_a_worker_outside_any_lab(pytester):
    """What an ssh worker on a real machine does (`//env:HDP_VANTAGE=NAME`), on loopback."""
    pytester.makepyfile(test_delivery=DELIVERY)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--hdp-lab", "none",
        "--hdp-target", "127.0.0.1", "--hdp-protocols", "253", "--hdp-payload", "hdp",
        "--hdp-profile", "none", "--hdp-report", "r.json", "--dist", "each",
        "--tx", "popen//env:HDP_VANTAGE=laptop", "--tx", "popen")
    result.assert_outcomes(passed=2)
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    assert [c.get("vantage", "absent") for c in cases] == ["absent", "laptop"]
    result.stdout.fnmatch_lines(["*127.0.0.1 IPv4 hdp: 253 delivered*",
                                 "*127.0.0.1 IPv4 hdp from laptop: 253 delivered*"])


def test_lab_python_runs_inside_the_host(lab):
    nat = lab("nat")
    env = {**os.environ, "HDP_LAB_TOKEN": nat.token}
    done = _hdp("lab", "python", "client2", "-c",
                "from hdp.lab import Lab, load_topology; "
                f"print(Lab.attach(load_topology('nat'), {nat.token!r}).host_of_this_process())",
                env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "client2"), done.stderr
    done = _hdp("lab", "python", f"{nat.token}/server", "-c", "print('in')")
    assert (done.returncode, done.stdout.strip()) == (0, "in"), done.stderr


@pytest.mark.parametrize(("host", "needle"), [
    ("client9", "'client9': lab {token} has no host 'client9': give one of client1, client2, "
                "router, server"),
    ("lan1", "has no host 'lan1'"),
    ("routed/client1", "is not a routed lab: give that lab's name to --hdp-lab"),
    ("/", "names no host: give HOST, LAB/HOST or TOKEN/HOST"),
])
def test_lab_python_bad_host_is_one_line(lab, host, needle):
    nat = lab("nat")
    done = _hdp("lab", "python", host, "-c", "pass",
                env={**os.environ, "HDP_LAB_TOKEN": nat.token})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.format(token=nat.token) in lines[0], done.stderr
    assert lines[0].startswith("hdp lab: error: ")
