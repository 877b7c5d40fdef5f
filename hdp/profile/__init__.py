"""Quirk profiles: the outcome a platform/path is expected to give each case, as YAML (pure).

The package splits one job four ways: the data model (model), reading and validating
files (parse), choosing a profile and its expectation for a case (choose), and
recording what a run observed (record).
"""

from hdp.profile.choose import (
    applies_to,
    describe_expected,
    describe_mismatch,
    describe_observed,
    expect,
    satisfied,
    select_profile,
)
from hdp.profile.model import (
    APPLIES_KEYS,
    CHANGES,
    ERRNO_OUTCOMES,
    FAMILIES,
    OUTCOMES,
    PAYLOADS,
    RULE_KEYS,
    TOP_KEYS,
    WIRE_OUTCOMES,
    Expectation,
    Profile,
    ProfileError,
    Rule,
)
from hdp.profile.parse import load_profile, parse_profile
from hdp.profile.record import dump_profile, record_profile, record_report

__all__ = [
    "APPLIES_KEYS", "CHANGES", "ERRNO_OUTCOMES", "FAMILIES", "OUTCOMES", "PAYLOADS",
    "RULE_KEYS", "TOP_KEYS", "WIRE_OUTCOMES", "Expectation", "Profile", "ProfileError", "Rule",
    "applies_to", "describe_expected", "describe_mismatch", "describe_observed",
    "dump_profile", "expect", "load_profile", "parse_profile", "record_profile",
    "record_report", "satisfied", "select_profile",
]
