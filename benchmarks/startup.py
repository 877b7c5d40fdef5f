"""Start-up: `hdp --help` and importing the plugin, beside `python -c pass`.

Times, interleaved round-robin in one run, each a fresh interpreter (this script's own,
`sys.executable`):

- `python -c pass` (the interpreter's own start-up: the floor);
- `python -c "import pytest"` (the floor of anything that is a pytest plugin);
- `python -m hdp --help`;
- `python -c "import pytest_hdp.plugin"`;
- `python -c "import hdp.sweep"` (what `hdp sweep` loads before it probes).

Then it lists the slowest imports of `hdp --help` and of the plugin, from
`python -X importtime`. Goal: `hdp --help` and the plugin within 2x of `python -c pass`.
Sends nothing; needs no privilege.

    python benchmarks/startup.py [--repeat 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import _bench

PYTHON = sys.executable
COMMANDS = {
    "python -c pass": [PYTHON, "-c", "pass"],
    "python -c 'import pytest'": [PYTHON, "-c", "import pytest"],
    "hdp --help": [PYTHON, "-m", "hdp", "--help"],
    "import pytest_hdp.plugin": [PYTHON, "-c", "import pytest_hdp.plugin"],
    "import hdp.sweep": [PYTHON, "-c", "import hdp.sweep"],
}
FLOOR = "python -c pass"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=_bench.REPO, env=env, capture_output=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): "
                 f"{done.stderr.decode(errors='replace')[-800:]}")
    return took


def slowest_imports(command: list[str], env: dict[str, str], top: int) -> list[dict[str, Any]]:
    """The modules with the largest own import time (us), from -X importtime."""
    done = subprocess.run([command[0], "-X", "importtime", *command[1:]], cwd=_bench.REPO,
                          env=env, capture_output=True, text=True, check=False)
    found: list[dict[str, Any]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[12:].split("|"))
        found.append({"module": name.strip(), "self_us": int(own),
                      "cumulative_us": int(cumulative)})
    total = max((f["cumulative_us"] for f in found), default=0)
    found.sort(key=lambda f: -f["self_us"])
    return [{"total_us": total}, *found[:top]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=20, help="runs of each (default 20)")
    parser.add_argument("--top", type=int, default=12, help="slowest imports to list")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(_bench.REPO)}
    _bench.compile_bytecode()
    print(f"startup: {args.repeat} runs each, interleaved; {PYTHON}; {_bench.revision_text()}",
          flush=True)
    load_before = _bench.load_average()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            times[name].append(timed(command, env))
    load_after = _bench.load_average()
    stats = {name: _bench.summary(values) for name, values in times.items()}
    floor = stats[FLOOR]["median"]
    # Pair ratios: each run against the floor run of the same round.
    pairs = {name: _bench.summary([t / f for t, f in zip(values, times[FLOOR], strict=True)])
             for name, values in times.items()}
    print(_bench.table(["command", "median s", "min s", "max s", "median / pass",
                        "pair ratio median (min-max)"],
                       [[name, s["median"], s["min"], s["max"],
                         _bench.fmt(s["median"] / floor, 2),
                         f"{pairs[name]['median']:.2f} ({pairs[name]['min']:.2f}-"
                         f"{pairs[name]['max']:.2f})"]
                        for name, s in stats.items()]))
    imports = {}
    for name in ("hdp --help", "import pytest_hdp.plugin"):
        imports[name] = slowest_imports(COMMANDS[name], env, args.top)
        print(f"\nslowest imports of {name} (own time; all imports "
              f"{imports[name][0]['total_us'] / 1000:.1f} ms, one run):")
        print(_bench.table(["module", "self ms", "cumulative ms"],
                           [[f["module"], f["self_us"] / 1000, f["cumulative_us"] / 1000]
                            for f in imports[name][1:]]))
    print(f"\nload average before/after: {load_before} / {load_after}")
    _bench.write_json(args.json, _bench.header(
        "startup", load_before, load_after, repeat=args.repeat, seconds=stats,
        pair_ratios_to_pass=pairs,
        ratios_of_medians={name: s["median"] / floor for name, s in stats.items()},
        slowest_imports=imports))
    return 0


if __name__ == "__main__":
    _bench.main_exits(main)
