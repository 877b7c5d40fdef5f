"""The message layer: every request defined once, checked, and answered; limits hold."""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import threading
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.agent import messages, protocol
from hdp.agent.launch import AgentClient, AgentError, AgentSpec
from hdp.agent.powers import Caller
from hdp.agent.server import Agent
from hdp.endpoint import Endpoint
from hdp.flow import Flow
from hdp.probe import PayloadKind, Probe, encode_probe
from hdp.wire import ipv4
from hdp.wire.hdp import ProbeTag
from tests.conftest import RAW_FIX, RAW_V4


def test_every_operation_is_defined_documented_and_handled():
    assert len(messages.REQUESTS) == 27
    agent = Agent(*os.pipe())
    for op, cls in messages.REQUESTS.items():
        assert op == cls.OP and cls.ANSWER in messages.EVENTS
        assert f"``{op}``" in (protocol.__doc__ or ""), f"{op} is not in the protocol doc"
        assert op in agent._handlers
    assert {cls.ANSWER for cls in messages.REQUESTS.values()} == messages.ANSWERS


@pytest.mark.parametrize(("line", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested deeper"),
    # Brackets inside strings do not count, escaped quotes do not end a string.
    (b'{"op":"stats","id":1,"x":"[[[[[[[[[[[[\\"]]]]"}', "unknown field"),
    (b'{"op":"send","id":1,"run":-Infinity,"probes":[]}', "not a number JSON allows"),
    (b'{"op":"send","id":1,"run":NaN,"probes":[]}', "not a number JSON allows"),
    (b'{"op":"udp-recv","id":1,"timeout":1e400}', "not a finite number"),
    (b'{"op":"send","id":1,"run":' + b"9" * 5000 + b',"probes":[]}', "digits"),
    (b'{"op":"send","id":1,"run":4294967296,"probes":[]}', "out of range"),
    (b'{"op":"send","id":2,"run":1,"probes":[{"case":0,"family":4,"protocol":253,'
     b'"dst":"127.0.0.1","size":2147483648}]}', "out of range 0..65535"),
    (b'{"op":"send","id":2,"run":1,"probes":[{"case":0,"family":4,"protocol":253,'
     b'"dst":"127.0.0.1","ttl":0}]}', r"probes\[0\]\.ttl: 0 is out of range 1..255"),
    (b'{"op":"send","id":2,"run":1,"probes":[{"case":0,"family":4,"protocol":253,'
     b'"dst":"127.0.0.1","data":"0g"}]}', r"probes\[0\]\.data: '0g' is not hex bytes"),
    (b'{"op":"send","id":2,"run":1,"probes":[{"case":0,"family":4,"protocol":253,'
     b'"dst":"127.0.0.1","data":"' + b"00" * 65536 + b'"}]}',
     "a string of 131072 characters is over the limit of 131070"),
    (b'{"op":"udp-open","id":1,"family":4,"port":true}', "expected an integer"),
    (b'{"op":"udp-open","id":1,"family":"4"}', "give one of 4, 6"),
    (b'{"op":"udp-send","id":1,"handle":1,"dst":"-oProxyCommand=x","port":1}', "not an address"),
    (b'{"op":"sysctl","id":1,"name":"net/../../etc/shadow"}', "only net.*"),
    # The capture flow is checked by hdp.flow's one definition of a valid flow.
    (b'{"op":"capture-start","id":1,"flow":{"protocol":17,"identifications":[[1]]}}',
     r"flow: identification must be an integer"),
    (b'{"op":"capture-start","id":1,"flow":{"protocol":17,"src":2130706433}}',
     "flow: src must be an IP address as text"),
    (b'{"op":"capture-start","id":1,"flow":{"protocol":17,"dport":70000}}',
     r"flow: dport must be an integer 0\.\.65535"),
    (b'\xff\xfe{"op":"stats"}', "not UTF-8"),
    (b'"just a string"', "expected a JSON object"),
    (b'{"op":"reboot","id":1}', "unknown op"),
])
def test_hostile_lines_are_refused_with_a_reason(line, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.decode_request(line)


def test_nesting_check_matches_json_on_our_own_requests():
    probe = messages.ProbeSpec(case=1, family=4, protocol=253, dst="127.0.0.1")
    line = protocol.encode_request(7, messages.Send(run=3, probes=(probe,) * 500))
    assert protocol.nesting_within(line, 3) and not protocol.nesting_within(line, 2)
    assert protocol.decode_request(line.rstrip(b"\n")) == (7, messages.Send(3, (probe,) * 500))


def test_optional_fields_left_at_none_stay_off_the_wire():
    """An agent that predates a field refuses it, even as null: unset knobs are not sent."""
    plain = messages.ProbeSpec(case=1, family=4, protocol=253, dst="127.0.0.1")
    line = protocol.encode_request(1, messages.Send(run=3, probes=(plain,)))
    assert b"ttl" not in line and b"data" not in line and b"null" not in line
    knobs = messages.ProbeSpec(case=1, family=4, protocol=253, dst="127.0.0.1", ttl=5,
                               data="c0ffee")
    line = protocol.encode_request(1, messages.Send(run=3, probes=(knobs,)))
    assert b'"ttl":5' in line and b'"data":"c0ffee"' in line
    assert protocol.decode_request(line.rstrip(b"\n")) == (1, messages.Send(3, (knobs,)))


def test_the_engine_splits_a_batch_whose_data_would_overrun_a_line(monkeypatch):
    from hdp import engine

    monkeypatch.setattr(engine, "SEND_DATA", 10)
    probes = [messages.ProbeRow(i, 4, 253, "127.0.0.1", data="ab" * n)
              for i, n in enumerate((2, 3, 1, 4, 5, 1))]
    # hex characters 4 + 6, then 2 + 8, then 10: a probe that would overrun starts the next
    sends = engine.send_requests(7, probes)
    assert [list(s.columns.case) for s in sends if s.columns] == [[0, 1], [2, 3], [4], [5]]
    older = engine.send_requests(7, probes, columns=False)  # an agent of protocol 2
    assert [[p.case for p in s.probes] for s in older] == [[0, 1], [2, 3], [4], [5]]
    assert [p for s in older for p in s.probes] == [messages.ProbeSpec(*p) for p in probes]
    assert engine.SEND_DATA < protocol.MAX_LINE


def _sent(case: int, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event": "sent", "run": 7, "case": case, "ok": True, "stage": None, "errno": None,
        "bytes": 96, "time_ns": 1 << 60, "src": "127.0.0.1", "icmp_possible": True,
        "digest": case * 3, "stamp_ns": None}
    event.update(changes)
    return event


def test_events_come_back_from_their_frames_in_order_whatever_their_shape():
    lines: list[bytes] = []
    writer = protocol.EventWriter(lines.append)
    refused = {k: v for k, v in _sent(1, ok=False, stage="socket", errno="EPERM").items()
               if k not in ("icmp_possible", "digest", "stamp_ns")}
    events = [_sent(i) for i in range(300)] + [refused, _sent(301),
                                              {"event": "send-done", "id": 4}, _sent(302)]
    for event in events:
        writer.event(event)
    assert writer.pending
    writer.flush()
    assert not writer.pending
    # a full frame, the rest of the run, the odd one alone, a frame of one, the answer,
    # and the last, flushed
    assert [json.loads(line)["event"] for line in lines] == \
        ["sents", "sents", "sent", "sents", "send-done", "sents"]
    assert [e for line in lines for e in protocol.decode_events(line)] == events
    assert all(messages.event_problem(json.loads(line)) is None for line in lines)


frame_values = st.none() | st.booleans() | st.integers() | st.text(max_size=4) | \
    st.lists(st.integers(), max_size=3)


@given(name=st.sampled_from(sorted(messages.FRAMES)), count=st.integers(0, 300),
       drop=st.booleans(), extra=st.booleans(), ragged=st.booleans(), value=frame_values)
def test_a_hostile_frame_gives_its_events_as_defined_or_one_protocol_error(
        name, count, drop, extra, ragged, value):
    """An agent on another host may write anything: a frame either gives `count` events
    with exactly the fields of their kind, or is refused as a whole."""
    kind, fields = messages.FRAMES[name]
    frame: dict[str, object] = {"event": name, **{f: [value] * count for f in fields}}
    if drop:
        del frame[fields[count % len(fields)]]
    if extra:
        frame["bytes" if kind == "arrival" and count % 2 else "x"] = [value] * count
    if ragged:
        frame[fields[-1]] = [value] * (count + 1)
    try:
        events = protocol.decode_events(json.dumps(frame).encode())
    except protocol.ProtocolError:
        assert drop or extra or ragged or not 1 <= count <= messages.MAX_FRAME
        return
    assert not (drop or extra or ragged) and len(events) == count
    assert all(e.keys() == {"event", *fields} and e["event"] == kind for e in events)


def test_an_overlong_line_is_dropped_as_it_arrives():
    buffer = protocol.LineBuffer(max_line=10)
    assert buffer.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert buffer.feed(b"x" * 20) == [None]  # reported once, as soon as it is over
    assert buffer.feed(b"y" * 1000) == []  # the rest is skipped, not buffered
    assert buffer.feed(b'zz\n{"c":3}\n') == [b'{"c":3}']


@pytest.fixture
def restricted() -> Iterator[Endpoint]:
    """An in-process agent serving a non-root caller, as a sudo-started agent would."""
    request_r, request_w = os.pipe()
    event_r, event_w = os.pipe()
    agent = Agent(request_r, event_w, Caller(root=False, uid=65534))
    client = AgentClient(AgentSpec("inprocess"))
    client.thread = threading.Thread(target=agent.serve, daemon=True)
    client.thread.start()
    client._write_fd = request_w
    threading.Thread(target=client._pump_events, args=(event_r,), daemon=True).start()
    client._await_ready(10, require_raw=False)
    try:
        yield Endpoint(client, "restricted")
    finally:
        client.close()
        for fd in (request_r, event_w):
            os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="captures need Linux AF_PACKET")
