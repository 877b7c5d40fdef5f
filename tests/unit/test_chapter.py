"""The chapter's statements, the profiles that answer them otherwise, and their report."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdp.checks.chapter import BY_NAME, STATEMENTS
from hdp.profile import ProfileError, load_profile, parse_profile
from hdp.report_checks import render_checks, sort_checks

UDP_PROFILES = Path(__file__).parents[2] / "conformance" / "profiles" / "udp"


def test_statements_have_unique_names_and_their_answers_include_the_expected():
    assert len(BY_NAME) == len(STATEMENTS)
    for statement in STATEMENTS:
        for family in (4, 6):
            expected = statement.expected(family)
            if expected is not None and statement.answers is not None:
                assert set(expected) <= set(statement.answers), statement.name


def test_checksum_zero_differs_by_family_as_the_chapter_says():
    assert BY_NAME["udp-checksum-zero"].expected(4) == ("delivered",)
    assert BY_NAME["udp-checksum-zero"].expected(6) == ("dropped",)


@pytest.mark.parametrize("path", sorted(UDP_PROFILES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_chapter_profiles_load_and_every_rule_has_a_reason(path):
    profile = load_profile(path)
    assert profile.checks and all(rule.why for rule in profile.checks)


def _parse(checks: str) -> object:
    return parse_profile(f"profile: t\napplies: {{system: linux}}\nchecks:\n{checks}", "t.yaml")


@pytest.mark.parametrize(("checks", "message"), [
    ("  - {check: udp-truncaton, expect: x, why: y}",
     "t.yaml:4: check 1: names no chapter statement 'udp-truncaton': did you mean "
     "'udp-truncation'?"),
    ("  - {check: udp-truncation, expect: kept, why: y}",
     "t.yaml:4: check 1: expect 'kept' is not an answer to udp-truncation: use one of "
     "truncated-flagged, truncated-silently, rest-in-next-read"),
    ("  - {check: udp-truncation, expect: truncated-silently}",
     "t.yaml:4: check 1: has no why"),
    ("  - {check: udp-truncation, expect: truncated-silently, why: y, famly: 4}",
     "t.yaml:4: unknown check key 'famly': did you mean 'family'?"),
    ("  - {check: udp-truncation, expect: truncated-silently, why: y}\n"
     "  - {check: udp-truncation, family: 4, expect: truncated-flagged, why: y}",
     "t.yaml:5: check 2 (udp-truncation) can never match: an earlier check covers it"),
    ("  oops", "t.yaml:4: checks is a string"),
])
def test_bad_check_rules_are_one_line_errors_naming_the_fix(checks, message):
    with pytest.raises(ProfileError) as caught:
        _parse(checks)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_free_answer_statement_takes_any_text():
    profile = _parse("  - {check: reassembly-timeout, expect: 15, why: a tuned host}")
    assert profile.checks[0].expect == "15"  # type: ignore[attr-defined]


def test_report_section_sorts_by_section_and_shows_the_reason_of_an_xfail():
    entries = [
        {"check": "udp-truncation", "section": "10.10.2", "target": "a", "family": 4,
         "chapter": ["truncated-flagged"], "observed": "truncated-flagged", "verdict": "pass"},
        {"check": "udp-checksum-zero", "section": "10.3, 10.5", "target": "a", "family": 6,
         "chapter": ["dropped"], "observed": "delivered", "verdict": "xfail",
         "why": "a | reason"},
    ]
    assert [e["check"] for e in sort_checks(entries)] == ["udp-checksum-zero",
                                                          "udp-truncation"]
    text = render_checks(entries)
    assert "| 10.3, 10.5 | udp-checksum-zero | a | 6 | dropped | delivered | xfail: a \\| " \
           "reason |" in text
    assert text.rstrip().endswith("Statements: 1 pass, 1 xfail")
    assert render_checks([]) == ""
