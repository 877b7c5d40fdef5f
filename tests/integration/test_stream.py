"""Many-probe streams through a real agent on loopback: HDP over raw IP, the kernel's UDP
and TCP, kernel stamps at both ends, what the OS refuses, and the bounds every caller gets.

Every probe carries this run's random id in its tag, and a listener counts only those:
other traffic of the protocol on the host (other tests, other users) changes nothing here.
"""

from __future__ import annotations

import random
import socket

import pytest

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.agent.messages import Lane
from hdp.agent.powers import Caller, Refused
from hdp.agent.stream import StreamOps
from hdp.agent.stream_io import ECHO, FLAG_INTACT, FLAG_KERNEL
from hdp.endpoint import Endpoint
from hdp.measure import StreamPlan, lanes_of, measure
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.stats import ClockKind, Measure, SyncKind
from hdp.wire.hdp import ProbeTag
from tests.conftest import LOOPBACK, RAW_FIX, RAW_V4

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
ALL = lanes_of(["hdp", "udp", "tcp"])


@pytest.fixture(scope="module")
def agent():
    client = AgentClient.start(AgentSpec("inprocess"))
    yield client
    client.close()


@pytest.fixture
def endpoint(agent):
    return Endpoint(agent, "loopback")


def _open_pair(endpoint, family, lanes, count, **listen):
    run = random.getrandbits(32)
    heard = endpoint.call(messages.StreamOpen(role="listen", run=run, family=family,
                                              lanes=lanes, count=count, **listen))
    opened = endpoint.call(messages.StreamOpen(
        role="send", run=run, family=family, lanes=lanes, count=count,
        dst=LOOPBACK[family], udp_port=heard["udp_port"], tcp_port=heard["tcp_port"]))
    return run, heard, opened


def test_every_probe_of_every_lane_arrives_once_with_kernel_stamps(agent, family):
    result = measure(agent, agent, StreamPlan(LOOPBACK[family], family, ALL, 500, 2000))
    assert result.sync.kind is SyncKind.SHARED  # one agent, one kernel
    assert (result.tx_stamps, result.rx_stamps) == ("kernel", "kernel")
    for lane in result.lanes:
        stats = lane.one_way
        assert (stats.sent, stats.delivered, stats.lost, stats.dropped) == (500, 500, 0, 0)
        assert (stats.duplicated, stats.corrupted, stats.refused) == (0, 0, 0)
        latency = stats.latency
        assert latency is not None and latency.clock is ClockKind.KERNEL
        assert latency.samples == 500 and stats.left_out.total == 0
        assert 0 <= latency.min_us <= latency.p50_us < 1000  # loopback: microseconds


def test_reflect_mode_times_round_trips_and_its_echoes_estimate_a_zero_offset(agent, family):
    plan = StreamPlan(LOOPBACK[family], family, ALL, 300, 1000, reflect=True,
                      clock="estimate")
    result = measure(agent, agent, plan)
    estimate = result.estimate
    # One kernel, one clock: the true offset is 0, and the estimate's bound must hold it.
    assert estimate is not None and estimate.rounds > 0
    assert abs(estimate.offset_ns) <= estimate.uncertainty_ns
    assert result.sync.kind is SyncKind.ESTIMATED
    for lane in result.lanes:
        assert lane.rtt is not None and lane.rtt.measure is Measure.RTT
        assert lane.rtt.delivered == 300 and lane.rtt.latency is not None
        assert lane.rtt.latency.clock is ClockKind.KERNEL
        # The reflector's hold is taken out: a round trip is about two one-way trips.
        assert lane.rtt.latency.p50_us >= lane.one_way.latency.min_us


def test_records_come_back_in_pages_of_columns(endpoint):
    count = messages.STREAM_PAGE // 2 + 10  # x 3 lanes: more than one page
    _, heard, opened = _open_pair(endpoint, 4, ALL, count)
    sent = endpoint.call(messages.StreamSend(handle=opened["handle"], count=count,
                                             rate=20_000), answer_within=30)
    first = endpoint.call(messages.StreamRecords(handle=heard["handle"], wait=5,
                                                 expect=3 * count))
    second = endpoint.call(messages.StreamRecords(handle=heard["handle"],
                                                  offset=messages.STREAM_PAGE))
    for handle in (heard["handle"], opened["handle"]):
        endpoint.call(messages.StreamClose(handle=handle))
    assert sent["sent"] == 3 * count and first["complete"]
    assert first["total"] == 3 * count
    assert len(first["columns"]["lane"]) == messages.STREAM_PAGE
    assert len(second["columns"]["lane"]) == 3 * count - messages.STREAM_PAGE
    seqs = {(lane, seq) for page in (first, second)
            for lane, seq in zip(page["columns"]["lane"], page["columns"]["seq"], strict=True)}
    assert seqs == {(lane, seq) for lane in range(3) for seq in range(count)}
    columns = first["columns"]
    assert all(f & FLAG_INTACT for f in columns["flags"])
    # Each datagram has its kernel stamp; a TCP message the kernel merged into a later
    # segment (as it does when the reader falls behind) keeps none of its own.
    assert all(f & FLAG_KERNEL for lane, f in zip(columns["lane"], columns["flags"],
                                                  strict=True) if ALL[lane].kind != "tcp")


