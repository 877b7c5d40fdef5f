"""Each friction a network engineer met writing their own path tests (issue "the plugin for
people who write their own path tests"), as a test that would have caught it: pytester
runs pytest in a subprocess, as a user runs it, on loopback or across a lab of its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hdp.pcap import decode_pcap
from hdp.wire import ipv4
from hdp.wire.hdp import find_tag
from pytest_hdp.settings import OPTIONS
from tests.conftest import RAW_FIX, RAW_V4
from tests.integration.test_launchers import sshd  # noqa: F401  (a fixture)
from tests.lab.conftest import requires_lab

ROOT = Path(__file__).resolve().parents[2]
linux_raw = pytest.mark.skipif(not (RAW_V4 and sys.platform.startswith("linux")),
                               reason=RAW_FIX + " (on Linux)")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def _loopback(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return _run(pytester, "--hdp-lab", "none", "--hdp-target", "127.0.0.1", *args)


def _one_line_error(result: pytest.RunResult, needle: str) -> None:
    output = result.stdout.str() + result.stderr.str()
    lines = [line for line in output.splitlines() if needle in line]
    assert lines, output[-3000:]
    assert "Traceback" not in output and "pytest_hdp/" not in output, output[-3000:]


# -- the marker ---------------------------------------------------------------------------

def test_a_singular_marker_key_is_an_error_naming_the_plural(pytester):
    """It was ignored, and the test collected all 1,024 cases."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocol="253", family=4)
        def test_path(hdp_result):
            hdp_result.check()
    """)
    result = _loopback(pytester)
    assert result.ret != 0 and "passed" not in result.stdout.str()
    _one_line_error(result, "test_mine.py::test_path: @pytest.mark.hdp has no key "
                            "'protocol': did you mean 'protocols'?")


def test_a_marker_error_is_one_line_under_xdist_too(pytester):
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=253, ttl=300)
        def test_path(hdp_result):
            hdp_result.check()
    """)
    result = _loopback(pytester, "-n2")
    assert result.ret != 0
    _one_line_error(result, "@pytest.mark.hdp(ttl=...): give a whole number 1..255, not 300")


@pytest.mark.parametrize(("value", "ids"), [
    ("253", ["p253"]), ("253", ["p253"]), ("'250-252'", ["p250", "p251", "p252"]),
    ("[1, 6, 17]", ["p1", "p6", "p17"]), ("259", ["p259"]),
])
def test_protocols_take_an_int_a_range_or_a_list(pytester, value, ids):
    """An int raised TypeError at collection; 259 was narrowed away by the default 0-255."""
    pytester.makepyfile(test_mine=f"""
        import pytest

        @pytest.mark.hdp(protocols={value}, families=4, payloads="hdp")
        def test_path(hdp_case):
            pass
    """)
    result = _loopback(pytester, "--collect-only", "-q")
    collected = [line.split("[")[1].rstrip("]") for line in result.stdout.lines
                 if line.startswith("test_mine.py::")]
    assert collected == [f"127.0.0.1-ipv4-{i}" for i in ids]