@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_a_non_root_caller_hits_limits_and_missing_powers_as_error_events(restricted):
    assert restricted.agent.ready["caller"] == "user"
    with pytest.raises(AgentError, match=r"port 80 .* needs a root caller"):
        restricted.open_udp(4, bind="127.0.0.1", port=80)
    with pytest.raises(AgentError, match=r"raw-send .* needs a root caller"):
        restricted.send_packets(4, "127.0.0.1", [b"\x45" + bytes(19)])
    opened = [restricted.open_udp(4, bind="127.0.0.1") for _ in range(messages.MAX_SOCKETS)]
    assert all(o.ok and o.port and o.port > 1023 for o in opened)
    with pytest.raises(AgentError, match="256 UDP sockets are open, the limit"):
        restricted.open_udp(4, bind="127.0.0.1")
    restricted.close(*(o.handle for o in opened))
    handles = [restricted.call(messages.CaptureStart(interface="lo"))["handle"]
               for _ in range(messages.MAX_CAPTURES)]
    with pytest.raises(AgentError, match="8 captures are running, the limit"):
        restricted.call(messages.CaptureStart(interface="lo"))
    for handle in handles:
        restricted.call(messages.CaptureStop(handle=handle))
    assert restricted.sysctl("net.ipv4.ip_forward")["ok"]
    with pytest.raises(AgentError, match="readable by root only"):
        restricted.sysctl("net.ipv4.tcp_fastopen_key")


