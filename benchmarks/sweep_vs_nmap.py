"""hdp sweep vs nmap's IP protocol scan (-sO) over protocols 0-255, on loopback.

Times, in one run on one machine and interleaved round-robin so drift hits every tool
alike, the wall clock of:

- `python -m hdp sweep TARGET --protocols 0-255 --family F` as a subprocess (interpreter
  start-up included), with listener-confirmed verdicts (the loopback default) and in
  ICMP-only mode (`--listener none`, the like-for-like comparison with nmap);
- the same through the library: one in-process agent, then `Engine.run` per repetition;
- `nmap [-6] -n -sO -p0-255 --min-rate 5000 -oX - TARGET`.

Targets are 127.0.0.1 and ::1 only, by default in a network namespace of our own (no
other process's raw sockets to silence ICMP; --no-netns: the host's). Then it compares
verdicts protocol by protocol: hdp `unreachable` ~ nmap `closed`, `lost` ~
`open|filtered`, `prohibited` ~ `filtered`, `delivered` ~ `open`, and lists the protocol
numbers on which the two disagree.

    sudo python benchmarks/sweep_vs_nmap.py [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
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
from typing import Any

import _bench

from hdp.agent.launch import AgentClient, AgentSpec
from hdp.engine import Engine
from hdp.sweep import SweepPlan, plan_cases
from hdp.verdict import judge

TARGETS = {4: "127.0.0.1", 6: "::1"}
PROTOCOLS = range(256)
RUN_TIMEOUT = 60  # seconds: any single tool run is killed after this
NMAP_RATE = 5000

# hdp outcome -> the nmap state that says the same thing.
SAME_AS_NMAP = {"unreachable": "closed", "lost": "open|filtered", "prohibited": "filtered",
                "delivered": "open"}

# Why hdp (ICMP-only) and nmap disagree on a protocol, where we have checked it (nstat
# counters after one hdp probe, Linux 6.x). nmap sends a valid header for the protocols it
# knows; hdp always sends its HDP header, which those protocols' handlers drop silently.
EXPLAIN = {
    (4, 1): "nmap sends an ICMP echo request (the reply = open, though nmap labels the reason "
            "proto-unreach); hdp's bytes read as ICMP fail the checksum (IcmpInCsumErrors) "
            "and get no answer",
    (4, 6): "nmap's TCP probe draws a RST (= open); hdp's bytes read as TCP fail the "
            "checksum (TcpInErrs) and get no answer",
    (6, 6): "nmap's TCP probe draws a RST (= open); hdp's bytes read as TCP fail the "
            "checksum (TcpInErrs) and get no answer",
    (4, 17): "nmap's UDP probe draws ICMP port unreachable (= open); hdp's bytes read as UDP "
             "have a bad length (UdpInErrors) and get no answer",
    (6, 17): "nmap's UDP probe draws ICMPv6 port unreachable (= open); hdp's bytes read as UDP "
             "have a bad length (Udp6InErrors) and get no answer",
    (6, 44): "nmap's fragment header draws a parameter problem it reads as open; hdp's bytes "
             "read as a fragment header are a non-first fragment left to reassembly "
             "(Ip6ReasmReqds), never answered",
    (6, 58): "nmap sends an ICMPv6 echo request (reply = open); hdp's bytes read as ICMPv6 "
             "are an error message (type 1), which is never answered",
}
LISTENER_NOTE = ("hdp's own raw listener for the protocol takes the packet, so the kernel "
                 "sends no ICMP; nmap's probe has no listener")
LISTENER_EXPLAIN = {
    (6, 58, "altered"): "arrived, but Linux writes the ICMPv6 checksum into bytes 2-3 of "
                        "whatever an ICMPv6 raw socket sends (RFC 3542), over the HDP "
                        "destination port (a known quirk in conformance/profiles/linux.yaml)",
}
FAST_TIMEOUT = 0.1  # nmap's default --min-rtt-timeout, which its loopback timeouts shrink to


@dataclass
class Measure:
    key: str
    label: str
    family: int
    tool: str  # hdp-cli | hdp-lib | nmap
    mode: str = ""  # listener | icmp | icmp-fast (hdp only)
    seconds: list[float] = field(default_factory=list)
    verdicts: list[dict[int, str]] = field(default_factory=list)
    reasons: list[dict[int, str]] = field(default_factory=list)  # nmap's reasons
    notes: list[dict[int, str]] = field(default_factory=list)  # hdp's notes
    extra: list[dict[str, Any]] = field(default_factory=list)
    disturbed: list[bool] = field(default_factory=list)  # another process held raw sockets

    @property
    def reference(self) -> int:
        """The run whose verdicts we compare: the last undisturbed one, else the last."""
        clean = [i for i, d in enumerate(self.disturbed) if not d]
        return clean[-1] if clean else len(self.verdicts) - 1


def _measures(families: list[int], with_nmap: bool) -> list[Measure]:
    found = []
    for family in families:
        for tool in ("hdp-cli", "hdp-lib"):
            for mode in ("listener", "icmp"):
                how = "CLI" if tool == "hdp-cli" else "library"
                what = "listener-confirmed" if mode == "listener" else "ICMP-only"
                found.append(Measure(f"{tool}-{mode}-v{family}", f"hdp {how}, {what}",
                                     family, tool, mode))
        found.append(Measure(f"hdp-lib-icmp-fast-v{family}",
                             f"hdp library, ICMP-only, timeout {FAST_TIMEOUT:g} s",
                             family, "hdp-lib", "icmp-fast"))
        if with_nmap:
            found.append(Measure(f"nmap-v{family}", f"nmap -sO --min-rate {NMAP_RATE}",
                                 family, "nmap"))
    return found


# -- one run of each tool ----------------------------------------------------------------

def run_hdp_cli(measure: Measure, out: Path, watch: _bench.RawWatch) -> None:
    target = TARGETS[measure.family]
    command = [sys.executable, "-m", "hdp", "sweep", target, "--protocols", "0-255",
               "--family", str(measure.family), "--format", "json", "--out", str(out)]
    if measure.mode == "icmp":
        command += ["--listener", "none"]
    env = {**os.environ, "PYTHONPATH": str(_bench.REPO)}
    seconds, code, _, err = _bench.run_tool(command, watch, RUN_TIMEOUT, cwd=_bench.REPO,
                                            env=env)
    measure.seconds.append(seconds)
    if code != 0:
        sys.exit(f"{' '.join(command)} failed ({code}): {err.strip()}")
    report = json.loads(out.read_text(encoding="utf-8"))
    measure.verdicts.append({c["protocol"]: c["outcome"] for c in report["cases"]})
    measure.notes.append({c["protocol"]: c["note"] for c in report["cases"] if c.get("note")})
    meta = report.get("meta", {})
    measure.extra.append({"engine_seconds": meta.get("seconds"),
                          "unaccounted": meta.get("unaccounted"),
                          "kernel_drops": meta.get("kernel_drops")})


def run_hdp_lib(measure: Measure, agent: AgentClient) -> None:
    target = TARGETS[measure.family]
    plan = SweepPlan(targets=(target,), protocols=tuple(PROTOCOLS), families=(measure.family,))
    cases = plan_cases(plan)
    engine = Engine(agent, {target: agent if measure.mode == "listener" else None})
    timeout = FAST_TIMEOUT if measure.mode == "icmp-fast" else plan.timeout
    started = time.perf_counter()
    result = engine.run(cases, timeout=timeout, icmp=plan.icmp)
    measure.seconds.append(time.perf_counter() - started)
    measure.verdicts.append({o.case.protocol: judge(o).outcome.value
                             for o in result.observations})
    measure.notes.append({o.case.protocol: o.note for o in result.observations if o.note})
    measure.extra.append({"engine_seconds": result.seconds, "unaccounted": result.unaccounted,
                          "kernel_drops": result.drops})


def run_nmap(measure: Measure, watch: _bench.RawWatch) -> None:
    target = TARGETS[measure.family]
    command = ["nmap", *(["-6"] if measure.family == 6 else []), "-n", "-sO", "-p0-255",
               "--min-rate", str(NMAP_RATE), "-oX", "-", target]
    seconds, code, out, err = _bench.run_tool(command, watch, RUN_TIMEOUT)
    measure.seconds.append(seconds)
    if code != 0:
        sys.exit(f"{' '.join(command)} failed ({code}): {err.strip()}")
    states, reasons = parse_nmap_xml(out)
    measure.verdicts.append(states)
    measure.reasons.append(reasons)


def parse_nmap_xml(text: str) -> tuple[dict[int, str], dict[int, str]]:
    """Protocol -> state and protocol -> reason, from `nmap -sO -oX -` (listed + extraports)."""
    root = ET.fromstring(text)
    states: dict[int, str] = {}
    reasons: dict[int, str] = {}
    ports = root.find("host/ports")
    if ports is None:
        return states, reasons
    for port in ports.findall("port"):
        number = int(port.get("portid", "-1"))
        state = port.find("state")
        if state is not None:
            states[number] = state.get("state", "?")
            reasons[number] = state.get("reason", "?")
    extras = ports.findall("extraports")
    for extra in extras:
        for why in extra.findall("extrareasons"):
            for number in _ranges(why.get("ports", "")):
                states[number] = extra.get("state", "?")
                reasons[number] = why.get("reason", "?")
    if len(extras) == 1:  # older nmap names no ports: the rest of the scanned range
        for number in PROTOCOLS:
            if number not in states:
                states[number] = extras[0].get("state", "?")
                reasons[number] = "(extraports)"
    return states, reasons


def _ranges(text: str) -> list[int]:
    numbers: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        numbers += range(int(low), int(high or low) + 1)
    return numbers


# -- comparison -------------------------------------------------------------------------

def unstable(measure: Measure, clean_only: bool = False) -> list[int]:
    """Protocols whose verdict differed between repetitions (undisturbed ones only)."""
    runs = [v for v, d in zip(measure.verdicts, measure.disturbed, strict=True)
            if not (clean_only and d)]
    return sorted(p for p in PROTOCOLS if len({v.get(p) for v in runs}) > 1)


def compare(hdp: Measure, nmap: Measure) -> dict[str, Any]:
    ours, theirs = hdp.verdicts[hdp.reference], nmap.verdicts[nmap.reference]
    reasons, notes = nmap.reasons[nmap.reference], hdp.notes[hdp.reference]
    crosstab = Counter((ours.get(p, "-"), theirs.get(p, "-")) for p in PROTOCOLS)
    agree, differ = [], []
    for p in PROTOCOLS:
        outcome, state = ours.get(p, "-"), theirs.get(p, "-")
        if SAME_AS_NMAP.get(outcome) == state:
            agree.append(p)
            continue
        if hdp.mode == "icmp":
            why = EXPLAIN.get((hdp.family, p), "not investigated")
        elif (hdp.family, p, outcome) in LISTENER_EXPLAIN:
            why = LISTENER_EXPLAIN[(hdp.family, p, outcome)]
        elif outcome == "delivered":
            why = LISTENER_NOTE
        elif outcome == "socket-error" and p == 0:
            why = "Linux refuses a raw socket for protocol 0 (EPROTONOSUPPORT)"
        else:
            why = EXPLAIN.get((hdp.family, p), "not investigated")
        differ.append({"protocol": p, "hdp": outcome, "nmap": state,
                       "nmap_reason": reasons.get(p), "why": why,
                       "hdp_note": notes.get(p)})
    return {"agree": len(agree), "total": len(PROTOCOLS), "disagree": differ,
            "hdp_notes": {str(p): n for p, n in sorted(notes.items())},
            "compared_runs": {"hdp": hdp.reference + 1, "nmap": nmap.reference + 1,
                              "hdp_disturbed": hdp.disturbed[hdp.reference],
                              "nmap_disturbed": nmap.disturbed[nmap.reference]},
            "crosstab": [{"hdp": a, "nmap": b, "count": n}
                         for (a, b), n in sorted(crosstab.items())]}


# -- main -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--family", type=int, choices=(4, 6), action="append",
                        help="4 and/or 6 (default both)")
    _bench.run_options(parser)
    args = parser.parse_args(argv)
    code = _bench.enter(__file__, args, argv)
    if code is not None:
        return code
    families = args.family or [4, 6]
    have_nmap = shutil.which("nmap") is not None
    if not have_nmap:
        print("nmap not found: `apt-get install -y nmap`; timing hdp alone", file=sys.stderr)
    measures = _measures(families, have_nmap)
    tools = {"nmap": _bench.tool_version(["nmap", "--version"])}
    print(f"sweep_vs_nmap: {len(PROTOCOLS)} protocols x IPv{'/IPv'.join(map(str, families))}"
          f", {args.repeat} runs each, interleaved; {_bench.machine()['cpus']} CPUs; "
          f"{tools['nmap'] or 'no nmap'}; {_bench.revision_text()}; {_bench.where()}",
          flush=True)

    load_before = _bench.load_average()
    agent = AgentClient.start(AgentSpec("inprocess"))
    watch = _bench.RawWatch()
    try:
        with watch, tempfile.TemporaryDirectory(prefix="hdp-bench-") as scratch:
            out = Path(scratch) / "sweep.json"

            def run(measure: Measure) -> None:
                if measure.tool == "hdp-cli":
                    run_hdp_cli(measure, out, watch)
                elif measure.tool == "hdp-lib":
                    run_hdp_lib(measure, agent)
                else:
                    run_nmap(measure, watch)

            _bench.interleave(measures, args.repeat, watch, run)
    finally:
        agent.close()
    load_after = _bench.load_average()
    foreign = watch.describe()

    by_key = {m.key: m for m in measures}
    timings = {m.key: {"label": m.label, "family": m.family, **_bench.summary(m.seconds),
                       "runs": m.extra, "disturbed_runs": sum(m.disturbed)}
               for m in measures}
    ratios: dict[str, float | None] = {}
    rows = []
    for m in measures:
        nmap = by_key.get(f"nmap-v{m.family}")
        t = timings[m.key]
        r = _bench.ratio(t["median"], timings[nmap.key]["median"]) if nmap else None
        if m.tool != "nmap":
            ratios[f"{m.key} / nmap-v{m.family}"] = r
        rows.append([m.label, f"IPv{m.family}", t["median"], t["min"], t["max"],
                     "-" if m.tool == "nmap" else _bench.fmt(r, 2), sum(m.disturbed)])
    print("\nWall clock per sweep of 256 protocols (seconds)")
    print(_bench.table(["tool", "family", "median", "min", "max", "median / nmap",
                        "disturbed"], rows))
    print("(disturbed: runs during which another process held raw sockets, see the end)")

    verdicts: dict[str, Any] = {}
    if have_nmap:
        for family in families:
            nmap = by_key[f"nmap-v{family}"]
            for mode in ("icmp", "listener"):
                hdp = by_key[f"hdp-cli-{mode}-v{family}"]
                lib = by_key[f"hdp-lib-{mode}-v{family}"]
                found = compare(hdp, nmap)
                found["cli_vs_library_differ"] = sorted(
                    p for p in PROTOCOLS
                    if hdp.verdicts[hdp.reference].get(p) != lib.verdicts[lib.reference].get(p))
                if mode == "icmp":
                    fast = by_key[f"hdp-lib-icmp-fast-v{family}"]
                    found["fast_timeout_differ"] = sorted(
                        p for p in PROTOCOLS
                        if any(v.get(p) != hdp.verdicts[hdp.reference].get(p)
                               for v, d in zip(fast.verdicts, fast.disturbed, strict=True)
                               if not d))
                found["unstable_protocols"] = {"hdp_cli": unstable(hdp),
                                               "hdp_lib": unstable(lib),
                                               "nmap": unstable(nmap)}
                found["unstable_protocols_undisturbed_runs"] = {
                    "hdp_cli": unstable(hdp, True), "hdp_lib": unstable(lib, True),
                    "nmap": unstable(nmap, True)}
                verdicts[f"v{family}-{mode}"] = found
                _print_comparison(family, mode, found)

    print(f"\nload average before/after: {load_before} / {load_after}")
    if foreign:
        print("WARNING: other processes held raw sockets during the run; ICMP-only verdicts "
              "for these protocols (hdp's and nmap's) and the timings may be disturbed:")
        for line in foreign:
            print(f"  {line}")
    else:
        print("interference check: no other process held a raw socket during the runs "
              f"(sampled every {watch.interval * 1000:g} ms)")

    _bench.write_json(args.json, _bench.header(
        "sweep_vs_nmap", load_before, load_after, tools=tools, foreign_raw_sockets=foreign,
        repeat=args.repeat, nmap_min_rate=NMAP_RATE, seconds=timings,
        ratios_of_medians=ratios, verdicts=verdicts))
    return 0


def _print_comparison(family: int, mode: str, found: dict[str, Any]) -> None:
    title = ("ICMP-only (--listener none), like-for-like" if mode == "icmp"
             else "listener-confirmed (default on loopback)")
    runs = found["compared_runs"]
    print(f"\nVerdicts, IPv{family}, hdp {title} vs nmap: "
          f"{found['agree']}/{found['total']} protocols agree "
          f"(hdp CLI run {runs['hdp']}, nmap run {runs['nmap']})")
    print(_bench.table(["hdp outcome", "nmap state", "protocols"],
                       [[c["hdp"], c["nmap"], c["count"]] for c in found["crosstab"]]))
    if runs["hdp_disturbed"] or runs["nmap_disturbed"]:
        print("  WARNING: every run was disturbed by another process's raw sockets")
    for label, key in (("changed between runs", "unstable_protocols"),
                       ("changed between undisturbed runs",
                        "unstable_protocols_undisturbed_runs")):
        shaky = {k: v for k, v in found[key].items() if v}
        if shaky:
            print(f"  {label}: " + "; ".join(f"{k} {_bench.fold(v)}"
                                             for k, v in shaky.items()))
    if found["cli_vs_library_differ"]:
        print(f"  CLI and library differ on: {_bench.fold(found['cli_vs_library_differ'])}")
    if "fast_timeout_differ" in found:
        changed = found["fast_timeout_differ"]
        print(f"  with timeout {FAST_TIMEOUT:g} s instead of 1 s, verdicts changed on: "
              f"{_bench.fold(changed) if changed else 'none'}")
    for protocol, note in found["hdp_notes"].items():
        print(f"  hdp's note on {protocol}: {note}")
    differ = found["disagree"]
    if not differ:
        return
    if mode == "listener" and len(differ) > 12:
        groups = Counter((d["hdp"], d["nmap"], d["why"]) for d in differ)
        for (ours, theirs, why), _n in groups.items():
            numbers = [d["protocol"] for d in differ if (d["hdp"], d["nmap"]) == (ours, theirs)]
            print(f"  hdp {ours} / nmap {theirs}: {_bench.fold(numbers)} - {why}")
        return
    print(_bench.table(["proto", "hdp", "nmap (reason)", "why"],
                       [[str(d["protocol"]), d["hdp"], f"{d['nmap']} ({d['nmap_reason']})",
                         d["why"]] for d in differ]))


if __name__ == "__main__":
    _bench.main_exits(main)
