"""The README's "Writing path tests" examples pass as written, on loopback and across the
routed lab (and from the installed wheel: tests/packaging/test_wheel.py)."""

from __future__ import annotations

import re
import sys

import pytest

from tests.conftest import RAW_FIX, RAW_V4
from tests.lab.conftest import requires_lab
from tests.plugin.readme import examples

pytestmark = pytest.mark.skipif(not (RAW_V4 and sys.platform.startswith("linux")),
                                reason=RAW_FIX + " (the examples' outcomes are Linux's)")


def test_the_section_has_examples_of_every_fixture_and_the_marker():
    text = "\n".join(examples().values())
    for name in ("hdp_result", "hdp_sender", "hdp_listener", "@pytest.mark.hdp(",
                 ".check()", ".expect(", "ProbeTimeout", "count=", "hdp_result.stats"):
        assert name in text, f"the README's examples never use {name}"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    for name, source in examples().items():
        pytester.path.joinpath(name).write_text(source, encoding="utf-8")
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider",
                                         "-rfEs", *args)


def _assert_green(result: pytest.RunResult) -> None:
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert outcomes.get("passed", 0) >= len(examples()), outcomes
    assert not (outcomes.get("failed") or outcomes.get("errors") or outcomes.get("skipped"))
    assert not re.search(r"\bSKIPPED\b", result.stdout.str())


def test_the_examples_pass_on_loopback(pytester):
    _assert_green(_run(pytester, "--hdp-lab", "none"))


@requires_lab
def test_the_examples_pass_across_the_routed_lab(pytester):
    result = _run(pytester, "--hdp-lab", "routed")
    _assert_green(result)
    result.stdout.fnmatch_lines(["*lab: routed*"])
