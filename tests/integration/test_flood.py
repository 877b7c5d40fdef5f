"""Floods through real agents on loopback: every probe accounted for, duplicates and
corrupt copies counted as such, the one-packet-a-call path where the OS lacks
sendmmsg/recvmmsg, and the bounds every caller gets.

Every flood carries this run's random id in its tags and a listener counts only those:
other traffic of the protocol on the host (other tests, other users, -n2) lands in
`foreign` and changes no count asserted here. The large floods run in a namespace of
their own, so that they do not fill other tests' listeners either.
"""

from __future__ import annotations

import random
import socket

import pytest

from hdp import mmsg
from hdp.agent import messages
from hdp.agent.flood import FloodOps
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.agent.powers import Caller, Refused
from hdp.endpoint import Endpoint
from hdp.flood import FloodPlan, flood
from hdp.probe import probe_data
from hdp.wire.fastprobe import ProbeTemplate
from hdp.wire.hdp import Carrier
from tests.conftest import LOOPBACK, RAW_FIX, RAW_V4

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
COUNT = 50_000


@pytest.fixture
def agents(netns):
    """A sender and a listener of its own, as `hdp stats --flood` runs them, in a network
    namespace of this test's: tens of thousands of probes a second on the host's loopback
    would fill the queues of every other raw listener of the protocol (other tests')."""
    spec = AgentSpec("netns", netns)
    sender = AgentClient.start(spec)
    try:
        listener = AgentClient.start(spec)
    except BaseException:
        sender.close()
        raise
    yield sender, listener
    sender.close()
    listener.close()


@pytest.fixture(scope="module")
def local():
    """An agent in this process, on the host's loopback, for what sends a few packets."""
    client = AgentClient.start(AgentSpec("inprocess"))
    yield client
    client.close()


def _accounted(result) -> None:
    assert result.sent + result.refused == result.plan.count
    assert result.sent == result.delivered + result.lost + (result.dropped or 0)
    assert result.accounted
    assert result.duplicated == 0 and result.corrupted == 0  # nobody else has our run


def test_every_probe_of_a_flood_is_accounted_for(agents, family):
    sender, listener = agents
    result = flood(sender, listener, FloodPlan(LOOPBACK[family], family, COUNT))
    _accounted(result)
    assert result.dropped is not None  # Linux counts a socket's drops exactly
    # What did not arrive is in the missing ranges, and only that.
    assert sum(b - a + 1 for a, b in result.missing) <= result.sent - result.delivered
    assert (result.missing_ranges == 0) == (result.delivered == result.sent)
    assert result.batched_send == result.batched_receive == mmsg.available()
    assert result.sent_per_s and result.matched_per_s


def test_one_agent_at_both_ends_reads_between_its_own_sends(agents, family):
    sender, _ = agents
    result = flood(sender, sender, FloodPlan(LOOPBACK[family], family, COUNT))
    _accounted(result)


def test_without_sendmmsg_and_recvmmsg_a_flood_goes_a_packet_a_call(monkeypatch, family):
    monkeypatch.setattr(mmsg, "available", lambda: False)
    sender = AgentClient.start(AgentSpec("inprocess"))  # this process: the patch holds
    try:  # on the host's loopback: fewer probes than any listener's queue holds
        result = flood(sender, sender, FloodPlan(LOOPBACK[family], family, 2_000))
    finally:
        sender.close()
    assert not result.batched_send and not result.batched_receive
    _accounted(result)


def _probe(run: int, case: int, size: int = 64) -> bytes:
    return bytes(ProbeTemplate(Carrier.HDP, probe_data(size)).fill(run, case))


