"""Which source a lab path should deliver, the leak finding, and vantage points in reports
(pure: no namespaces, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdp.case import Case, Delivery, Observation
from hdp.lab import Lab, load_topology
from hdp.lab.topology import parse_topology
from hdp.report import CaseResult, build_report, dumps, render_markdown, summarize
from hdp.verdict import Outcome, judge

TWO_NATS = {
    "lab": "two-nats",
    "hosts": {"client": {"role": "client"}, "inner": {"role": "router"},
              "outer": {"role": "router"}, "server": {"role": "server"}},
    "links": [{"ends": ["client", "inner"]}, {"ends": ["inner", "outer"]},
              {"ends": ["outer", "server"]}],
    "nftables": {
        "inner": 'table inet n {\n chain p {\n  type nat hook postrouting priority srcnat;\n'
                 '  oifname "eth1" masquerade  # toward outer\n }\n}\n',
        "outer": 'table ip n {\n chain p {\n  type nat hook postrouting priority srcnat;\n'
                 '  oifname "eth0" masquerade\n }\n}\n'},
}


def _lab(data: dict[str, object]) -> Lab:
    return Lab.attach(parse_topology(data, Path(f"{data['lab']}.yaml")), "000000")


def test_the_nat_lab_translates_ipv4_only_toward_the_server():
    nat = Lab.attach(load_topology("nat"), "000000")
    assert nat.topology.source_nat("router", 4) == ["eth1"]
    assert nat.topology.source_nat("router", 6) == []
    router = nat.address("router", 4, toward="server")
    assert nat.translated_source("client1", "server", 4) == router
    assert nat.translated_source("client2", "server", 4) == router
    assert nat.translated_source("client1", "server", 6) is None
    assert nat.translated_source("server", "client1", 4) is None  # eth0 faces the clients


@pytest.mark.parametrize("name", ["routed", "firewall-reject", "mtu-1280"])
def test_labs_without_nat_translate_nothing(name):
    lab = Lab.attach(load_topology(name), "000000")
    client, server = lab.topology.clients[0], lab.topology.servers[0]
    assert lab.translated_source(client, server, 4) is None


def test_the_last_nat_on_the_way_gives_the_source():
    lab = _lab(TWO_NATS)
    # inner masquerades on its link to outer; outer's rule names its eth0, which faces
    # inner, so it does not apply on the way to the server.
    assert lab.translated_source("client", "server", 4) == lab.address("inner", 4,
                                                                        toward="outer")
    assert lab.translated_source("client", "server", 6) == lab.address("inner", 6,
                                                                        toward="outer")
    assert lab.translated_source("server", "client", 4) == lab.address("outer", 4,
                                                                        toward="inner")


def _observed(src: str, sent_src: str | None = "198.18.1.2", protocol: int = 17
              ) -> Observation:
    case = Case("nat/server", 4, protocol, path="nat")
    delivery = Delivery(src, None, protocol, 63, 0, 0, 96, True)
    return Observation(case, sent_bytes=96, sent_src=sent_src, deliveries=(delivery,))


@pytest.mark.parametrize(("src", "sent_src", "nat_source", "outcome", "changes"), [
    ("198.18.1.2", "198.18.1.2", "198.18.2.1", Outcome.ALTERED, ("src-not-translated",)),
    ("198.18.1.2", None, "198.18.2.1", Outcome.ALTERED, ("src-not-translated",)),
    ("198.18.2.1", "198.18.1.2", "198.18.2.1", Outcome.ALTERED, ("src",)),
    ("198.18.1.2", "198.18.1.2", None, Outcome.DELIVERED, ()),
])
def test_a_source_the_nat_left_alone_is_a_finding(src, sent_src, nat_source, outcome,
                                                  changes):
    verdict = judge(_observed(src, sent_src), nat_source=nat_source)
    assert (verdict.outcome, verdict.changes) == (outcome, changes)


def _result(protocol: int, vantage: str | None) -> CaseResult:
    observation = _observed("198.18.1.2", protocol=protocol)
    return CaseResult(observation.case, observation,
                      judge(observation, nat_source="198.18.2.1"), vantage=vantage)


def test_reports_keep_vantage_points_apart():
    report = build_report([_result(17, "nat/client2"), _result(17, "nat/client1"),
                           _result(253, None), _result(17, None)],
                          platform={"system": "linux"})
    order = [(c["protocol"], c.get("vantage")) for c in report["cases"]]
    assert order == [(17, None), (253, None), (17, "nat/client1"), (17, "nat/client2")]
    assert "vantage" not in report["cases"][0]  # absent, not null, without a vantage point
    assert summarize(report) == [
        "nat/server IPv4 hdp: 17,253 altered (src-not-translated)",
        "nat/server IPv4 hdp from nat/client1: 17 altered (src-not-translated)",
        "nat/server IPv4 hdp from nat/client2: 17 altered (src-not-translated)"]
    text = render_markdown(report)
    assert "## nat/server (nat), IPv4, payload hdp" in text
    assert "## nat/server (nat) from nat/client1, IPv4, payload hdp" in text
    assert "altered (src-not-translated: 198.18.1.2)" in text
    from hdp.report import loads

    assert loads(dumps(report)) == report
