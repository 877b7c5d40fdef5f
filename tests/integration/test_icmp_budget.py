"""ICMP-only verdicts against a peer that rations its ICMP errors, as Linux does by default.

Two network namespaces of the test's own, joined by a veth pair; the peer's per-host
limit is set to a small known budget (net.ipv4.icmp_ratelimit: a burst of 6, then one
answer every 50 ms), the peer's own counters are the ground truth. However the budget
withholds answers, no verdict is wrong: an answer is `unreachable`, silence is
`no-answer`, never `lost`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from hdp import icmp_budget
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import RAW_FIX, RAW_V4

pytestmark = [pytest.mark.skipif(not RAW_V4, reason=RAW_FIX),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="namespaces and Linux's ICMP rate limit")]

CLIENT, SERVER = "198.18.250.1", "198.18.250.2"
INTERVAL_MS = 50
UNKNOWN = list(range(200, 248))  # no handler in a Linux kernel: protocol unreachable
HANDLED = [1, 6, 17]  # ICMP, TCP, UDP: handled, and HDP's bytes draw no answer from them


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """(client namespace, server namespace), the server rationing ICMP errors."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command: apt-get install iproute2")
    tag = f"{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
    client, server = f"hdp-t{tag}-c", f"hdp-t{tag}-s"
    made = subprocess.run(["ip", "netns", "add", client], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace ({made.stderr.strip()}): run as root")
    try:
        _ip("netns", "add", server)
        _ip("link", "add", f"v{tag}c", "netns", client, "type", "veth", "peer", "name",
            f"v{tag}s", "netns", server)
        for ns, dev, address in ((client, f"v{tag}c", CLIENT), (server, f"v{tag}s", SERVER)):
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        subprocess.run(["ip", "netns", "exec", server, "sysctl", "-qw",
                        f"net.ipv4.icmp_ratelimit={INTERVAL_MS}"], check=True)
        yield client, server
    finally:
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _counters(namespace: str) -> dict[str, int]:
    text = subprocess.run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        kind = names.split(":")[0]
        for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
            found[f"{kind}{name}"] = int(value)
    return found


def _sweep(pair: tuple[str, str], **pacing: float) -> tuple[dict[int, tuple], dict, dict]:
    client, server = pair
    before = _counters(server)
    agent = AgentClient.start(AgentSpec.parse(f"netns:{client}"))
    cases = [Case(SERVER, 4, p, path="network") for p in HANDLED + UNKNOWN]
    try:
        result = Engine(agent, {SERVER: None}).run(cases, timeout=1.0, **pacing)
    finally:
        agent.close()
    after = _counters(server)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    verdicts = {o.case.protocol: (judge(o), o) for o in result.observations}
    return verdicts, result.icmp_budget[SERVER], delta


def test_a_short_run_is_never_wrong_and_counts_what_it_could_not_settle(pair):
    """One second of asking: the budget answers the burst and about 20 more; every other
    case is no-answer, said to be rate-limited, and none is lost."""
    verdicts, budget, server = _sweep(pair, icmp_time=1.0)
    outcomes = Counter(v.outcome for v, _ in verdicts.values())
    assert set(outcomes) <= {Outcome.UNREACHABLE, Outcome.NO_ANSWER}, outcomes
    answered = {p for p, (v, _) in verdicts.items() if v.outcome is Outcome.UNREACHABLE}
    assert answered <= set(UNKNOWN)  # only protocols the peer has no handler for
    assert server["IcmpOutRateLimitHost"] > 0, server  # the budget did withhold answers
    assert 6 <= len(answered) < len(UNKNOWN), budget
    assert budget["burst"] == 6 and budget["inconclusive"] > 0
    unsure = [o for p, (v, o) in verdicts.items() if p in UNKNOWN and p not in answered]
    assert all("rate limit" in (o.note or "") for o in unsure)


def test_patient_run_settles_every_case(pair):
    """--patient: asked until each case is answered or shown silent; every protocol the
    peer has no handler for is unreachable, the handled ones no-answer with the reason."""
    verdicts, budget, server = _sweep(pair, icmp_time=icmp_budget.PATIENT_TIME,
                                      max_asks=icmp_budget.PATIENT_ASKS)
    for protocol in UNKNOWN:
        assert verdicts[protocol][0].outcome is Outcome.UNREACHABLE, verdicts[protocol]
    for protocol in HANDLED:
        verdict, observation = verdicts[protocol]
        assert verdict.outcome is Outcome.NO_ANSWER
        assert "answered probes sent right after it" in (observation.note or "")
    assert budget["inconclusive"] == 0 and budget["ended_by"] == "done"
    # The learned rate is the configured one (one answer every 50 ms), to within a third.
    assert 20 / 1.5 <= budget["rate_per_s"] <= 20 * 1.5, budget
    assert server["IpInUnknownProtos"] >= len(UNKNOWN)


def test_sweep_whose_sender_dies_mid_run_says_so_and_writes_its_report(pair, tmp_path):
    """`hdp sweep` of the rationed peer, its sender agent killed while it waits for the
    budget: exit status 1, a line naming the agent, and the report written with what was
    learned, the rest `error` and the run marked incomplete."""
    import json
    import signal
    import time

    client, _ = pair
    out = tmp_path / "sweep.json"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "hdp", "sweep", SERVER, "--agent", f"netns:{client}",
         "--listener", "none", "--family", "4", "-p", "200-247", "--out", str(out)],
        stderr=subprocess.PIPE, text=True)
    try:
        assert sweep.stderr is not None
        assert sweep.stderr.readline().startswith("hdp sweep: probing 48 cases")
        time.sleep(0.5)  # the burst is answered; the rest waits for the budget
        agents = subprocess.run(["ip", "netns", "pids", client], capture_output=True,
                                text=True, check=True).stdout.split()
        assert agents, "no agent runs in the client namespace"
        for pid in agents:
            os.kill(int(pid), signal.SIGKILL)
        _, errors = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 1, errors
    assert f"agent netns:{client} exited during the run" in errors
    report = json.loads(out.read_text())
    assert report["meta"]["incomplete"] is True and report["meta"]["broken"]
    outcomes = Counter(case["outcome"] for case in report["cases"])
    assert outcomes["unreachable"] >= 6 and outcomes["error"] > 0, outcomes
    assert set(outcomes) <= {"unreachable", "error"}, outcomes
