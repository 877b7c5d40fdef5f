"""The plugin as its users meet it, run with pytester in a subprocess against loopback."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import RAW_FIX, RAW_V4, RAW_V6

pytestmark = pytest.mark.skipif(not RAW_V4, reason=RAW_FIX)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="asserts what Linux does")

DELIVERY = """
def test_delivery(hdp_result):
    hdp_result.check()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_delivery=DELIVERY)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def test_ids_and_a_delivered_case(suite):
    result = _run(suite, "--hdp-target", "127.0.0.1", "--hdp-protocols", "252,253",
                  "--hdp-payload", "hdp", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_delivery[[]127.0.0.1-ipv4-p252[]] PASSED*",
                                 "*test_delivery[[]127.0.0.1-ipv4-p253[]] PASSED*",
                                 "*hdp quirk report*", "*127.0.0.1 IPv4 hdp: 252-253 delivered*"])


def test_default_targets_are_loopback_of_both_families(suite):
    result = _run(suite, "--hdp-protocols", "253", "--collect-only", "-q")
    ids = {"test_delivery.py::test_delivery[127.0.0.1-ipv4-p253]",
           "test_delivery.py::test_delivery[127.0.0.1-ipv4-p253-udp]",
           "test_delivery.py::test_delivery[::1-ipv6-p253]",
           "test_delivery.py::test_delivery[::1-ipv6-p253-udp]"}
    assert ids <= set(result.stdout.lines)


