"""YAML from users, loaded with bounds: the one loader of quirk profiles and lab topologies.

PyYAML's safe loader builds no objects from tags, but it has no other limit: a 50-line
alias bomb (billion laughs) is cheap to construct and costs gigabytes to walk or print,
deep nesting ends in RecursionError, and a key given twice silently keeps the last value.
Here a document is first read as a stream of parser events, without composing anything,
and refused when it is too large, too deep, uses too many aliases, or would expand into too
many nodes through them; only then is it composed (keeping line numbers for messages),
checked for duplicate keys, and constructed.

libyaml (CSafeLoader) parses when PyYAML was built with it. Its error texts differ from
the pure-Python parser's, so a document libyaml refuses is parsed again by the pure-Python
parser for the message: the same file gives the same message with or without libyaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp import inputs
from hdp.describe import one_line, short
from hdp.errors import HdpError

MAX_BYTES = inputs.MIB
MAX_DEPTH = 32  # nested collections; the project's files use fewer than 6
MAX_ALIASES = 100
MAX_NODES = 100_000  # scalars and collections, every alias counted at its full size

PURE: type[yaml.SafeLoader] = yaml.SafeLoader
FAST: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(HdpError):
    """A YAML file that cannot be used; one line naming the file, the line and the problem."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source, self.problem, self.line = source, problem, line
        where = source if line is None else f"{source}:{line}"
        super().__init__(one_line(f"{where}: {problem}"))


@dataclass(frozen=True)
class Document:
    """A loaded document: the data, and the composed nodes that say where each part is."""

    data: Any
    root: Any  # yaml.Node, or None for an empty document


def line_of(node: Any) -> int | None:
    """The 1-based line a node starts on; None for no node."""
    mark = getattr(node, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


def load_file(path: str | Path) -> Document:
    """Read (at most MAX_BYTES) and load `path`; every problem is one YamlError."""
    return load(read_text(path), str(path))


def read_text(path: str | Path) -> str:
    """The text of `path`, read only up to MAX_BYTES; every problem is one YamlError."""
    source = one_line(str(path))
    try:
        raw = inputs.read_file(path, MAX_BYTES)
    except inputs.TooLarge as error:
        raise YamlError(source, f"{error}: split it, or trim it to what it needs") from None
    except OSError as error:
        raise YamlError(source, f"cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlError(source, f"is not UTF-8 text ({error.reason} at byte "
                                f"{error.start})") from None
    return text


def load(text: str, source: str) -> Document:
    """Load one YAML document from `text`; `source` names it in messages."""
    source = one_line(source)
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(source, f"is larger than {inputs.size_text(MAX_BYTES)}: split it, or "
                                "trim it to what it needs")
    try:
        return _load(FAST, text, source)
    except yaml.YAMLError as error:
        if FAST is PURE:
            raise _syntax_error(error, source) from None
        fast_error = error
    try:  # libyaml refused it: the pure-Python parser words the message
        return _load(PURE, text, source)
    except yaml.YAMLError as error:
        raise _syntax_error(error, source) from None
    except YamlError:
        raise
    except Exception:  # the parsers disagree: libyaml's own words, then
        raise _syntax_error(fast_error, source) from None


def _load(loader_class: type[Any], text: str, source: str) -> Document:
    _check_events(loader_class, text, source)
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(None, None)
        _check_keys(root, source)
        try:
            data = loader.construct_document(root)
        except (ValueError, OverflowError) as error:  # e.g. an int of 5,000 digits
            raise YamlError(source, f"not valid YAML: a value cannot be read "
                                    f"({short(str(error), 60, quote=False)})") from None
        return Document(data, root)
    finally:
        loader.dispose()


def _check_events(loader_class: type[Any], text: str, source: str) -> None:
    """Depth, aliases and expanded size from the event stream, before any node is built."""
    depth = 0
    aliases = 0
    expanded = 0  # nodes the document would have with every alias copied out
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    open_collections: list[tuple[str | None, int]] = []  # (anchor, `expanded` at its start)
    for event in yaml.parse(text, Loader=loader_class):
        line = line_of(event)
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlError(source, f"uses more than {MAX_ALIASES} aliases (*name): "
                                        "write the values out", line)
            if any(anchor == event.anchor for anchor, _ in open_collections):
                raise YamlError(source, f"alias *{short(event.anchor, 30, quote=False)} refers "
                                        "to a collection that contains it", line)
            expanded += sizes.get(str(event.anchor), 1)  # an undefined alias: the composer says so
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(source, f"is nested more than {MAX_DEPTH} levels deep: "
                                        "flatten it", line)
            open_collections.append((event.anchor, expanded))
            expanded += 1
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
            anchor, start = open_collections.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        if expanded > MAX_NODES:
            raise YamlError(source, f"expands to more than {MAX_NODES:,} values through its "
                                    "aliases (*name): write the values out", line)


def _check_keys(root: Any, source: str) -> None:
    """A key given twice in one mapping (which YAML would resolve silently to the last)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:  # an alias: the same node again
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], Any] = {}
            for key, value in node.value:
                pending += [key, value]
                if not isinstance(key, yaml.ScalarNode) or key.tag.endswith(":merge"):
                    continue
                if (key.tag, key.value) in first:
                    earlier = line_of(first[(key.tag, key.value)])
                    raise YamlError(source, f"{short(key.value)} appears twice in one mapping "
                                            f"(first at line {earlier}): keep one",
                                    line_of(key))
                first[(key.tag, key.value)] = key
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


def _syntax_error(error: yaml.YAMLError, source: str) -> YamlError:
    """PyYAML's error as one line: the problem, where it is, and what encloses it."""
    if isinstance(error, yaml.reader.ReaderError):
        char = error.character
        shown = f"U+{char:04X}" if isinstance(char, int) else short(char)
        return YamlError(source, f"not valid YAML: {error.reason} ({shown} at offset "
                                 f"{error.position})")
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = short(error.problem or error.context or "unreadable", 100, quote=False)
        notes = [] if mark is None else [f"column {mark.column + 1}"]
        start = error.context_mark
        if error.context and start is not None and start is not mark \
                and start.line != getattr(mark, "line", None):
            notes.append(f"{short(error.context, 60, quote=False)} that starts at line "
                         f"{start.line + 1}")
        detail = f" ({'; '.join(notes)})" if notes else ""
        return YamlError(source, f"not valid YAML: {problem}{detail}",
                         None if mark is None else mark.line + 1)
    return YamlError(source, f"not valid YAML: {short(str(error), 100, quote=False)}")