def test_paths_and_targets_narrow_as_the_readme_says(pytester):
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=253, payloads="hdp", paths="loopback", targets="::1")
        def test_path(hdp_case):
            pass
    """)
    result = _run(pytester, "--hdp-lab", "none", "--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == [
        "test_mine.py::test_path[::1-ipv6-p253]"]
    readme = (ROOT / "README.md").read_text()
    assert "| `paths` |" in readme and "| `targets` |" in readme


@linux_raw
def test_the_marker_sets_dscp_ecn_ttl_size_and_data_on_the_wire(pytester):
    """There was no DSCP/TOS, DF, TTL, size or data: a test had to build Case(tos=...)."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp", dscp=46, ecn=1, ttl=9,
                         size=300, df=True)
        def test_marked(hdp_result):
            hdp_result.expect("delivered")
            arrival = hdp_result.arrival
            assert (arrival.dscp, arrival.ecn, arrival.ttl, arrival.length) == (
                46, 1, 9, 12 + 20 + 300)

        @pytest.mark.hdp(protocols=253, families=4, payloads="raw", data=b"my own bytes")
        def test_data(hdp_result):
            hdp_result.expect("delivered")
            assert hdp_result.arrival.length == 20 + len(b"my own bytes")
            assert hdp_result.arrival.intact
    """)
    result = _loopback(pytester, "--hdp-report", "r.json")
    result.assert_outcomes(passed=2)
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    marked = next(c for c in cases if c["payload"] == "hdp")
    assert (marked["tos"], marked["ttl"], marked["df"], marked["size"]) == (46 << 2 | 1, 9,
                                                                           True, 300)
    assert next(c for c in cases if c["payload"] == "raw")["data"] == b"my own bytes".hex()


# -- the listener -----------------------------------------------------------------------

@linux_raw
def test_hdp_listener_chooses_who_listens_like_the_cli(pytester):
    """The plugin had no --listener: a server without an agent read unreachable."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_heard(hdp_result):
            hdp_result.expect("delivered")
            assert not hdp_result.verdict.inferred

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp", listener="none",
                         timeout=0.3)
        def test_unheard(hdp_result):
            assert hdp_result.verdict.inferred and hdp_result.timeout == 0.3
    """)
    result = _loopback(pytester, "--hdp-listener", "child", "-v")
    result.assert_outcomes(passed=2)
    agents = next(line for line in result.stdout.lines if line.startswith("agents: "))
    assert "child" in agents
    bad = _loopback(pytester, "--hdp-listener", "telnet://x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_error(bad, "--hdp-listener: unknown agent 'telnet://x'")


@pytest.mark.parametrize(("args", "env", "needle"), [
    ([], {"HDP_LISTENER": "bogus"}, "HDP_LISTENER: unknown agent 'bogus'"),
    (["--hdp-pcap", "sometimes"], {}, "--hdp-pcap: invalid value 'sometimes'"),
])
def test_the_new_options_have_env_twins_checked_alike(pytester, monkeypatch, args, env,
                                                      needle):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_mine="def test_nothing(): pass\n")
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_error(result, needle)


# -- hand-written probes ------------------------------------------------------------------

@linux_raw
def test_wait_raises_a_probe_timeout_naming_what_it_awaited(pytester):
    """`listener.wait(case=1)["dscp"]` raised TypeError: 'NoneType' is not subscriptable."""
    pytester.makepyfile(test_mine="""
        import dataclasses
        import pytest
        from pytest_hdp import Arrival, ProbeTimeout

        def test_typed(hdp_sender, hdp_listener):
            listener = hdp_listener(253, family=4)
            arrival = listener.wait(hdp_sender.send(listener.address, 253, ecn=2))
            assert isinstance(arrival, Arrival) and arrival.ecn == 2
            with pytest.raises(dataclasses.FrozenInstanceError):
                arrival.ttl = 1

        def test_nothing_arrives(hdp_listener):
            hdp_listener(253, family=4).wait(case=777, timeout=0.2)
    """)
    result = _loopback(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ProbeTimeout: no arrival of probe case 777 at 127.0.0.1 "
                                 "(listener) within 0.2 s; listening on IPv4 protocols [[]253[]]*"])
    assert "TypeError" not in result.stdout.str()


@requires_lab
@linux_raw
def test_sender_and_listener_reach_lab_hosts(pytester):
    """They were local only."""
    pytester.makepyfile(test_mine="""
        def test_across_the_router(hdp_sender, hdp_listener):
            listener = hdp_listener(253, family=6, host="routed/server")
            sent = hdp_sender.send(listener.address, 253, ttl=10, host="client")
            arrival = listener.wait(sent)
            assert (arrival.src, arrival.ttl) == (sent.src, 9)
    """)
    _run(pytester, "--hdp-lab", "routed").assert_outcomes(passed=1)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="creating a network namespace needs root on Linux")
def test_sender_and_listener_reach_a_namespace(pytester):
    name = f"hdp-hands-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace (ip netns add)")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        pytester.makepyfile(test_mine=f"""
            def test_inside(hdp_sender, hdp_listener):
                listener = hdp_listener(253, family=4, host="netns://{name}")
                sent = hdp_sender.send(listener.address, 253, host="netns://{name}")
                assert listener.wait(sent).src == sent.src == "127.0.0.1"
        """)
        result = _loopback(pytester)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    result.assert_outcomes(passed=1)


@linux_raw
def test_sender_and_listener_reach_an_ssh_host(pytester, sshd, monkeypatch):  # noqa: F811
    """The "remote" host is this one, through an sshd of the test's own on 127.0.0.1."""
    port, key = sshd
    monkeypatch.setenv("HDP_SSH_OPTIONS", f"-i {key} -o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    monkeypatch.setenv("HDP_REMOTE_PYTHON", f"env PYTHONPATH={ROOT} {sys.executable}")
    host = f"ssh://root@127.0.0.1:{port}"
    pytester.makepyfile(test_mine=f"""
        def test_there(hdp_sender, hdp_listener):
            listener = hdp_listener(253, family=4, host="{host}")
            sent = hdp_sender.send("127.0.0.1", 253, dscp=10)
            assert listener.address == "127.0.0.1"
            assert listener.wait(sent, timeout=5).dscp == 10
    """)
    _loopback(pytester).assert_outcomes(passed=1)


# -- reruns, timeouts, evidence ------------------------------------------------------------

@linux_raw
def test_a_rerun_probes_again(pytester):
    """`pytest --reruns` re-read the cached result instead of probing again."""
    pytester.makepyfile(test_mine="""
        import pytest
        from pathlib import Path

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_flaky(hdp_result):
            stamps = Path("stamps.txt")
            with stamps.open("a") as log:
                log.write(f"{hdp_result.arrival.kernel_time_ns}\\n")
            assert len(stamps.read_text().split()) == 2, "fails the first time"
    """)
    result = _loopback(pytester, "--reruns", "1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    first, second = (pytester.path / "stamps.txt").read_text().split()
    assert int(second) > int(first)  # another probe, received later


@linux_raw
def test_a_failure_says_expected_and_observed_and_names_its_pcap(pytester):
    """There was no pcap of a failed case; the pcap holds the case's packets only."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols="252,253", families=4, payloads="hdp")
        def test_lost(hdp_result):
            if hdp_result.case.protocol == 253:
                hdp_result.expect("lost")

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_own_assert(hdp_result):
            assert hdp_result.outcome == "unreachable"
    """)
    result = _loopback(pytester, "--hdp-pcap", "failed", "--hdp-pcap-dir", "pcaps")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*CheckFailed: 127.0.0.1-ipv4-p253: expected lost, observed delivered; "
        "pcap: pcaps/test_mine.py__test_lost_127.0.0.1-ipv4-p253_.pcap",
        "*- hdp -*",  # a test's own assertion gets the evidence as a section
        "127.0.0.1-ipv4-p253: observed delivered, the profile expects delivered; "
        "pcap: pcaps/test_mine.py__test_own_assert_127.0.0.1-ipv4-p253_.pcap"])
    written = sorted(p.name for p in (pytester.path / "pcaps").iterdir())
    assert written == ["test_mine.py__test_lost_127.0.0.1-ipv4-p253_.pcap",
                       "test_mine.py__test_own_assert_127.0.0.1-ipv4-p253_.pcap"]
    for name in written:
        records = decode_pcap((pytester.path / "pcaps" / name).read_bytes())
        assert len(records) == 1  # the probe as it arrived, nothing else on loopback
        packet = ipv4.decode(records[0].data)
        found = find_tag(packet.payload)
        assert packet.header.protocol == 253 and found is not None and found[1].tag