@pytest.mark.parametrize(("args", "env", "ini", "needle"), [
    (["--hdp-family", "5"], {}, "", "--hdp-family: invalid family '5'"),
    (["--hdp-protocols", "abc"], {}, "", "--hdp-protocols: invalid protocol selection 'abc'"),
    ([], {"HDP_PROTOCOLS": "70000"}, "", "HDP_PROTOCOLS: protocol number 70000 is out of range"),
    ([], {}, "hdp_timeout = soon", "ini hdp_timeout: invalid timeout 'soon'"),
    (["--hdp-privilege", "magic"], {}, "", "--hdp-privilege: unknown privilege mode 'magic'"),
    (["--hdp-report", "out.txt"], {}, "", "--hdp-report: 'out.txt' must end in .md or .json"),
    (["--hdp-target", "ftp://x"], {}, "", "--hdp-target: unknown target scheme"),
    (["--hdp-payload", "tcp"], {}, "", "--hdp-payload: unknown payload 'tcp'"),
])
def test_bad_values_are_usage_errors_naming_the_option(suite, monkeypatch, args, env, ini,
                                                        needle):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if ini:
        suite.makeini(f"[pytest]\n{ini}\n")
    result = _run(suite, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(needle in line for line in result.stderr.lines), result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_cli_beats_env_beats_ini(suite, monkeypatch):
    suite.makeini("[pytest]\nhdp_protocols = 250\n")
    monkeypatch.setenv("HDP_PROTOCOLS", "251")
    collected = _run(suite, "--hdp-target", "127.0.0.1", "--collect-only", "-q",
                     "--hdp-payload", "hdp")
    assert "test_delivery.py::test_delivery[127.0.0.1-ipv4-p251]" in collected.stdout.lines
    collected = _run(suite, "--hdp-target", "127.0.0.1", "--hdp-protocols", "252",
                     "--collect-only", "-q", "--hdp-payload", "hdp")
    assert "test_delivery.py::test_delivery[127.0.0.1-ipv4-p252]" in collected.stdout.lines
    monkeypatch.delenv("HDP_PROTOCOLS")
    collected = _run(suite, "--hdp-target", "127.0.0.1", "--collect-only", "-q",
                     "--hdp-payload", "hdp")
    assert "test_delivery.py::test_delivery[127.0.0.1-ipv4-p250]" in collected.stdout.lines


def test_marker_narrows_the_cases(pytester):
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.hdp(protocols="17,253", families=[4], payloads=["udp"])
        def test_marked(hdp_result):
            hdp_result.check()
    """)
    result = _run(pytester, "--collect-only", "-q")
    cases = [line for line in result.stdout.lines if "::test_marked[" in line]
    assert cases == ["test_marked.py::test_marked[127.0.0.1-ipv4-p17-udp]",
                     "test_marked.py::test_marked[127.0.0.1-ipv4-p253-udp]"]


PROFILE = """
profile: test
applies: {{system: linux}}
rules:
  - {{family: 4, protocols: [0], expect: socket-error, errno: {errno}, why: "raw sockets refuse 0"}}
  - {{family: 4, protocols: [253], expect: {expect253}, why: "pretend 253 is filtered"}}
"""


@linux_only
@pytest.mark.parametrize(("errno", "expect253", "outcomes", "lines"), [
    # The expected quirk observed: xfail, with the rule's reason.
    ("EPROTONOSUPPORT", "delivered", {"xfailed": 1, "passed": 1}, ["*XFAIL*p0*raw sockets*"]),
    # A different failure than the profile expects: a plain failure naming both.
    ("EINVAL", "delivered", {"failed": 1, "passed": 1},
     ["*expected socket-error (EINVAL)*observed socket-error (EPROTONOSUPPORT)*"]),
    # A quirk that has gone fails the run until the profile is updated.
    ("EPROTONOSUPPORT", "lost", {"xfailed": 1, "failed": 1},
     ["*p253*the quirk has gone: expected lost by quirks.yaml rule 2, observed delivered; "
      "update the profile*"]),
])
def test_xfail_strictness_in_all_three_directions(suite, errno, expect253, outcomes, lines):
    suite.path.joinpath("quirks.yaml").write_text(PROFILE.format(errno=errno,
                                                                 expect253=expect253))
    result = _run(suite, "--hdp-target", "127.0.0.1", "--hdp-protocols", "0,253",
                  "--hdp-payload", "hdp", "--hdp-profile", "quirks.yaml", "-rxX", "-v")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(lines)
    assert result.ret == (0 if "failed" not in outcomes else 1)


def test_bad_profile_is_one_usage_error_line(suite):
    suite.path.joinpath("broken.yaml").write_text(
        "profile: x\napplies: {system: linux}\nrules:\n"
        "  - {protocols: [50], expect: delivered, errno: EINVAL, why: nonsense}\n")
    result = _run(suite, "--hdp-profile", "broken.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if "broken.yaml" in line]
    assert len(errors) == 1 and "rule 1" in errors[0], result.stderr.str()
    assert "Traceback" not in result.stderr.str()


@linux_only
def test_record_then_assert(suite):
    args = ["--hdp-target", "127.0.0.1", "--hdp-protocols=-1,0,252,253,259",
            "--hdp-payload", "hdp", "--hdp-profile", "none"]
    recorded = _run(suite, *args[:-2], "--hdp-profile", "none",
                    "--hdp-record-profile", "recorded.yaml")
    assert recorded.ret == 1  # without a profile the quirks fail; the recording is made
    text = suite.path.joinpath("recorded.yaml").read_text()
    assert "EPROTONOSUPPORT" in text and "EINVAL" in text and "altered" in text
    again = _run(suite, *args[:-2], "--hdp-profile", "recorded.yaml")
    again.assert_outcomes(passed=2, xfailed=3)
    # Break one rule: the run fails and writes what it obtained beside the profile.
    suite.path.joinpath("recorded.yaml").write_text(text.replace("EPROTONOSUPPORT", "EACCES"))
    mismatch = _run(suite, *args[:-2], "--hdp-profile", "recorded.yaml")
    assert mismatch.ret == 1
    obtained = suite.path.joinpath("recorded.yaml.obtained.yaml")
    assert obtained.exists() and "EPROTONOSUPPORT" in obtained.read_text()
    mismatch.stdout.fnmatch_lines(["*diff recorded.yaml recorded.yaml.obtained.yaml*"])


@pytest.mark.skipif(not RAW_V6, reason="IPv6 " + RAW_FIX)
def test_report_is_identical_with_n0_and_n2(suite):
    args = ["--hdp-protocols=-1,0,17,250-253,259", "--hdp-profile", "none"]
    _run(suite, *args, "-n0", "--hdp-report", "n0.json")
    _run(suite, *args, "-n2", "--hdp-report", "n2.json")
    _run(suite, *args, "-n0", "--hdp-report", "n0.md")
    _run(suite, *args, "-n2", "--hdp-report", "n2.md")
    n0, n2 = (suite.path / "n0.json").read_text(), (suite.path / "n2.json").read_text()
    if n0 != n2:
        one, two = json.loads(n0)["cases"], json.loads(n2)["cases"]
        differing = [(a, b) for a, b in zip(one, two, strict=False) if a != b]
        pytest.fail(f"-n0 and -n2 reports differ in {len(differing)} cases "
                    f"({len(one)} vs {len(two)}): {differing[:2]}")
    assert (suite.path / "n0.md").read_text() == (suite.path / "n2.md").read_text()
    report = json.loads(n0)
    assert report["schema"] == "hdp-report/1"
    assert len(report["cases"]) == 8 * 2 * 2  # protocols x (v4, v6) x (hdp, udp)
    assert {c["verdict"] for c in report["cases"]} <= {"pass", "fail"}


def _sent_packets(namespace: str) -> int:
    """IP packets `namespace` sent so far, less the ICMP errors its kernel sent and the
    TCP segments of its own stack (pytest-rerunfailures talks to xdist workers over TCP;
    a probe is never a segment of the kernel's TCP, even one of protocol 6)."""
    import subprocess

    counters: dict[str, int] = {}
    for name in ("snmp", "snmp6"):
        text = subprocess.run(["ip", "netns", "exec", namespace, "cat", f"/proc/net/{name}"],
                              capture_output=True, text=True, check=True).stdout
        lines = text.splitlines()
        if name == "snmp":
            for keys, values in zip(lines[::2], lines[1::2], strict=True):
                group = keys.partition(":")[0]
                counters.update({f"{group}.{k}": int(v) for k, v in zip(
                    keys.split()[1:], values.split()[1:], strict=True)})
        else:
            counters.update({k: int(v) for k, v in (line.split() for line in lines)})
    return (counters["Ip.OutTransmits"] - counters["Icmp.OutMsgs"]
            + counters["Ip6OutTransmits"] - counters["Icmp6OutMsgs"] - counters["Tcp.OutSegs"])


@linux_only
@pytest.mark.skipif(not RAW_V6, reason="IPv6 " + RAW_FIX)
def test_with_two_xdist_workers_each_probe_leaves_once(suite):
    """The kernel of a namespace of the test's own counts what left: one packet a case
    with -n2, as with -n0, not one per worker; none when the tests are only planned
    (--setup-plan)."""
    import subprocess
    import uuid

    namespace = f"xdistonce-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        counts = {}
        for workers in ("-n0", "-n2"):
            before = _sent_packets(namespace)
            result = suite.run("ip", "netns", "exec", namespace, sys.executable, "-m", "pytest",
                               "-p", "no:randomly", "-p", "no:cacheprovider",
                               "--hdp-protocols", "250-253", "--hdp-profile", "none",
                               workers, f"--hdp-report={workers[1:]}.json")
            assert result.ret == 0, result.stdout.str()[-2000:]
            counts[workers] = _sent_packets(namespace) - before
            cases = json.loads((suite.path / f"{workers[1:]}.json").read_text())["cases"]
            assert len(cases) == 4 * 2 * 2 and {c["outcome"] for c in cases} == {"delivered"}
        assert counts == {"-n0": 16, "-n2": 16}
        # --setup-plan lists each test's fixtures and runs none: no probe leaves, though
        # the workers fetch the batch from the end of their collection on when tests run.
        before = _sent_packets(namespace)
        result = suite.run("ip", "netns", "exec", namespace, sys.executable, "-m", "pytest",
                           "-p", "no:randomly", "-p", "no:cacheprovider",
                           "--hdp-protocols", "250-253", "--hdp-profile", "none", "-n2",
                           "--setup-plan")
        assert result.ret == 0, result.stdout.str()[-2000:]
        assert _sent_packets(namespace) - before == 0
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_runs_without_xdist(suite):
    result = _run(suite, "-p", "no:xdist", "--hdp-target", "127.0.0.1",
                  "--hdp-protocols", "253", "--hdp-payload", "hdp", "--hdp-report", "r.json")
    result.assert_outcomes(passed=1)
    assert json.loads((suite.path / "r.json").read_text())["cases"][0]["outcome"] == "delivered"


def test_github_step_summary_gets_the_markdown(suite, monkeypatch):
    summary = suite.path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _run(suite, "--hdp-target", "127.0.0.1", "--hdp-protocols", "253", "--hdp-payload", "hdp")
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "| Protocol Number |" in text and "253" in text


@linux_only
def test_netns_target_probes_inside_the_namespace(suite):
    """--hdp-target netns://NAME: the agent runs in the namespace and probes its own stack."""
    import shutil
    import subprocess
    import uuid

    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command: apt-get install iproute2")
    name = f"hdp-plugin-{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace: run as root")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        result = _run(suite, "--hdp-target", f"netns://{name}", "--hdp-protocols", "0,253",
                      "--hdp-payload", "hdp", "--hdp-family", "4", "--hdp-profile", "none",
                      "-v", "--hdp-report", "ns.json")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    result.assert_outcomes(passed=1, failed=1)  # 0 is refused: no profile says so
    result.stdout.fnmatch_lines([f"*test_delivery[[]netns:{name}-ipv4-p253[]] PASSED*",
                                 f"*agents: netns:{name}*"])
    cases = json.loads((suite.path / "ns.json").read_text())["cases"]
    assert {(c["target"], c["path"], c["protocol"], c["outcome"]) for c in cases} == {
        (f"netns:{name}", "netns", 253, "delivered"),
        (f"netns:{name}", "netns", 0, "socket-error")}


def test_sender_and_listener_fixtures(pytester):
    """The README's example of a hand-written path test, run as a user would."""
    pytester.makepyfile(test_own="""
        def test_marks_survive(hdp_sender, hdp_listener):
            listener = hdp_listener(253, family=4)
            sent = hdp_sender.send(listener.address, 253, dscp=46)
            assert sent.ok and sent.bytes == 12 + 20 + 64
            arrival = listener.wait(sent)
            assert arrival.dscp == 46 and arrival.intact and arrival.tagged
            assert listener.poll(sent.case + 1000, timeout=0.2) is None
    """)
    _run(pytester, "--hdp-target", "127.0.0.1").assert_outcomes(passed=1)


# A conftest that kills every child agent that listens for the session just as the
# sender is asked to send: a real agent dies in the middle of a real batch.
KILL_LISTENERS = """
import os
import signal

from hdp.agent import messages
from hdp.agent.launch import AgentClient

_request = AgentClient.request
_listeners = []


def _request_and_kill(self, request):
    if isinstance(request, messages.Listen) and self.process is not None:
        _listeners.append(self)
    if isinstance(request, messages.Send):
        for agent in _listeners:
            if agent.process.poll() is None:
                os.kill(agent.process.pid, signal.SIGKILL)
    return _request(self, request)


AgentClient.request = _request_and_kill
"""


@linux_only
def test_a_listener_agent_killed_mid_batch_is_an_error_in_pytest_and_the_report(suite):
    """Our own listener dies while the probes are on their way: its cases are ERRORs at
    setup, `error` in both reports, never a conformance FAIL; the Markdown says why."""
    suite.makeconftest(KILL_LISTENERS)
    result = _run(suite, "-p", "no:xdist", "--hdp-target", "127.0.0.1", "--hdp-family", "4",
                  "--hdp-protocols", "252,253", "--hdp-payload", "hdp", "--hdp-listener",
                  "child", "--hdp-profile", "none", "--hdp-report", "r.json")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_delivery[[]127.0.0.1-ipv4-p25[23][]]*",
                                 "*our own machinery failed (listener lost: agent child "
                                 "exited*"])
    assert "FAILED" not in result.stdout.str()
    assert "pytest_hdp/" not in result.stdout.str()  # one line, not the plugin's frames
    cases = json.loads((suite.path / "r.json").read_text())["cases"]
    assert [(c["protocol"], c["outcome"], c["verdict"]) for c in cases] == [
        (252, "error", "error"), (253, "error", "error")]
    assert all("listener lost" in c["note"] for c in cases)
    _run(suite, "-p", "no:xdist", "--hdp-target", "127.0.0.1", "--hdp-family", "4",
         "--hdp-protocols", "253", "--hdp-payload", "hdp", "--hdp-listener", "child",
         "--hdp-profile", "none", "--hdp-report", "r.md").assert_outcomes(errors=1)
    assert "| error (listener lost: agent child exited" in (suite.path / "r.md").read_text()


