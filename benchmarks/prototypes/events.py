"""Agent -> controller events: one JSON line a packet against batched frames.

For `--count` arrivals (the `arrival` event of a tagged 64-byte probe, as the agent
builds it today), times the agent's side (encode + write into a pipe) and the
controller's side (read + split + decode back into per-case values) of:

  json-line     today: one JSON object a line, one os.write a line, protocol.decode each
  ndjson-batch  the same lines, one os.write for up to 256 of them (decode unchanged)
  json-columns  one JSON line a batch: the fields as columns ({"case": [...], ...})
  binary        one frame a batch: a 12-byte header, then a fixed 24-byte struct per
                arrival (run, case, kernel time, length, ttl, dscp/ecn, flags, protocol),
                decoded with struct.iter_unpack
  hdp frames    what the agent and controller now do: protocol.EventWriter's frames
                (json-columns, with every field), protocol.decode_events back to events

Reports microseconds per event on each side and bytes per event. The frames are only
ever read by the controller from its own agent; the agent's requests stay JSON lines
(hdp.agent.protocol's hostile-input checks are unchanged by any of these).

    python benchmarks/prototypes/events.py [--count 100000] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _bench

from hdp.agent import protocol

BATCH = 256
# run u32, case u32, kernel time u64, length u16, ttl u8, tos u8, flags u8, protocol u8,
# 2 bytes padding: 24 bytes
RECORD = struct.Struct("!IIQHBBBBxx")
FRAME = struct.Struct("!4sII")  # magic, records, bytes: a frame header
FLAG_INTACT, FLAG_MF = 1, 2


def sample_event(case: int) -> dict[str, Any]:
    return {"event": "arrival", "run": 0x1A2B3C4D, "case": case, "probe": 0, "carrier": "hdp",
            "family": 4, "socket_protocol": 253, "wire_protocol": 253, "src": "127.0.0.1",
            "dst": "127.0.0.1", "ttl": 64, "dscp": 0, "ecn": 0, "length": 96, "intact": True,
            "kernel_time_ns": 1_764_000_000_123_456_789 + case, "hdp_time_ns": None,
            "fragment_offset": 0, "more_fragments": False, "truncated": False, "error": None,
            "digest": 0x1234ABCD + case, "head": "01a401a41880a5a8e2a37a15"}


def encode_line(events: list[dict[str, Any]], write: Callable[[bytes], None]) -> None:
    for event in events:
        write(protocol.encode(event))


def encode_ndjson(events: list[dict[str, Any]], write: Callable[[bytes], None]) -> None:
    for start in range(0, len(events), BATCH):
        write(b"".join(protocol.encode(e) for e in events[start:start + BATCH]))


def encode_columns(events: list[dict[str, Any]], write: Callable[[bytes], None]) -> None:
    keys = [k for k in events[0] if k != "event"]
    for start in range(0, len(events), BATCH):
        chunk = events[start:start + BATCH]
        frame = {"event": "arrivals", **{k: [e[k] for e in chunk] for k in keys}}
        write(protocol.encode(frame))


def encode_binary(events: list[dict[str, Any]], write: Callable[[bytes], None]) -> None:
    pack = RECORD.pack_into
    for start in range(0, len(events), BATCH):
        chunk = events[start:start + BATCH]
        frame = bytearray(FRAME.size + RECORD.size * len(chunk))
        FRAME.pack_into(frame, 0, b"HDPe", len(chunk), len(frame))
        offset = FRAME.size
        for e in chunk:
            pack(frame, offset, e["run"], e["case"], e["kernel_time_ns"], e["length"], e["ttl"],
                 e["dscp"] << 2 | e["ecn"], (FLAG_INTACT if e["intact"] else 0)
                 | (FLAG_MF if e["more_fragments"] else 0), e["wire_protocol"])
            offset += RECORD.size
        write(bytes(frame))


def decode_lines(data: bytes) -> int:
    buffer = protocol.LineBuffer()
    count = 0
    for line in buffer.feed(data):
        event = protocol.decode(line)  # type: ignore[arg-type]
        count += event["case"] is not None
    return count


def decode_columns(data: bytes) -> int:
    count = 0
    for line in protocol.LineBuffer().feed(data):
        frame = protocol.decode(line)  # type: ignore[arg-type]
        for case, _stamp, _length in zip(frame["case"], frame["kernel_time_ns"],
                                         frame["length"], strict=True):
            count += case is not None
    return count


def decode_binary(data: bytes) -> int:
    count = offset = 0
    view = memoryview(data)
    while offset + FRAME.size <= len(data):
        magic, records, size = FRAME.unpack_from(view, offset)
        if magic != b"HDPe" or size != FRAME.size + records * RECORD.size or \
                offset + size > len(data):
            raise ValueError("a bad frame")
        for _run, case, _stamp, _length, _ttl, _tos, _flags, _proto in RECORD.iter_unpack(
                view[offset + FRAME.size:offset + size]):
            count += case is not None
        offset += size
    return count


def encode_frames(events: list[dict[str, Any]], write: Callable[[bytes], None]) -> None:
    """The agent's own: protocol.EventWriter (frames of messages.MAX_FRAME)."""
    writer = protocol.EventWriter(write)
    for event in events:
        writer.event(event)
    writer.flush()


def decode_frames(data: bytes) -> int:
    """The controller's own: protocol.decode_events, every event back as its dict."""
    count = 0
    for line in protocol.LineBuffer().feed(data):
        for event in protocol.decode_events(line):  # type: ignore[arg-type]
            count += event["case"] is not None
    return count


ENCODINGS = {"json-line": (encode_line, decode_lines),
             "ndjson-batch": (encode_ndjson, decode_lines),
             "json-columns": (encode_columns, decode_columns),
             "binary": (encode_binary, decode_binary),
             "hdp frames": (encode_frames, decode_frames)}


def measure(name: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    encode, decode = ENCODINGS[name]
    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []
    writes = 0

    def drain() -> None:
        while True:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()

    def write(data: bytes) -> None:
        nonlocal writes
        writes += 1
        while data:
            data = data[os.write(write_fd, data):]

    started = time.perf_counter()
    encode(events, write)
    encoded = time.perf_counter() - started
    os.close(write_fd)
    reader.join()
    os.close(read_fd)
    data = b"".join(chunks)
    started = time.perf_counter()
    decoded = decode(data)
    decoding = time.perf_counter() - started
    assert decoded == len(events), (name, decoded)
    return {"encoding": name, "agent_us": encoded / len(events) * 1e6,
            "controller_us": decoding / len(events) * 1e6, "writes": writes,
            "bytes_per_event": len(data) / len(events)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    events = [sample_event(i) for i in range(args.count)]
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in ENCODINGS}
    for _ in range(args.repeat):
        for name in ENCODINGS:
            found[name].append(measure(name, events))
    rows = []
    for name, runs in found.items():
        agent = _bench.summary([r["agent_us"] for r in runs])
        controller = _bench.summary([r["controller_us"] for r in runs])
        rows.append([name, agent["median"], controller["median"],
                     agent["median"] + controller["median"], runs[0]["writes"],
                     runs[0]["bytes_per_event"]])
    print(f"events: {args.count} arrivals, {args.repeat} runs each, interleaved; medians")
    print(_bench.table(["encoding", "agent us/event", "controller us/event", "both",
                        "writes", "bytes/event"], rows))
    _bench.write_json(args.json, {"benchmark": "events", "machine": _bench.machine(),
                                  "count": args.count, "runs": found})
    return 0


if __name__ == "__main__":
    sys.exit(main())
