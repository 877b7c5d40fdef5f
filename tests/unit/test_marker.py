"""`@pytest.mark.hdp(...)`: every key validated, ints, ranges and lists taken, mistakes named."""

from __future__ import annotations

import pytest

from pytest_hdp.marker import CheckMark, HdpMark, keys
from pytest_hdp.settings import HdpUsageError

WHERE = "test_x.py::test_y"


def _parse(**kwargs: object) -> HdpMark:
    return HdpMark.parse(pytest.mark.hdp(**kwargs).mark, WHERE)


@pytest.mark.parametrize(("value", "protocols"), [
    (253, (253,)),
    ("253", (253,)),
    ("250-253", (250, 251, 252, 253)),
    ("1,6,17", (1, 6, 17)),
    ([1, 6, 17], (1, 6, 17)),
    ([250, "252-253"], (250, 252, 253)),
    (range(3), (0, 1, 2)),
])
def test_protocols_take_ints_ranges_and_lists(value, protocols):
    assert _parse(protocols=value).protocols == protocols


@pytest.mark.parametrize(("key", "value", "parsed"), [
    ("families", 4, (4,)), ("families", [4, 6], (4, 6)), ("families", "6", (6,)),
    ("payloads", "udp", ("udp",)), ("payloads", ["hdp", "raw"], ("hdp", "raw")),
    ("targets", "routed/server", ("routed/server",)), ("paths", ["loopback"], ("loopback",)),
    ("data", b"hi", b"hi"), ("size", 0, 0), ("dscp", 46, 46), ("ecn", 3, 3),
    ("df", False, False), ("ttl", 1, 1), ("listener", "none", "none"),
    ("listener", "netns:x", "netns:x"), ("timeout", 0.25, 0.25),
])
def test_each_key_takes_what_its_help_says(key, value, parsed):
    assert getattr(_parse(**{key: value}), key) == parsed


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"protocol": "253"}, "has no key 'protocol': did you mean 'protocols'?"),
    ({"family": 4}, "has no key 'family': did you mean 'families'?"),
    ({"payload": "hdp"}, "has no key 'payload': did you mean 'payloads'?"),
    ({"flavour": "red"}, "has no key 'flavour': give one of protocols, families"),
    ({"protocols": 70000}, "protocols=...): protocol number 70000 is out of range"),
    ({"protocols": 2.5}, "protocols=...): give a number, a 'SPEC'"),
    ({"protocols": True}, "protocols=...): give a number"),
    ({"families": 5}, "families=...): give 4, 6 or [4, 6], not 5"),
    ({"payloads": "tcp"}, "payloads=...): unknown payload 'tcp'"),
    ({"dscp": 64}, "dscp=...): give a whole number 0..63, not 64"),
    ({"ttl": 0}, "ttl=...): give a whole number 1..255, not 0"),
    ({"df": 1}, "df=...): give True (set DF) or False (clear it), not 1"),
    ({"data": "text"}, "data=...): give bytes, e.g. b'hello', not str"),
    ({"listener": "telnet://x"}, "listener=...): unknown agent 'telnet://x'"),
    ({"timeout": 0}, "timeout=...): give seconds, 0 < s <= 3600, not 0"),
    ({"data": b"abc", "size": 10}, "size=10 but data= is 3 bytes"),
])
def test_a_mistake_is_one_usage_error_naming_the_key(kwargs, message):
    with pytest.raises(HdpUsageError) as raised:
        _parse(**kwargs)
    text = str(raised.value)
    assert text.startswith(f"{WHERE}: @pytest.mark.hdp") and message in text, text
    assert "\n" not in text
    assert isinstance(raised.value, pytest.UsageError)


def test_positional_arguments_are_refused():
    with pytest.raises(HdpUsageError, match="takes keywords only"):
        HdpMark.parse(pytest.mark.hdp(253).mark, WHERE)


def test_tos_combines_dscp_and_ecn():
    assert _parse(dscp=46, ecn=1).tos == 46 << 2 | 1
    assert _parse().tos is None


def test_every_key_has_help():
    assert all(field.metadata["help"] for field in keys())


def test_check_marker_names_a_statement_with_the_closest_one():
    statements = ["bind-same-address-twice", "udp-checksum-zero"]
    with pytest.raises(HdpUsageError, match="did you mean 'bind-same-address-twice'"):
        CheckMark.parse(pytest.mark.hdp_check("bind-same-adress-twice").mark, WHERE,
                        statements)
    with pytest.raises(HdpUsageError, match="has no key 'family': give families="):
        CheckMark.parse(pytest.mark.hdp_check("udp-checksum-zero", family=4).mark, WHERE,
                        statements)
    mark = CheckMark.parse(pytest.mark.hdp_check("udp-checksum-zero", families=[6]).mark,
                           WHERE, statements)
    assert (mark.name, mark.families) == ("udp-checksum-zero", (6,))
