"""`hdp_path` and `hdp_check` as users meet them: the chapter's answer, a profile's, neither."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import RAW_FIX, RAW_V4

pytestmark = pytest.mark.skipif(not (RAW_V4 and sys.platform.startswith("linux")),
                                reason=RAW_FIX + " (on Linux)")

# Linux refuses a second endpoint on the same address and port, as the chapter says; it
# lets two different specific addresses share a port, which the chapter says it must not.
SUITE = """
import pytest

@pytest.mark.hdp_check("bind-same-address-twice", families=[4])
def test_same(hdp_path, hdp_check):
    first = hdp_path.receiver.open_udp(4, bind=hdp_path.dst, port=0)
    second = hdp_path.receiver.open_udp(4, bind=hdp_path.dst, port=first.port)
    hdp_path.receiver.close(first.handle, second.handle)
    hdp_check.observe("bound" if second.ok else second.errno)

@pytest.mark.hdp_check("bind-shared-port-needs-reuseaddr", families=[4])
def test_shared(hdp_path, hdp_check):
    first = hdp_path.receiver.open_udp(4, bind="127.0.0.1", port=0)
    second = hdp_path.receiver.open_udp(4, bind="127.0.0.2", port=first.port)
    hdp_path.receiver.close(first.handle, second.handle)
    hdp_check.observe("bound" if second.ok else second.errno)
"""

RULE = """profile: test
applies: {{system: linux}}
checks:
  - {{check: {check}, expect: {expect}, why: "{why}"}}
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "--hdp-lab", "none",
                                         "--hdp-target", "127.0.0.1", "-rxX", *args)


def _profile(pytester: pytest.Pytester, check: str, expect: str, why: str) -> None:
    folder = pytester.path / "conformance" / "profiles" / "udp"
    folder.mkdir(parents=True)
    (folder / "linux.yaml").write_text(RULE.format(check=check, expect=expect, why=why))


def test_chapter_answer_passes_and_a_difference_fails_naming_both(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    result = _run(pytester, "--hdp-profile", "none")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bind-shared-port-needs-reuseaddr on 127.0.0.1 IPv4: "
                                 "chapter 10.11.3 expects EADDRINUSE, observed bound*"])


def test_the_shipped_profile_explains_a_difference_without_a_folder_of_ones_own(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    result = _run(pytester)
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*test_shared*inet_csk/udp_lib_lport_inuse*"])


def test_a_folder_beside_the_tests_overrides_the_shipped_profile(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    folder = pytester.path / "profiles" / "udp"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("profile: mine\napplies: {system: linux}\nchecks: []\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)


def test_profile_answer_xfails_with_its_reason_and_lands_in_the_report(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    _profile(pytester, "bind-shared-port-needs-reuseaddr", "bound", "distinct addresses")
    result = _run(pytester, "--hdp-report", "out.json")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*test_shared*distinct addresses*"])
    checks = json.loads((pytester.path / "out.json").read_text())["checks"]
    assert [(c["check"], c["observed"], c["verdict"]) for c in checks] == [
        ("bind-shared-port-needs-reuseaddr", "bound", "xfail"),
        ("bind-same-address-twice", "EADDRINUSE", "pass")]


def test_a_profile_quirk_that_is_gone_fails_the_run(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    _profile(pytester, "bind-same-address-twice", "bound", "an imagined quirk")
    result = _run(pytester, "-k", "test_same")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_same*", "*the quirk has gone: the profile's rule (an "
                                 "imagined quirk) expects bound, observed EADDRINUSE*update "
                                 "the profile*"])


def test_a_bad_check_profile_is_a_usage_error_naming_file_and_fix(pytester):
    pytester.makepyfile(test_chapter=SUITE)
    _profile(pytester, "bind-same-adress-twice", "bound", "typo")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*linux.yaml:4: check 1: names no chapter statement "
                                 "'bind-same-adress-twice': did you mean "
                                 "'bind-same-address-twice'?*"])
    assert "Traceback" not in result.stderr.str()
