"""ICMP-only sweeps of a rate-limited peer: hdp sweep (60 s, --patient) beside nmap -sO.

The peer is the server of a `routed` lab of this script's own, with Linux's default ICMP
budget (per host: a burst of 6, then one error a second for IPv4). For each tool, in one
run on one machine, it records the wall clock, the verdicts, and the server's own
counters (/proc/net/snmp, snmp6) around the run, which are the ground truth:

- every probe reaches the server (one lossless hop), so a `lost` verdict is wrong;
- an `unreachable` (nmap: closed) is right when the server sent at least as many
  destination-unreachable errors as the tool counted;
- `no-answer` (nmap: open|filtered) is inconclusive, counted apart, never wrong.

    sudo python benchmarks/icmp_budget.py [--family 4] [--skip-nmap] [--json FILE]

Reference figures are in the README (Sweeps). Takes about ten minutes per family.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import _bench

SERVER = {4: "198.18.2.2", 6: "fd68:6470:0:2::2"}
HDP = [sys.executable, "-m", "hdp"]


def counters(namespace: str, family: int) -> dict[str, int]:
    """The server's IP and ICMP counters."""
    path = "/proc/net/snmp" if family == 4 else "/proc/net/snmp6"
    text = subprocess.run(["ip", "netns", "exec", namespace, "cat", path],
                          capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    if family == 4:
        lines = text.splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            kind = names.split(":")[0]
            for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
                found[f"{kind}{name}"] = int(value)
    else:
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if value.strip().isdigit():
                found[name] = int(value)
    return found


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def hdp_sweep(client: str, family: int, patient: bool, out: Path) -> dict[str, Any]:
    command = [*HDP, "sweep", SERVER[family], "--agent", f"netns:{client}",
               "--listener", "none", "--family", str(family), "--out", str(out)]
    if patient:
        command.append("--patient")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"hdp sweep failed: {done.stderr.strip()}")
    report = json.loads(out.read_text())
    outcomes = {c["protocol"]: c["outcome"] for c in report["cases"]}
    return {"seconds": seconds, "outcomes": outcomes,
            "budget": report["meta"].get("icmp_budget", {}).get(SERVER[family])}


def nmap_scan(client: str, family: int) -> dict[str, Any]:
    command = ["ip", "netns", "exec", client, "nmap", "-n", "-sO", "-p0-255", "-oX", "-"]
    if family == 6:
        command.insert(5, "-6")
    started = time.monotonic()
    done = subprocess.run([*command, SERVER[family]], capture_output=True, text=True,
                          timeout=3600)
    seconds = time.monotonic() - started
    states: dict[int, str] = {}
    root = ET.fromstring(done.stdout)
    for port in root.iter("port"):
        state = port.find("state")
        if state is not None:
            states[int(port.get("portid", "-1"))] = state.get("state", "?")
    extra = root.find(".//extraports")
    if extra is not None:  # the protocols nmap folds into one line
        for number in range(256):
            states.setdefault(number, extra.get("state", "?"))
    return {"seconds": seconds, "outcomes": states}


# hdp outcome or nmap state -> definite / inconclusive / wrong (given every probe arrives)
KIND = {"unreachable": "definite", "closed": "definite", "prohibited": "definite",
        "filtered": "definite", "open": "definite", "delivered": "definite",
        "no-answer": "inconclusive", "open|filtered": "inconclusive", "lost": "wrong"}


def judge_run(name: str, run: dict[str, Any], server: dict[str, int], family: int
              ) -> dict[str, Any]:
    kinds = Counter(KIND.get(outcome, "other") for outcome in run["outcomes"].values())
    answered = sum(1 for o in run["outcomes"].values() if o in ("unreachable", "closed"))
    sent = server.get("IcmpOutDestUnreachs" if family == 4 else "Icmp6OutDestUnreachs", 0) + \
        server.get("Icmp6OutParmProblems", 0)
    wrong = kinds["wrong"] + max(0, answered - sent)
    return {"tool": name, "seconds": round(run["seconds"], 1), "definite": kinds["definite"],
            "inconclusive": kinds["inconclusive"], "wrong": wrong,
            "outcomes": dict(Counter(run["outcomes"].values())),
            "server_counters": server, "budget": run.get("budget")}


def lab_up() -> str:
    done = subprocess.run([*HDP, "lab", "up", "routed"], capture_output=True, text=True,
                          timeout=120)
    match = re.search(r"token (\w+)", done.stdout + done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"hdp lab up routed failed: {done.stderr.strip()}")
    return match.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", type=int, action="append", choices=(4, 6))
    parser.add_argument("--skip-nmap", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    _bench.require_raw()
    families = args.family or [4]
    token = lab_up()
    client, server = f"hdp-{token}-client", f"hdp-{token}-server"
    rows, results = [], []
    try:
        for family in families:
            runs = []
            for name, run in (("hdp sweep (60 s)", lambda f: hdp_sweep(
                                  client, f, False, Path(f"/tmp/hdp-budget-{token}.json"))),
                              ("hdp sweep --patient", lambda f: hdp_sweep(
                                  client, f, True, Path(f"/tmp/hdp-budget-{token}.json"))),
                              ("nmap -sO (default timing)", lambda f: nmap_scan(client, f))):
                if name.startswith("nmap") and (args.skip_nmap or shutil.which("nmap") is None):
                    continue
                time.sleep(7)  # the server's per-host budget refills (6 s at 1/s)
                before = counters(server, family)
                outcome = run(family)
                judged = judge_run(name, outcome, delta(before, counters(server, family)),
                                   family)
                judged["family"] = family
                runs.append((outcome, judged))
                results.append(judged)
                rows.append([f"IPv{family}", name, judged["seconds"], judged["definite"],
                             judged["inconclusive"], judged["wrong"]])
                print(f"IPv{family} {name}: {judged}", file=sys.stderr)
            if len(runs) == 3:  # the patient sweep and nmap agree protocol by protocol?
                patient, nmap = runs[1][0]["outcomes"], runs[2][0]["outcomes"]
                differ = [p for p in range(256) if (patient.get(p) == "unreachable")
                          != (nmap.get(p) == "closed")]
                results.append({"family": family, "unreachable_vs_closed_differ": differ})
    finally:
        subprocess.run([*HDP, "lab", "down", token], capture_output=True, timeout=120)
    print(_bench.table(["family", "tool", "seconds", "definite", "inconclusive", "wrong"], rows))
    _bench.write_json(args.json, {"machine": _bench.machine(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