@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_a_non_root_caller_may_set_ttl_and_data_of_the_probes_the_agent_builds(restricted):
    """Any user may set IP_TTL on a socket of their own, and the data follows the tag the
    agent writes: neither builds a header or chooses a source (hdp.agent.powers)."""
    run, data = random.getrandbits(32), b"the caller's own bytes"
    restricted.call(messages.Listen(4, (253,), (run,)))
    probe = messages.ProbeSpec(case=3, family=4, protocol=253, dst="127.0.0.1", ttl=7,
                               data=data.hex())
    restricted.call(messages.Send(run, (probe,)))

    def arrived(event: dict[str, object]) -> bool:
        return event.get("event") == "arrival" and event.get("run") == run

    arrival = next((e for e in restricted.aside if arrived(e)), None) or \
        restricted.agent.next_event(arrived, 5, [])
    assert arrival is not None, "the probe did not arrive"
    tag = ProbeTag(run, 3)
    built = encode_probe(Probe(PayloadKind.HDP, data, tag), "127.0.0.1", "127.0.0.1")
    assert (arrival["case"], arrival["ttl"], arrival["intact"]) == (3, 7, True)
    assert arrival["length"] == len(built) and arrival["src"] == "127.0.0.1"


def test_a_send_over_the_probe_limit_is_one_error_event():
    agent = AgentClient.start(AgentSpec("inprocess"), require_raw=False)
    try:
        probe = {"case": 0, "family": 4, "protocol": 253, "dst": "127.0.0.1"}
        line = json.dumps({"op": "send", "id": 5, "run": 1,
                           "probes": [probe] * (messages.MAX_PROBES + 1)}).encode() + b"\n"
        os.write(agent._write_fd, line)
        event = agent.next_event(lambda e: e.get("id") == 5, 10, [])
        assert event is not None and event["event"] == "error"
        assert "4097 items are over the limit of 4096" in event["message"]
        assert agent.alive()
    finally:
        agent.close()


