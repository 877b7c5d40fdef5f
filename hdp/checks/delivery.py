"""A probed case held to an expectation, by the one rule of hdp.checks.rule (pure).

Two expectations can hold a case: its profile's (`delivered` unless a rule explains a
quirk of the platform or path), or the one a test asserts itself, which stands alone: a
test that says "protocol 47 is lost here" passes when it is lost, whatever a profile says.
"""

from __future__ import annotations

from hdp.case import Case, Observation
from hdp.checks.rule import Decision, Judgement, decide
from hdp.profile import (
    Expectation,
    describe_expected,
    describe_observed,
    satisfied,
)
from hdp.verdict import Outcome, Verdict

DELIVERED = Outcome.DELIVERED.value


def judge_case(case: Case, observation: Observation, verdict: Verdict,
               expectation: Expectation, *, asserted: bool = False,
               caveat: str | None = None) -> Judgement:
    """The decision for `case`. `asserted`: `expectation` is the test's own, not a
    profile's; `caveat` is said with every xfail and every failure the profile decides
    (e.g. that the profile was recorded for another platform or path than this run's)."""
    met = satisfied(expectation, verdict)
    quirk: bool | None = None
    baseline = met
    if not asserted and expectation.outcome != DELIVERED:
        quirk, baseline = met, verdict.outcome is Outcome.DELIVERED
    observed = verdict.outcome.value
    decision = decide(observed, baseline=baseline, quirk=quirk)
    expected_text = describe_expected(expectation)
    observed_text = describe_observed(expectation, verdict)
    note = f" ({observation.note})" if observation.note else ""
    if decision is Decision.QUIRK:
        where = f" [{expectation.rule}]" if expectation.rule else ""
        line = f"{expectation.why or 'known quirk'}{where}"
        if caveat:
            line += f"; {caveat}"
    elif decision is Decision.VANISHED:
        line = (f"{case.id}: the quirk has gone: expected {expected_text}, observed "
                f"{observed_text}; update the profile")
    elif decision is Decision.INCONCLUSIVE:
        line = f"inconclusive: {case.id}: {observed}{note}"
    elif decision is Decision.ERROR:
        line = f"{case.id}: our own machinery failed{note}"
    elif decision is Decision.PASS:
        line = f"{case.id}: {observed_text}, as expected"
    else:
        line = f"{case.id}: expected {expected_text}, observed {observed_text}{note}"
    if caveat and not asserted and decision in (Decision.VANISHED, Decision.FAIL):
        line += f"; {caveat}"
    return Judgement(decision, expected_text, observed_text, line)