def test_duplicates_corrupt_copies_and_other_runs_are_counted_as_such(local):
    end = Endpoint(local, "listener")
    run, count = random.getrandbits(32), 10
    heard = end.call(messages.FloodOpen(role="listen", run=run, family=4, count=count))
    assert heard["ok"] and heard["batched"] == mmsg.available()
    corrupt = bytearray(_probe(run, 1))
    corrupt[-1] ^= 0xFF  # a data byte changed on the way: the tag's CRC fails
    packets = [_probe(run, 0), _probe(run, 0), bytes(corrupt), _probe(run, 2),
               _probe(run ^ 1, 3), _probe(run, 3, size=8)]  # another run's; a shorter one
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 253) as raw:
        for packet in packets:
            raw.sendto(packet, ("127.0.0.1", 0))
    try:
        counted = end.call(messages.FloodCount(handle=heard["handle"], wait=5.0, expect=3))
    finally:
        end.call(messages.FloodClose(handle=heard["handle"]))
    assert counted["complete"]
    assert (counted["delivered"], counted["duplicated"], counted["corrupted"]) == (3, 1, 1)
    assert counted["foreign"] >= 1  # the other run's probe, and whatever else was about
    # Probe 1 came only corrupted: its number is not trusted, it stays missing. The
    # shorter probe 3 is intact (its CRC covers its own data): delivered.
    assert counted["below"] == count and counted["missing"] == [[1, 1], [4, 9]]
    assert counted["missing_ranges"] == 2


def test_missing_ranges_are_listed_up_to_the_bound_and_counted_beyond_it(local):
    end = Endpoint(local, "listener")
    run, count = random.getrandbits(32), 1000
    heard = end.call(messages.FloodOpen(role="listen", run=run, family=4, count=count))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 253) as raw:
        for case in range(0, count, 3):  # every third: a gap of two after each
            raw.sendto(_probe(run, case), ("127.0.0.1", 0))
    try:
        counted = end.call(messages.FloodCount(handle=heard["handle"], wait=5.0,
                                               expect=len(range(0, count, 3)), below=334))
    finally:
        end.call(messages.FloodClose(handle=heard["handle"]))
    # 334 probes heard: 0, 3, ..., 999; the gaps 1-2, 4-5, ..., 997-998
    assert counted["delivered"] == 334 and counted["below"] == 334
    assert counted["missing"][:2] == [[1, 2], [4, 5]]
    assert len(counted["missing"]) == messages.MAX_MISSING
    assert counted["missing_ranges"] == len(range(1, 333, 3))  # gaps below 334


def test_flood_bounds_and_roles_are_refused_in_one_line(local):
    end = Endpoint(local, "sender")
    run = random.getrandbits(32)
    with pytest.raises(messages.Invalid, match="count: 10000001 is out of range"):
        end.call(messages.FloodOpen.from_json({"role": "listen", "run": run, "family": 4,
                                               "count": messages.MAX_FLOOD_COUNT + 1}))
    with pytest.raises(AgentError, match="dst: a sending end needs"):
        end.call(messages.FloodOpen(role="send", run=run, family=4, count=10))
    heard = end.call(messages.FloodOpen(role="listen", run=run, family=4, count=10))
    try:
        with pytest.raises(AgentError, match="a listening end: it sends nothing"):
            end.call(messages.FloodSend(handle=heard["handle"], count=1))
    finally:
        end.call(messages.FloodClose(handle=heard["handle"]))
    opened = end.call(messages.FloodOpen(role="send", run=run, family=4, count=10,
                                         dst="127.0.0.1"))
    try:
        with pytest.raises(AgentError, match="the flood has 10"):
            end.call(messages.FloodSend(handle=opened["handle"], first=5, count=6))
        with pytest.raises(AgentError, match="a sending end: it counts nothing"):
            end.call(messages.FloodCount(handle=opened["handle"]))
    finally:
        end.call(messages.FloodClose(handle=opened["handle"]))


def test_a_caller_that_is_not_root_floods_only_this_host():
    answers: list[dict] = []
    ops = FloodOps(answers.append, lambda *_: None, lambda *_: None,
                   Caller(root=False, uid=1000))
    base = {"op": "flood-open", "role": "send", "run": 1, "family": 4, "count": 10}
    # 192.0.2.1 (TEST-NET-1) is only named, never sent to: the open is refused first.
    _, elsewhere = messages.parse_request({**base, "id": 1, "dst": "192.0.2.1"})
    with pytest.raises(Refused) as refused:
        ops.handlers()[elsewhere.OP](1, elsewhere)
    assert refused.value.needs == "root" and "not an address of this host" in str(
        refused.value)
    _, here = messages.parse_request({**base, "id": 2, "dst": "127.0.0.1"})
    ops.handlers()[here.OP](2, here)
    ops.close()
    assert answers[0]["event"] == "flood-opened" and answers[0]["ok"]
