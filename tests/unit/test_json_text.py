"""hdp.json_text.indented writes exactly what json.dumps(indent=2, sort_keys=True) writes:
reports are compared byte for byte, between runs and between -n0 and -n2."""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.json_text import indented
from hdp.report import dumps


def reference(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False)


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


scalars = (st.none() | st.booleans() | st.integers() | st.text()
           | st.floats(allow_nan=False, allow_infinity=False))
keys = st.text() | st.integers() | st.booleans() | st.none() \
    | st.floats(allow_nan=False, allow_infinity=False)
documents = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=5) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(documents)
def test_any_json_document_is_written_as_json_dumps_writes_it(document):
    assert indented(document) == reference(document)


brackets = st.text(alphabet='{}[]",:\n\\ ab', max_size=6)
plain = scalars | brackets | st.just([]) | st.just({})
case_like = st.dictionaries(brackets, plain | st.lists(plain, max_size=2), max_size=5)


@settings(max_examples=500, deadline=None)
@given(st.lists(case_like, max_size=6), st.integers(0, 3))
def test_lists_of_flat_objects_like_a_reports_cases_are_written_alike(objects, depth):
    document: object = objects
    for _ in range(depth):
        document = {"cases": document}
    assert indented(document) == reference(document)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, scalars | st.lists(scalars, max_size=3), max_size=6))
def test_keys_of_every_type_json_allows_are_written_alike(document):
    try:
        expected = reference(document)
    except TypeError:  # keys of mixed types cannot be sorted: both refuse
        with pytest.raises(TypeError):
            indented(document)
        return
    assert indented(document) == expected


@pytest.mark.parametrize("value", [
    {}, [], {"a": {}}, {"a": []}, [[], {}], {"a": [{}]}, [[[]]], "é\u2028\"\\", -0.0, 1e300,
    {"colour": Colour.RED, "level": Level.HIGH, Colour.RED: 1}, {"t": (1, (2, 3))},
    {"cases": [{"icmp": None, "changes": ["payload"], "latency_us": 12.5}]},
    [{"a": "}"}, {"b": "{"}], [{"a": "},\n  {"}, {"b": []}], [{"a": {}}, {"b": 1}],
    [{"a": 1}, {}], [{}, {"a": 1}], [{"a": 1}, [1]], [{"a": "[]"}, {"b": ["x"]}],
    [{"a": "[]"}, {"b": {"c": 1}}], ({"a": 1}, {"b": 2}),
], ids=repr)
def test_edge_values(value):
    assert indented(value) == reference(value)


@pytest.mark.parametrize("value", [math.nan, {"a": [math.inf]}, {"a": {"b": -math.inf}},
                                   {math.nan: 1}])
def test_non_finite_numbers_are_refused_as_json_refuses_them(value):
    with pytest.raises(ValueError):
        reference(value)
    with pytest.raises(ValueError):
        indented(value)


@pytest.mark.parametrize("value", [{"a": object()}, [{1, 2}], {"a": [b"bytes"]},
                                   {(1, 2): "tuple key"}])
def test_values_json_cannot_write_are_refused_alike(value):
    with pytest.raises(TypeError):
        reference(value)
    with pytest.raises(TypeError):
        indented(value)


def test_a_report_ends_with_one_newline():
    report = {"schema": "hdp-report/1", "cases": [{"target": "::1", "changes": []}]}
    assert dumps(report) == reference(report) + "\n"
