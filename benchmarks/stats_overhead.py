"""What a latency measured from the process's own clock adds, and that hdp stats leaves it out.

HDP over raw IP (protocol 253) and UDP through the kernel's UDP stack, N probes each (the
same 20-byte tag and 64 data bytes), interleaved, on loopback. Every probe is stamped three
times, as hdp stats stamps it: by the process just before the send call (`user`), by the
kernel as the driver takes it (SO_TIMESTAMPING's software transmit stamp, read back from
the error queue under the send's own key), and by the kernel as it arrives (SO_TIMESTAMPNS).
The table gives, per kind, median / p90 / p99 in µs of

- user -> kernel TX: the measurement's own overhead (the system call and the protocol's
  output path up to the driver), which differs between a raw socket and a UDP socket;
- kernel TX -> kernel RX: what hdp stats reports as one-way latency;
- user -> kernel RX: what a user-space send stamp gives (pytest-hdp's one-probe "Time
  difference" column, and the write-up's figures), the overhead included.

Then HDP - UDP, difference of medians with its 95% bootstrap interval (hdp.stats.compare),
for both: the user-stamped figure carries the difference of the two send paths'
overheads; the kernel-stamped one does not. Runs each round of N probes `--repeat` times
(default 3) in a network namespace of its own (see README.md), as root.
Run: sudo .venv/bin/python benchmarks/stats_overhead.py [--count 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import _bench

from hdp import rawsock
from hdp.probe import PayloadKind, Probe, encode_probe, probe_data
from hdp.stats import compare, quantile
from hdp.timestamps import TransmitStamps, enable_receive_stamps, receive_stamp
from hdp.wire import hdp as hdp_wire
from hdp.wire.hdp import Carrier, ProbeTag

DST = "127.0.0.1"
RUN = 0x5E1F5E1F
SPANS = ("user -> kernel TX", "kernel TX -> kernel RX", "user -> kernel RX")


class Kind:
    """One kind of probe: a stamped sender, a stamped receiver, and the three stamps of
    each probe it sent."""

    def __init__(self, name: str, sender: socket.socket, address: Any,
                 receiver: socket.socket, header: int) -> None:
        self.name = name
        self.stamps = TransmitStamps(sender)
        if not self.stamps.enabled:
            sys.exit(f"no kernel transmit stamps here: {self.stamps.why}")
        self.address = address
        self.receiver = receiver
        self.header = header  # bytes before the tag in what the receiver reads
        self.user: dict[int, int] = {}
        self.tx: dict[int, int] = {}
        self.rx: dict[int, int] = {}

    def send(self, seq: int, body: bytes) -> None:
        user, key, refused = self.stamps.send(body, self.address, seq)
        if refused is not None or key is None:
            sys.exit(f"{self.name}: send refused ({refused})")
        self.user[seq] = user
        while True:  # loopback delivers within the send call: it is already there
            data, ancillary, _, _ = self.receiver.recvmsg(65535, 512)
            found = hdp_wire.decode_tagged(data[self.header:])
            if found.tag is not None and found.tag.run_id == RUN and found.tag.probe == seq:
                stamp = receive_stamp(ancillary)
                assert stamp is not None, "no kernel receive stamp"
                self.rx[seq] = stamp
                break
        for key_seen, stamp in self.stamps.collect():
            self.tx[key_seen] = stamp

    def spans(self) -> dict[str, list[float]]:
        seqs = sorted(set(self.user) & set(self.tx) & set(self.rx))
        return {SPANS[0]: [(self.tx[s] - self.user[s]) / 1000 for s in seqs],
                SPANS[1]: [(self.rx[s] - self.tx[s]) / 1000 for s in seqs],
                SPANS[2]: [(self.rx[s] - self.user[s]) / 1000 for s in seqs]}


def _kinds() -> list[Kind]:
    raw = rawsock.RawSocket.open(4, 253, listen=False)
    listener = rawsock.open_listener(4, 253)
    assert isinstance(raw, rawsock.RawSocket) and isinstance(listener, rawsock.RawSocket)
    udp_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_in.bind((DST, 0))
    enable_receive_stamps(udp_in)
    rawsock.grow_receive_buffer(udp_in)
    udp_out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # A raw IPv4 listener reads the IP header (20 bytes) before HDP's 12; UDP reads none.
    return [Kind("HDP (253)", raw.sock, (DST, 0), listener.sock, 20 + 12),
            Kind("UDP", udp_out, udp_in.getsockname(), udp_in, 0)]


def _round(count: int) -> list[Kind]:
    kinds = _kinds()
    data = probe_data(64)
    for seq in range(count):
        for kind in (kinds if seq % 2 == 0 else kinds[::-1]):  # each leads in turn
            if kind.name == "UDP":
                body = hdp_wire.encode_tagged(ProbeTag(RUN, 1, seq, Carrier.UDP), data)
            else:
                body = encode_probe(Probe(PayloadKind.HDP, data, ProbeTag(RUN, 0, seq)), DST,
                                    DST)
            kind.send(seq, body)
    for kind in kinds:
        kind.stamps.sock.close()
        kind.receiver.close()
    return kinds


def _percentiles(values: Sequence[float]) -> list[float]:
    ordered = sorted(values)
    return [quantile(ordered, q) for q in (0.5, 0.9, 0.99)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="probes a kind a round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    print(f"{_bench.revision_text()}, {_bench.where()}, load {_bench.load_average()}")
    rounds: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        kinds = _round(args.count)
        rounds.append({"seconds": time.perf_counter() - started,
                       "spans": {kind.name: kind.spans() for kind in kinds}})
    figures: dict[str, Any] = {"machine": _bench.machine(), "count": args.count,
                               "rounds": []}
    for index, found in enumerate(rounds, 1):
        rows = [[name, span, *_percentiles(values)] for name, spans in found["spans"].items()
                for span, values in spans.items()]
        print(f"\nround {index}: {args.count:,} probes a kind, µs")
        print(_bench.table(["kind", "span", "p50", "p90", "p99"], rows))
        spans = found["spans"]
        diffs = {span: compare(spans["HDP (253)"][span], spans["UDP"][span],
                               labels=("HDP", "UDP")) for span in SPANS}
        for span, diff in diffs.items():
            print(f"  {span:24} {diff.describe()}")
        figures["rounds"].append({
            "seconds": found["seconds"],
            "percentiles_us": {name: {span: _percentiles(values)
                                      for span, values in spans_of.items()}
                               for name, spans_of in spans.items()},
            "hdp_minus_udp": {span: {"estimate_us": d.estimate_us, "low_us": d.low_us,
                                     "high_us": d.high_us, "differs": d.differs}
                              for span, d in diffs.items()}})
    print(f"\nload {_bench.load_average()}")
    _bench.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
