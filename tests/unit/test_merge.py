"""The cross-OS matrix: hdp-report/1 files from several machines -> where they differ."""

from __future__ import annotations

import dataclasses
import io
import json
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest

from hdp.case import Case, Delivery, Observation
from hdp.errors import HdpError, UsageError
from hdp.merge import (
    SCHEMA,
    _unique_labels,
    cell_text,
    command_merge,
    merge_reports,
    render_matrix_markdown,
)
from hdp.report import CaseResult, build_report, dumps, loads
from hdp.verdict import judge

LINUX = {"system": "linux", "release": "6.18.44", "machine": "x86_64", "python": "3.11.7"}
DARWIN = {"system": "darwin", "release": "23.4.0", "machine": "arm64", "python": "3.11.9"}
FIX = "give reports written by hdp sweep --format json or pytest --hdp-report"


def _delivered(protocol: int, target: str = "127.0.0.1", family: int = 4,
               wire: int | None = None, payload: str = "hdp") -> CaseResult:
    delivery = Delivery(src=target, dst=target,
                        wire_protocol=protocol if wire is None else wire, ttl=64, dscp=0,
                        ecn=0, length=96, intact=True, latency_us=12.5)
    return _result(protocol, target, family, payload=payload, deliveries=(delivery,))


def _result(protocol: int, target: str = "127.0.0.1", family: int = 4, *,
            payload: str = "hdp", **fields: Any) -> CaseResult:
    case = Case(target, family, protocol, payload=payload)
    observation = dataclasses.replace(Observation(case, sent_bytes=96, sent_src=target),
                                      **fields)
    return CaseResult(case, observation, judge(observation))


def linux_report() -> dict[str, Any]:
    return build_report([_delivered(17), _delivered(50), _delivered(253),
                         _delivered(256, wire=0),
                         _delivered(17, "::1", 6), _delivered(253, "::1", 6)],
                        platform=LINUX)


def darwin_report() -> dict[str, Any]:
    return build_report([_result(17), _result(50, send_errno="EOPNOTSUPP", sent_bytes=None),
                         _delivered(253),
                         _result(256, socket_errno="EINVAL", sent_bytes=None)],
                        platform=DARWIN)


