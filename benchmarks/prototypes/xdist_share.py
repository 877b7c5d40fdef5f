"""What "the controller probes once" costs under pytest-xdist, and the time it has for it.

1. The window: in a `pytest -n2` run of 512 no-op tests, how long after the controller's
   pytest_sessionstart each worker starts its first test (workers import pytest and
   collect meanwhile; the controller waits). A sweep that runs on the controller in that
   window costs the run nothing.
2. The hand-over: the controller writes every case's observation to a file (JSON, one
   atomic rename) under an exclusive flock it took before probing; a worker takes a
   shared flock (it blocks until the file is complete: no polling, no sleep), reads the
   file and rebuilds its Observations. Timed for 512 and 16,384 cases, in separate
   processes, with the byte size of the file.

    python benchmarks/prototypes/xdist_share.py [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _bench

from hdp.case import Case, Delivery, IcmpReport, Observation

CONFTEST = '''
import json, os, time
def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        with open(os.environ["HDP_WINDOW_FILE"], "a") as out:
            out.write(json.dumps({"who": "controller", "t": time.time()}) + "\\n")
_first = []
def pytest_runtest_setup(item):
    if not _first and hasattr(item.config, "workerinput"):
        _first.append(1)
        with open(os.environ["HDP_WINDOW_FILE"], "a") as out:
            out.write(json.dumps({"who": item.config.workerinput["workerid"],
                                  "t": time.time()}) + "\\n")
'''


def window(scratch: Path) -> list[float]:
    """Seconds from the controller's session start to each worker's first test."""
    (scratch / "conftest.py").write_text(CONFTEST)
    (scratch / "test_floor.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', range(512))\ndef test_noop(n):\n"
        "    pass\n")
    marks = scratch / "window.jsonl"
    marks.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n2", "-p", "no:hdp", "-p",
                    "no:randomly", "--rootdir", str(scratch), str(scratch / "test_floor.py")],
                   cwd=scratch, capture_output=True, check=True, timeout=120,
                   env={**os.environ, "HDP_WINDOW_FILE": str(marks)})
    found = [json.loads(line) for line in marks.read_text().splitlines()]
    start = next(m["t"] for m in found if m["who"] == "controller")
    return sorted(m["t"] - start for m in found if m["who"] != "controller")


def observations(count: int) -> list[Observation]:
    found = []
    for i in range(count):
        case = Case(f"127.0.0.{i // 256 + 1}", 4, i % 256, "hdp", 64, "loopback")
        if i % 7:
            found.append(Observation(case=case, sent_bytes=96, sent_src=case.target,
                                     deliveries=(Delivery(case.target, case.target, i % 256,
                                                          64, 0, 0, 96, True, 1_764_000_000,
                                                          12.5),)))
        else:
            found.append(Observation(case=case, sent_bytes=96, sent_src=case.target,
                                     icmp=(IcmpReport(4, 3, 2, "127.0.0.1", None, i % 256),)))
    return found


_FIELDS = {cls: [f.name for f in dataclasses.fields(cls)]
           for cls in (Case, Delivery, IcmpReport, Observation)}


def _row(value: Any) -> list[Any]:
    return [getattr(value, name) for name in _FIELDS[type(value)]]


def to_json(observation: Observation) -> list[Any]:
    """Field values by position (dataclasses.asdict's deep copy costs 30 us a case)."""
    row = _row(observation)
    row[0] = _row(observation.case)
    row[_FIELDS[Observation].index("deliveries")] = [_row(d) for d in observation.deliveries]
    row[_FIELDS[Observation].index("icmp")] = [_row(r) for r in observation.icmp]
    return row


_DELIVERIES = _FIELDS[Observation].index("deliveries")
_ICMP = _FIELDS[Observation].index("icmp")


def from_json(row: list[Any]) -> Observation:
    values = list(row)
    values[0] = Case(*row[0])
    values[_DELIVERIES] = tuple(Delivery(**dict(zip(_FIELDS[Delivery], [*d[:-1], tuple(d[-1])],
                                                    strict=True)))
                                for d in row[_DELIVERIES])
    values[_ICMP] = tuple(IcmpReport(*r) for r in row[_ICMP])
    return Observation(*values)


def reader(path: str, lock: str, out: Any) -> None:
    started = time.perf_counter()
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # blocks while the controller still probes
        waited = time.perf_counter() - started
        began = time.perf_counter()
        rebuilt = [from_json(row) for row in json.loads(Path(path).read_bytes())]
        out.send({"read_s": time.perf_counter() - began, "waited_s": waited,
                  "cases": len(rebuilt)})


def hand_over(count: int, scratch: Path) -> dict[str, Any]:
    found = observations(count)
    lock, path = scratch / "results.lock", scratch / "results.json"
    lock.touch()
    context = multiprocessing.get_context("fork")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # taken before probing starts
        out, into = context.Pipe(duplex=False)
        worker = context.Process(target=reader, args=(str(path), str(lock), into))
        worker.start()
        began = time.perf_counter()
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps([to_json(o) for o in found]))
        os.replace(partial, path)
        written = time.perf_counter() - began
        fcntl.flock(held, fcntl.LOCK_UN)
    report = out.recv()
    worker.join(10)
    assert report["cases"] == count
    assert [from_json(row) for row in json.loads(path.read_bytes())] == found
    return {"cases": count, "write_s": written, "read_s": report["read_s"],
            "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    windows: list[list[float]] = []
    handed: dict[int, list[dict[str, Any]]] = {512: [], 16384: []}
    with tempfile.TemporaryDirectory(prefix="hdp-xdist-") as scratch:
        for _ in range(args.repeat):
            windows.append(window(Path(scratch)))
            for count in handed:
                handed[count].append(hand_over(count, Path(scratch)))
    first = _bench.summary([w[0] for w in windows])
    last = _bench.summary([w[-1] for w in windows])
    print(f"xdist_share: {args.repeat} runs, interleaved; {_bench.revision_text()}")
    print("controller session start -> a worker's first test, pytest -n2, 512 no-op tests (s)")
    print(_bench.table(["", "median", "min", "max"],
                       [["first worker", first["median"], first["min"], first["max"]],
                        ["second worker", last["median"], last["min"], last["max"]]]))
    rows = []
    for count, runs in handed.items():
        write = _bench.summary([r["write_s"] for r in runs])
        read = _bench.summary([r["read_s"] for r in runs])
        rows.append([count, write["median"] * 1000, read["median"] * 1000,
                     (write["median"] + read["median"]) / count * 1e6, runs[0]["bytes"]])
    print("\nhanding every observation from the controller to a worker (file + flock)")
    print(_bench.table(["cases", "write ms", "read + rebuild ms", "us / case", "bytes"],
                       rows))
    _bench.write_json(args.json, {"benchmark": "xdist_share", "machine": _bench.machine(),
                                  "window_s": windows, "hand_over": handed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
