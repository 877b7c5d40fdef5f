"""Results probed once under pytest-xdist, and read by every worker from one file.

Every worker collects the same tests (xdist insists), so each wants the same cases. Each
worker starts fetching them when its collection ends, in a thread (HdpWorld.prefetch); the
first to take the exclusive flock of `results.lock` in the directory the controller made
for the run (handed over in workerinput) probes every case the collection wants, writes
them to `results.json` (renamed into place whole) and lets go. Each other worker blocks
on the same lock, no polling and no sleep, then reads the file instead of probing: each
probe leaves once, however many workers there are.
A case the file lacks (one a test builds by hand) its worker probes itself; so does a
worker after one that failed before writing. Workers that are vantage points of their
own (`hdp lab python HOST`, HDP_VANTAGE, `--dist each`) are never handed a directory,
or do not use it: what they see depends on where they are.

The controller itself cannot probe ahead: under xdist it collects nothing, so it does
not know which cases the tests want.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from hdp.case import Case, Delivery, IcmpReport, Observation
from hdp.errors import HdpError
from hdp.gcpause import collection_paused
from pytest_hdp.prober import Evidence, Request

LOCK, RESULTS = "results.lock", "results.json"
FORMAT = "hdp-xdist-results/1"
Found = tuple[Observation, Evidence | None]


class SharedResults:
    """One worker's side of the file: `fetch` the cases it needs, probing at most once."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def fetch(self, pending: Sequence[Request], probe: Callable[[list[Request]], None],
              found: Callable[[Request, Observation, Evidence | None], None],
              written: Callable[[], Iterable[tuple[Request, Observation,
                                                   Evidence | None]]]) -> None:
        """Get every request of `pending`: `found` for each one the file holds; `probe`
        for the rest (all of them when no worker wrote the file yet, which this worker
        then writes from `written`: every result it has)."""
        with self._locked() as locked:
            held = self._read() if locked else None
            if held is None:
                probe(list(pending))
                if locked:
                    self._write(written())
                return
            missing = []
            for request in pending:
                result = held.get(request)
                if result is None:
                    missing.append(request)
                else:
                    found(request, *result)
            if missing:
                probe(missing)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        """The exclusive lock, held for the block; False where it cannot be had (the
        directory is not on this worker's host): then the worker probes alone."""
        try:
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel lets go if the holder dies
            yield True
        finally:
            os.close(fd)

    def _read(self) -> dict[Request, Found] | None:
        """The results the file holds; None when there is none, or none this worker can
        read (another version's, or damaged): then it probes for itself."""
        try:
            text = (self.directory / RESULTS).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        with collection_paused():
            try:
                data = json.loads(text)
                if data.get("format") != FORMAT:
                    return None
                return {request_of(item["request"]): (observation_of(item["observation"]),
                                                      evidence_of(item["evidence"]))
                        for item in data["results"]}
            except (ValueError, TypeError, KeyError, AttributeError, HdpError):
                return None

    def _write(self, results: Iterable[tuple[Request, Observation, Evidence | None]]
               ) -> None:
        with collection_paused():
            text = json.dumps({"format": FORMAT, "results": [
                {"request": request_json(request), "observation": asdict(observation),
                 "evidence": evidence_json(evidence)}
                for request, observation, evidence in results
                # A stream of many probes leaves when its own test runs: never shared.
                if observation.stats is None]}, separators=(",", ":"))
        part = self.directory / f"{RESULTS}.{os.getpid()}"
        part.write_text(text, encoding="utf-8")
        part.replace(self.directory / RESULTS)  # whole, or not there at all


# -- plain JSON and back -----------------------------------------------------------------

def request_json(request: Request) -> dict[str, Any]:
    return {"case": request.case.to_json(), "listener": request.listener,
            "timeout": request.timeout}


def request_of(data: dict[str, Any]) -> Request:
    return Request(Case.from_json(data["case"]), data["listener"], data["timeout"])


def observation_of(data: dict[str, Any]) -> Observation:
    """The Observation that dataclasses.asdict made `data` of, equal to it."""
    values = {f.name: data[f.name] for f in fields(Observation)}
    values["case"] = Case.from_json(values["case"])
    values["deliveries"] = tuple(
        Delivery(**{**item, "fragment_offsets": tuple(item["fragment_offsets"])})
        for item in values["deliveries"])
    values["icmp"] = tuple(IcmpReport(**item) for item in values["icmp"])
    return Observation(**values)


def evidence_json(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {"note": evidence.note, "packets": {
        end: [[time_ns, packet.hex()] for time_ns, packet in packets]
        for end, packets in evidence.packets.items()}}


def evidence_of(data: dict[str, Any] | None) -> Evidence | None:
    if data is None:
        return None
    return Evidence({end: tuple((time_ns, bytes.fromhex(packet)) for time_ns, packet in items)
                     for end, items in data["packets"].items()}, data["note"])