@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_a_readiness_that_a_drain_used_up_does_not_block_the_agent():
    """epoll said "readable", a drain in the same batch read the packet: no hang."""
    request_r, request_w = os.pipe()
    event_r, event_w = os.pipe()
    agent = Agent(request_r, event_w)
    try:
        agent.serve_line(protocol.encode_request(1, messages.Listen(4, (253,), (7,))))
        key = next(k for k in agent.selector.get_map().values() if k.data is not None)
        probe = messages.ProbeSpec(case=0, family=4, protocol=253, dst="127.0.0.1")
        agent.serve_line(protocol.encode_request(2, messages.Send(7, (probe,))))
        assert [k for k, _ in agent.selector.select(5) if k is key], "no arrival to read"
        agent.serve_line(protocol.encode_request(3, messages.Drain()))  # reads it
        stale = threading.Thread(target=key.data, daemon=True)  # what serve() does next
        stale.start()
        stale.join(5)
        assert not stale.is_alive(), "the agent blocked on a packet the drain had read"
        assert agent.arrivals == 1
    finally:
        agent._close_all()
        for fd in (request_r, request_w, event_r, event_w):
            os.close(fd)


@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_the_engine_splits_a_batch_over_the_probe_limit(monkeypatch):
    from hdp.case import Case
    from hdp.engine import Engine
    from hdp.verdict import Outcome, judge

    monkeypatch.setattr(messages, "MAX_PROBES", 10)
    agent = AgentClient.start(AgentSpec("inprocess"))
    sends: list[int] = []
    original = agent.request

    def counting(request: messages.Request) -> int:
        if isinstance(request, messages.Send):
            sends.append(len(request.probes) + len(request.columns or ()))
        return original(request)

    monkeypatch.setattr(agent, "request", counting)
    try:
        cases = [Case("127.0.0.1", 4, p) for p in range(230, 255)]
        result = Engine(agent, {"127.0.0.1": agent}).run(cases, timeout=2)
    finally:
        agent.close()
    assert sends == [10, 10, 5]
    assert {judge(o).outcome for o in result.observations} == {Outcome.DELIVERED}


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="captures need Linux AF_PACKET")
@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_a_capture_over_its_limit_keeps_what_it_has_and_says_which_limit(monkeypatch):
    monkeypatch.setattr(messages, "MAX_CAPTURE_PACKETS", 3)
    end = Endpoint(AgentClient.start(AgentSpec("inprocess")), "local")
    here = "127.83.69.67"  # an address of this test's own, on loopback
    try:
        sender, receiver = end.open_udp(4, bind=here), end.open_udp(4, bind=here)
        started = end.call(messages.CaptureStart(interface="lo", protocol=17, hosts=(here,)))
        for _ in range(6):
            end.send(sender.handle, data=b"over-the-limit", dst=here, port=receiver.port)
        assert len(end.receive(receiver.handle, count=6, timeout=2)) == 6
        stopped = end.call(messages.CaptureStop(handle=started["handle"], wait=1.0, count=6))
    finally:
        end.agent.close()
    # Whoever else's packets may be among them, the capture kept 3 and counted the rest.
    assert len(stopped["packets"]) == 3 and stopped["dropped"] >= 3
    assert "at most 3 packets" in stopped["limit"]


