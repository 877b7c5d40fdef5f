"""The one rule (hdp.checks.rule), and that delivery cases and chapter checks both use it."""

from __future__ import annotations

import pytest

from hdp.case import Case, Delivery, Observation
from hdp.checks.chapter import BY_NAME
from hdp.checks.check import Check
from hdp.checks.delivery import judge_case
from hdp.checks.rule import Decision, decide
from hdp.profile import Expectation
from hdp.profile.model import CheckRule
from hdp.verdict import judge

# observed, baseline met, quirk met (None: no quirk recorded) -> decision
RULE = [
    ("delivered", True, None, Decision.PASS),
    ("lost", False, None, Decision.FAIL),
    ("socket-error", False, True, Decision.QUIRK),
    ("delivered", True, False, Decision.VANISHED),
    ("lost", False, False, Decision.FAIL),
    ("no-answer", False, None, Decision.INCONCLUSIVE),
    ("no-answer", False, False, Decision.INCONCLUSIVE),
    ("no-answer", False, True, Decision.QUIRK),  # a profile that expects no answer
    ("no-answer", True, None, Decision.PASS),  # a test that expects no answer itself
    ("error", False, None, Decision.ERROR),
    ("error", False, True, Decision.ERROR),
]


@pytest.mark.parametrize(("observed", "baseline", "quirk", "decision"), RULE)
def test_the_rule(observed, baseline, quirk, decision):
    assert decide(observed, baseline=baseline, quirk=quirk) is decision


CASE = Case("127.0.0.1", 4, 253)


def _delivered(**changes: object) -> Observation:
    fields = {"src": "127.0.0.1", "dst": "127.0.0.1", "wire_protocol": 253, "ttl": 64,
              "dscp": 0, "ecn": 0, "length": 96, "intact": True, **changes}
    return Observation(CASE, sent_bytes=96, sent_src="127.0.0.1",
                       deliveries=(Delivery(**fields),))


LOST = Observation(CASE, sent_bytes=96, sent_src="127.0.0.1")
QUIRK = Expectation("lost", rule="test.yaml rule 1", why="a firewall drops it")


@pytest.mark.parametrize(("observation", "expectation", "decision"), [
    (_delivered(), Expectation("delivered"), Decision.PASS),
    (LOST, Expectation("delivered"), Decision.FAIL),
    (LOST, QUIRK, Decision.QUIRK),
    (_delivered(), QUIRK, Decision.VANISHED),
    (_delivered(intact=False), QUIRK, Decision.FAIL),
])
def test_a_delivery_case_is_decided_by_the_rule(observation, expectation, decision):
    verdict = judge(observation)
    judgement = judge_case(CASE, observation, verdict, expectation)
    assert judgement.decision is decision
    quirk = None if expectation.outcome == "delivered" else \
        verdict.outcome.value == expectation.outcome
    assert decide(verdict.outcome.value, baseline=verdict.outcome.value == "delivered",
                  quirk=quirk) is decision


def test_a_failing_case_says_expected_and_observed_in_one_line():
    judgement = judge_case(CASE, LOST, judge(LOST), Expectation("delivered"))
    assert judgement.line == "127.0.0.1-ipv4-p253: expected delivered, observed lost"
    vanished = judge_case(CASE, _delivered(), judge(_delivered()), QUIRK)
    assert vanished.line == ("127.0.0.1-ipv4-p253: the quirk has gone: expected lost by "
                             "test.yaml rule 1, observed delivered; update the profile")


def test_a_tests_own_expectation_stands_alone():
    """A test that asserts `lost` passes on a loss, with or without a profile's quirk."""
    judgement = judge_case(CASE, LOST, judge(LOST), Expectation("lost"), asserted=True)
    assert judgement.decision is Decision.PASS
    judgement = judge_case(CASE, _delivered(), judge(_delivered()), Expectation("lost"),
                           asserted=True)
    assert judgement.decision is Decision.FAIL


def _check(rule: CheckRule | None) -> Check:
    return Check.of(BY_NAME["bind-same-address-twice"], "127.0.0.1", "loopback", 4, rule)


RULE_BOUND = CheckRule(1, "bind-same-address-twice", "bound", "shares ports")


@pytest.mark.parametrize(("rule", "answer", "decision"), [
    (None, "EADDRINUSE", Decision.PASS),
    (None, "bound", Decision.FAIL),
    (RULE_BOUND, "bound", Decision.QUIRK),
    (RULE_BOUND, "EADDRINUSE", Decision.VANISHED),
    (RULE_BOUND, "EACCES", Decision.FAIL),
])
def test_a_chapter_check_is_decided_by_the_same_rule(rule, answer, decision):
    check = _check(rule)
    assert check.judge(answer).decision is decision
    assert decide(answer, baseline=answer in (check.chapter or ()),
                  quirk=None if rule is None else answer == rule.expect) is decision


def test_reprs_are_one_short_line():
    assert repr(_check(None)) == ("<Check bind-same-address-twice on 127.0.0.1 IPv4: not yet "
                                  "observed>")