@linux_raw
def test_the_expected_column_shows_what_the_test_asserted(pytester):
    """A test asserting protocol 47 is lost passed; its row said expected delivered."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=47, families=4, payloads="hdp")
        def test_lost(hdp_result):
            hdp_result.expect("lost")

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_own(hdp_result):
            assert hdp_result.outcome == "delivered"
    """)
    _loopback(pytester, "--hdp-report", "r.json").assert_outcomes(passed=1, failed=1)
    cases = {c["protocol"]: c for c in json.loads((pytester.path / "r.json").read_text())["cases"]}
    assert (cases[47]["expected"], cases[47]["outcome"], cases[47]["verdict"]) == (
        "lost", "delivered", "fail")
    # A test that asserted by itself held the case to nothing the report can name.
    assert (cases[253]["expected"], cases[253]["verdict"]) == (None, "pass")


# -- errors a user can act on --------------------------------------------------------------

def test_an_unresolvable_target_is_one_line(pytester):
    """It was a 45-line collection traceback."""
    pytester.makepyfile(test_mine="def test_path(hdp_result):\n    hdp_result.check()\n")
    result = _run(pytester, "--hdp-target", "no-such-host.invalid")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(result.stderr.str().strip().splitlines()) == 1
    _one_line_error(result, "--hdp-target: cannot resolve host 'no-such-host.invalid'")