def _exchange_under_a_broad_flow(end: Endpoint, here: str) -> set[tuple[int, int]]:
    """The (sport, dport) of each datagram `end`'s capture shows, under a flow naming only
    the addresses, while its own sockets and two sockets of this process exchange one."""
    mine, peer = end.open_udp(4, bind=here), end.open_udp(4, bind=here)
    assert mine.port and peer.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        stranger.bind((here, 0))
        listener.bind((here, 0))
        broad = Flow(17, ip_address(here), ip_address(here))
        with end.capture(broad, protocol=17, interface="lo", wait=2.0, count=2) as seen:
            end.send(mine.handle, data=b"ours", dst=here, port=peer.port)
            stranger.sendto(b"theirs", listener.getsockname())
            assert listener.recv(64) == b"theirs"
            assert end.receive(peer.handle, count=1, timeout=2)
    end.close(mine.handle, peer.handle)
    body = [ipv4.decode(packet).payload for _, packet in seen.packets]
    found = {(int.from_bytes(b[:2], "big"), int.from_bytes(b[2:4], "big")) for b in body}
    assert (mine.port, peer.port) in found
    return found - {(mine.port, peer.port)}


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="captures need Linux AF_PACKET")
@pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
def test_a_flow_the_caller_chose_does_not_widen_what_a_non_root_caller_sees(restricted):
    """A flow narrows a capture; it cannot show a non-root caller anyone else's packets,
    though for a root caller the same flow lets in every datagram between its addresses."""
    here = "127.83.69.68"  # an address of this test's own, on loopback
    root = Endpoint(AgentClient.start(AgentSpec("inprocess")), "root")
    try:
        assert _exchange_under_a_broad_flow(root, here), "the flow kept no stranger for root"
    finally:
        root.agent.close()
    assert _exchange_under_a_broad_flow(restricted, here) == set()


_scalars = st.none() | st.booleans() | st.integers(-5, 70000) | st.sampled_from(
    [4, 6, 17, 136, "hdp", "udp", "raw", "127.0.0.1", "::1", "0g", "x" * 70, 1 << 40, 2.0])


@given(name=st.sampled_from([n for n in messages.ProbeRow._fields]),
       values=st.lists(_scalars, max_size=6) | st.lists(st.lists(_scalars), max_size=2))
def test_a_probe_column_is_checked_as_each_of_its_values_would_be(name, values):
    """Columns are checked at C speed: the same values pass, and the same refusal (with
    the index of the value) comes back, as when each value is checked alone."""
    from hdp.agent import schema

    column = schema._compiled(messages.Probes).checks[name]
    one = schema._compiled(messages.ProbeSpec).checks[name]
    try:
        got = column(values)
    except messages.Invalid as exc:
        refusal = str(exc)
        assert refusal.startswith("[")
        index = int(refusal[1:refusal.index("]")])
        with pytest.raises(messages.Invalid):
            one(values[index])
        assert all(_passes(one, v) for v in values[:index])
        return
    assert got == tuple(one(v) for v in values)


def _passes(check, value) -> bool:
    try:
        check(value)
    except messages.Invalid:
        return False
    return True


def test_a_send_of_columns_is_refused_whole_when_they_disagree():
    line = (b'{"op":"send","id":3,"run":1,"columns":{"case":[1,2],"family":[4,4],'
            b'"protocol":[253],"dst":["127.0.0.1","127.0.0.1"]}}')
    with pytest.raises(protocol.ProtocolError, match=r"columns\.protocol: 1 values, for 2"):
        protocol.decode_request(line)
    many = {"case": list(range(3000)), "family": [4] * 3000, "protocol": [253] * 3000,
            "dst": ["127.0.0.1"] * 3000}
    probes = [{"case": 0, "family": 4, "protocol": 253, "dst": "127.0.0.1"}] * 1100
    line = json.dumps({"op": "send", "id": 4, "run": 1, "columns": many,
                       "probes": probes}).encode()
    with pytest.raises(protocol.ProtocolError, match="4100 probes are over the limit of 4096"):
        protocol.decode_request(line)
