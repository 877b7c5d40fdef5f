"""Every packet counted: sent = delivered + lost + dropped, to the packet, under a burst
far beyond what a listener's queue holds.

Each test runs in a network namespace of its own, so that no other traffic of the
protocol exists: there, nothing is lost on loopback, and every packet that did not reach
the listener's reader was dropped by its kernel queue, which SO_MEMINFO counts exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.verdict import Outcome, judge
from tests.conftest import RAW_FIX, RAW_V4

pytestmark = [pytest.mark.skipif(not RAW_V4, reason=RAW_FIX),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="SO_MEMINFO drop counts and namespaces are Linux's")]

BURST = 100_000
# A sender of our own, as fast as Python sends: one raw socket, one payload, a bounded loop.
SENDER = """
import socket, sys
count = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
payload = b"\\x01\\xa4\\x01\\xa4" + bytes(60)
sent = 0
while sent < count:
    try:
        s.sendto(payload, ("127.0.0.1", 0))
    except BlockingIOError:
        continue
    sent += 1
print(sent)
"""


def test_listen_summary_adds_up_to_every_packet_of_a_burst(netns):
    """100,000 packets at `hdp listen`, which shows each as JSON and cannot keep up: what
    it read plus what the kernel dropped is every packet sent."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "hdp", "listen", "-p", "253",
         "--format", "json", "--timeout", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stderr is not None
        ready = listener.stderr.readline()  # the readiness line: its sockets are open
        assert ready.startswith("Listening on protocol 253"), ready
        sender = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SENDER,
                                 str(BURST)], capture_output=True, text=True, timeout=120)
        assert sender.returncode == 0 and int(sender.stdout) == BURST, sender.stderr
        _, errors = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    summary = [line for line in errors.splitlines() if line.startswith("hdp listen: protocol 253")]
    assert summary, errors  # the burst overflows the queue: the line names the drops
    received, dropped, total = _summary_numbers(summary[0])
    assert dropped > 0 and received + dropped == total == BURST, summary[0]


def _summary_numbers(line: str) -> tuple[int, int, int]:
    """(received, dropped, total) from 'protocol P: R received + D dropped ... = N packets'."""
    words = line.replace(":", " ").split()
    received = int(words[words.index("received") - 1])
    dropped = int(words[words.index("dropped") - 1])
    total = int(words[words.index("packets") - 1])
    return received, dropped, total


def test_engine_batch_accounts_for_every_probe_and_errs_where_a_drop_may_hide_one(netns):
    """20,000 cases on one protocol, sent faster than the agent reads them: each case is
    delivered or `error` (the queue overflowed on its listener), never `lost`, and the
    batch's accounting holds to the probe with every drop one of ours."""
    agent = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    cases = [Case("127.0.0.1", 4, 253, size=64 + i % 512) for i in range(20_000)]
    try:
        result = Engine(agent, {"127.0.0.1": agent}).run(cases, timeout=1.0, icmp=False)
    finally:
        agent.close()
    outcomes = Counter(judge(o).outcome for o in result.observations)
    assert set(outcomes) <= {Outcome.DELIVERED, Outcome.ERROR}, outcomes
    totals = result.accounting.as_json()
    assert totals["sent"] == len(cases)
    assert totals["sent"] == totals["delivered"] + totals["lost"] + totals["dropped"]
    # Nothing else uses protocol 253 in this namespace and loopback loses nothing: every
    # missing probe is a kernel drop, and every drop is one of ours.
    assert totals["lost"] == 0 and totals["excess_drops"] == 0
    assert totals["dropped"] == outcomes[Outcome.ERROR] == sum(result.drops.values())
    assert totals["delivered"] == outcomes[Outcome.DELIVERED]
    hidden = [o.note for o in result.observations if judge(o).outcome is Outcome.ERROR]
    assert all(note and note.startswith("kernel queue overflow on ") for note in hidden)


def test_drain_and_stats_count_every_packet_on_a_listener_of_our_own(netns):
    """The agent's own numbers: a listener stopped while a burst arrives; a drain reads
    what is queued, and the packets it read plus the drops it reports are every one."""
    from hdp.agent import messages

    agent = AgentClient.start(AgentSpec.parse(f"netns:{netns}"))
    try:
        aside: list[dict] = []
        agent.request(messages.Listen(family=4, protocols=(253,), runs=()))
        listening = agent.next_event(lambda e: e.get("event") == "listening", 10, aside)
        assert listening is not None and listening["drops"] == {"4/253": 0}
        os.kill(agent.ready["pid"], 19)  # SIGSTOP: the agent reads nothing while we send
        try:
            sender = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                                     SENDER, str(BURST)], capture_output=True, text=True,
                                    timeout=120)
        finally:
            os.kill(agent.ready["pid"], 18)  # SIGCONT
        assert sender.returncode == 0, sender.stderr
        agent.request(messages.Drain())
        drained = agent.next_event(lambda e: e.get("event") == "drained", 30, aside)
        agent.request(messages.Stats())
        stats = agent.next_event(lambda e: e.get("event") == "stats", 30, aside)
    finally:
        agent.close()
    assert drained is not None and stats is not None
    dropped = drained["drops"]["4/253"]
    # Untagged packets of no run are read and counted as foreign, not reported one by one.
    assert dropped > 0 and stats["foreign"] + dropped == BURST
