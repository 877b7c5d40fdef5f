"""Per-case cost: hdp sweep and nmap -sO over 1..64 loopback targets x 256 protocols.

All of 127.0.0.0/8 is loopback on Linux, so 127.0.0.1..127.0.0.N are N targets whose
probes never leave the host. For each N (default 1, 4, 16, 64: 256 ... 16,384 cases,
IPv4) it times, interleaved round-robin (every size and tool once, then again):

- `python -m hdp sweep 127.0.0.1 ... 127.0.0.N --protocols 0-255 --family 4` in a fresh
  interpreter, listener-confirmed (the loopback default: hdp's listeners confirm every
  delivery);
- the same through the library, `hdp.sweep.run_sweep` in this process (no start-up);
- `nmap -n -Pn -sO -p0-255 --min-rate 5000 127.0.0.1-N` (-Pn: no host discovery, as hdp
  does none).

Then it fits seconds = fixed + per_case x cases by least squares over every run of each
tool, and prints the ratio of medians at each size. By default the whole run happens in
a network namespace of its own (--no-netns: the host's). Sends to 127.0.0.0/8 only.

    sudo python benchmarks/per_case.py [--repeat 5] [--targets 1,4,16,64] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import _bench

PROTOCOLS = 256
RUN_TIMEOUT = 300
NMAP_RATE = 5000


@dataclass
class Measure:
    tool: str  # hdp-cli | hdp-lib | nmap
    targets: int
    seconds: list[float] = field(default_factory=list)
    states: list[dict[str, int]] = field(default_factory=list)
    disturbed: list[bool] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return self.targets * PROTOCOLS


LABELS = {"hdp-cli": "hdp sweep (CLI, listener-confirmed)",
          "hdp-lib": "hdp library run_sweep (no start-up)",
          "nmap": f"nmap -sO --min-rate {NMAP_RATE}"}


def addresses(count: int) -> list[str]:
    if not 1 <= count <= 250:
        raise SystemExit(f"--targets {count}: give 1..250 (127.0.0.1..127.0.0.250)")
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


def run_cli(measure: Measure, out: Path, watch: _bench.RawWatch) -> None:
    command = [sys.executable, "-m", "hdp", "sweep", *addresses(measure.targets),
               "--protocols", f"0-{PROTOCOLS - 1}", "--family", "4", "--format", "json",
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(_bench.REPO)}
    seconds, code, _, err = _bench.run_tool(command, watch, RUN_TIMEOUT, cwd=_bench.REPO,
                                            env=env)
    if code != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed ({code}): {err.strip()[-800:]}")
    report = json.loads(out.read_text(encoding="utf-8"))
    measure.seconds.append(seconds)
    measure.states.append(dict(Counter(c["outcome"] for c in report["cases"])))


def run_lib(measure: Measure) -> None:
    from hdp.sweep import SweepPlan, run_sweep

    plan = SweepPlan(targets=tuple(addresses(measure.targets)),
                     protocols=tuple(range(PROTOCOLS)), families=(4,), agent="inprocess")
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its "probing N cases" line
        report, _ = run_sweep(plan)
    measure.seconds.append(time.perf_counter() - started)
    measure.states.append(dict(Counter(c["outcome"] for c in report["cases"])))


def run_nmap(measure: Measure, watch: _bench.RawWatch) -> None:
    last = f"127.0.0.1-{measure.targets}" if measure.targets > 1 else "127.0.0.1"
    command = ["nmap", "-n", "-Pn", "-sO", f"-p0-{PROTOCOLS - 1}", "--min-rate",
               str(NMAP_RATE), "-oX", "-", last]
    seconds, code, out, err = _bench.run_tool(command, watch, RUN_TIMEOUT)
    if code != 0:
        sys.exit(f"{' '.join(command)} failed ({code}): {err.strip()}")
    measure.seconds.append(seconds)
    measure.states.append(nmap_states(out))


def nmap_states(text: str) -> dict[str, int]:
    """How many protocol x host results nmap gave in each state (listed + extraports)."""
    states: Counter[str] = Counter()
    root = ET.fromstring(text)
    for host in root.findall("host"):
        ports = host.find("ports")
        if ports is None:
            continue
        for port in ports.findall("port"):
            state = port.find("state")
            states[state.get("state", "?") if state is not None else "?"] += 1
        for extra in ports.findall("extraports"):
            states[extra.get("state", "?")] += int(extra.get("count", "0"))
    return dict(states)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--targets", default="1,4,16,64",
                        help="target counts, each x 256 protocols (default 1,4,16,64)")
    parser.add_argument("--no-lib", action="store_true", help="leave out the library runs")
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    sizes = [int(x) for x in args.targets.split(",") if x.strip()]
    have_nmap = shutil.which("nmap") is not None
    if not have_nmap:
        print("nmap not found: `apt-get install -y nmap`; timing hdp alone", file=sys.stderr)
    tools = ["hdp-cli", *([] if args.no_lib else ["hdp-lib"]), *(["nmap"] if have_nmap else [])]
    measures = [Measure(tool, n) for n in sizes for tool in tools]
    versions = {"nmap": _bench.tool_version(["nmap", "--version"])}
    print(f"per_case: {', '.join(str(n * PROTOCOLS) for n in sizes)} cases (IPv4, 127.0.0.1.."
          f"N x 256), {args.repeat} runs each, interleaved; {_bench.machine()['cpus']} CPUs; "
          f"{versions['nmap'] or 'no nmap'}; {_bench.revision_text()}; {_bench.where()}",
          flush=True)
    load_before = _bench.load_average()
    watch = _bench.RawWatch()
    with watch, tempfile.TemporaryDirectory(prefix="hdp-bench-") as scratch:
        out = Path(scratch) / "sweep.json"

        def run(measure: Measure) -> None:
            if measure.tool == "hdp-cli":
                run_cli(measure, out, watch)
            elif measure.tool == "hdp-lib":
                run_lib(measure)
            else:
                run_nmap(measure, watch)

        _bench.interleave(measures, args.repeat, watch, run)
    load_after = _bench.load_average()

    by_key = {(m.tool, m.targets): m for m in measures}
    rows, sizes_out = [], []
    for n in sizes:
        nmap = by_key.get(("nmap", n))
        nmap_median = _bench.summary(nmap.seconds)["median"] if nmap else None
        for tool in tools:
            m = by_key[(tool, n)]
            s = _bench.summary(m.seconds)
            r = _bench.ratio(s["median"], nmap_median) if tool != "nmap" else None
            rows.append([m.cases, LABELS[tool], s["median"], s["min"], s["max"],
                         _bench.fmt(r, 2) if tool != "nmap" else "-", sum(m.disturbed)])
            sizes_out.append({"tool": tool, "targets": n, "cases": m.cases, **s,
                              "ratio_to_nmap": r, "states_last_run": m.states[-1],
                              "disturbed_runs": sum(m.disturbed)})
    print("\nWall clock of one sweep (seconds)")
    print(_bench.table(["cases", "tool", "median", "min", "max", "median / nmap",
                        "disturbed"], rows))
    fits = {}
    fit_rows = []
    for tool in tools:
        points = [(float(m.cases), s) for m in measures if m.tool == tool for s in m.seconds]
        fit = _bench.linear_fit(points)
        fits[tool] = fit
        if fit:
            fit_rows.append([LABELS[tool], fit["fixed"], fit["per_unit"] * 1e6, fit["rms"]])
    print("\nLeast-squares fit over every run: seconds = fixed + per case x cases")
    print(_bench.table(["tool", "fixed s", "us / case", "rms s"], fit_rows))
    if "nmap" in fits and fits["nmap"] and fits["hdp-cli"]:
        print(f"per-case cost, hdp CLI / nmap: "
              f"{fits['hdp-cli']['per_unit'] / fits['nmap']['per_unit']:.2f}")
    print("\nOutcomes of the last run at the largest size:")
    for tool in tools:
        print(f"  {LABELS[tool]}: {by_key[(tool, sizes[-1])].states[-1]}")
    foreign = watch.describe()
    _bench.print_surroundings(load_before, load_after, foreign)
    _bench.write_json(args.json, _bench.header(
        "per_case", load_before, load_after, tools=versions, foreign_raw_sockets=foreign,
        repeat=args.repeat, nmap_min_rate=NMAP_RATE, sizes=sizes_out, fits=fits,
        runs=[{"tool": m.tool, "cases": m.cases, "seconds": m.seconds,
               "states": m.states, "disturbed": m.disturbed} for m in measures]))
    return 0


if __name__ == "__main__":
    _bench.main_exits(main)
