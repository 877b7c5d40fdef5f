"""Shared helpers for the benchmark scripts: statistics, tables, JSON, the machine.

Not a test module and not part of `hdp`: the scripts import it from their own directory.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from anywhere: `python benchmarks/x.py`
    sys.path.insert(0, str(REPO))


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (with the samples themselves)."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples), "samples": [round(s, 6) for s in samples]}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    numeric = [all(not isinstance(row[i], str) or row[i] == "-" for row in rows) if rows
               else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def tool_version(command: Sequence[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else None


def machine() -> dict[str, Any]:
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "system": platform.system(),
            "release": platform.release(), "machine": platform.machine(),
            "python": platform.python_version(), "executable": sys.executable,
            **_revision()}


def _revision() -> dict[str, Any]:
    """The commit measured, and whether hdp/ differs from it (read-only git)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no", "--", "hdp"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if head.returncode != 0:
        return {}
    return {"commit": head.stdout.strip(), "hdp_modified": bool(dirty.stdout.strip())}


def require_raw() -> None:
    """Exit with the fix unless this process may open raw sockets."""
    from hdp import rawsock
    from hdp.errors import PrivilegeError

    try:
        rawsock.check_privilege(4)
    except PrivilegeError as exc:
        sys.exit(f"raw sockets refused ({exc}): run as root, e.g. "
                 f"sudo {sys.executable} {' '.join(sys.argv)}")