@linux_raw
def test_a_failure_shows_the_test_not_the_plugin_and_a_short_repr(pytester):
    """Failures showed tracebacks into pytest_hdp/session.py and a very long repr."""
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_lost(hdp_result):
            hdp_result.expect("lost")
    """)
    result = _loopback(pytester)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "pytest_hdp/" not in output and "hdp/checks/" not in output, output
    result.stdout.fnmatch_lines(["hdp_result = <HdpResult 127.0.0.1-ipv4-p253: delivered "
                                 "(expected lost)>"])


@linux_raw
def test_our_own_failure_is_an_error_not_a_failure(pytester):
    pytester.makepyfile(test_mine="""
        import pytest
        from pytest_hdp import MachineryError

        @pytest.mark.hdp(protocols=253, families=4, payloads="hdp")
        def test_agent_died(hdp_result):
            raise MachineryError("the listener's agent exited")
    """)
    result = _loopback(pytester)
    result.assert_outcomes(errors=1)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="the lab this would build needs root on Linux")
def test_collect_only_builds_no_lab(pytester, tmp_path):
    """`pytest conformance --collect-only` as root built and removed a lab (38 ip calls)."""
    log = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "nft"):
        real = shutil.which(tool)
        if real is None:
            pytest.skip(f"needs {tool}: apt-get install -y iproute2 nftables")
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    pytester.makepyfile(test_mine="def test_path(hdp_result):\n    hdp_result.check()\n")
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{old_path}"
    try:
        for lab in ("auto", "routed"):
            result = _run(pytester, "--hdp-lab", lab, "--hdp-protocols", "253",
                          "--collect-only", "-q")
            assert "test_mine.py::test_path[routed/server-ipv4-p253]" in result.stdout.lines
    finally:
        os.environ["PATH"] = old_path
    assert not log.exists(), log.read_text()


@linux_raw
def test_a_profile_for_another_path_says_so_in_the_header_and_each_xfail(pytester):
    """An explicit profile recorded on one lab path silently XPASSed on another."""
    pytester.path.joinpath("routed.yaml").write_text(
        "profile: routed\napplies: {system: linux, path: routed}\nrules:\n"
        "  - {protocols: [0], expect: socket-error, errno: EPROTONOSUPPORT, "
        "why: refused for 0}\n")
    pytester.makepyfile(test_mine="def test_path(hdp_result):\n    hdp_result.check()\n")
    result = _loopback(pytester, "--hdp-protocols", "0,253", "--hdp-payload", "hdp",
                       "--hdp-family", "4", "--hdp-profile", "routed.yaml", "-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "hdp profile warning: routed.yaml applies to system linux, path routed, not to this "
        "run (linux *, path loopback); its xfails may not hold",
        "XFAIL test_mine.py::test_path[[]127.0.0.1-ipv4-p0[]] - refused for 0 "
        "[[]routed.yaml rule 1[]]; routed.yaml applies to system linux, path routed, not to "
        "this run*"])


# -- documentation ----------------------------------------------------------------------------

def test_help_names_each_value_and_its_default(pytester):
    """--help showed VALUE for every metavar and no defaults."""
    result = _run(pytester, "--help")
    text = re.sub(r"\s+", " ", result.stdout.str())
    assert "=VALUE" not in text
    for option in OPTIONS:
        assert f"--{option.name}={option.metavar}" in text
        if option.default is not None:
            assert f"(default: {option.default})" in text
        assert f"[env {option.env}, ini {option.dest}]" in text


def test_the_readme_table_lists_every_option():
    """--hdp-lab was missing from the README's option table."""
    readme = (ROOT / "README.md").read_text()
    for option in OPTIONS:
        assert f"| `--{option.name}` | `{option.dest}` / `{option.env}` |" in readme


def test_every_hdp_fixture_has_a_docstring(pytester):
    """hdp_observation and hdp_verdict had none."""
    pytester.makepyfile(test_mine="def test_nothing(): pass\n")
    result = _run(pytester, "--fixtures", "-v")
    lines = result.stdout.lines
    fixtures = [i for i, line in enumerate(lines) if re.match(r"hdp_\w+( \[.*\])? -- ", line)]
    names = {lines[i].split()[0] for i in fixtures}
    assert {"hdp_result", "hdp_observation", "hdp_verdict", "hdp_case", "hdp_session",
            "hdp_sender", "hdp_listener", "hdp_path", "hdp_check", "hdp_sysctl"} <= names
    for i in fixtures:
        assert lines[i + 1].startswith("    ") and "no docstring" not in lines[i + 1], \
            lines[i:i + 2]
