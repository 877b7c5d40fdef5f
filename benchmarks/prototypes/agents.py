"""The in-process agent (a thread) against a child agent (a process), same sweep.

Runs `hdp.sweep.run_sweep` over 16 loopback targets x 256 protocols (4,096 cases,
listener-confirmed) with `agent="inprocess"` and `agent="child"`, each in a fresh
interpreter, interleaved, and reports the sweep's own wall clock (agent start-up
included, interpreter start-up not). Then it runs each once more under
`strace -f -c -e trace=futex` to count the futex calls of threads waiting on the GIL
and on queues. By default in a network namespace of its own; sends to 127.0.0.0/8 only.

    sudo python benchmarks/prototypes/agents.py [--repeat 5] [--targets 16] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _bench

KINDS = ("inprocess", "child")


def one(kind: str, targets: int) -> dict[str, Any]:
    """One sweep in this process; its figures as JSON on stdout."""
    from hdp.sweep import SweepPlan, run_sweep

    plan = SweepPlan(targets=tuple(f"127.0.0.{i}" for i in range(1, targets + 1)),
                     protocols=tuple(range(256)), families=(4,), agent=kind)
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        report, result = run_sweep(plan)
    wall = time.perf_counter() - started
    delivered = sum(c["outcome"] == "delivered" for c in report["cases"])
    return {"kind": kind, "seconds": wall, "engine_seconds": result.seconds,
            "delivered": delivered, "cases": len(report["cases"])}


def spawn(kind: str, targets: int, prefix: list[str] | None = None) -> dict[str, Any]:
    command = [*(prefix or []), sys.executable, __file__, "--one", kind, "--targets",
               str(targets)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(_bench.REPO)})
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr[-1500:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def futex_calls(kind: str, targets: int) -> int | None:
    if shutil.which("strace") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        spawn(kind, targets, ["strace", "-f", "-c", "-e", "trace=futex", "-o", out.name])
        text = Path(out.name).read_text()
    match = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?futex$", text, re.M)
    return int(match.group(1)) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--targets", type=int, default=16)
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.targets)))
        return 0
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    print(f"agents: {args.targets * 256} cases, {args.repeat} runs each, interleaved; "
          f"{_bench.revision_text()}; {_bench.where()}", flush=True)
    load_before = _bench.load_average()
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for _ in range(args.repeat):
        for kind in KINDS:
            runs[kind].append(spawn(kind, args.targets))
    futex = {kind: futex_calls(kind, args.targets) for kind in KINDS}
    load_after = _bench.load_average()
    stats = {kind: _bench.summary([r["seconds"] for r in found]) for kind, found in runs.items()}
    pairs = _bench.summary([i["seconds"] / c["seconds"]
                            for i, c in zip(runs["inprocess"], runs["child"], strict=True)])
    print(_bench.table(["agent", "median s", "min s", "max s", "delivered (last)",
                        "futex calls (one run)"],
                       [[kind, s["median"], s["min"], s["max"], runs[kind][-1]["delivered"],
                         futex[kind] if futex[kind] is not None else "-"]
                        for kind, s in stats.items()]))
    print(f"in-process / child, pair ratios: median {pairs['median']:.2f} "
          f"(min {pairs['min']:.2f}, max {pairs['max']:.2f})")
    print(f"load average before/after: {load_before} / {load_after}")
    _bench.write_json(args.json, {"benchmark": "agents", "machine": _bench.machine(),
                                  "runs": runs, "futex_calls": futex, "pair_ratio": pairs,
                                  "load_average": {"before": load_before, "after": load_after}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
