"""What a test of a delivery case sees (`hdp_result`): the observation, the verdict, the
profile's expectation, and the two ways to assert: `check()` (the profile's rule) and
`expect(...)` (the test's own). Both decide by the one rule (hdp.checks.rule) and record
what was asserted, so the report's Expected column says what the test held the case to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hdp.case import Case, Delivery, Observation
from hdp.checks.check import Check
from hdp.checks.delivery import judge_case
from hdp.checks.rule import Decision, Judgement
from hdp.evidence import Packet
from hdp.pcap import PcapRecord, write_pcap
from hdp.profile import CHANGES, OUTCOMES, Expectation
from hdp.verdict import Verdict
from pytest_hdp.outcome import enforce
from pytest_hdp.prober import Evidence

if TYPE_CHECKING:
    from hdp.stats import CaseStats  # binomial intervals: loaded by a many-probe case


@dataclass
class HdpResult:
    """One probed case as a test sees it."""

    case: Case
    observation: Observation
    verdict: Verdict
    expectation: Expectation  # the profile's (delivered where no rule says otherwise)
    timeout: float  # seconds the probe waited for late evidence
    vantage: str | None = None  # where this process probes from, when it is a vantage point
    caveat: str | None = None  # said with every xfail: the profile is not this run's
    evidence: Evidence | None = None  # the case's packets, with --hdp-pcap
    pcap_dir: str | None = None
    test: str = ""  # the test's node id: names the pcap files
    asserted: Expectation | None = None  # what the test held the case to, once it did
    judgement: Judgement | None = None
    pcaps: list[str] = field(default_factory=list)  # pcap files written for this case

    def __repr__(self) -> str:
        held = self.asserted or self.expectation
        return f"<HdpResult {self.case.id}: {self.outcome} (expected {held.outcome})>"

    @property
    def outcome(self) -> str:
        """The verdict's outcome: delivered, altered, unreachable, lost, ..."""
        return self.verdict.outcome.value

    @property
    def expected_outcome(self) -> str:
        """The profile's expected outcome for this case."""
        return self.expectation.outcome

    @property
    def stats(self) -> CaseStats:
        """The statistics of a case of many probes (`@pytest.mark.hdp(count=N)`):
        `loss_ratio`, `loss_interval()`, `lost`, `dropped`, `duplicated`, `reordered`,
        `corrupted`, `latency.p50_us` / `p99_us` (kernel stamps where the OS has them)."""
        if self.observation.stats is None:
            raise AttributeError(f"{self.case.id}: a case of one probe has no statistics: "
                                 "give @pytest.mark.hdp(count=N) for N probes")
        return self.observation.stats

    @property
    def arrival(self) -> Delivery | None:
        """The first packet of the case that reached the listener, as it arrived."""
        return self.observation.deliveries[0] if self.observation.deliveries else None

    def check(self) -> None:
        """Hold the case to its profile: pass when delivered intact, xfail (with the rule's
        reason) on the quirk the profile expects, fail naming both otherwise; a quirk
        that has gone fails until the profile is updated."""
        __tracebackhide__ = True
        self._hold(self.expectation, asserted=False)

    def expect(self, outcome: str, *, errno: str | None = None,
               changes: Iterable[str] | None = None, wire_protocol: int | None = None) -> None:
        """Hold the case to the test's own expectation (whatever a profile says): pass
        when exactly `outcome` (and the errno, changes or wire protocol given) was
        observed, fail naming both otherwise."""
        __tracebackhide__ = True
        if outcome not in OUTCOMES:
            raise ValueError(f"expect({outcome!r}): give one of {', '.join(OUTCOMES)}")
        wanted = None if changes is None else tuple(changes)
        unknown = [c for c in wanted or () if c not in CHANGES]
        if unknown:
            raise ValueError(f"expect(changes={unknown!r}): give some of {', '.join(CHANGES)}")
        self._hold(Expectation(outcome, errno=errno, changes=wanted,
                               wire_protocol=wire_protocol), asserted=True)

    def _hold(self, expectation: Expectation, *, asserted: bool) -> None:
        __tracebackhide__ = True
        self.asserted = expectation
        self.judgement = judge_case(self.case, self.observation, self.verdict, expectation,
                                    asserted=asserted, caveat=self.caveat)
        if self.judgement.decision in (Decision.FAIL, Decision.VANISHED):
            self.write_pcaps()
            # The failure names the case's pcap, where one was kept.
            enforce(Judgement(self.judgement.decision, self.judgement.expected,
                              self.judgement.observed, self.evidence_line()))
        enforce(self.judgement)

    def evidence_line(self) -> str:
        """Expected against observed, in one line, for a failure report."""
        held = self.asserted or self.expectation
        line = self.judgement.line if self.judgement is not None else (
            f"{self.case.id}: observed {self.outcome}, the profile expects {held.outcome}")
        if self.pcaps:
            line += f"; pcap: {', '.join(self.pcaps)}"
        elif self.evidence is not None and self.evidence.note:
            line += f"; no pcap: {self.evidence.note}"
        return line

    def write_pcaps(self) -> list[str]:
        """Write the case's packets (one pcap for each end that captured), once; their
        paths. Nothing without --hdp-pcap."""
        if self.pcaps or self.evidence is None or self.pcap_dir is None:
            return self.pcaps
        folder = Path(self.pcap_dir)
        stem = _file_name(self.test or self.case.id)
        ends = [(end, packets) for end, packets in self.evidence.packets.items()]
        for end, packets in ends:
            suffix = "" if len(ends) == 1 else f".{_file_name(end)}"
            path = folder / f"{stem}{suffix}.pcap"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                write_pcap(path, _records(packets))
            except OSError as exc:
                self.pcaps.append(f"(cannot write {path}: {exc.strerror})")
                continue
            self.pcaps.append(os.fspath(path))
        return self.pcaps


class HdpCheck(Check):
    """A chapter statement on one path, as a test of `hdp_path` checks it (`hdp_check`)."""

    def observe(self, answer: str, detail: str = "") -> None:
        """Pass on the chapter's answer; xfail on the one the platform's profile expects
        instead (with its reason); fail naming both otherwise."""
        __tracebackhide__ = True
        enforce(self.judge(answer, detail))


def _records(packets: tuple[Packet, ...]) -> list[PcapRecord]:
    return [PcapRecord(time_ns, data, len(data)) for time_ns, data in packets]


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)[-180:]
