"""Report JSON, its reader, the Markdown tables and the folded summary."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdp.case import Case, Delivery, IcmpReport, Observation
from hdp.errors import HdpError
from hdp.report import (
    SCHEMA,
    VERDICT_LABELS,
    CaseResult,
    build_report,
    case_entry,
    dumps,
    loads,
    platform_info,
    read_report,
    render_markdown,
    summarize,
)
from hdp.report_load import MAX_BYTES as MAX_REPORT_BYTES
from hdp.verdict import Outcome, judge

PLATFORM = {"system": "linux", "release": "6.18.44", "machine": "x86_64", "python": "3.11.7"}
HEADER = ("| Protocol Number | Source IP (Server) | Payload Bytes (Server) | Received (Server) "
          "| Succeeded (Client) | Byte sum (Client) | Failure reason (Client) "
          "| Time difference (μs) | Outcome |")
FIX = "give a file written by hdp sweep --format json"


def _delivery(**changes: object) -> Delivery:
    base = Delivery(src="127.0.0.1", dst="127.0.0.1", wire_protocol=253, ttl=64, dscp=0,
                    ecn=0, length=96, intact=True, latency_us=12.54)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _result(protocol: int = 253, *, target: str = "127.0.0.1", family: int = 4,
            payload: str = "hdp", size: int = 64, expected: str | None = None,
            label: str | None = None, **fields: object) -> CaseResult:
    case = Case(target, family, protocol, payload=payload, size=size)
    observation = dataclasses.replace(Observation(case, sent_bytes=96, sent_src=target),
                                      **fields)  # type: ignore[arg-type]
    return CaseResult(case, observation, judge(observation), expected=expected,
                      verdict_label=label)


def _report(*results: CaseResult) -> dict[str, object]:
    return build_report(results, platform=PLATFORM)


DELIVERED = _result(deliveries=(_delivery(),))
ALTERED = _result(259, deliveries=(_delivery(wire_protocol=3),))
SOCKET_ERROR = _result(0, socket_errno="EPROTONOSUPPORT", sent_bytes=None)
SEND_ERROR = _result(50, send_errno="EOPNOTSUPP", sent_bytes=None)
UNREACHABLE = _result(200, listened=False, icmp=(IcmpReport(4, 3, 2, "127.0.0.1"),))
TOO_BIG = _result(201, icmp=(IcmpReport(4, 3, 4, "10.9.0.1", mtu=1280),))
LOST = _result(254)


@pytest.mark.parametrize(("result", "fields"), [
    (DELIVERED, {"outcome": "delivered", "errno": None, "wire_protocol": 253, "changes": [],
                 "hops": 0, "latency_us": 12.5, "sent": True, "bytes_sent": 96,
                 "received": True, "source": "127.0.0.1", "bytes_received": 96,
                 "deliveries": 1, "icmp": None, "inferred": False}),
    (ALTERED, {"outcome": "altered", "protocol": 259, "wire_protocol": 3,
               "changes": ["protocol"], "received": True, "deliveries": 1}),
    (SOCKET_ERROR, {"outcome": "socket-error", "protocol": 0, "errno": "EPROTONOSUPPORT",
                    "sent": False, "bytes_sent": None, "received": False, "source": None,
                    "bytes_received": None, "deliveries": 0, "latency_us": None}),
    (SEND_ERROR, {"outcome": "send-error", "errno": "EOPNOTSUPP", "sent": False,
                  "received": False}),
    (UNREACHABLE, {"outcome": "unreachable", "errno": None, "inferred": True, "sent": True,
                   "received": False, "icmp": {"type": 3, "code": 2, "from": "127.0.0.1",
                                               "mtu": None}}),
    (TOO_BIG, {"outcome": "too-big", "inferred": False,
               "icmp": {"type": 3, "code": 4, "from": "10.9.0.1", "mtu": 1280}}),
    (LOST, {"outcome": "lost", "errno": None, "inferred": False, "sent": True,
            "received": False, "icmp": None, "hops": None, "wire_protocol": None}),
], ids=lambda v: v.verdict.outcome.value if isinstance(v, CaseResult) else None)
def test_case_entry_fields(result, fields):
    entry = case_entry(result)
    assert {name: entry[name] for name in fields} == fields
    identity = {"target": "127.0.0.1", "path": "loopback", "family": 4, "payload": "hdp",
                "size": 64, "expected": None, "verdict": None, "note": None}
    assert {name: entry[name] for name in identity} == identity


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_plain, value))
    return value is None or type(value) in (str, int, float, bool)


def test_case_entry_is_plain_json():
    for result in (DELIVERED, ALTERED, SOCKET_ERROR, SEND_ERROR, UNREACHABLE, TOO_BIG, LOST):
        assert _plain(case_entry(result))
    entry = case_entry(_result(expected=Outcome.LOST, label="xfail"))  # an enum, stored as text
    assert type(entry["expected"]) is str and entry["expected"] == "lost"


def test_latency_is_rounded_and_never_nan():
    assert case_entry(_result(deliveries=(_delivery(latency_us=7.25001),)))["latency_us"] == 7.3
    assert case_entry(_result(deliveries=(_delivery(latency_us=float("nan")),)))[
        "latency_us"] is None


def test_case_result_rejects_unknown_labels():
    with pytest.raises(ValueError, match="verdict_label 'passed'"):
        _result(label="passed")
    with pytest.raises(ValueError):
        _result(expected="gone")


def test_platform_info():
    info = platform_info()
    assert set(info) == {"system", "release", "machine", "python"}
    assert info["system"] == info["system"].lower() and info["system"]
    assert re.fullmatch(r"3\.\d+\.\d+\S*", info["python"])


def test_build_report_shape():
    report = _report(DELIVERED)
    assert report == {"schema": SCHEMA, "platform": PLATFORM, "cases": [case_entry(DELIVERED)]}
    with_meta = build_report([DELIVERED], platform=PLATFORM, meta={"run": "ab12"})
    assert with_meta["meta"] == {"run": "ab12"}
    assert build_report([])["platform"] == platform_info()


def test_sorting_is_total_and_input_order_does_not_matter():
    results = [_result(protocol, target=target, family=family, payload=payload, size=size,
                       **extra)
               for target, family in (("127.0.0.1", 4), ("::1", 6), ("10.0.0.2", 4))
               for protocol in (-1, 0, 17, 253, 256)
               for payload in ("hdp", "udp")
               for size in (64, 1400)
               for extra in ({}, {"note": "again"})]  # duplicates that differ only in a note
    expected = dumps(_report(*results))
    for seed in range(5):
        random.Random(seed).shuffle(results)
        assert dumps(_report(*results)) == expected
    keys = [(c["target"], c["family"], c["protocol"], c["payload"], c["size"])
            for c in json.loads(expected)["cases"]]
    assert keys == sorted(keys) and keys[0] == ("10.0.0.2", 4, -1, "hdp", 64)


def test_dumps_is_deterministic_text_and_round_trips():
    report = _report(DELIVERED, ALTERED, SOCKET_ERROR, SEND_ERROR, UNREACHABLE, TOO_BIG, LOST)
    text = dumps(report)
    assert text.endswith("}\n") and text.startswith('{\n  "cases": [')
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert loads(text, "r.json") == report
    assert dumps(loads(text)) == text


def test_loads_accepts_the_design_example():
    text = ('{"schema": "hdp-report/1", "platform": {"system": "linux", "release": "6.18.44",'
            ' "machine": "x86_64", "python": "3.11.7"}, "cases": [{"target": "127.0.0.1",'
            ' "path": "loopback", "family": 4, "protocol": 253, "payload": "hdp",'
            ' "outcome": "delivered", "errno": null, "wire_protocol": 253, "changes": [],'
            ' "hops": 0, "latency_us": 12.5, "expected": "delivered", "verdict": "pass"}]}')
    markdown = render_markdown(loads(text))
    assert "| 253 | - | - | yes | yes | - | - | 12.5 | delivered | delivered | pass |" in markdown


def _valid() -> dict[str, object]:
    return json.loads(dumps(_report(DELIVERED, LOST)))


def _without(name: str) -> str:
    report = _valid()
    del report["cases"][1][name]  # type: ignore[index]
    return json.dumps(report)


def _with_case_field(name: str, value: object) -> str:
    report = _valid()
    report["cases"][1][name] = value  # type: ignore[index]
    return json.dumps(report)


def _with(name: str, value: object) -> str:
    return json.dumps({**_valid(), name: value})


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("{'schema': 1}", "not JSON (Expecting property name enclosed in double quotes at line 1"),
    ('{"schema": "hdp-report/1", "cases": [', "not JSON"),
    ("[" * 100_000, "not JSON"),
    ('{"latency_us": NaN}', "not JSON (NaN is not a JSON number)"),
    ('{"latency_us": 1e999}', "not JSON (number 1e999 is out of range)"),
    ('["hdp-report/1"]', "not an hdp-report/1 file (the JSON is a list, not an object)"),
    ('"report"', "the JSON is a string"),
    ('{"cases": []}', "not an hdp-report/1 file (no schema field)"),
    ('{"schema": "x", "cases": []}', "not an hdp-report/1 file (schema is \"x\")"),
    ('{"schema": "hdp-report/2"}', "schema is \"hdp-report/2\""),
    ('{"schema": "hdp-report/1", "cases": []}', "has no 'platform' object"),
    (_with("platform", "linux"), "'platform' is \"linux\", expected an object of strings"),
    (_with("meta", [1]), "'meta' is a list, expected an object"),
    (json.dumps({"schema": SCHEMA, "platform": PLATFORM}), "has no 'cases' list"),
    (_with("cases", {}), "'cases' is an object, expected a list"),
    (_with("cases", [7]), "cases[0] is a number, expected an object"),
    (_without("outcome"), "cases[1] (127.0.0.1 IPv4 protocol 254) has no 'outcome' field"),
    (_without("target"), "cases[1] has no 'target' field"),
    (_with_case_field("family", "4"), "field 'family' is \"4\", expected 4 or 6"),
    (_with_case_field("protocol", True),
     "field 'protocol' is true, expected a protocol number -1..65535"),
    (_with_case_field("protocol", 2 ** 80),
     f"field 'protocol' is {2 ** 80}, expected a protocol number -1..65535"),
    (_with_case_field("protocol", 7).replace('"protocol": 7', '"protocol": ' + "9" * 5000),
     "not JSON (Exceeds the limit"),
    (_with_case_field("wire_protocol", 256), "expected a protocol number 0..255 or null"),
    (_with_case_field("bytes_received", -1), "expected a byte count 0..65575 or null"),
    (_with_case_field("icmp", {"type": 3, "code": 300}), "field 'icmp' is"),
    (_with("cases", [_valid()["cases"][0]] * 2),  # type: ignore[index]
     "cases[1] (127.0.0.1 IPv4 protocol 253) is the case of cases[0] again"),
    (_with("checks", {}), "'checks' is an object, expected a list"),
    (_with("checks", [{"check": "x", "verdict": "pass", "family": 5}]),
     "checks[0] field 'family' is 5, expected 4, 6 or null"),
    (_with("checks", [{"verdict": "pass"}]), "checks[0] has no 'check' field"),
    (_with_case_field("outcome", "gone"), "field 'outcome' is \"gone\", expected one of"),
    (_with_case_field("changes", "protocol"), "field 'changes' is \"protocol\""),
    (_with_case_field("icmp", {"type": 3}), "field 'icmp' is {\"type\": 3}"),
    (_with_case_field("verdict", "ok"), "field 'verdict' is \"ok\", expected null or one of"),
    (_with_case_field("note", 5), "field 'note' is 5, expected a string or null"),
    (_with_case_field("source", ["x"] * 30),
     '\'source\' is ["x", "x", "x", "x", "x", "x", "x", "..., expected'),
], ids=lambda v: None if isinstance(v, str) and len(v) > 60 else v)
def test_loads_errors_are_one_line_with_source_and_fix(text, message):
    with pytest.raises(HdpError) as caught:
        loads(text, "report.json")
    line = str(caught.value)
    assert "\n" not in line and len(line) < 270  # the outcome list is the longest part
    assert line.startswith("report.json: ") and line.endswith(": " + FIX)
    assert message in line


def test_loads_names_the_default_source_on_one_line():
    with pytest.raises(HdpError, match=r"^<report>: not JSON"):
        loads("nope")
    with pytest.raises(HdpError, match=r"^a b: is empty"):
        loads(" \n", "a\nb")


def test_render_markdown_tables():
    markdown = render_markdown(_report(DELIVERED, ALTERED, SOCKET_ERROR, SEND_ERROR,
                                       UNREACHABLE, TOO_BIG, LOST))
    lines = markdown.splitlines()
    assert lines[0] == "# HDP report: linux 6.18.44 x86_64 (Python 3.11.7)"
    assert lines.count(HEADER) == 1 and "Expected" not in markdown
    assert "## 127.0.0.1 (loopback), IPv4, payload hdp" in lines
    assert ("- 127.0.0.1 IPv4 hdp: 0 socket-error (EPROTONOSUPPORT); 50 send-error "
            "(EOPNOTSUPP); 200 unreachable (inferred); 201 too-big; 253 delivered; 254 lost; "
            "259 altered (protocol)") in lines
    assert ("1 of 7 cases had no listener on the target: their outcome is inferred from ICMP "
            "alone, not observed by a listener.") in lines
    for row in (
        "| 253 | 127.0.0.1 | 96 | yes | yes | 96 | - | 12.5 | delivered |",
        "| 259 | 127.0.0.1 | 96 | yes | yes | 96 | - | 12.5 | altered (protocol: 3) |",
        "| 0 | - | - | no | no | - | EPROTONOSUPPORT | - | socket-error (EPROTONOSUPPORT) |",
        "| 50 | - | - | no | no | - | EOPNOTSUPP | - | send-error (EOPNOTSUPP) |",
        "| 200 | - | - | no | yes | 96 | - | - | unreachable (ICMP 3/2 from 127.0.0.1, "
        "inferred) |",
        "| 201 | - | - | no | yes | 96 | - | - | too-big (MTU 1280) |",
        "| 254 | - | - | no | yes | 96 | - | - | lost |",
    ):
        assert row in lines
    rows = [line for line in lines if re.match(r"\| -?\d", line)]
    assert [int(row.split()[1]) for row in rows] == [0, 50, 200, 201, 253, 254, 259]


def test_render_markdown_without_inferred_cases_has_no_inferred_line():
    markdown = render_markdown(_report(DELIVERED, LOST))
    assert "inferred" not in markdown and "- 127.0.0.1 IPv4 hdp: 253 delivered; 254 lost" \
        in markdown
    assert render_markdown(_report()).splitlines()[-1] == "No cases."


def _mixed_sweep() -> list[CaseResult]:
    """A macOS-like sweep of -1..256: 258 cases, six kinds of outcome."""
    results = []
    for protocol in range(-1, 257):
        if protocol == -1:
            fields: dict[str, object] = {"socket_errno": "EINVAL"}
        elif protocol == 0:
            fields = {"socket_errno": "EPROTONOSUPPORT"}
        elif protocol in (1, 2, 6, 17):
            fields = {}
        elif protocol in (50, 51):
            fields = {"send_errno": "EOPNOTSUPP"}
        elif protocol == 256:
            fields = {"deliveries": (_delivery(wire_protocol=0),)}
        else:
            fields = {"deliveries": (_delivery(wire_protocol=protocol),)}
        results.append(_result(protocol, **fields))
    return results


def test_summary_folds_a_258_case_sweep():
    report = _report(*_mixed_sweep())
    assert len(report["cases"]) == 258
    assert summarize(report) == [
        "127.0.0.1 IPv4 hdp: -1 socket-error (EINVAL); 0 socket-error (EPROTONOSUPPORT); "
        "1-2,6,17 lost; 3-5,7-16,18-49,52-255 delivered; 50-51 send-error (EOPNOTSUPP); "
        "256 altered (protocol)"]
    markdown = render_markdown(loads(dumps(report)))
    assert sum(1 for line in markdown.splitlines() if re.match(r"\| -?\d", line)) == 258
    assert "| 256 | 127.0.0.1 | 96 | yes | yes | 96 | - | 12.5 | altered (protocol: 0) |" \
        in markdown


def test_summary_has_one_line_per_target_family_payload_in_order():
    got = (_delivery(wire_protocol=17),)
    got6 = (_delivery(src="::1", dst="::1", wire_protocol=17),)
    report = _report(_result(17, target="::1", family=6, deliveries=got6),
                     _result(17, payload="udp", deliveries=got),
                     _result(253, deliveries=(_delivery(),)),
                     _result(6, target="::1", family=6, socket_errno="EPERM"))
    assert summarize(report) == ["127.0.0.1 IPv4 hdp: 253 delivered",
                                 "127.0.0.1 IPv4 udp: 17 delivered",
                                 "::1 IPv6 hdp: 6 socket-error (EPERM); 17 delivered"]


def test_several_sizes_get_a_size_column_and_summary_lines():
    report = _report(_result(253, size=64, deliveries=(_delivery(),)),
                     _result(253, size=1400, send_errno="EMSGSIZE"))
    assert summarize(report) == ["127.0.0.1 IPv4 hdp size 64: 253 delivered",
                                 "127.0.0.1 IPv4 hdp size 1400: 253 send-error (EMSGSIZE)"]
    markdown = render_markdown(report)
    assert "| Protocol Number | Size | Source IP (Server) |" in markdown
    assert "| 253 | 1400 | - | - | no | no | 96 | EMSGSIZE |" in markdown
    assert "| Size |" not in render_markdown(_report(DELIVERED))


@pytest.mark.parametrize(("results", "columns"), [
    ([DELIVERED, LOST], False),
    ([DELIVERED, _result(254, expected="lost", label="xfail")], True),
    ([_result(254, label="fail")], True),
    ([_result(254, expected="delivered")], True),
])
def test_expected_and_verdict_columns_only_when_present(results, columns):
    markdown = render_markdown(_report(*results))
    lines = markdown.splitlines()
    assert (HEADER[:-1] + "| Expected | Verdict |" in lines) is columns
    assert (HEADER in lines) is not columns
    if columns:
        rows = [line for line in markdown.splitlines() if line.startswith("| 254 ")]
        assert rows and rows[0].endswith(" | lost | {} | {} |".format(
            results[-1].expected or "-", results[-1].verdict_label or "-"))


def test_cells_escape_pipes_and_newlines():
    markdown = render_markdown(_report(_result(254, note="agent died: a | b\nc")))
    row = next(line for line in markdown.splitlines() if line.startswith("| 254 "))
    assert row.endswith("| lost (agent died: a \\| b c) |")
    assert len(re.findall(r"(?<!\\)\|", row)) == len(re.findall(r"(?<!\\)\|", HEADER))


# --- property: whatever the results, the report survives JSON and renders ---------------

# Characters that can break a table, a line or JSON; an explicit alphabet also spares
# hypothesis building its Unicode tables in the fresh home directory of every run.
_alphabet = st.sampled_from(list("a1.:-_ |\\`*#\"\n\r\t\x00\x85\u2028éμ😀"))
_texts = st.text(_alphabet, max_size=8)
_errnos = st.none() | st.sampled_from(["EINVAL", "EOPNOTSUPP", "EPROTONOSUPPORT", ""]) | _texts
# Every value a kernel can hand over: bytes of an IP datagram, protocol bytes, 16-bit MTUs.
_maybe_bytes = st.none() | st.integers(0, 65_575)
_deliveries = st.builds(
    Delivery, src=st.sampled_from(["127.0.0.1", "::1", "10.0.0.1"]) | _texts,
    dst=st.none() | _texts, wire_protocol=st.none() | st.integers(0, 255),
    ttl=st.none() | st.integers(0, 255),
    dscp=st.none() | st.integers(0, 63), ecn=st.none() | st.integers(0, 3),
    length=st.integers(0, 65_575), intact=st.booleans(),
    latency_us=st.none() | st.floats() | st.integers(-10**6, 10**6))
_icmps = st.builds(IcmpReport, family=st.sampled_from([4, 6]), type=st.integers(0, 255),
                   code=st.integers(0, 255), source=st.none() | _texts,
                   mtu=st.none() | st.integers(0, 65_535))


@st.composite
def _results(draw: st.DrawFn) -> CaseResult:
    case = Case(draw(st.sampled_from(["127.0.0.1", "::1"]) | st.text(_alphabet, max_size=12)),
                draw(st.sampled_from([4, 6])), draw(st.integers(-1, 65_535)),
                payload=draw(st.sampled_from(["hdp", "udp", "raw"]) | _texts),
                size=draw(st.sampled_from([64, 1400])), path=draw(_texts))
    observation = Observation(
        case, socket_errno=draw(_errnos), send_errno=draw(_errnos),
        listen_errno=draw(_errnos), sent_bytes=draw(_maybe_bytes),
        sent_src=draw(st.none() | _texts),
        deliveries=tuple(draw(st.lists(_deliveries, max_size=2))),
        icmp=tuple(draw(st.lists(_icmps, max_size=2))), listened=draw(st.booleans()),
        note=draw(st.none() | st.text(_alphabet, max_size=20)))
    return CaseResult(case, observation, judge(observation),
                      expected=draw(st.none() | st.sampled_from([o.value for o in Outcome])),
                      verdict_label=draw(st.none() | st.sampled_from(VERDICT_LABELS)))


def _identity(result: CaseResult) -> tuple[object, ...]:
    case = result.case
    return (case.target, case.family, case.protocol, case.payload, case.size, case.path)


@given(st.lists(_results(), max_size=12, unique_by=_identity))
def test_any_results_survive_json_and_render(results):
    report = build_report(results, platform=PLATFORM)
    text = dumps(report)
    loaded = loads(text, "generated.json")
    assert loaded == report
    assert dumps(build_report(reversed(results), platform=PLATFORM)) == text
    markdown = render_markdown(loaded)
    assert markdown.endswith("\n")
    lines = summarize(loaded)
    assert all("\n" not in line for line in lines)
    assert len(lines) == len({(c["target"], c["family"], c["payload"], c["size"])
                              for c in loaded["cases"]}
                             if len({c["size"] for c in loaded["cases"]}) > 1
                             else {(c["target"], c["family"], c["payload"])
                                   for c in loaded["cases"]})
    header = next((line for line in markdown.splitlines() if line.startswith("| Protocol")), "")
    width = len(re.findall(r"(?<!\\)\|", header))
    for line in markdown.splitlines():
        if line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) == width


def test_renumbered_protocol_is_shown_once_and_meta_facts_are_reported():
    case = Case("127.0.0.1", 4, 256)
    observation = Observation(case, sent_bytes=96, sent_src="127.0.0.1",
                              icmp=(IcmpReport(4, 3, 2, "127.0.0.1", quoted_protocol=0),))
    report = build_report([CaseResult(case, observation, judge(observation))],
                          meta={"unaccounted": 2, "kernel_drops": {"inprocess 4/253": 7},
                                "interrupted": True})
    text = render_markdown(report)
    assert text.count("on the wire as protocol 0") == 2  # summary line and table cell
    assert "unreachable (ICMP 3/2 from 127.0.0.1, on the wire as protocol 0)" in text
    assert "2 probes were sent and left no evidence" in text
    assert "inprocess 4/253: 7" in text and "interrupted" in text


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
    | st.text(_alphabet, max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["schema", "platform", "cases", "checks", "target", "path", "family",
                         "protocol", "payload", "outcome", "icmp", "size", "check",
                         "verdict"]), inner, max_size=6),
    max_leaves=30)


@given(_json)
def test_any_json_is_a_report_or_one_line(value):
    """Whatever a file holds, loads gives a checked report or one HdpError line."""
    for document in (value, {"schema": SCHEMA, "platform": {}, "cases": [value]},
                     {**_valid(), "cases": [_valid()["cases"][0], value]}):
        try:
            loaded = loads(json.dumps(document), "fuzz.json")
        except HdpError as error:
            assert "\n" not in str(error) and len(str(error)) < 300
        else:
            render_markdown(loaded)
            summarize(loaded)


def test_a_report_file_is_read_only_up_to_its_cap(tmp_path):
    big = tmp_path / "big.json"
    with big.open("wb") as out:
        out.truncate(MAX_REPORT_BYTES + 1)  # sparse: no disk used
    for path in (big, "/dev/zero"):
        with pytest.raises(HdpError, match=r": is larger than 64 MiB, more than any report"):
            read_report(str(path))


def test_cases_that_differ_only_in_tos_or_df_are_two_cases():
    plain = Case("127.0.0.1", 4, 253)
    marked = Case("127.0.0.1", 4, 253, tos=46 << 2, df=True)
    results = [CaseResult(c, Observation(c), judge(Observation(c))) for c in (plain, marked)]
    loaded = loads(dumps(build_report(results, platform=PLATFORM)), "r.json")
    assert sorted((c.get("tos", 0), c.get("df") is True) for c in loaded["cases"]) == [
        (0, False), (184, True)]


_entry_values = st.fixed_dictionaries({
    "target": st.sampled_from(["127.0.0.1", "::1", "b"]), "family": st.sampled_from([4, 6]),
    "protocol": st.integers(-1, 3), "payload": st.sampled_from(["hdp", "udp"]),
    "size": st.sampled_from([0, 64]), "path": st.sampled_from(["loopback", "routed"]),
    "outcome": st.sampled_from(["delivered", "lost", "altered"])},
    optional={"vantage": st.sampled_from(["nat/client1", "client2"]),
              "note": st.text(max_size=3)})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_entry_values, max_size=24))
def test_cases_are_ordered_as_by_every_field_and_then_their_whole_text(entries):
    """Ties on the listed fields are broken by the whole entry, made only for them."""
    from hdp.report import _sort_key, report_of_entries

    def full(entry):
        return (*_sort_key(entry), json.dumps(entry, sort_keys=True))

    assert report_of_entries(entries, platform={})["cases"] == sorted(entries, key=full)
