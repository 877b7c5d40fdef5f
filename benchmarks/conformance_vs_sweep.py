"""The conformance suite over 0-255 x IPv4/IPv6 on loopback, beside the bare `hdp sweep`.

Both run as a user runs them (a fresh interpreter each time), in one go on the same
machine; the figure that matters is the ratio of medians (aim: pytest within 2x of the
sweep). Run as root: python benchmarks/conformance_vs_sweep.py [--runs 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a quirk the profile does not know still fails
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        floor_file = Path(scratch) / "test_floor.py"
        floor_file.write_text("import pytest\n\n@pytest.mark.parametrize('n', range(512))\n"
                              "def test_noop(n):\n    pass\n")
        # What a user's install loads: pytest-hdp without this repo's test-only plugins.
        user_like = ["-p", "no:hypothesispytest", "-p", "no:pytester", "-p", "no:randomly"]
        sweep = [sys.executable, "-m", "hdp", "sweep", "127.0.0.1", "::1", "--protocols",
                 "0-255", "--format", "json", "--out", f"{scratch}/sweep.json"]
        suite = [sys.executable, "-m", "pytest", "conformance/test_delivery.py", "-q",
                 *user_like, "--hdp-lab", "none", "--hdp-payload", "hdp",
                 "--hdp-protocols", "0-255",
                 "--hdp-report", f"{scratch}/suite.json"]
        floor = [sys.executable, "-m", "pytest", str(floor_file), "-q", *user_like,
                 "-p", "no:hdp", "--rootdir", scratch]
        names = {"hdp sweep (512 cases)": sweep,
                 "pytest, 512 no-op tests (pytest's floor)": floor,
                 "pytest conformance (512 cases)": suite,
                 "pytest conformance -n2 (512 cases)": [*suite, "-n2"]}
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.runs):  # interleaved, so drift hits all alike
            for name, command in names.items():
                times[name].append(timed(command))
        cases = len(json.loads(Path(f"{scratch}/suite.json").read_text())["cases"])
    base = statistics.median(times["hdp sweep (512 cases)"])
    print(f"{'command':44} {'median s':>9} {'min s':>7} {'ratio':>6}")
    figures = {}
    for name, values in times.items():
        median = statistics.median(values)
        figures[name] = {"median_s": median, "min_s": min(values), "ratio": median / base}
        print(f"{name:44} {median:9.3f} {min(values):7.3f} {median / base:6.2f}")
    suite_cost = statistics.median(times["pytest conformance (512 cases)"])
    floor_cost = statistics.median(times["pytest, 512 no-op tests (pytest's floor)"])
    print(f"\nthe suite reported {cases} cases; ratio = median / median of hdp sweep "
          f"({args.runs} interleaved runs; aim <= 2.0)")
    print(f"the suite costs {suite_cost - floor_cost:.3f} s above pytest's own cost for 512 "
          f"tests, against {base:.3f} s for the whole sweep")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "figures": figures},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