def test_duplicates_and_corrupted_copies_are_counted_not_delivered(agent, endpoint):
    """Copies forged with the run's own tag: one duplicate of probe 3, one copy of probe 4
    whose data was changed after the tag's CRC was taken."""
    run, heard, opened = _open_pair(endpoint, 4, (Lane("raw", 253, "hdp"),), 10)
    endpoint.call(messages.StreamSend(handle=opened["handle"], count=10, rate=1000))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 253) as raw:
        raw.sendto(encode_probe(Probe(PayloadKind.HDP, probe_data(64), ProbeTag(run, 0, 3)),
                                "127.0.0.1", "127.0.0.1"), ("127.0.0.1", 0))
        bad = bytearray(encode_probe(Probe(PayloadKind.HDP, probe_data(64),
                                           ProbeTag(run, 0, 4)), "127.0.0.1", "127.0.0.1"))
        bad[-1] ^= 0xFF
        raw.sendto(bytes(bad), ("127.0.0.1", 0))
        # Echoes travel the other way: a listening end does not take them as probes.
        raw.sendto(encode_probe(Probe(PayloadKind.HDP, probe_data(64),
                                      ProbeTag(run, ECHO, 5)), "127.0.0.1", "127.0.0.1"),
                   ("127.0.0.1", 0))
    page = endpoint.call(messages.StreamRecords(handle=heard["handle"], wait=2, expect=10))
    for handle in (heard["handle"], opened["handle"]):
        endpoint.call(messages.StreamClose(handle=handle))
    columns = page["columns"]
    copies = sorted(zip(columns["seq"], [bool(f & FLAG_INTACT) for f in columns["flags"]],
                        strict=True))
    assert copies.count((3, True)) == 2 and (4, False) in copies and len(copies) == 12


def test_a_protocol_the_os_refuses_is_the_lane_s_refusal(agent):
    plan = StreamPlan("127.0.0.1", 4, (Lane("raw", 0, "hdp"), Lane("raw", 253, "hdp")), 20,
                      1000)
    result = measure(agent, agent, plan)
    refused, fine = result.lanes
    assert refused.socket_error == ("socket", "EPROTONOSUPPORT")
    assert refused.one_way.sent == 0 and refused.one_way.refusals == ("EPROTONOSUPPORT",)
    assert fine.one_way.delivered == 20


def test_tcp_to_a_port_nobody_listens_on_is_refused_at_connect(endpoint):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    opened = endpoint.call(messages.StreamOpen(
        role="send", run=1, family=4, lanes=(Lane("tcp"),), count=1, dst="127.0.0.1",
        tcp_port=port))
    endpoint.call(messages.StreamClose(handle=opened["handle"]))
    assert opened["lanes"] == [{"ok": False, "stage": "connect", "errno": "ECONNREFUSED"}]


@pytest.mark.parametrize(("request_", "refusal"), [
    (messages.StreamOpen(role="listen", run=1, family=4, lanes=(Lane(),) * 32,
                         count=messages.MAX_STREAM_COUNT), "probes: send fewer"),
    (messages.StreamOpen(role="listen", run=1, family=4, lanes=(Lane("udp"),) * 2,
                         count=1), "one udp lane a stream"),
    (messages.StreamOpen(role="send", run=1, family=4, lanes=(Lane("udp"),), count=1,
                         dst="127.0.0.1"), "give the listener's udp port"),
    (messages.StreamSend(handle=987654, count=1, rate=1), "no stream 987654"),
], ids=["too-many-probes", "two-udp-lanes", "no-port", "no-stream"])
def test_requests_over_a_bound_are_refused_in_one_line(endpoint, request_, refusal):
    with pytest.raises(AgentError, match=refusal):
        endpoint.call(request_)


def test_a_send_longer_than_the_agent_may_be_held_is_refused(endpoint):
    _, heard, opened = _open_pair(endpoint, 4, (Lane(),), 1000)
    try:
        with pytest.raises(AgentError, match=r"count / rate is 100.0 s.*in parts"):
            endpoint.call(messages.StreamSend(handle=opened["handle"], count=1000, rate=10))
        with pytest.raises(AgentError, match="is a listening end"):
            endpoint.call(messages.StreamSend(handle=heard["handle"], count=1, rate=10))
    finally:
        for handle in (heard["handle"], opened["handle"]):
            endpoint.call(messages.StreamClose(handle=handle))


def test_a_caller_that_is_not_root_names_its_peer_and_binds_no_privileged_port():
    answers: list[dict] = []
    ops = StreamOps(answers.append, lambda *_: None, lambda *_: None,
                    Caller(root=False, uid=1000))
    base = {"op": "stream-open", "role": "listen", "run": 1, "family": 4,
            "lanes": [{"kind": "udp"}], "count": 1}
    refusals = []
    for ident, extra in enumerate(({"reflect": True}, {"udp_port": 53})):
        _, request = messages.parse_request({**base, "id": ident, **extra})
        with pytest.raises(Refused) as refused:
            ops.handlers()[request.OP](ident, request)
        refusals.append(refused.value)
    _, allowed = messages.parse_request({**base, "id": 9, "reflect": True,
                                         "peer": "127.0.0.1"})
    ops.handlers()[allowed.OP](9, allowed)
    ops.close()
    assert "names" in str(refusals[0]) and refusals[1].needs == "root"
    assert answers[0]["event"] == "stream-opened" and answers[0]["lanes"][0]["ok"]
