"""Whether the conformance suite's verdicts are its own: repeated runs, with company.

The suite must be green however its tests are spread over workers and whatever else the
host sends. This script runs it as a user would, many times in a row, and counts the
green runs:

- loopback, `-n2`: `pytest conformance --hdp-target=127.0.0.1 --hdp-lab none -n2`
  (default 20 runs);
- the routed lab, `-n2`: `pytest conformance --hdp-lab routed -n2` (default 10 runs);
- loopback, `-n0`, while a process of this script sends UDP, UDP-Lite and IPv4
  fragments of UDP datagrams to 127.0.0.1 (default 10 runs). The noise goes to random
  ports, in and out of order, a few datagrams missing a fragment, at a fixed rate; it is
  bounded in packets and seconds and stops by itself (and is ended by its PID after the
  run in any case).

For each kind it prints the runs, the green ones, and how often each test failed; with
`--json FILE` it writes the figures and every failing run's summary lines. Exit status 1
when a run was not green: this is a proof, not a benchmark. It sends only to 127.0.0.1
and into the lab's own namespaces. Run as root:

    sudo .venv/bin/python benchmarks/flakiness.py [--loopback 20] [--lab 10] [--noisy 10]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import _bench

ROOT = Path(__file__).resolve().parents[1]
RUN_LIMIT = 900.0  # seconds: a conformance run that takes longer is stuck
NOISE_RATE = 300  # bursts per second; a burst is 1 UDP + 1 UDP-Lite + 1 fragmented UDP
NOISE_BURSTS = 300 * 120  # at most this many bursts (and at most NOISE_SECONDS)
NOISE_SECONDS = 120.0
NOISE_TARGET = "127.0.0.1"
FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


@dataclass
class Kind:
    """One way of running the suite, and what its runs gave."""

    name: str
    args: list[str]
    runs: int
    noisy: bool = False
    green: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)


def suite(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "conformance", "-q", "-rfE", *args]


def run_once(kind: Kind) -> dict[str, Any]:
    noise = start_noise() if kind.noisy else None
    started = time.monotonic()
    try:
        done = subprocess.run(kind.args, cwd=ROOT, capture_output=True, text=True,
                              timeout=RUN_LIMIT, check=False)
        status, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status = -1
        partial = exc.stdout or b""  # bytes here, even with text=True
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        out = f"timed out after {RUN_LIMIT:g} s\n{text}"
    finally:
        sent = stop_noise(noise)
    failed = [name for _, name in FAILED.findall(out)]
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return {"status": status, "seconds": round(time.monotonic() - started, 1),
            "failed": failed, "summary": last, "noise_packets": sent,
            "tail": out[-3000:] if status != 0 else ""}


# -- the noise ----------------------------------------------------------------------------


def start_noise() -> subprocess.Popen[str]:
    """This script in `noise` mode, in its own process; ready once it printed a line."""
    proc = subprocess.Popen([sys.executable, __file__, "noise"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready": its sockets are open
    return proc


def stop_noise(proc: subprocess.Popen[str] | None) -> int | None:
    """End the noise process by its PID; the packets it sent."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    numbers = [int(word) for word in out.split() if word.isdigit()]
    return numbers[-1] if numbers else None


