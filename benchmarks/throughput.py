"""Engine throughput on loopback, beside hping3 as a packet-rate yardstick.

- hdp: one agent (in-process by default), listener-confirmed, one batch of unique cases,
  protocols 1-255 x sizes 64..64+K-1 (10,200 probes by default) to 127.0.0.1. Reports
  probes/s = cases / BatchResult.seconds (everything: listeners opened, probes built and
  sent, arrivals matched by tag, verdicts ready), probes with no evidence
  (BatchResult.unaccounted, and cases judged `lost`) and kernel receive-queue drops
  (BatchResult.drops). A one-run scaling table shows how the rate depends on batch size.
- hping3: `hping3 --rawip -H 253 -d 96 -c N -i u1 127.0.0.1` (count-bounded, and under
  `timeout`) while a raw listener opened with hdp.rawsock.open_listener(4, 253) counts what
  arrives; reports packets/s as received by that listener, and hping3's own "N packets
  transmitted". hping3 --flood ignores -c, so it is only run on request, --flood SECONDS
  (<= 3, bounded by time alone).

- hdp flood: `hdp stats --flood`'s path (hdp.flood): --flood-count HDP probes of the same
  96 bytes after the IP header, unpaced, from the agent (--agent) to a child agent that
  counts them into a bitmap; matched/s = distinct probes matched / (first send .. last
  match, one CLOCK_MONOTONIC), with sent = delivered + lost + dropped checked every run.

- the physical reference: benchmarks/flood.c, compiled with `cc -O2` at run time, sends
  --flood-count packets (default 1,000,000) of the same size to 127.0.0.1 in a bare
  `sendto` loop while a raw listener in the same program counts them back; and the same
  loop in bare Python (`socket.sendto` + `recv`), the floor of any pure-Python design.

Every probe of hdp's batch is accounted for: sent = delivered + lost + other outcomes,
with the kernel's receive-queue drops beside them (today's drops are inside `lost`).

Repetitions are interleaved (hdp, hping3, C, Python, hdp, ...); figures are median, min
and max, and ratios of medians. By default all of it runs in a network namespace of its
own (--no-netns: the host's). Sends to 127.0.0.1 only.

    sudo python benchmarks/throughput.py [--repeat 5] [--sizes 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import _bench

from hdp import rawsock
from hdp.agent.launch import AgentClient, AgentSpec
from hdp.case import Case
from hdp.engine import Engine
from hdp.flood import FloodPlan, flood
from hdp.verdict import judge

TARGET = {4: "127.0.0.1", 6: "::1"}
HPING_PROTOCOL = 253
HPING_DATA = b"X" * 8  # hping3 --rawip fills its data with X
HPING_TIME_LIMIT = 20.0  # seconds: hping3 is interrupted after this whatever its count
FLOOD_MAX = 3.0
QUIET = 0.3  # seconds without a packet after hping3 exits: the listener is drained


def engine_batch(engine: Engine, family: int, sizes: int, timeout: float) -> dict[str, Any]:
    target = TARGET[family]
    cases = [Case(target, family, protocol, "hdp", 64 + k, "loopback")
             for k in range(sizes) for protocol in range(1, 256)]
    result = engine.run(cases, timeout=timeout)
    outcomes = Counter(judge(o).outcome.value for o in result.observations)
    sent = sum(1 for o in result.observations
               if o.sent_bytes is not None and not o.send_errno and not o.socket_errno)
    delivered = outcomes.get("delivered", 0) + outcomes.get("altered", 0)
    lost = outcomes.get("lost", 0)
    dropped = sum(result.drops.values())
    accounting = {"sent": sent, "delivered": delivered, "lost": lost, "dropped": dropped,
                  "other": sent - delivered - lost,
                  # sent = delivered + lost (+ the outcomes of eng's `error`, none here);
                  # the kernel's drops are inside `lost` today, so they cannot exceed it.
                  "holds": sent == delivered + lost and dropped <= lost}
    return {"probes": len(cases), "seconds": result.seconds, "accounting": accounting,
            "probes_per_s": len(cases) / result.seconds,
            "delivered_per_s": outcomes.get("delivered", 0) / result.seconds,
            "unaccounted": result.unaccounted, "lost": outcomes.get("lost", 0),
            "kernel_drops": sum(result.drops.values()), "drops_by_socket": result.drops,
            "outcomes": dict(outcomes), "interrupted": result.interrupted}


def hping_run(command: list[str], size: int, watch: _bench.RawWatch) -> dict[str, Any]:
    """Run hping3 (bounded by `timeout`) while our raw listener counts its packets."""
    listener = rawsock.open_listener(4, HPING_PROTOCOL)
    if isinstance(listener, rawsock.OsRefusal):
        sys.exit(f"cannot open a raw listener for protocol {HPING_PROTOCOL}: {listener}")
    expected_length = 20 + size
    received = drops = 0
    first = last = None
    with listener, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        # A session of its own, so hping3 (a child of `timeout`) can be ended with it.
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        watch.child = process.pid
        ended: list[float] = []

        def wait() -> None:
            process.wait()
            ended.append(time.perf_counter())

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        hard = time.monotonic() + HPING_TIME_LIMIT + 5
        quiet_since = None
        try:
            while time.monotonic() < hard:
                got = 0
                for packet in rawsock.receive_until([listener], time.monotonic() + 0.1):
                    if packet.drops is not None:
                        drops = max(drops, packet.drops)
                    data = packet.data
                    if len(data) != expected_length or data[20:28] != HPING_DATA[:8]:
                        continue  # not hping3's: a 20-byte header and "XXX..." as data
                    received += 1
                    got += 1
                    first = first or packet.kernel_time_ns
                    last = packet.kernel_time_ns
                if ended:
                    if got:
                        quiet_since = None
                    elif quiet_since is None:
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since >= QUIET:
                        break
            waiter.join(timeout=HPING_TIME_LIMIT + 5)
        finally:
            watch.child = None
            if process.poll() is None:  # only if interrupted: end timeout and hping3 both
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace") + err.read().decode(errors="replace")
    wall = (ended[0] if ended else time.perf_counter()) - started
    stats = re.search(r"(\d+) packets transmitted, (\d+) packets received", text)
    transmitted = int(stats.group(1)) if stats else None
    span = (last - first) / 1e9 if first and last and last > first else None
    return {"command": " ".join(command), "returncode": process.returncode,
            "wall_seconds": wall, "transmitted": transmitted,
            "hping_received_replies": int(stats.group(2)) if stats else None,
            "listener_received": received, "listener_drops": drops,
            "received_per_s": received / wall if wall > 0 else None,
            "received_per_s_arrival_span": received / span if span else None,
            "sent_per_s": transmitted / wall if transmitted and wall > 0 else None}


FLOOD_SOURCE = _bench.REPO / "benchmarks" / "flood.c"
FLOOD_MAGIC = b"HDPflood"


def hdp_flood(sender: AgentClient, listener: AgentClient, count: int, family: int,
              size: int) -> dict[str, Any]:
    """One flood of `count` probes whose bytes after the IP header number `size`."""
    result = flood(sender, listener, FloodPlan(TARGET[family], family, count,
                                               HPING_PROTOCOL, size - 32))
    return {"sent": result.sent, "refused": result.refused, "delivered": result.delivered,
            "lost": result.lost, "dropped": result.dropped, "duplicated": result.duplicated,
            "corrupted": result.corrupted, "foreign": result.foreign,
            "sent_per_s": result.sent_per_s, "matched_per_s": result.matched_per_s,
            "batched": [result.batched_send, result.batched_receive],
            "holds": result.accounted and result.sent + result.refused == count}


def build_flood(scratch: str) -> str | None:
    """Compile benchmarks/flood.c; None (and why, on stderr) without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        print("no C compiler: the physical reference is the bare Python loop alone "
              "(`apt-get install -y gcc` for the C one)", file=sys.stderr)
        return None
    binary = os.path.join(scratch, "flood")
    done = subprocess.run([compiler, "-O2", "-o", binary, str(FLOOD_SOURCE)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"cc {FLOOD_SOURCE} failed: {done.stderr.strip()}", file=sys.stderr)
        return None
    return binary


def c_flood(binary: str, count: int, size: int, watch: _bench.RawWatch) -> dict[str, Any]:
    token = int.from_bytes(os.urandom(4), "little")
    _, code, out, err = _bench.run_tool(
        [binary, str(count), str(size), str(HPING_PROTOCOL), str(token)], watch,
        HPING_TIME_LIMIT + 10)
    if code != 0:
        sys.exit(f"flood failed ({code}): {err.strip()}")
    found: dict[str, Any] = json.loads(out)
    return _flood_rates(found)


def python_flood(count: int, size: int) -> dict[str, Any]:
    """The C loop's twin in bare Python: sendto, a recv between every 64 sends, drain."""
    token = os.urandom(4)
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, HPING_PROTOCOL)
    listener = socket.socket(socket.AF_INET, socket.SOCK_RAW, HPING_PROTOCOL)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    listener.setblocking(False)
    packet = bytearray(FLOOD_MAGIC + token + bytes(4) + b"X" * (size - 16))
    destination = ("127.0.0.1", 0)
    received = 0

    def drain() -> int:
        nonlocal received
        got = 0
        while True:
            try:
                data = listener.recv(2048)
            except BlockingIOError:
                return got
            ihl = (data[0] & 0x0F) * 4
            if data[ihl:ihl + 12] == FLOOD_MAGIC + token:
                received += 1
                got += 1

    sent = errors = 0
    with out, listener:
        started = time.perf_counter()
        send = out.sendto
        for seq in range(count):
            packet[12:16] = seq.to_bytes(4, "little")
            try:
                send(packet, destination)
                sent += 1
            except OSError:
                errors += 1
            if seq & 63 == 63:
                drain()
        sent_at = quiet = time.perf_counter()
        while time.perf_counter() - quiet < 0.2:
            if drain():
                quiet = time.perf_counter()
            else:
                time.sleep(0.001)
        seconds = time.perf_counter() - started - 0.2
    return _flood_rates({"sent": sent, "send_errors": errors, "received": received,
                         "drops": None, "send_seconds": sent_at - started,
                         "seconds": seconds})