def _write(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(dumps(report), encoding="utf-8")
    return str(path)


def _merge(*files: str, out: str | None = None, fmt: str | None = "md") -> tuple[int, str]:
    stdout = io.StringIO()
    status = command_merge(Namespace(files=list(files), out=out, format=fmt), stdout)
    return status, stdout.getvalue()


@pytest.fixture
def matrix() -> dict[str, Any]:
    return merge_reports([("linux.json", linux_report()), ("darwin.json", darwin_report())])


def test_one_column_per_report_and_target(matrix: dict[str, Any]) -> None:
    assert matrix["schema"] == SCHEMA == "hdp-matrix/1"
    assert [column["label"] for column in matrix["columns"]] == [
        "linux 6.18 / 127.0.0.1", "linux 6.18 / ::1", "darwin 23.4 / 127.0.0.1"]
    assert [column["source"] for column in matrix["columns"]] == [
        "linux.json", "linux.json", "darwin.json"]
    assert matrix["columns"][2]["platform"] == DARWIN
    assert matrix["columns"][1]["target"] == "::1"


def test_each_vantage_point_of_a_report_is_a_column_of_its_own() -> None:
    """Two nat clients of one run: port-less 253 reaches the server from only one."""
    def seen_from(vantage: str, result: CaseResult) -> CaseResult:
        return dataclasses.replace(result, vantage=vantage)

    report = build_report([
        seen_from("nat/client1", _delivered(253, "nat/server")),
        seen_from("nat/client2", _result(253, "nat/server")),
        seen_from("nat/client1", _delivered(17, "nat/server")),
        seen_from("nat/client2", _delivered(17, "nat/server")),
    ], platform=LINUX)
    matrix = merge_reports([("nat.json", report), ("linux.json", linux_report())])
    assert [(column["label"], column.get("vantage")) for column in matrix["columns"]] == [
        ("linux 6.18 / nat/server from nat/client1", "nat/client1"),
        ("linux 6.18 / nat/server from nat/client2", "nat/client2"),
        ("linux 6.18 / 127.0.0.1", None),
        ("linux 6.18 / ::1", None),
    ]
    assert "vantage" not in matrix["columns"][2]  # absent, as in a report without one
    row_253 = next(row for row in matrix["rows"]
                   if (row["family"], row["protocol"]) == (4, 253))
    assert row_253["cells"] == ["delivered", "lost", "delivered", None]
    assert matrix["totals"][:2] == [{"delivered": 2}, {"delivered": 1, "lost": 1}]
    assert "| linux 6.18 / nat/server from nat/client2 |" in render_matrix_markdown(matrix)


def test_rows_only_where_the_columns_differ(matrix: dict[str, Any]) -> None:
    # IPv4 253 is delivered on both machines; IPv6 has only one column, so it compares
    # nothing and is shown, with no cell for the IPv4-only columns.
    assert [(row["family"], row["protocol"], row["payload"], row["cells"])
            for row in matrix["rows"]] == [
        (4, 17, "hdp", ["delivered", None, "lost"]),
        (4, 50, "hdp", ["delivered", None, "send-error (EOPNOTSUPP)"]),
        (4, 256, "hdp", ["altered (protocol: 0)", None, "socket-error (EINVAL)"]),
        (6, 17, "hdp", [None, "delivered", None]),
        (6, 253, "hdp", [None, "delivered", None]),
    ]
    assert matrix["identical"] == 1


def test_totals_count_every_case_of_a_column(matrix: dict[str, Any]) -> None:
    assert matrix["totals"] == [
        {"delivered": 3, "altered": 1},
        {"delivered": 2},
        {"delivered": 1, "lost": 1, "send-error": 1, "socket-error": 1},
    ]
    # Listed in the vocabulary's order, not alphabetically.
    assert list(matrix["totals"][2]) == ["delivered", "lost", "send-error", "socket-error"]


def test_a_missing_case_is_a_difference_shown_as_dash() -> None:
    one = build_report([_delivered(17), _delivered(253)], platform=LINUX)
    two = build_report([_delivered(253)], platform=DARWIN)
    matrix = merge_reports([("a.json", one), ("b.json", two)])
    assert [(row["protocol"], row["cells"]) for row in matrix["rows"]] == [
        (17, ["delivered", "-"])]
    assert matrix["identical"] == 1
    assert "| IPv4 | 17 | hdp | delivered | - |" in render_matrix_markdown(matrix)


def test_identical_reports_fold_everything() -> None:
    matrix = merge_reports([("a.json", linux_report()), ("b.json", linux_report())])
    assert matrix["rows"] == []
    assert matrix["identical"] == 6
    text = render_matrix_markdown(matrix)
    assert "6 (family, protocol, payload) rows agree everywhere and are folded away; 0 differ." \
        in text
    assert "## Differences" not in text


def test_duplicate_labels_get_the_file_stem() -> None:
    first, second = (merge_reports([("runs/a.json", linux_report()),
                                    ("runs/b.json", linux_report())])["columns"][i]["label"]
                     for i in (0, 2))
    assert (first, second) == ("linux 6.18 / 127.0.0.1 (a)", "linux 6.18 / 127.0.0.1 (b)")
    same = merge_reports([("x/r.json", darwin_report()), ("y/r.json", darwin_report())])
    labels = [column["label"] for column in same["columns"]]
    assert labels == ["darwin 23.4 / 127.0.0.1 (r) #1", "darwin 23.4 / 127.0.0.1 (r) #2"]
    assert _unique_labels(["a", "a", "a (s) #1"], ["x/s.json", "y/s.json", "z.json"]) \
        == ["a (s) #2", "a (s) #3", "a (s) #1"]


def test_cell_text_details() -> None:
    base = {"outcome": "lost", "protocol": 256, "family": 4}
    assert cell_text(base) == "lost"
    assert cell_text({**base, "wire_protocol": 0}) == "lost (on the wire as protocol 0)"
    assert cell_text({**base, "outcome": "altered", "changes": ["protocol", "length"],
                      "wire_protocol": 0}) == "altered (protocol: 0, length)"
    assert cell_text({**base, "outcome": "unreachable", "inferred": True}) \
        == "unreachable (inferred)"
    assert cell_text({**base, "outcome": "send-error", "errno": "EPERM"}) \
        == "send-error (EPERM)"


def test_several_cases_of_one_row_in_a_column_are_joined() -> None:
    sized = build_report([_delivered(17), dataclasses.replace(_result(17), case=Case(
        "127.0.0.1", 4, 17, size=2000))], platform=LINUX)
    matrix = merge_reports([("a.json", sized), ("b.json", darwin_report())])
    assert matrix["rows"][0]["cells"] == ["delivered / lost", "lost"]


def test_a_report_without_cases_is_a_column_that_takes_no_part() -> None:
    empty = build_report([], platform=DARWIN)
    matrix = merge_reports([("a.json", linux_report()), ("e.json", empty)])
    assert matrix["columns"][2] == {"label": "darwin 23.4 / (no cases)", "source": "e.json",
                                    "platform": DARWIN, "target": None}
    assert matrix["totals"][2] == {}
    assert all(row["cells"][2] is None for row in matrix["rows"])


def test_markdown(matrix: dict[str, Any]) -> None:
    text = render_matrix_markdown(matrix)
    lines = text.splitlines()
    assert lines[0] == "# HDP cross-OS matrix"
    assert "- darwin 23.4 / 127.0.0.1: darwin.json" in lines
    assert ("1 (family, protocol, payload) row agrees everywhere and is folded away; "
            "5 differ.") in lines
    assert ("| Family | Protocol | Payload | linux 6.18 / 127.0.0.1 | linux 6.18 / ::1 "
            "| darwin 23.4 / 127.0.0.1 |") in lines
    assert "| IPv4 | 50 | hdp | delivered |  | send-error (EOPNOTSUPP) |" in lines
    assert "| IPv4 | 256 | hdp | altered (protocol: 0) |  | socket-error (EINVAL) |" in lines
    assert "| IPv4 | 253 |" not in text  # the same everywhere: folded away
    assert lines.index("## Differences") < lines.index("## Totals")
    assert "| delivered | 3 | 2 | 1 |" in lines
    assert "| send-error | 0 | 0 | 1 |" in lines
    assert "| **cases** | **4** | **2** | **4** |" in lines
    assert text.endswith("\n")


def test_markdown_escapes_pipes_and_newlines() -> None:
    odd = build_report([_delivered(17, target="a|b\nc")], platform=LINUX)
    other = build_report([_result(17, target="a|b\nc")], platform=DARWIN)
    text = render_matrix_markdown(merge_reports([("x|y.json", odd), ("z.json", other)]))
    assert "linux 6.18 / a\\|b c" in text
    assert "- linux 6.18 / a\\|b c: x\\|y.json" in text
    header = next(line for line in text.splitlines() if line.startswith("| Family"))
    assert header.count(" | ") == 4  # 5 cells: no pipe or newline broke out of a cell


def test_json_round_trip(tmp_path: Path) -> None:
    linux = _write(tmp_path, "hdp-ubuntu-latest.json", linux_report())
    darwin = _write(tmp_path, "hdp-macos-latest.json", darwin_report())
    out = tmp_path / "matrix.json"
    assert _merge(linux, darwin, out=str(out), fmt="json") == (0, "")
    written = out.read_text(encoding="utf-8")
    data = json.loads(written)
    expected = merge_reports([(linux, loads(Path(linux).read_text())),
                              (darwin, loads(Path(darwin).read_text()))])
    assert data == expected
    assert dumps(data) == written  # deterministic: the same text again
    # --out *.json without --format means JSON, as for hdp report.
    _merge(linux, darwin, out=str(tmp_path / "again.json"), fmt=None)
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == written


def test_markdown_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    linux = _write(tmp_path, "linux.json", linux_report())
    darwin = _write(tmp_path, "darwin.json", darwin_report())
    status, text = _merge(linux, darwin, fmt=None)
    assert status == 0 and text.startswith("# HDP cross-OS matrix\n")
    assert _merge(linux, darwin, out=str(tmp_path / "matrix.md"))[1] == ""
    assert (tmp_path / "matrix.md").read_text(encoding="utf-8") == text


def test_one_file_is_a_usage_error(tmp_path: Path) -> None:
    linux = _write(tmp_path, "linux.json", linux_report())
    with pytest.raises(UsageError, match=r"give two or more JSON reports to merge \(got 1\)") \
            as error:
        _merge(linux)
    assert "\n" not in str(error.value)


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    linux = _write(tmp_path, "linux.json", linux_report())
    missing = str(tmp_path / "nope.json")
    with pytest.raises(HdpError) as error:
        _merge(linux, missing)
    message = str(error.value)
    assert message == f"cannot read {missing} (No such file or directory): {FIX}"
    with pytest.raises(HdpError, match=r"cannot read .* \(Is a directory\)"):
        _merge(linux, str(tmp_path))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(HdpError, match=r"binary\.json \(not UTF-8 text\)"):
        _merge(linux, str(binary))


@pytest.mark.parametrize(("content", "problem"), [
    ('{"schema": "hdp-matrix/1", "columns": []}', 'schema is "hdp-matrix/1"'),
    ("not json", "not JSON"),
    ("", "is empty"),
    ('{"schema": "hdp-report/1", "platform": {}, "cases": [{"target": 1}]}',
     "field 'target' is 1"),
])
def test_a_bad_report_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    linux = _write(tmp_path, "linux.json", linux_report())
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(HdpError) as error:
        _merge(linux, str(bad))
    message = str(error.value)
    assert message.startswith(f"{bad}: ") and problem in message
    assert "\n" not in message


def test_an_unwritable_out_is_one_line(tmp_path: Path) -> None:
    linux = _write(tmp_path, "linux.json", linux_report())
    darwin = _write(tmp_path, "darwin.json", darwin_report())
    with pytest.raises(HdpError, match=r"^cannot write the matrix to .*: give a writable"):
        _merge(linux, darwin, out=str(tmp_path / "no" / "such" / "dir.md"))