def noise(bursts: int = NOISE_BURSTS, rate: float = NOISE_RATE,
          seconds: float = NOISE_SECONDS) -> int:
    """Send `bursts` bursts to NOISE_TARGET at `rate` a second, for at most `seconds`."""
    import signal

    from hdp import rawsock
    from hdp.wire import ipv4, udp
    from hdp.wire.fragment import fragment_ipv4

    stop = False

    def end(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, end)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lite = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, udp.PROTO_UDPLITE)
    raw = rawsock.RawSocket.open(4, rawsock.IPPROTO_RAW, listen=False, header_included=True)
    if isinstance(raw, rawsock.OsRefusal):
        sys.exit(f"noise: no header-included raw socket ({raw}): run as root")
    print("ready", flush=True)
    target = IPv4Address(NOISE_TARGET)
    sent = 0
    started = time.monotonic()
    try:
        for burst in range(bursts):
            due = started + burst / rate
            if stop or due - started > seconds:
                break
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)  # pacing the noise, not synchronising a test
            port = random.randint(1024, 65535)
            data = b"NOISE" + os.urandom(random.randint(0, 200))
            for sock in (plain, lite):
                try:
                    sock.sendto(data, (NOISE_TARGET, port))
                    sent += 1
                except OSError:  # ECONNREFUSED from an earlier ICMP: noise all the same
                    pass
            datagram = udp.encode(random.randint(1024, 65535), port,
                                  b"NOISE" + os.urandom(2000 + burst % 1500), NOISE_TARGET,
                                  NOISE_TARGET)
            header = ipv4.IPv4Header(src=target, dst=target, protocol=17,
                                     identification=random.getrandbits(16))
            fragments = fragment_ipv4(header, datagram, 1500)
            if burst % 3 == 1:
                fragments.reverse()  # later fragments before the first
            elif burst % 50 == 2:
                # Never completed. Rare: each waits out the 30 s reassembly timer, and a
                # few thousand waiting would exhaust the host's reassembly memory and
                # share IDs with the tests' own datagrams, an attack, not company.
                del fragments[1]
            for fragment in fragments:
                if raw.send(fragment, NOISE_TARGET).ok:
                    sent += 1
    finally:
        raw.close()
        plain.close()
        lite.close()
        print(sent, flush=True)
    return sent


# -- reporting ------------------------------------------------------------------------------


def report(kinds: list[Kind]) -> str:
    rows = [[k.name, k.runs, k.green, k.runs - k.green] for k in kinds]
    lines = [_bench.table(["runs of the suite", "runs", "green", "not green"], rows)]
    for kind in kinds:
        for name, count in kind.failures.most_common():
            lines.append(f"  {kind.name}: {name} failed in {count} run(s)")
        for result in kind.results:
            if result["status"] != 0 and not result["failed"]:
                lines.append(f"  {kind.name}: exit {result['status']}: {result['summary']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("prove", "noise"), default="prove",
                        help="'noise' only sends the background traffic (used internally)")
    parser.add_argument("--loopback", type=int, default=20, metavar="N",
                        help="runs on loopback with -n2 (default 20)")
    parser.add_argument("--lab", type=int, default=10, metavar="N",
                        help="runs on the routed lab with -n2 (default 10)")
    parser.add_argument("--noisy", type=int, default=10, metavar="N",
                        help="runs on loopback with -n0 beside the noise (default 10)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.mode == "noise":
        noise()
        return 0
    _bench.require_raw()
    kinds = [
        Kind("loopback -n2", suite("--hdp-target=127.0.0.1", "--hdp-lab", "none", "-n2"),
             args.loopback),
        Kind("routed lab -n2", suite("--hdp-lab", "routed", "-n2"), args.lab),
        Kind("loopback -n0, noise", suite("--hdp-target=127.0.0.1", "--hdp-lab", "none",
                                          "-n0"), args.noisy, noisy=True),
    ]
    for kind in kinds:
        for number in range(kind.runs):
            result = run_once(kind)
            kind.results.append(result)
            kind.green += result["status"] == 0
            kind.failures.update(set(result["failed"]))
            print(f"{kind.name} run {number + 1}/{kind.runs}: exit {result['status']} in "
                  f"{result['seconds']} s; {result['summary']}", flush=True)
    print()
    print(report(kinds))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": _bench.machine(),
             "kinds": [{"name": k.name, "command": k.args[1:], "runs": k.runs,
                        "green": k.green, "failures": dict(k.failures),
                        "results": k.results} for k in kinds]}, indent=2) + "\n")
    return 0 if all(k.green == k.runs for k in kinds) else 1


if __name__ == "__main__":
    sys.exit(main())
