from __future__ import annotations

import pytest

from hdp.errors import UsageError
from hdp.selection import fold_ranges, parse_protocols, protocol_set


@pytest.mark.parametrize(("spec", "expected"), [
    ("253", [253]),
    ("0-3", [0, 1, 2, 3]),
    ("1,6,17,253-255", [1, 6, 17, 253, 254, 255]),
    ("-1-2", [-1, 0, 1, 2]),
    ("-1", [-1]),
    ("6,6,1-2,2", [6, 1, 2]),
    (" 1 , 3 - 4 ", [1, 3, 4]),
    ("255-300", list(range(255, 301))),
])
def test_parse_protocols(spec, expected):
    assert parse_protocols(spec) == expected
    assert protocol_set(spec) == frozenset(expected)  # what a profile rule holds


@pytest.mark.parametrize(("spec", "message"), [
    ("abc", "invalid protocol selection 'abc'"),
    ("", "invalid protocol selection"),
    ("1,,2", "invalid protocol selection"),
    ("5-1", "the start exceeds the end"),
    ("70000", "protocol number 70000 is out of range"),
    ("-2", "protocol number -2 is out of range"),
    ("0-65536", "protocol number 65536 is out of range"),
])
def test_parse_protocols_rejects_with_the_fix(spec, message):
    with pytest.raises(UsageError, match=message) as caught:
        parse_protocols(spec)
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError) as as_set:
        protocol_set(spec)
    assert str(as_set.value) == str(caught.value)


@pytest.mark.parametrize(("numbers", "spec"), [
    ([], ""),
    ([5], "5"),
    ([1, 2, 3, 6], "1-3,6"),
    ([9, 8, -1, 0, 1, 1], "-1-1,8-9"),
    (list(range(256)), "0-255"),
])
def test_fold_ranges(numbers, spec):
    assert fold_ranges(numbers) == spec


def test_fold_then_parse_round_trips():
    numbers = [-1, 0, 1, 2, 50, 51, 253, 254, 255, 256, 300]
    assert parse_protocols(fold_ranges(numbers)) == sorted(numbers)
