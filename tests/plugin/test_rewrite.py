"""pytest rewrites the asserts of test modules, not the library's: hdp and pytest_hdp load
as Python loads them, so a run where pytest cannot cache rewritten bytecode (a read-only
install, PYTHONDONTWRITEBYTECODE) does not compile the whole library again."""

from __future__ import annotations

from pathlib import Path

import hdp

SUITE = """
import sys

import hdp.engine
import pytest_hdp.session


def loader(name):
    return type(sys.modules[name].__spec__.loader).__name__


def test_loaders():
    assert loader(__name__) == "AssertionRewritingHook"  # a test module: rewritten
    assert loader("hdp.engine") != "AssertionRewritingHook"
    assert loader("pytest_hdp.session") != "AssertionRewritingHook"
"""


def test_the_library_is_not_rewritten_by_pytest(pytester, monkeypatch):
    # On sys.path, as an installed (not editable) package is: pytest's import hook finds
    # only modules on the path, so an editable install's finder would hide the rewriting.
    monkeypatch.setenv("PYTHONPATH", str(Path(hdp.__file__).parent.parent))
    pytester.makepyfile(test_loaders=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--hdp-lab", "none")
    result.assert_outcomes(passed=1)
