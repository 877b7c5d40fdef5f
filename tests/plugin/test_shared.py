"""The xdist workers' shared results file: what one worker writes, another reads equal."""

from __future__ import annotations

from pathlib import Path

from hdp.case import Case, Delivery, IcmpReport, Observation
from pytest_hdp.prober import Evidence, Request
from pytest_hdp.shared import SharedResults

CASE = Case("127.0.0.1", 4, 253, df=True, ttl=3)
OTHER = Case("::1", 6, 17, payload="udp")
OBSERVED = {
    Request(CASE, None, 1.0): (
        Observation(CASE, sent_bytes=84, sent_src="127.0.0.1", sent_dst="127.0.0.1",
                    deliveries=(Delivery("127.0.0.1", "127.0.0.1", 253, 63, 0, 0, 64, False,
                                         fragment_offsets=(0, 1480), changed_bytes="2-3"),),
                    icmp=(IcmpReport(4, 3, 4, "10.0.0.1", mtu=1280, quoted_protocol=253),)),
        Evidence({"sender": ((1, b"\x45\x00"), (2, b"\xff"))}, None)),
    Request(OTHER, "peer", 0.5): (Observation(OTHER, listened=False, note="interrupted"),
                                  None),
}


def test_what_the_first_worker_probes_the_next_reads_without_probing(tmp_path: Path):
    probed: list[list[Request]] = []
    first: dict[Request, tuple[Observation, Evidence | None]] = {}

    def probe(requests: list[Request]) -> None:
        probed.append(requests)
        first.update({r: OBSERVED[r] for r in requests})

    SharedResults(str(tmp_path)).fetch(
        list(OBSERVED), probe, lambda *_: None,
        lambda: [(r, *first[r]) for r in first])
    assert probed == [list(OBSERVED)]

    found: dict[Request, tuple[Observation, Evidence | None]] = {}
    later = Request(Case("127.0.0.1", 4, 250), None, 1.0)  # one a test built by hand
    SharedResults(str(tmp_path)).fetch(
        [*OBSERVED, later], probed.append,
        lambda request, observation, evidence: found.update({request: (observation,
                                                                       evidence)}),
        lambda: [])
    assert found == OBSERVED
    assert probed[1:] == [[later]]


def test_a_worker_that_cannot_reach_the_directory_probes_alone(tmp_path: Path):
    probed: list[list[Request]] = []
    SharedResults(str(tmp_path / "elsewhere")).fetch(
        list(OBSERVED), probed.append, lambda *_: None, lambda: [])
    assert probed == [list(OBSERVED)]


def test_a_damaged_or_foreign_file_is_probed_past(tmp_path: Path):
    for text in ('{"format": "hdp-xdist-results/1", "results": [{"request": 3}]}',
                 '{"format": "hdp-xdist-results/0", "results": []}', "[1,", "\udcff"):
        (tmp_path / "results.json").write_text(text, encoding="utf-8", errors="surrogateescape")
        probed: list[list[Request]] = []
        SharedResults(str(tmp_path)).fetch(list(OBSERVED), probed.append,
                                           lambda *_: None, lambda: [])
        assert probed == [list(OBSERVED)], text
