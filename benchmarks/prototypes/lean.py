"""A lean per-packet path in pure Python: how fast probes can be sent and matched.

Two (or three) processes on 127.0.0.1, protocol 253: senders build each probe from a
template (the real HDP header and probe tag of hdp.wire.hdp: tag fields + CRC-32 packed
into the buffer, a fresh timestamp) and send it; a listener reads each packet, checks
magic, run id and CRC, and marks the case in a bitmap (duplicates counted). No events,
no JSON, no threads: what is left of today's 65 us of CPU a probe when only the work
itself remains. Variants, interleaved, each run `--count` probes:

  sendto      one sender, socket.sendto per probe; listener recv_into per packet
  sendmmsg    one sender, ctypes sendmmsg of 64 probes a call; listener recv_into
  recvmmsg    one sender (sendmmsg); listener ctypes recvmmsg of 64 packets a call
  2 senders   two sender processes (sendmmsg), half of the cases each; listener recvmmsg

matched/s = distinct cases matched / (first send .. last match). Every probe is
accounted for: sent = matched + kernel drops (SO_RXQ_OVFL) + unexplained. By default it
runs in a network namespace of its own. Sends to 127.0.0.1 only, bounded in count.

    sudo python benchmarks/prototypes/lean.py [--count 200000] [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import multiprocessing
import os
import socket
import struct
import sys
import time
import zlib
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _bench

from hdp.probe import probe_data
from hdp.wire import hdp as hdp_wire

PROTOCOL = 253
DATA = 64
BATCH = 64
MAX_COUNT = 2_000_000
MSG_WAITFORONE = 0x10000
SO_RXQ_OVFL = 40
SO_RCVBUFFORCE = 33  # Linux; root may pass rmem_max
_HDP = struct.Struct("!HHQ")
_TAG_HEAD = struct.Struct("!4sBBHII")  # the tag less its CRC: magic ... case
_TAG_FIELDS = struct.Struct("!4sBBHIII")
PACKET = hdp_wire.HEADER_LENGTH + hdp_wire.TAG_LENGTH + DATA
LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


def _messages(buffer: Any, size: int, count: int, name: Any = None,
              control: Any = None, control_size: int = 0) -> Any:
    """`count` mmsghdrs over consecutive `size`-byte slices of `buffer`."""
    vectors = (IoVec * count)()
    messages = (MMsgHdr * count)()
    base = ctypes.addressof(buffer)
    for i in range(count):
        vectors[i].base, vectors[i].len = base + i * size, size
        hdr = messages[i].hdr
        hdr.iov, hdr.iovlen = ctypes.pointer(vectors[i]), 1
        if name is not None:
            hdr.name, hdr.namelen = ctypes.addressof(name), ctypes.sizeof(name)
        if control is not None:
            hdr.control = ctypes.addressof(control) + i * control_size
            hdr.controllen = control_size
    return messages, vectors


# -- sender -------------------------------------------------------------------------------

def _fill(view: memoryview, offset: int, run: int, case: int, data: bytes) -> None:
    """One probe in place: the HDP header, the tag with its CRC, then `data` (preset)."""
    _HDP.pack_into(view, offset, hdp_wire.ORIGINAL_PORT, hdp_wire.ORIGINAL_PORT, time.time_ns())
    tag = offset + hdp_wire.HEADER_LENGTH
    _TAG_HEAD.pack_into(view, tag, hdp_wire.TAG_MAGIC, hdp_wire.TAG_VERSION, 0, 0, run, case)
    crc = zlib.crc32(data, zlib.crc32(b"\0\0\0\0", zlib.crc32(view[tag:tag + 16])))
    struct.pack_into("!I", view, tag + 16, crc)


def sender(cases: range, run: int, batched: bool, start: Any, out: Connection) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTOCOL)
    data = probe_data(DATA)
    start.wait()
    began = time.perf_counter()
    sent = 0
    if not batched:
        buffer = bytearray(PACKET)
        buffer[PACKET - DATA:] = data
        view = memoryview(buffer)
        destination = ("127.0.0.1", 0)
        send = sock.sendto
        for case in cases:
            _fill(view, 0, run, case, data)
            send(buffer, destination)
            sent += 1
    else:
        frames = ctypes.create_string_buffer(PACKET * BATCH)
        view = memoryview(frames).cast("B")
        for i in range(BATCH):
            view[i * PACKET + PACKET - DATA:(i + 1) * PACKET] = data
        address = ctypes.create_string_buffer(
            struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton("127.0.0.1")), 16)
        messages, _vectors = _messages(frames, PACKET, BATCH, address)
        fd = sock.fileno()
        first, last = cases.start, cases.stop
        for low in range(first, last, BATCH):
            high = min(low + BATCH, last)
            for i, case in enumerate(range(low, high)):
                _fill(view, i * PACKET, run, case, data)
            done = 0
            while done < high - low:
                got = LIBC.sendmmsg(fd, ctypes.byref(messages, done * ctypes.sizeof(MMsgHdr)),
                                    high - low - done, 0)
                if got < 0:
                    raise OSError(ctypes.get_errno(), "sendmmsg")
                done += got
            sent += done
    out.send({"sent": sent, "began": began, "ended": time.perf_counter()})
    sock.close()


# -- listener -------------------------------------------------------------------------------

class Matcher:
    def __init__(self, run: int, count: int) -> None:
        self.run = run
        self.seen = bytearray(count)
        self.matched = self.duplicates = self.corrupt = self.foreign = 0
        self.last = 0.0

    def packet(self, view: memoryview, offset: int, length: int) -> None:
        tag = offset + ((view[offset] & 0x0F) << 2) + hdp_wire.HEADER_LENGTH
        if length < tag - offset + hdp_wire.TAG_LENGTH:
            self.foreign += 1
            return
        magic, _version, _kind, _probe, run, case, crc = _TAG_FIELDS.unpack_from(view, tag)
        if magic != hdp_wire.TAG_MAGIC or run != self.run or case >= len(self.seen):
            self.foreign += 1
            return
        end = offset + length
        if zlib.crc32(view[tag + 20:end], zlib.crc32(b"\0\0\0\0", zlib.crc32(
                view[tag:tag + 16]))) != crc:
            self.corrupt += 1
            return
        if self.seen[case]:
            self.duplicates += 1
            return
        self.seen[case] = 1
        self.matched += 1
        self.last = time.perf_counter()


def listener(run: int, count: int, batched: bool, ready: Any, done: Any,
             out: Connection) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTOCOL)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 100_000))
    matcher = Matcher(run, count)
    drops = 0
    size = 2048
    ready.set()
    quiet_after_done = 0
    if not batched:
        buffer = bytearray(size)
        view = memoryview(buffer)
        receive = sock.recvmsg_into
        while matcher.matched < count:
            try:
                length, ancillary, _, _ = receive([buffer], 64)
            except BlockingIOError:
                if done.is_set():
                    quiet_after_done += 1
                    if quiet_after_done >= 3:
                        break
                continue
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                    drops = struct.unpack("@I", value[:4])[0]
            matcher.packet(view, 0, length)
    else:
        packets = ctypes.create_string_buffer(size * BATCH)
        control_size = 64
        control = ctypes.create_string_buffer(control_size * BATCH)
        messages, _vectors = _messages(packets, size, BATCH, None, control, control_size)
        view = memoryview(packets).cast("B")
        fd = sock.fileno()
        while matcher.matched < count:
            for i in range(BATCH):
                messages[i].hdr.controllen = control_size
            got = LIBC.recvmmsg(fd, messages, BATCH, MSG_WAITFORONE, None)
            if got < 0:
                if done.is_set():
                    quiet_after_done += 1
                    if quiet_after_done >= 3:
                        break
                continue
            for i in range(got):
                matcher.packet(view, i * size, messages[i].len)
            if messages[got - 1].hdr.controllen >= 20:  # one cmsghdr + u32: the drop count
                drops = struct.unpack_from("@I", control, (got - 1) * control_size + 16)[0]
    out.send({"matched": matcher.matched, "duplicates": matcher.duplicates,
              "corrupt": matcher.corrupt, "foreign": matcher.foreign, "drops": drops,
              "last": matcher.last})
    sock.close()


VARIANTS = {"sendto": (1, False, False), "sendmmsg": (1, True, False),
            "recvmmsg": (1, True, True), "2 senders": (2, True, True)}


def run_variant(name: str, count: int) -> dict[str, Any]:
    senders, send_batched, receive_batched = VARIANTS[name]
    run = int.from_bytes(os.urandom(4), "big")
    context = multiprocessing.get_context("fork")
    ready, done, start = context.Event(), context.Event(), context.Event()
    listen_out, listen_in = context.Pipe(duplex=False)
    heard = context.Process(target=listener, args=(run, count, receive_batched, ready, done,
                                                   listen_in))
    heard.start()
    ready.wait(10)
    share = -(-count // senders)
    pipes, workers = [], []
    for i in range(senders):
        out, into = context.Pipe(duplex=False)
        cases = range(i * share, min(count, (i + 1) * share))
        worker = context.Process(target=sender, args=(cases, run, send_batched, start, into))
        worker.start()
        pipes.append(out)
        workers.append(worker)
    start.set()
    reports = [p.recv() for p in pipes if p.poll(60)]
    done.set()
    if len(reports) < senders or not listen_out.poll(60):
        for worker in (*workers, heard):
            worker.kill()
        sys.exit(f"{name}: a sender or the listener did not report (see above)")
    heard_report = listen_out.recv()
    for worker in (*workers, heard):
        worker.join(10)
    began = min(r["began"] for r in reports)
    sent = sum(r["sent"] for r in reports)
    send_seconds = max(r["ended"] for r in reports) - began
    span = max(heard_report["last"], began) - began
    return {"variant": name, "sent": sent, "send_per_s": sent / send_seconds,
            "matched_per_s": heard_report["matched"] / span if span > 0 else None,
            "unexplained": sent - heard_report["matched"] - heard_report["drops"],
            **heard_report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= MAX_COUNT:
        sys.exit(f"--count: give 1..{MAX_COUNT}")
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    print(f"lean: {args.count} probes a run, {args.repeat} runs of each variant, interleaved;"
          f" {_bench.machine()['cpus']} CPUs; {_bench.where()}", flush=True)
    load_before = _bench.load_average()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):
        for name in VARIANTS:
            runs[name].append(run_variant(name, args.count))
    load_after = _bench.load_average()
    rows = []
    for name, found in runs.items():
        matched = _bench.summary([r["matched_per_s"] or 0 for r in found])
        sent = _bench.summary([r["send_per_s"] for r in found])
        rows.append([name, sent["median"], matched["median"], matched["min"], matched["max"],
                     max(r["drops"] for r in found), max(r["unexplained"] for r in found),
                     max(r["corrupt"] + r["duplicates"] for r in found)])
    print(_bench.table(["variant", "sent/s", "matched/s median", "min", "max",
                        "kernel drops (max)", "unexplained (max)", "corrupt+dup (max)"], rows))
    print(f"load average before/after: {load_before} / {load_after}")
    _bench.write_json(args.json, {"benchmark": "lean", "machine": _bench.machine(),
                                  "count": args.count, "runs": runs,
                                  "load_average": {"before": load_before,
                                                   "after": load_after}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
