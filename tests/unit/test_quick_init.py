"""hdp.quick_init: each class that uses it builds the object that the __init__ dataclasses
writes would build, takes the same parameters, and stays frozen."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from hdp.accounting import Probe
from hdp.case import Case, Delivery, IcmpReport, Observation
from hdp.quick_init import quick_init
from hdp.report import CaseResult
from hdp.verdict import Outcome, Verdict

CASE = Case("127.0.0.1", 4, 253)
DELIVERY = Delivery("127.0.0.1", "127.0.0.1", 253, 64, 0, 0, 96, True, 5, 1.5, (0,), "2-3")
OBSERVATION = Observation(CASE, sent_bytes=96, deliveries=(DELIVERY,))
VERDICT = Verdict(Outcome.DELIVERED, latency_us=1.5)

# Each class with the values of every field, none left at its default.
EXAMPLES: dict[type, tuple[Any, ...]] = {
    Case: ("::1", 6, 17, "udp", 8, "lab", True, 4, 3, "ff00", 10, 100.0),
    Delivery: ("10.0.0.1", None, 17, None, 1, 2, 40, False, 7, None, (0, 8), None),
    IcmpReport: (4, 3, 3, "10.0.0.1", 1400, 17),
    Observation: (CASE, "EPERM", "EACCES", "EBUSY", 96, "127.0.0.1", "127.0.0.2", 3, 4, 1,
                  (DELIVERY,), (IcmpReport(4, 3, 2, None),), False, False, "queue", "note",
                  None),
    Verdict: tuple(getattr(VERDICT, f.name) for f in dataclasses.fields(Verdict)),
    CaseResult: (CASE, OBSERVATION, VERDICT, "delivered", "pass", "nat/client1"),
    Probe: ("inprocess 4/253", True, False),
}


def twin(cls: type) -> type:
    """The same fields, with the __init__ dataclasses writes."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default))
              for f in dataclasses.fields(cls)]
    namespace = {"__post_init__": cls.__post_init__} if hasattr(cls, "__post_init__") else {}
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, namespace=namespace)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_same_parameters_and_the_same_object(cls):
    reference = twin(cls)
    assert [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()] \
        == [(p.name, p.default, p.kind)
            for p in inspect.signature(reference).parameters.values()]
    values = EXAMPLES[cls]
    assert len(values) == len(dataclasses.fields(cls))
    built, expected = cls(*values), reference(*values)
    assert list(vars(built).items()) == list(vars(expected).items())
    by_name = cls(**{f.name: v for f, v in zip(dataclasses.fields(cls), values, strict=True)})
    assert by_name == built and hash(by_name) == hash(built)
    required = [p for p in inspect.signature(cls).parameters.values()
                if p.default is inspect.Parameter.empty]
    least = values[:len(required)]
    assert list(vars(cls(*least)).items()) == list(vars(reference(*least)).items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.note = "changed"  # type: ignore[misc]


def test_post_init_still_checks():
    with pytest.raises(ValueError, match="arrived"):
        CaseResult(CASE, OBSERVATION, VERDICT, expected="arrived")
    with pytest.raises(TypeError):
        Case("127.0.0.1", 4)  # type: ignore[call-arg]


def test_refuses_what_it_cannot_build():
    @dataclasses.dataclass
    class Open:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    for cls in (Open, Factory, int):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)