@linux_only
def test_a_listener_agent_that_cannot_start_is_an_error_not_a_skip(suite):
    """The listener's namespace is not there (a lab gone): its cases are ERRORs naming
    the agent, not skips that blame this host's privileges."""
    import uuid

    name = f"hdp-nosuch-{uuid.uuid4().hex[:6]}"
    result = _run(suite, "--hdp-target", "127.0.0.1", "--hdp-family", "4",
                  "--hdp-protocols", "253", "--hdp-payload", "hdp", "--hdp-listener",
                  f"netns:{name}", "--hdp-report", "r.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*our own machinery failed (agent netns:{name} exited "
                                 "before it was ready*"])
    assert "CAP_NET_RAW" not in result.stdout.str()
    cases = json.loads((suite.path / "r.json").read_text())["cases"]
    assert [(c["outcome"], c["verdict"]) for c in cases] == [("error", "error")]


@linux_only
def test_no_answer_is_inconclusive_unless_the_test_expects_it(pytester):
    """ICMP-only to our own host's protocol 255: our IPPROTO_RAW socket takes the probe,
    so no answer can come. The check is skipped as inconclusive, never passed or
    failed; a test that expects silence passes."""
    pytester.makepyfile(test_silence="""
        def test_delivery(hdp_result):
            hdp_result.check()

        def test_expects_silence(hdp_result):
            hdp_result.expect("no-answer")
    """)
    result = _run(pytester, "--hdp-target", "127.0.0.1", "--hdp-family", "4",
                  "--hdp-protocols", "255", "--hdp-payload", "hdp", "--hdp-listener", "none",
                  "--hdp-profile", "none", "-rs", "--hdp-report", "r.json")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*inconclusive:*no-answer*"])
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    assert [(c["protocol"], c["outcome"]) for c in cases] == [(255, "no-answer")]
