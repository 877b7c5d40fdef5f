"""`hdp stats` as a user runs it, on loopback: the table, the JSON, the chart, the job
summary, and a bad command line as one line before anything is sent."""

from __future__ import annotations

import json
import sys

import pytest

from tests.cli.helpers import ROOT, hdp_env, run_hdp
from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

requires_raw = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
COUNT = 400  # a kind: above hdp.stats_report.MIN_COMPARED, so differences are drawn
TARGETS = ["127.0.0.1", "::1"] if RAW_V6 else ["127.0.0.1"]


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.describe()
    assert "Traceback" not in result.stderr and len(lines) == 1, result.describe()
    return lines[0]


@requires_raw
def test_json_report_has_every_kind_delivered_with_kernel_stamps(tmp_path):
    out = tmp_path / "stats.json"
    result = run_hdp("stats", *TARGETS, "--count", COUNT, "--rate", 4000, "--out", out)
    assert result.returncode == 0, result.describe()
    report = json.loads(out.read_text())
    assert report["schema"] == "hdp-stats/1"
    assert report["plan"]["count"] == COUNT and report["plan"]["kinds"] == ["hdp", "udp",
                                                                             "tcp"]
    cases = {(c["target"], c["kind"]): c for c in report["cases"]}
    assert set(cases) == {(t, k) for t in TARGETS for k in ("raw", "udp", "tcp")}
    for case in cases.values():
        stats = case["stats"]
        assert (stats["sent"], stats["delivered"], stats["lost"]) == (COUNT, COUNT, 0)
        latency = stats["latency"]
        assert latency["clock"] == "kernel" and latency["sync"] == "shared"
        assert 0 <= latency["min_us"] <= latency["p50_us"] <= latency["max_us"]
    assert {c["protocol"] for c in report["cases"]} == {253, 17, 6}
    for run in report["runs"]:
        assert (run["clock"], run["tx_stamps"], run["rx_stamps"]) == ("shared", "kernel",
                                                                       "kernel")
    pairs = {(c["a"].split(",")[0], c["b"].split(",")[0]) for c in report["comparisons"]}
    assert pairs == {("HDP (253)", "UDP"), ("TCP", "UDP")}
    for comparison in report["comparisons"]:
        assert comparison["low_us"] <= comparison["estimate_us"] <= comparison["high_us"]
        assert comparison["n_a"] >= 100


@requires_raw
def test_markdown_links_the_chart_and_goes_to_the_job_summary(tmp_path):
    pytest.importorskip("matplotlib", reason="charts need matplotlib: "
                                             "pip install 'pytest-hdp[plot]'")
    chart, summary = tmp_path / "latency.svg", tmp_path / "summary.md"
    summary.write_text("earlier steps\n")
    env = {**hdp_env(), "GITHUB_STEP_SUMMARY": str(summary)}
    import subprocess

    done = subprocess.run([sys.executable, "-m", "hdp", "stats", "127.0.0.1", "--count",
                           "200", "--rate", "4000", "--reflect", "--plot", str(chart)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"![Latency and loss per kind of probe]({chart})" in done.stdout
    assert "| HDP (253) (round trip) |" in done.stdout
    assert chart.read_text().startswith("<?xml") and "<svg" in chart.read_text()
    text = summary.read_text()
    assert text.startswith("earlier steps\n") and done.stdout in text


def test_without_matplotlib_a_chart_is_refused_with_the_install_line(tmp_path):
    import subprocess

    # matplotlib made unimportable, as in an environment without the plot extra.
    script = ("import sys; sys.modules['matplotlib'] = None\n"
              "from hdp.cli import main\n"
              f"raise SystemExit(main(['stats', '127.0.0.1', '--plot', "
              f"{str(tmp_path / 'x.png')!r}]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=hdp_env(),
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0] == ("hdp stats: error: --plot needs matplotlib, which is not installed: "
                        "pip install 'pytest-hdp[plot]'")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--count", "0"], "count 0 is out of range: give 1..65536"),
    (["--count", "70000"], "count 70000 is out of range"),
    (["--rate", "fast"], "invalid rate 'fast'"),
    (["--kinds", "hdp,quic"], "invalid kinds 'hdp,quic': give some of hdp,udp,tcp"),
    (["--protocol", "300"], "invalid protocol '300'"),
    (["--timeout", "60"], "timeout 60 is out of range"),
    (["--plot", "chart.jpg"], "--plot chart.jpg: give a file name ending in .png or .svg"),
], ids=["count-0", "count-big", "rate", "kinds", "protocol", "timeout", "plot-suffix"])
def test_a_bad_value_is_one_line_naming_it(args, message):
    assert message in _one_line_error(run_hdp("stats", "127.0.0.1", *args))


@requires_raw
def test_a_target_without_a_listener_says_how_to_give_one():
    # 192.0.2.1 (TEST-NET-1) is only planned, never sent to: the check comes first.
    line = _one_line_error(run_hdp("stats", "192.0.2.1", "--count", "1"))
    assert "many probes need a listener at the target" in line and "--listener" in line


@requires_raw
def test_flood_accounts_for_every_probe_and_reports_its_rates(tmp_path, netns):
    # Both agents in a namespace of the test's own: a flood on the host's loopback would
    # fill every other raw listener's queue (other tests').
    agents = ["--agent", f"netns:{netns}", "--listener", f"netns:{netns}"]
    out = tmp_path / "flood.json"
    result = run_hdp("stats", *TARGETS, "--flood", "--count", 50_000, *agents, "--out", out)
    assert result.returncode == 0, result.describe()
    report = json.loads(out.read_text())
    assert report["schema"] == "hdp-flood/1" and "not measured" in report["plan"]["latency"]
    assert [c["target"] for c in report["cases"]] == TARGETS
    for case in report["cases"]:
        assert case["error"] is None and case["accounted"]
        assert case["sent"] + case["refused"] == 50_000
        assert case["sent"] == case["delivered"] + case["lost"] + case["dropped"]
        assert case["duplicated"] == case["corrupted"] == 0
        assert case["sent_per_s"] > 0 and case["matched_per_s"] > 0
    markdown = run_hdp("stats", "127.0.0.1", "--flood", "--count", 1000, *agents)
    assert markdown.returncode == 0, markdown.describe()
    assert "| 127.0.0.1 (IPv4) | 1,000 |" in markdown.stdout
    assert "sent = delivered + lost + dropped" in markdown.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "5000"], "--rate: --flood sends HDP probes unpaced"),
    (["--kinds", "hdp,udp"], "--kinds: --flood sends HDP probes unpaced"),
    (["--reflect"], "--reflect: --flood"),
    (["--count", "10000001"], "count 10000001 is out of range"),
    (["--size", "1401"], "--size 1401 is out of range for --flood: give 0..1400"),
], ids=["rate", "kinds", "reflect", "count", "size"])
def test_a_flood_refuses_what_it_cannot_do_in_one_line(args, message):
    assert message in _one_line_error(run_hdp("stats", "127.0.0.1", "--flood", *args))