def _socket_owners() -> dict[int, tuple[int, str]]:
    """Socket inode -> (pid, command) for every process we may look at."""
    owners: dict[int, tuple[int, str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            for inode in _fd_sockets(int(proc.name)):
                owners[inode] = (int(proc.name), command[:80])
        except OSError:
            continue
    return owners


def _fd_sockets(pid: int) -> set[int]:
    found = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    except OSError:
        pass
    return found


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return seen


def _raw_sockets() -> dict[int, tuple[int, int]]:
    """Inode -> (family, protocol) of every raw socket in this network namespace."""
    found = {}
    for family, name in ((4, "raw"), (6, "raw6")):
        try:
            lines = Path("/proc/net", name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 10:
                found[int(fields[9])] = (family, int(fields[1].rsplit(":", 1)[1], 16))
    return found


class RawWatch:
    """Notes raw sockets held by processes other than us and our children, as they come.

    Any raw socket of protocol P, whoever holds it, makes the kernel treat P as handled:
    no ICMP comes back for P, so ICMP-only verdicts (hdp's and nmap's) change; and another
    sweep's listeners get copies of our packets and compete for the CPU. A thread samples
    /proc/net/raw and raw6 every `interval` seconds; runs overlapping a sample that saw a
    foreign socket count as disturbed.
    """

    def __init__(self, interval: float = 0.025) -> None:
        self.interval = interval
        self.child: int | None = None  # the pid of the tool being run, a hint
        self.seen: dict[tuple[int, int], set[str]] = {}
        self._ours: set[int] = set()
        self._foreign: set[int] = set()
        self._tries: dict[int, int] = {}
        self._hits: list[float] = []  # sample times at which a foreign socket existed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="raw-watch", daemon=True)

    def __enter__(self) -> RawWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, ValueError):
                self.sample()

    def sample(self) -> None:
        if os.environ.get(NETNS_ENV):
            # In a namespace of our own every raw socket is ours (an xdist worker that
            # outlives its controller for a moment would otherwise look foreign).
            return
        now = time.monotonic()
        current = _raw_sockets()
        unknown = current.keys() - self._ours - self._foreign
        if unknown:
            mine = _fd_sockets(os.getpid())
            if self.child:
                mine |= _fd_sockets(self.child)
            self._ours |= unknown & mine
            unknown -= mine
        if unknown:
            owners = _socket_owners()
            me = os.getpid()
            for inode in unknown:
                if inode not in owners:  # gone, or raced: try again, then give up
                    self._tries[inode] = self._tries.get(inode, 0) + 1
                    if self._tries[inode] >= 3:
                        self._ours.add(inode)
                    continue
                pid, command = owners[inode]
                if me in _ancestors(pid):
                    self._ours.add(inode)
                    continue
                self._foreign.add(inode)
                family, protocol = current[inode]
                with self._lock:
                    self.seen.setdefault((family, protocol), set()).add(
                        f"pid {pid} ({command})")
        if current.keys() & self._foreign:
            with self._lock:
                self._hits.append(now)

    def disturbed(self, start: float, end: float) -> bool:
        """Whether a foreign raw socket was seen while [start, end] (monotonic) ran."""
        with self._lock:
            return any(start - self.interval <= t <= end + self.interval for t in self._hits)

    def describe(self) -> list[str]:
        with self._lock:
            return describe_foreign(self.seen)


def fold(numbers: Sequence[int]) -> str:
    """1,2,3,5 -> "1-3,5"."""
    numbers = sorted(numbers)
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts) or "-"


def describe_foreign(seen: dict[tuple[int, int], set[str]]) -> list[str]:
    """One line per family and owner: "IPv4 protocols 1-255: pid 42 (python -m pytest)"."""
    groups: dict[tuple[int, str], list[int]] = {}
    for (family, protocol), owners in seen.items():
        for owner in owners:
            groups.setdefault((family, owner), []).append(protocol)
    return [f"IPv{family} protocol{'s' if len(protocols) > 1 else ''} {fold(protocols)}: "
            f"{owner}"
            for (family, owner), protocols in sorted(groups.items())]


def run_tool(command: Sequence[str], watch: RawWatch | None, timeout: float,
             **popen: Any) -> tuple[float, int, str, str]:
    """Run a command to completion (killed after `timeout` s): seconds, code, out, err."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **popen)
    if watch is not None:
        watch.child = process.pid
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    except BaseException:  # Ctrl-C: leave nothing running
        process.kill()
        process.wait()
        raise
    finally:
        if watch is not None:
            watch.child = None
    return time.perf_counter() - started, process.returncode, out, err


def revision_text() -> str:
    found = _revision()
    if not found:
        return "hdp (no git)"
    return f"hdp {found['commit']}" + (" + local changes" if found["hdp_modified"] else "")


def load_average() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n",
                              encoding="utf-8")
        print(f"\nfigures written to {path}")


# -- a network namespace of our own, counters, fits ------------------------------------

NETNS_ENV = "HDP_BENCH_NETNS"  # set inside the namespace a script re-ran itself in


def run_in_own_netns(script: str, argv: Sequence[str]) -> int | None:
    """Re-run this script inside a fresh network namespace; None when already inside.

    The namespace holds only its own loopback, so no other process's raw sockets (which
    get copies of every packet and silence ICMP) and no other traffic reach the run, and
    its kernel counters count our packets alone. It is removed afterwards, also on
    Ctrl-C or failure. CPU and memory stay shared: the load average is still reported.
    """
    if os.environ.get(NETNS_ENV):
        return None
    if shutil.which("ip") is None:
        sys.exit("`ip` (iproute2) not found: apt-get install -y iproute2, or pass --no-netns")
    name = f"hdpbench-{os.getpid()}-{os.urandom(3).hex()}"

    def stop(signum: int, frame: object) -> None:  # `kill PID` too removes the namespace
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        print(f"(running in network namespace {name}, loopback only)", flush=True)
        done = subprocess.run(["ip", "netns", "exec", name, sys.executable, script, *argv],
                              env={**os.environ, NETNS_ENV: name}, check=False)
        return done.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_options(parser: Any) -> None:
    """--no-netns and --json, which every script that sends packets takes."""
    parser.add_argument("--no-netns", action="store_true",
                        help="run in the host's network namespace, not one of our own")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")


def compile_bytecode() -> None:
    """Compile hdp's and pytest_hdp's bytecode now, as pip does when it installs the
    wheel: a fresh interpreter then times what a user's would, not the compiling of
    sources that changed since their bytecode was last written (where bytecode is never
    written, PYTHONDONTWRITEBYTECODE, every run would compile them again)."""
    import compileall

    for package in ("hdp", "pytest_hdp"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def enter(script: str, args: Any, argv: Sequence[str] | None) -> int | None:
    """Re-run `script` in a namespace of its own unless --no-netns (its exit code, to
    return), or None: we are where we measure, and may open raw sockets. The library's
    bytecode is compiled first (compile_bytecode)."""
    compile_bytecode()
    if not args.no_netns:
        code = run_in_own_netns(script, sys.argv[1:] if argv is None else argv)
        if code is not None:
            return code
    require_raw()
    return None


def where() -> str:
    """Which network namespace measured: ours (named), or the host's shared one."""
    name = os.environ.get(NETNS_ENV)
    return f"network namespace {name}" if name else "the host's network namespace (shared)"


