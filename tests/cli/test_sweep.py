"""`hdp sweep` and `hdp report` as a user runs them, on loopback."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys

import pytest

from tests.cli.helpers import ROOT, hdp_env, run_hdp
from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
HDP = [sys.executable, "-m", "hdp"]


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_sweep_json_report(tmp_path):
    out = tmp_path / "sweep.json"
    families = "4,6" if RAW_V6 else "4"
    targets = ["127.0.0.1", "::1"] if RAW_V6 else ["127.0.0.1"]
    result = run_hdp("sweep", *targets, "--protocols=-1,0,250-253,259",
                     "--family", families, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # no progress bar when not on a terminal
    report = json.loads(out.read_text())
    assert report["schema"] == "hdp-report/1"
    assert report["platform"]["system"] in ("linux", "darwin", "freebsd")
    cases = report["cases"]
    assert len(cases) == 7 * len(targets)
    keys = [(c["target"], c["family"], c["protocol"], c["payload"]) for c in cases]
    assert keys == sorted(keys)
    by = {(c["family"], c["protocol"]): c for c in cases}
    assert all(by[(4, p)]["outcome"] == "delivered" for p in (250, 251, 252, 253))
    assert by[(4, 253)]["source"] == "127.0.0.1" and by[(4, 253)]["hops"] == 0
    if sys.platform.startswith("linux"):
        assert (by[(4, 0)]["outcome"], by[(4, 0)]["errno"]) == ("socket-error",
                                                                 "EPROTONOSUPPORT")
        assert by[(4, 259)]["outcome"] == "altered" and by[(4, 259)]["wire_protocol"] == 3
        if RAW_V6:
            assert (by[(6, 259)]["outcome"], by[(6, 259)]["errno"]) == ("send-error", "EINVAL")


def test_sweep_markdown_and_report_render_the_same_run(tmp_path):
    out = tmp_path / "sweep.json"
    assert run_hdp("sweep", "127.0.0.1", "-p", "1-5", "--family", "4",
                   "--out", str(out)).returncode == 0
    rendered = run_hdp("report", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert "| Protocol Number | Source IP (Server) | Payload Bytes (Server) |" in rendered.stdout
    assert "127.0.0.1 IPv4 hdp: 1-5 delivered" in rendered.stdout


@pytest.mark.parametrize(("argv", "needle"), [
    (["sweep", "::1", "--family", "4"], "--family"),
    (["sweep", "127.0.0.1", "--protocols", "abc"], "protocol"),
    (["sweep", "127.0.0.1", "--agent", "carrier-pigeon"], "unknown agent"),
    (["sweep", "127.0.0.1", "--family", "5"], "family"),
    (["sweep", "127.0.0.1", "--size", "-3"], "size"),
])
def test_sweep_bad_input_is_one_line(argv, needle):
    assert needle in _one_line_error(run_hdp(*argv))


def test_report_of_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something-else/2", "cases": []}')
    line = _one_line_error(run_hdp("report", str(bad)))
    assert str(bad) in line
    missing = _one_line_error(run_hdp("report", str(tmp_path / "absent.json")))
    assert "absent.json" in missing


def test_ctrl_c_prints_what_was_learned():
    """Interrupted while waiting for silent cases: exit 130 and a report of every case."""
    argv = [*HDP, "sweep", "127.0.0.1", "--family", "4", "--protocols", "17,253",
            "--listener", "none", "--timeout", "60", "--format", "json"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # printed once the agents are up
        assert line.startswith("hdp sweep: probing 2 cases"), line
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    cases = json.loads(stdout)["cases"]
    assert [c["protocol"] for c in cases] == [17, 253]
    assert all(c["outcome"] for c in cases)
    assert json.loads(stdout)["meta"]["interrupted"] is True


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `hdp ARGS` with its stdout on a pseudo-terminal; its exit status and output."""
    controller, terminal = pty.openpty()
    try:
        child = subprocess.Popen([*HDP, *args], cwd=ROOT, env=hdp_env(), stdout=terminal,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = child.wait(timeout=60)
    finally:
        os.close(controller)
    return status, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_sweep_prints_an_aligned_table_on_a_terminal_and_markdown_when_piped():
    args = ("sweep", "127.0.0.1", "-p", "0,250-253", "--family", "4")
    status, text = _on_a_terminal(*args)
    assert status == 0, text
    assert text.startswith("HDP report: ") and "|" not in text, text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Protocol Number"))
    rows = lines[header + 1:header + 6]
    assert [row.split()[0] for row in rows] == ["0", "250", "251", "252", "253"], text
    outcome_column = lines[header].index("Outcome")
    assert {row[outcome_column:].split()[0] for row in rows[1:]} == {"delivered"}, text
    assert len({len(row.split("  ")[0]) for row in rows}) == 1, "right-aligned numbers"
    piped = run_hdp(*args)
    assert piped.returncode == 0 and "| Protocol Number |" in piped.stdout, piped.describe()
    status, text = _on_a_terminal(*args, "--format", "md")
    assert status == 0 and text.startswith("# HDP report: ") and "| 253 |" in text, text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux refuses protocol 0")
def test_fail_on_sets_the_exit_status_for_scripts(tmp_path):
    out = tmp_path / "r.json"
    found = run_hdp("sweep", "127.0.0.1", "-p", "0,253", "--family", "4", "--out", str(out),
                    "--fail-on", "lost,socket-error")
    assert found.returncode == 3, found.describe()
    assert found.stderr_lines[-1] == "hdp sweep: 1 socket-error (--fail-on lost,socket-error)"
    assert len(json.loads(out.read_text())["cases"]) == 2, "the report is written all the same"
    clean = run_hdp("sweep", "127.0.0.1", "-p", "253", "--family", "4", "--fail-on", "lost")
    assert clean.returncode == 0, clean.describe()


@pytest.mark.parametrize(("command", "needles"), [
    (["sweep"], ["examples:", "hdp sweep 127.0.0.1 ::1", "exit status:", "3    --fail-on"]),
    (["listen"], ["examples:", "--format json", "exit status:", "130  Ctrl-C"]),
    (["send"], ["examples:", "fortune | cowsay", "exit status:"]),
    (["report"], ["examples:", "hdp report merge", "exit status:"]),
    (["lab", "down"], ["examples:", "hdp lab down nat --all"]),
])
def test_help_gives_examples_and_exit_statuses(command, needles):
    shown = run_hdp(*command, "--help")
    assert shown.returncode == 0, shown.describe()
    for needle in needles:
        assert needle in shown.stdout, needle + shown.describe()


def test_sweep_from_a_lab_that_is_not_up_writes_its_report_and_says_what_broke(tmp_path):
    """The sender's namespace does not exist (a lab that failed to come up): every case
    is `error`, the report is written all the same, and the exit status is 1."""
    out = tmp_path / "sweep.json"
    result = run_hdp("sweep", "198.18.2.2", "--agent", "netns:hdp-nosuchlab-client",
                     "--listener", "none", "--family", "4", "-p", "250-253", "--out", str(out))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "agent netns:hdp-nosuchlab-client exited before it was ready" in result.stderr
    report = json.loads(out.read_text())
    assert [c["outcome"] for c in report["cases"]] == ["error"] * 4
    assert report["meta"]["incomplete"] is True
    assert all(c["sent"] is False for c in report["cases"])
    # The report reads back as written, and says the run is incomplete and why.
    rendered = run_hdp("report", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert "Incomplete: our own machinery failed (agent netns:hdp-nosuchlab-client" \
        in rendered.stdout
    assert "198.18.2.2 IPv4 hdp: 250-253 error" in rendered.stdout


@pytest.mark.skipif(not (RAW_V6 and sys.platform.startswith("linux")),
                    reason="IPv6 " + RAW_FIX + " (Linux writes the ICMPv6 checksum)")
def test_a_kernel_rewrite_names_its_bytes_in_the_report_and_reads_back(tmp_path):
    """Linux writes an ICMPv6 checksum into a raw probe of protocol 58 (bytes 2-3 after
    the IP header): altered, the bytes named in `payload_changed`, and `hdp report`
    shows them from the file."""
    out = tmp_path / "sweep.json"
    result = run_hdp("sweep", "::1", "-p", "58,253", "--family", "6", "--payload", "hdp",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    cases = {c["protocol"]: c for c in json.loads(out.read_text())["cases"]}
    assert (cases[58]["outcome"], cases[58]["changes"], cases[58]["payload_changed"]) == \
        ("altered", ["payload"], "2-3")
    assert cases[253]["outcome"] == "delivered" and "payload_changed" not in cases[253]
    rendered = run_hdp("report", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert "| altered (payload: 2-3) |" in rendered.stdout
