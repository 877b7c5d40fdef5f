"""Where one probe's CPU goes today: each stage of the per-probe path, timed alone.

Every stage runs the project's own code on realistic values (a tagged 64-byte HDP probe
to 127.0.0.1 and its arrival), N times in a loop, and reports microseconds per probe;
the syscalls are real (a raw socket of protocol 253 in a network namespace of our own).
Stages, in the order a probe meets them:

  agent, sending:   parse the `send` request (per probe), build the probe bytes, sendto,
                    the `sent` event into its frame (protocol.EventWriter), written
  agent, listening: recvmsg + ancillary data, decode_arrival, build the `arrival` event,
                    into its frame, written
  controller:       both events from their frames (protocol.decode_events), match to the
                    case and record,
                    Observation + judge, the report entry, resolve (getaddrinfo)

    sudo python benchmarks/prototypes/stages.py [--count 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _bench

from hdp import rawsock
from hdp.address import resolve
from hdp.agent import messages, protocol
from hdp.agent.server import arrival_event
from hdp.arrival import decode_arrival
from hdp.case import Case
from hdp.observe import CaseState, delivery, observation
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.report import CaseResult, case_entry
from hdp.verdict import judge
from hdp.wire.hdp import ProbeTag

PROTOCOL = 253


def per_call(function: Callable[[], object], count: int) -> float:
    """Microseconds per call, best of three loops of `count` calls."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            function()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    n = args.count
    run_id = 0x1A2B3C4D
    dst = "127.0.0.1"
    spec = messages.ProbeSpec(case=7, family=4, protocol=PROTOCOL, dst=dst)
    request_line = protocol.encode_request(1, messages.Send(run=run_id, probes=(spec,) * 256))
    sender = rawsock.RawSocket.open(4, PROTOCOL, listen=False, header_included=False)
    listener = rawsock.open_listener(4, PROTOCOL)
    assert isinstance(sender, rawsock.RawSocket) and isinstance(listener, rawsock.RawSocket)
    stamp = time.time_ns()
    body = encode_probe(Probe(PayloadKind.HDP, probe_data(64), ProbeTag(run_id, 7)), dst, dst,
                        stamp)
    sink_r, sink_w = os.pipe()
    os.set_blocking(sink_r, False)

    def write(data: bytes) -> None:
        os.write(sink_w, data)
        os.read(sink_r, 1 << 16)  # keep the pipe from filling; a reader does this too

    def framed(event: dict[str, Any]) -> Callable[[], object]:
        """The agent's EventWriter on MAX_FRAME copies of `event`: a frame's worth."""
        writer = protocol.EventWriter(write)

        def run() -> None:
            for _ in range(messages.MAX_FRAME):
                writer.event(event)
            writer.flush()
        return run

    def frame_line(event: dict[str, Any]) -> bytes:
        lines: list[bytes] = []
        writer = protocol.EventWriter(lines.append)
        for _ in range(messages.MAX_FRAME):
            writer.event(event)
        writer.flush()
        return lines[0]

    sent_event = {"event": "sent", "run": run_id, "case": 7, "ok": True, "stage": None,
                  "errno": None, "bytes": len(body), "time_ns": time.time_ns(), "src": dst,
                  "icmp_possible": True, "digest": zlib.crc32(body), "stamp_ns": stamp}
    sender.send(body, dst)
    received = listener.receive()
    arrival = decode_arrival(received)
    event = arrival_event(arrival)
    sent_frame, arrival_frame = frame_line(sent_event), frame_line(event)
    case = Case(dst, 4, PROTOCOL, "hdp", 64, "loopback")
    state = CaseState(case, address=dst, sent=sent_event, arrivals=[event])
    observed = observation(state, run_id, 7)
    verdict = judge(observed)

    def send_and_drain() -> None:
        sender.send(body, dst)

    def send_receive() -> None:  # the receive stage is this less the send stage
        sender.send(body, dst)
        listener.receive()

    stages: list[tuple[str, str, Callable[[], object], int]] = [
        ("agent", "parse the send request (per probe of 256)",
         lambda: protocol.decode_request(request_line), 256),
        ("agent", "build the probe bytes (encode_probe)",
         lambda: encode_probe(Probe(PayloadKind.HDP, probe_data(64), ProbeTag(run_id, 7)),
                              dst, dst), 1),
        ("agent", "sendto (RawSocket.send)", send_and_drain, 1),
        ("agent", "sent event, in a frame of 256 (EventWriter + write)",
         framed(sent_event), messages.MAX_FRAME),
        ("agent", "recvmsg + ancillary (RawSocket.receive)", send_receive, 1),
        ("agent", "decode_arrival", lambda: decode_arrival(received), 1),
        ("agent", "arrival event: build it (arrival_event)", lambda: arrival_event(arrival), 1),
        ("agent", "arrival event, in a frame of 256 (EventWriter + write)", framed(event),
         messages.MAX_FRAME),
        ("controller", "the two events from their frames (protocol.decode_events)",
         lambda: (protocol.decode_events(sent_frame), protocol.decode_events(arrival_frame)),
         messages.MAX_FRAME),
        ("controller", "the delivery, compared with the probe as sent (observe.delivery)",
         lambda: delivery(event, sent_event, case, run_id, 7, dst), 1),
        ("controller", "Observation (observe.observation)",
         lambda: observation(state, run_id, 7), 1),
        ("controller", "judge", lambda: judge(observed), 1),
        ("controller", "report entry (case_entry)",
         lambda: case_entry(CaseResult(case, observed, verdict)), 1),
        ("controller", "resolve the target (getaddrinfo)", lambda: resolve(dst, 4), 1),
    ]
    rows: list[list[Any]] = []
    figures: list[dict[str, Any]] = []
    send_cost = 0.0
    for side, name, function, batch in stages:
        micro = per_call(function, max(1, n // batch)) / batch
        if name.startswith("sendto"):
            send_cost = micro
        elif name.startswith("recvmsg"):
            micro -= send_cost
        rows.append([side, name, micro])
        figures.append({"side": side, "stage": name, "us_per_probe": micro})
    total = sum(float(f["us_per_probe"]) for f in figures)
    rows.append(["", "total", total])
    print(f"stages: {n} calls each, best of 3; {_bench.revision_text()}; {_bench.where()}")
    print(_bench.table(["side", "stage", "us / probe"], rows))
    _bench.write_json(args.json, {"benchmark": "stages", "machine": _bench.machine(),
                                  "count": n, "stages": figures, "total_us": total})
    for raw in (sender, listener):
        raw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
