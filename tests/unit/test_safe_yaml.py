"""The one YAML loader of profiles and topologies: bounded, strict about keys, and worded
the same with or without libyaml."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp import safe_yaml
from hdp.describe import short, short_json
from hdp.safe_yaml import YamlError


def laughs(levels: int, width: int = 9) -> str:
    """The billion-laughs document: `levels` anchors, each `width` aliases of the one before."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


BAD = [
    pytest.param(laughs(9), "expands to more than 100,000 values", 6, id="billion-laughs"),
    pytest.param("a: &a [1, 2]\n" + "".join(f"b{n}: *a\n" for n in range(101)),
                 "uses more than 100 aliases", 102, id="many-aliases"),
    pytest.param("a: &a [1, *a]\n", "alias *a refers to a collection that contains it", 1,
                 id="recursive-alias"),
    pytest.param(nested(33), "nested more than 32 levels deep", 1, id="deep"),
    pytest.param(nested(100_000), "nested more than 32 levels deep", 1, id="very-deep"),
    pytest.param("a: 1\nb: 2\na: 3\n", "'a' appears twice in one mapping (first at line 1)",
                 3, id="duplicate-key"),
    pytest.param("x:\n  - {k: 1, 'k': 2}\n", "'k' appears twice", 2, id="duplicate-quoted"),
    pytest.param("a: b: c\n", "not valid YAML: mapping values are not allowed here", 1,
                 id="syntax"),
    pytest.param("a: [1, 2\n", "not valid YAML: expected ',' or ']'", 2, id="unclosed"),
    pytest.param("x: 1\n\tb: 2\n", "found character '\\t' that cannot start any token", 2,
                 id="tab"),
    pytest.param("a: *nope\n", "found undefined alias 'nope'", 1, id="undefined-alias"),
    pytest.param("a: 1\n---\nb: 2\n", "expected a single document", 2, id="two-documents"),
    pytest.param("a: !!python/object:os.system x\n", "could not determine a constructor", 1,
                 id="python-tag"),
    pytest.param("? [a]\n: 1\n", "found unhashable key", 1, id="unhashable-key"),
    pytest.param("a: " + "9" * 5000 + "\n", "a value cannot be read", None, id="huge-int"),
    pytest.param("a: \x07\n", "not valid YAML: special characters are not allowed", None,
                 id="control-character"),
]


@pytest.mark.parametrize(("text", "problem", "line"), BAD)
def test_a_bad_document_is_one_short_line_naming_the_line(text: str, problem: str,
                                                           line: int | None) -> None:
    started = time.monotonic()
    with pytest.raises(YamlError) as raised:
        safe_yaml.load(text, "doc.yaml")
    message = str(raised.value)
    assert problem in message
    assert raised.value.line == line
    assert message.startswith("doc.yaml:" if line is None else f"doc.yaml:{line}: ")
    assert "\n" not in message and len(message) < 300, message
    assert time.monotonic() - started < 5, "a bound that takes this long is no bound"


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                    reason="PyYAML without libyaml: nothing to compare with")
@pytest.mark.parametrize(("text", "problem", "line"), BAD)
def test_the_message_is_the_same_with_and_without_libyaml(
        monkeypatch: pytest.MonkeyPatch, text: str, problem: str, line: int | None) -> None:
    assert safe_yaml.FAST is yaml.CSafeLoader, "libyaml is there: it must parse"
    with pytest.raises(YamlError) as fast:
        safe_yaml.load(text, "doc.yaml")
    monkeypatch.setattr(safe_yaml, "FAST", safe_yaml.PURE)
    with pytest.raises(YamlError) as pure:
        safe_yaml.load(text, "doc.yaml")
    assert str(fast.value) == str(pure.value)


def test_what_the_projects_files_use_loads() -> None:
    text = ("base: &base {family: 4, why: shared}\n"
            "rules:\n  - {<<: *base, protocols: [1, 2]}\n  - {<<: *base, protocols: [3]}\n"
            "text: |\n  table ip x {\n  }\n")
    document = safe_yaml.load(text, "ok.yaml")
    assert document.data["rules"][1] == {"family": 4, "why": "shared", "protocols": [3]}
    rules = next(value for key, value in document.root.value if key.value == "rules")
    assert [safe_yaml.line_of(node) for node in rules.value] == [3, 4]


def test_an_anchor_used_within_the_bounds_loads() -> None:
    assert len(safe_yaml.load(laughs(4, 9), "ok.yaml").data["l3"]) == 9


def test_files_are_read_only_up_to_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * safe_yaml.MAX_BYTES + "\n")
    for path in (big, Path("/dev/zero")):
        with pytest.raises(YamlError, match=r": is larger than 1 MiB: split it"):
            safe_yaml.load_file(path)
    with pytest.raises(YamlError, match=r"^text: is larger than 1 MiB"):
        safe_yaml.load("a: " + "é" * (safe_yaml.MAX_BYTES // 2), "text")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match=r"missing\.yaml: cannot be read \(No such file"):
        safe_yaml.load_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    with pytest.raises(YamlError, match=r"latin1\.yaml: is not UTF-8 text"):
        safe_yaml.load_file(tmp_path / "latin1.yaml")
    with pytest.raises(YamlError, match=r"cannot be read \(Is a directory\)"):
        safe_yaml.load_file(tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n\t ,?012.~%@`")),
               max_size=200))
def test_any_text_loads_or_is_one_yaml_error(text: str) -> None:
    try:
        safe_yaml.load(text, "fuzz.yaml")
    except YamlError as error:
        assert "\n" not in str(error) and len(str(error)) < 400


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_are_one_yaml_error(tmp_path_factory: pytest.TempPathFactory,
                                              data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "bytes.yaml"
    path.write_bytes(data)
    try:
        safe_yaml.load_file(path)
    except YamlError as error:
        assert "\n" not in str(error)


# --- naming values in messages -----------------------------------------------------------

def _bomb() -> list[object]:
    value: list[object] = ["lol"] * 9
    for _ in range(9):
        value = [value] * 9  # 9**10 strings, shared: cheap to hold, ruinous to print
    return value


@pytest.mark.parametrize("render", [short, short_json])
def test_a_value_is_named_by_a_short_prefix_whatever_its_size(render) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    for value in (_bomb(), "x" * 10_000_000, list(range(1_000_000)), 10 ** 5000,
                  {str(n): n for n in range(100_000)}):
        text = render(value)
        assert len(text) <= 40 and "\n" not in text, text
    assert time.monotonic() - started < 5
    recursive: list[object] = [1]
    recursive.append(recursive)
    assert len(render(recursive)) <= 40


def test_short_values_are_shown_whole() -> None:
    assert short("linux") == "'linux'" and short("two\nlines", quote=False) == "two lines"
    assert short_json("linux") == '"linux"' and short_json([None, True]) == "[null, true]"
    assert short(2 ** 80) == short_json(2 ** 80) == str(2 ** 80)