def snmp() -> dict[str, int]:
    """This namespace's IP and ICMP counters (/proc/net/snmp, snmp6): {"Ip.OutTransmits": n}."""
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/snmp").read_text().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            group, _, keys = names.partition(":")
            for key, value in zip(keys.split(), values.partition(":")[2].split(),
                                  strict=False):
                counters[f"{group}.{key}"] = int(value)
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/snmp6").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                counters[parts[0]] = int(parts[1])
    return counters


def probe_packets(before: dict[str, int], after: dict[str, int]) -> int:
    """IP packets this namespace sent between two snmp() readings, less its ICMP errors.

    OutTransmits counts every packet that left, header-included sends too (OutRequests
    misses those); the ICMP errors the kernel sent in answer are taken off, leaving the
    probes (and any other packets the run itself sent, e.g. a UDP exchange). So are the
    segments of the kernel's own TCP: pytest-rerunfailures talks to xdist's workers over
    a loopback TCP connection, and a probe never goes through the TCP stack, not even
    one of protocol 6 (a raw send).
    """
    def delta(key: str) -> int:
        return after.get(key, 0) - before.get(key, 0)

    return (delta("Ip.OutTransmits") - delta("Icmp.OutMsgs")
            + delta("Ip6OutTransmits") - delta("Icmp6OutMsgs") - delta("Tcp.OutSegs"))


def linear_fit(points: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    """Least squares y = fixed + per_unit * x over (x, y) points, with the residual's RMS."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    fixed = mean_y - slope * mean_x
    rms = (sum((y - fixed - slope * x) ** 2 for x, y in points) / n) ** 0.5
    return {"fixed": fixed, "per_unit": slope, "rms": rms, "points": n}


def header(benchmark: str, load_before: list[float] | None, load_after: list[float] | None,
           **more: Any) -> dict[str, Any]:
    """What every script's JSON starts with: which, on what machine, where, under what load."""
    return {"benchmark": benchmark, "machine": machine(), "where": where(),
            "load_average": {"before": load_before, "after": load_after}, **more}


def print_surroundings(load_before: list[float] | None, load_after: list[float] | None,
                       foreign: Sequence[str]) -> None:
    """The load average around the runs, and any other process's raw sockets during them."""
    print(f"\nload average before/after: {load_before} / {load_after}")
    for line in foreign:
        print(f"WARNING: another process held raw sockets: {line}")


def interleave(measures: Sequence[Any], repeat: int, watch: RawWatch,
               run: Any) -> None:
    """`run(measure)` for each measure in turn, `repeat` rounds (A, B, C, A, B, C, ...),
    noting for each run whether another process's raw sockets disturbed it."""
    for rep in range(repeat):
        for measure in measures:
            began = time.monotonic()
            run(measure)
            measure.disturbed.append(watch.disturbed(began, time.monotonic()))
        print(f"  run {rep + 1}/{repeat} done", flush=True)


def main_exits(main: Any) -> None:
    """Run a script's `main` as the program: its code is the exit status; Ctrl-C is 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