def _flood_rates(found: dict[str, Any]) -> dict[str, Any]:
    found["sent_per_s"] = found["sent"] / found["send_seconds"]
    found["received_per_s"] = found["received"] / found["seconds"]
    return found


def _hping_command(args: argparse.Namespace, flood: float | None = None) -> list[str]:
    base = ["hping3", "--rawip", "-H", str(HPING_PROTOCOL), "-d", str(args.hping_size)]
    if flood:
        return ["timeout", "-s", "INT", f"{min(flood, FLOOD_MAX):g}", *base, "--flood",
                "127.0.0.1"]
    return ["timeout", "-s", "INT", f"{HPING_TIME_LIMIT:g}", *base, "-c",
            str(args.hping_count), "-i", "u1", "127.0.0.1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--sizes", "-k", type=int, default=40,
                        help="sizes per protocol: 255*K probes a batch (default 40 -> 10200)")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="the engine's deadline after sending (default 1.0, as hdp sweep)")
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--agent", default="inprocess",
                        help="the agent for hdp: inprocess (default) or child")
    parser.add_argument("--scaling", default="5,10,20,60,80",
                        help="K values for a one-run scaling table ('' for none)")
    parser.add_argument("--hping-count", type=int, default=20000, metavar="N")
    parser.add_argument("--hping-size", type=int, default=96, metavar="BYTES",
                        help="hping3 data bytes (default 96: an hdp probe of size 64)")
    parser.add_argument("--flood", type=float, default=0.0, metavar="SECONDS",
                        help=f"also run hping3 --flood for this long (<= {FLOOD_MAX:g} s; "
                             "bounded in time only, as --flood ignores -c)")
    parser.add_argument("--flood-count", type=int, default=1_000_000, metavar="N",
                        help="packets of the C and Python reference loops (default 1000000;"
                             " the Python loop sends a fifth of them)")
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    if not 1 <= args.flood_count <= 10_000_000:
        sys.exit("--flood-count: give 1..10000000")
    have_hping = shutil.which("hping3") is not None and shutil.which("timeout") is not None
    if not have_hping:
        print("hping3 not found: `apt-get install -y hping3`; timing hdp alone", file=sys.stderr)
    tools = {"hping3": _bench.tool_version(["hping3", "--version"])}
    probes = 255 * args.sizes
    print(f"throughput: hdp {probes} probes a batch (IPv{args.family}, protocols 1-255 x "
          f"{args.sizes} sizes, agent {args.agent}, timeout {args.timeout:g} s); hping3 "
          f"{args.hping_count} packets; {args.repeat} runs each, interleaved; "
          f"{_bench.machine()['cpus']} CPUs; {_bench.revision_text()}; {_bench.where()}",
          flush=True)
    scratch = tempfile.mkdtemp(prefix="hdp-bench-")
    flood_binary = build_flood(scratch)
    c_runs: list[dict[str, Any]] = []
    py_runs: list[dict[str, Any]] = []

    load_before = _bench.load_average()
    agent = AgentClient.start(AgentSpec.parse(args.agent))
    counter = AgentClient.start(AgentSpec("child"))  # the flood's listener: a process
    watch = _bench.RawWatch()
    flood_runs: list[dict[str, Any]] = []
    hdp_runs: list[dict[str, Any]] = []
    hping_runs: list[dict[str, Any]] = []
    flood_run = None
    scaling: list[dict[str, Any]] = []

    def watched(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        began = time.monotonic()
        found = run()
        found["disturbed"] = watch.disturbed(began, time.monotonic())
        return found

    try:
        with watch:
            engine = Engine(agent, {TARGET[args.family]: agent})
            for rep in range(args.repeat):
                hdp_runs.append(watched(lambda k=args.sizes: engine_batch(
                    engine, args.family, k, args.timeout)))
                if have_hping:
                    hping_runs.append(watched(lambda: hping_run(
                        _hping_command(args), args.hping_size, watch)))
                if flood_binary:
                    c_runs.append(watched(lambda b=flood_binary: c_flood(
                        b, args.flood_count, args.hping_size, watch)))
                py_runs.append(watched(lambda: python_flood(
                    max(1, args.flood_count // 5), args.hping_size)))
                flood_runs.append(watched(lambda: hdp_flood(
                    agent, counter, args.flood_count, args.family, args.hping_size)))
                h = hdp_runs[-1]
                print(f"  run {rep + 1}/{args.repeat}: hdp {h['probes_per_s']:.0f} probes/s, "
                      f"{h['lost']} lost"
                      + (f"; hping3 {hping_runs[-1]['received_per_s']:.0f} received/s"
                         if hping_runs else "")
                      + (f"; C {c_runs[-1]['received_per_s']:.0f}/s" if c_runs else "")
                      + f"; Python {py_runs[-1]['received_per_s']:.0f}/s"
                      + f"; hdp flood {flood_runs[-1]['matched_per_s']:.0f} matched/s",
                      flush=True)
            for k in [int(x) for x in args.scaling.split(",") if x.strip()]:
                scaling.append({"sizes": k, **watched(lambda k=k: engine_batch(
                    engine, args.family, k, args.timeout))})
            if have_hping and args.flood > 0:
                flood_run = watched(lambda: hping_run(
                    _hping_command(args, args.flood), args.hping_size, watch))
    finally:
        agent.close()
        counter.close()
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = _bench.load_average()
    foreign = watch.describe()

    rate = _bench.summary([r["probes_per_s"] for r in hdp_runs])
    matched = _bench.summary([r["delivered_per_s"] for r in hdp_runs])
    figures: dict[str, Any] = _bench.header("throughput", load_before, load_after) | {
        "tools": tools, "foreign_raw_sockets": foreign,
        "repeat": args.repeat, "family": args.family, "agent": args.agent,
        "timeout": args.timeout,
        "hdp": {"probes": probes, "probes_per_s": rate, "delivered_per_s": matched,
                "seconds": _bench.summary([r["seconds"] for r in hdp_runs]),
                "lost": _bench.summary([r["lost"] for r in hdp_runs]),
                "unaccounted": _bench.summary([r["unaccounted"] for r in hdp_runs]),
                "kernel_drops": _bench.summary([r["kernel_drops"] for r in hdp_runs]),
                "runs": hdp_runs},
        "scaling": scaling}
    print(f"\nhdp engine, {probes} probes a batch, listener-confirmed, IPv{args.family}")
    print(_bench.table(
        ["figure", "median", "min", "max"],
        [["probes/s (cases / BatchResult.seconds)", rate["median"], rate["min"], rate["max"]],
         ["matched/s (delivered cases / seconds)", matched["median"], matched["min"],
          matched["max"]],
         *[[label, s["median"], s["min"], s["max"]] for label, s in (
             ("seconds a batch", figures["hdp"]["seconds"]),
             ("cases lost (no evidence)", figures["hdp"]["lost"]),
             ("BatchResult.unaccounted", figures["hdp"]["unaccounted"]),
             ("kernel drops (BatchResult.drops)", figures["hdp"]["kernel_drops"]))],
         ["runs disturbed by other raw sockets", sum(r["disturbed"] for r in hdp_runs), "-",
          "-"]]))
    if scaling:
        print("\nhdp engine, one batch of each size (probes/s should not fall with the batch; "
              "lost > 0 with 0 drops: the deadline came before the evidence was read, and "
              "such a batch ends early, flattering probes/s)")
        print(_bench.table(["probes", "seconds", "probes/s", "lost", "unaccounted", "drops",
                            "disturbed"],
                           [[s["probes"], s["seconds"], s["probes_per_s"], s["lost"],
                             s["unaccounted"], s["kernel_drops"], str(s["disturbed"]).lower()]
                            for s in scaling]))

    if hping_runs:
        received = _bench.summary([r["received_per_s"] for r in hping_runs])
        spans = [r["received_per_s_arrival_span"] for r in hping_runs
                 if r["received_per_s_arrival_span"]]
        figures["hping3"] = {
            "count": args.hping_count, "size": args.hping_size, "received_per_s": received,
            "received_per_s_arrival_span": _bench.summary(spans) if spans else None,
            "transmitted": _bench.summary([r["transmitted"] or 0 for r in hping_runs]),
            "listener_received": _bench.summary([r["listener_received"] for r in hping_runs]),
            "listener_drops": _bench.summary([r["listener_drops"] for r in hping_runs]),
            "runs": hping_runs}
        h = figures["hping3"]
        print(f"\nhping3 --rawip -H {HPING_PROTOCOL} -d {args.hping_size} -c "
              f"{args.hping_count} -i u1, counted by an hdp raw listener")
        rows = [["received/s (listener count / hping3 wall time)", received["median"],
                 received["min"], received["max"]]]
        if spans:
            s = h["received_per_s_arrival_span"]
            rows.append(["received/s (over first..last arrival)", s["median"], s["min"],
                         s["max"]])
        rows += [[label, s["median"], s["min"], s["max"]] for label, s in (
            ("packets hping3 says it transmitted", h["transmitted"]),
            ("packets the listener received", h["listener_received"]),
            ("listener kernel drops", h["listener_drops"]))]
        rows.append(["runs disturbed by other raw sockets",
                     sum(r["disturbed"] for r in hping_runs), "-", "-"])
        print(_bench.table(["figure", "median", "min", "max"], rows))
        figures["ratio_hdp_probes_per_s_to_hping3_received_per_s"] = _bench.ratio(
            rate["median"], received["median"])
        figures["ratio_hdp_matched_per_s_to_hping3_received_per_s"] = _bench.ratio(
            matched["median"], received["median"])
        print(f"\nratio of medians, hdp probes/s / hping3 received packets/s: "
              f"{figures['ratio_hdp_probes_per_s_to_hping3_received_per_s']:.3f} "
              f"(hdp matched/s / hping3 received/s: "
              f"{figures['ratio_hdp_matched_per_s_to_hping3_received_per_s']:.3f})")
    accounting = [r["accounting"] for r in hdp_runs]
    figures["hdp"]["accounting"] = accounting
    print("\nhdp accounting per run, sent = delivered + lost (+ kernel drops, inside lost "
          "today): " + "; ".join(f"{a['sent']} = {a['delivered']} + {a['lost']} "
                                  f"(dropped {a['dropped']}){'' if a['holds'] else ' BROKEN'}"
                                  for a in accounting))
    references = []
    for key, label, runs in (("c_flood", "C sendto loop (flood.c)", c_runs),
                             ("python_flood", "bare Python sendto loop", py_runs)):
        if not runs:
            continue
        figures[key] = {
            "count": runs[0]["sent"] + runs[0]["send_errors"],
            "sent_per_s": _bench.summary([r["sent_per_s"] for r in runs]),
            "received_per_s": _bench.summary([r["received_per_s"] for r in runs]),
            "lost": _bench.summary([r["sent"] - r["received"] for r in runs]),
            "runs": runs}
        references.append((key, label, figures[key]))
    if references:
        print("\nPhysical reference: count-bounded send loops, counted back by a raw listener "
              "in the same program")
        print(_bench.table(["loop", "packets", "sent/s median", "received/s median",
                            "min", "max", "not received (median)"],
                           [[label, f["count"], f["sent_per_s"]["median"],
                             f["received_per_s"]["median"], f["received_per_s"]["min"],
                             f["received_per_s"]["max"], f["lost"]["median"]]
                            for _, label, f in references]))
        for key, label, f in references:
            r = _bench.ratio(matched["median"], f["received_per_s"]["median"])
            figures[f"ratio_hdp_matched_per_s_to_{key}"] = r
            print(f"ratio of medians, hdp matched/s / {label} received/s: {r:.4f}")
    flooded = _bench.summary([r["matched_per_s"] or 0 for r in flood_runs])
    figures["hdp_flood"] = {
        "count": args.flood_count, "matched_per_s": flooded,
        "sent_per_s": _bench.summary([r["sent_per_s"] or 0 for r in flood_runs]),
        "runs": flood_runs}
    print(f"\nhdp flood (hdp stats --flood's path), {args.flood_count} probes a run, "
          f"agent {args.agent} -> a child agent, batched (send, receive) "
          f"{flood_runs[0]['batched']}")
    print(_bench.table(["figure", "median", "min", "max"], [
        ["sent/s", *(figures["hdp_flood"]["sent_per_s"][k] for k in ("median", "min", "max"))],
        ["matched/s", flooded["median"], flooded["min"], flooded["max"]]]))
    print("hdp flood accounting per run, sent = delivered + lost + dropped: " + "; ".join(
        f"{r['sent']} = {r['delivered']} + {r['lost']} + {r['dropped']}"
        f" (dup {r['duplicated']}, corrupt {r['corrupted']}){'' if r['holds'] else ' BROKEN'}"
        for r in flood_runs))
    anchors = [("hping3", "hping3 received/s", figures.get("hping3", {}).get(
        "received_per_s"))] + [(key, f"{label} received/s", f["received_per_s"])
                               for key, label, f in references]
    for key, label, anchor in anchors:
        if anchor:
            r = _bench.ratio(flooded["median"], anchor["median"])
            figures[f"ratio_hdp_flood_matched_per_s_to_{key}"] = r
            print(f"ratio of medians, hdp flood matched/s / {label}: {r:.3f}")
    if flood_run:
        figures["hping3_flood"] = flood_run
        print(f"\nhping3 --flood for {min(args.flood, FLOOD_MAX):g} s (one run): "
              f"{flood_run['transmitted']} transmitted, {flood_run['listener_received']} "
              f"received by the listener ({flood_run['received_per_s']:.0f}/s), "
              f"{flood_run['listener_drops']} dropped by its receive queue")

    print(f"\nload average before/after: {load_before} / {load_after}")
    if foreign:
        print("WARNING: other processes held raw sockets during the run (they get copies of "
              "our packets and compete for CPU):")
        for line in foreign:
            print(f"  {line}")
    else:
        print("interference check: no other process held a raw socket during the runs "
              f"(sampled every {watch.interval * 1000:g} ms)")
    _bench.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    _bench.main_exits(main)
