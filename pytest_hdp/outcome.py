"""The one rule's decisions in pytest's terms: hdp.checks.rule decides, this module only
says what pytest makes of each decision, for delivery cases and chapter checks alike.

| decision       | pytest                                                        |
| -------------- | ------------------------------------------------------------- |
| `pass`         | the test goes on (and passes unless it asserts more)          |
| `xfail`        | `pytest.xfail(reason)`: XFAIL with the profile's reason       |
| `xpass`        | `QuirkGone`, an AssertionError: FAILED, "the quirk has gone"  |
| `fail`         | `CheckFailed`, an AssertionError: FAILED, expected vs observed |
| `inconclusive` | `pytest.skip("inconclusive: ...")`: never a conformance failure |
| `error`        | `MachineryError`: reported as ERROR, never as a result          |

The xfail is raised from inside the test, not marked on it at collection: a test that
asserts its own expectation (`hdp_result.expect("lost")`) is held to that alone, so no
profile's mark may turn its pass into an XPASS.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from hdp.checks.rule import ERROR, Decision, Judgement

__all__ = ["ERROR", "CheckFailed", "MachineryError", "NotHere", "QuirkGone", "enforce", "label"]


class CheckFailed(AssertionError):
    """A check whose observation is neither its expectation nor a known quirk."""


class QuirkGone(CheckFailed):
    """The profile's quirk was not observed: the expected answer came instead."""


class NotHere(Exception):
    """The test cannot run here (no raw sockets, no agent at the receiving end, an OS
    without the capability): it skips, and the reason says how to fix that."""


class MachineryError(Exception):
    """Our own machinery failed (an agent died, the lab is not up, a queue overflowed):
    reported as a pytest ERROR, never as the path's conformance result."""


def enforce(judgement: Judgement) -> None:
    """Do in pytest what `judgement` decided; returns only on `pass`."""
    __tracebackhide__ = True
    decision = judgement.decision
    if decision is Decision.PASS:
        return
    if decision is Decision.QUIRK:
        pytest.xfail(judgement.line)
    if decision is Decision.INCONCLUSIVE:
        pytest.skip(judgement.line)
    if decision is Decision.ERROR:
        raise MachineryError(judgement.line)
    _fail(judgement)


def _fail(judgement: Judgement) -> NoReturn:
    __tracebackhide__ = True
    if judgement.decision is Decision.VANISHED:
        raise QuirkGone(judgement.line)
    raise CheckFailed(judgement.line)


def label(judgement: Judgement | None, report: pytest.TestReport) -> str | None:
    """The report's verdict for a test's case or check: its judgement's, unless the test
    failed after it (an assertion of its own); None for a test that said nothing."""
    if report.skipped and not hasattr(report, "wasxfail"):
        inconclusive = judgement is not None and judgement.decision is Decision.INCONCLUSIVE
        return "inconclusive" if inconclusive else None
    if getattr(report, "hdp_error", False) or (report.failed and report.when != "call"):
        return ERROR
    if judgement is not None and not (report.failed and judgement.passed):
        return judgement.decision.value
    if report.passed:
        return "pass"
    return "xfail" if hasattr(report, "wasxfail") else "fail"
