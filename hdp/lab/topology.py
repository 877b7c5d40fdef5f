"""Topologies: the short YAML files in conformance/labs/, loaded and checked into values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp import safe_yaml
from hdp.describe import kind_of, short
from hdp.lab.addresses import MAX_ENDS, MAX_LINKS
from hdp.lab.errors import LabError
from hdp.lab.loss import LossRate, parse_loss
from hdp.resources import lab_folders

ROLES = ("client", "router", "server", "host")
IPV6_MIN_MTU = 1280
_HOST_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_RESERVED = re.compile(r"lan[0-9]+")  # the namespaces of links with more than two ends
_DELAY = re.compile(r"[0-9]+(\.[0-9]+)?(us|ms|s)")
_TOP_KEYS = {"lab", "description", "hosts", "links", "nftables", "ipv6"}
_LINK_KEYS = {"ends", "mtu", "delay", "loss"}
# `table ip|ip6|inet NAME {`, and a masquerade / snat statement with the oifname it names.
_TABLE = re.compile(r"^\s*table\s+(ip|ip6|inet)\s+\S+", re.MULTILINE)
_SOURCE_NAT = re.compile(r"\b(masquerade|snat)\b")
_OIFNAME = re.compile(r'\boifname\s+"?([A-Za-z0-9_.-]+)"?')
_TABLE_FAMILIES = {"ip": (4,), "ip6": (6,), "inet": (4, 6)}


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str  # client | router | server | host; only a router forwards


@dataclass(frozen=True)
class LinkSpec:
    index: int  # 1-based, in file order: link N is 198.18.N.0/24 (see addresses.py)
    ends: tuple[str, ...]
    mtu: int | None = None
    delay: str | None = None  # netem, each direction, e.g. "5ms"
    loss: str | None = None  # each direction, e.g. "1%": netem, or nftables (loss.py)

    @property
    def loss_rate(self) -> LossRate | None:
        return None if self.loss is None else parse_loss(self.loss)


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    hosts: dict[str, HostSpec]
    links: tuple[LinkSpec, ...]
    nftables: dict[str, str]
    ipv6: bool
    source: str

    def _by_role(self, role: str) -> tuple[str, ...]:
        return tuple(name for name, host in self.hosts.items() if host.role == role)

    @property
    def clients(self) -> tuple[str, ...]:
        return self._by_role("client")

    @property
    def servers(self) -> tuple[str, ...]:
        return self._by_role("server")

    @property
    def routers(self) -> tuple[str, ...]:
        return self._by_role("router")

    def forwards(self, host: str) -> bool:
        return self.hosts[host].role == "router"

    def links_of(self, host: str) -> tuple[LinkSpec, ...]:
        """The links `host` is on, in file order: its interfaces eth0, eth1, ..."""
        return tuple(link for link in self.links if host in link.ends)

    def interface(self, host: str, link: int) -> str:
        """The name of `host`'s interface on link `link` inside its namespace."""
        for number, spec in enumerate(self.links_of(host)):
            if spec.index == link:
                return f"eth{number}"
        raise LabError(f"lab {self.name}: host {host} is not on link {link}")

    def source_nat(self, host: str, family: int) -> list[str | None]:
        """The interfaces on which `host`'s nftables ruleset rewrites the source of
        `family` packets (masquerade or snat); None for a rule that names no oifname.

        Read from the ruleset text, one statement a line, as the topologies write it: it
        tells the verdict which source a delivery across this host should carry.
        """
        text = self.nftables.get(host, "")
        tables = list(_TABLE.finditer(text))
        found: list[str | None] = []
        for number, table in enumerate(tables):
            if family not in _TABLE_FAMILIES[table.group(1)]:
                continue
            end = tables[number + 1].start() if number + 1 < len(tables) else len(text)
            for line in text[table.end():end].splitlines():
                if _SOURCE_NAT.search(line.split("#", 1)[0]):
                    oifname = _OIFNAME.search(line)
                    found.append(oifname.group(1) if oifname else None)
        return found

    def position(self, host: str, link: int) -> int:
        """`host`'s place (1-based) among the ends of link `link`: its host address."""
        return self.links[link - 1].ends.index(host) + 1


def labs_directories() -> list[Path]:
    """Where names are looked up: the folders of HDP_LABS, then the installed ones; never
    the working directory (see hdp.resources)."""
    return lab_folders()


def topology_names() -> list[str]:
    names = {path.stem for directory in labs_directories() if directory.is_dir()
             for path in directory.glob("*.yaml")}
    return sorted(names)


def find_topology(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        raise LabError(f"no topology file {name_or_path}: give an existing .yaml file or a "
                       f"lab name ({', '.join(topology_names()) or 'none found'})")
    for directory in labs_directories():
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    raise LabError(f"unknown lab {name_or_path!r}: give one of "
                   f"{', '.join(topology_names()) or '(none found)'} or a path to a .yaml file")


def load_topology(name_or_path: str) -> Topology:
    """The topology of a file path, or of a name in HDP_LABS or the shipped topologies."""
    path = find_topology(name_or_path)
    try:
        document = safe_yaml.load_file(path)
    except safe_yaml.YamlError as exc:
        raise LabError(str(exc)) from None
    try:
        return parse_topology(document.data, path, document.root)
    except TopologyProblem as exc:
        raise LabError(f"{path}{'' if exc.line is None else f':{exc.line}'}: {exc}") from None
    except ValueError as exc:
        raise LabError(f"{path}: {exc}") from None


class TopologyProblem(ValueError):
    """A defect of a topology, with the YAML node it is in (for the line number)."""

    def __init__(self, message: str, node: Any = None, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = safe_yaml.line_of(node) if line is None else line


def parse_topology(data: Any, path: Path, root: Any = None) -> Topology:
    """Check a loaded YAML document (`root`: its composed nodes, for line numbers); a
    problem raises TopologyProblem naming it."""
    if not isinstance(data, dict):
        raise TopologyProblem("a topology is a mapping with hosts: and links:", root)
    nodes = _Nodes(root)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise TopologyProblem(f"unknown key {_show(key)}: give only "
                              f"{', '.join(sorted(_TOP_KEYS))}", nodes.key(key))
    name = data.get("lab", path.stem)
    if name != path.stem:
        raise TopologyProblem(f"lab: {_show(name)} differs from the file name "
                              f"{path.stem!r}", nodes.get("lab"))
    ipv6 = data.get("ipv6", True)
    if not isinstance(ipv6, bool):
        raise TopologyProblem(f"ipv6: {_show(ipv6)} is not true or false", nodes.get("ipv6"))
    hosts = _hosts(data.get("hosts"), nodes.child("hosts"))
    link_nodes = nodes.child("links")
    links = tuple(_link(number, item, hosts, ipv6, link_nodes.child(number - 1))
                  for number, item in enumerate(_list(data.get("links"), "links",
                                                      link_nodes.node), 1))
    if not links or len(links) > MAX_LINKS:
        raise TopologyProblem(f"links: give 1 to {MAX_LINKS} links", link_nodes.node)
    for host in hosts:
        if not any(host in link.ends for link in links):
            raise TopologyProblem(f"host {host} is on no link: add it to a link's ends",
                                  nodes.child("hosts").key(host))
    nftables = data.get("nftables") or {}
    nft_nodes = nodes.child("nftables")
    if not isinstance(nftables, dict):
        raise TopologyProblem("nftables: give a mapping of host name to ruleset text",
                              nft_nodes.node)
    for host, ruleset in nftables.items():
        if host not in hosts:
            raise TopologyProblem(f"nftables: unknown host {_show(host)} "
                                  f"(hosts: {', '.join(hosts)})", nft_nodes.key(host))
        if not isinstance(ruleset, str):
            raise TopologyProblem(f"nftables: {host}'s ruleset is not text: write it as a | "
                                  "block", nft_nodes.get(host))
        _check_ruleset(host, ruleset, nft_nodes.get(host))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise TopologyProblem(f"description is {kind_of(description, yaml=True)}: give one "
                              "line of text", nodes.get("description"))
    return Topology(str(name), description, hosts, links, dict(nftables), ipv6, str(path))


class _Nodes:
    """The composed YAML node beside a piece of data, to say which line a problem is on;
    every lookup gives an empty _Nodes where there is no node (data built in code)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def _pairs(self) -> list[tuple[Any, Any]]:
        if not isinstance(self.node, yaml.MappingNode):
            return []
        return [(k, v) for k, v in self.node.value if isinstance(k, yaml.ScalarNode)]

    def key(self, name: object) -> Any:
        found = [k for k, _ in self._pairs() if k.value == str(name)]
        return found[0] if found else self.node

    def get(self, name: object) -> Any:
        found = [v for k, v in self._pairs() if k.value == str(name)]
        return found[0] if found else self.node

    def child(self, name: object) -> _Nodes:
        if isinstance(name, int):
            items = self.node.value if isinstance(self.node, yaml.SequenceNode) else []
            return _Nodes(items[name] if 0 <= name < len(items) else self.node)
        return _Nodes(self.get(name))


def _show(value: object) -> str:
    return short(value, 40)


def _list(value: Any, what: str, node: Any = None) -> list[Any]:
    if not isinstance(value, list):
        raise TopologyProblem(f"{what}: give a list", node)
    return value


def _hosts(value: Any, nodes: _Nodes) -> dict[str, HostSpec]:
    if not isinstance(value, dict) or not value:
        raise TopologyProblem("hosts: give a mapping of host name to {role: ...}", nodes.node)
    hosts = {}
    for name, spec in value.items():
        where = nodes.key(name)
        if not isinstance(name, str) or not _HOST_NAME.fullmatch(name) or len(name) > 32:
            raise TopologyProblem(f"host name {_show(name)}: use lower-case letters, digits "
                                  "and '-', starting with a letter, at most 32 characters",
                                  where)
        if _RESERVED.fullmatch(name):
            raise TopologyProblem(f"host name {name!r} is reserved for a link's switch "
                                  "namespace", where)
        spec = {} if spec is None else spec
        if isinstance(spec, dict) and set(spec) - {"role"}:
            raise TopologyProblem(f"host {name}: unknown key "
                                  f"{_show(sorted(map(str, spec))[0])}: give only role",
                                  nodes.get(name))
        role = spec.get("role", "host") if isinstance(spec, dict) else spec
        if not isinstance(role, str) or role not in ROLES:
            raise TopologyProblem(f"host {name}: role {_show(role)} is not one of "
                                  f"{', '.join(ROLES)}", nodes.get(name))
        hosts[name] = HostSpec(name, role)
    return hosts


def _link(number: int, item: Any, hosts: dict[str, HostSpec], ipv6: bool,
          nodes: _Nodes) -> LinkSpec:
    where = f"link {number}"
    if not isinstance(item, dict) or "ends" not in item:
        raise TopologyProblem(f"{where}: give a mapping with ends: [host, host, ...]",
                              nodes.node)
    unknown = set(item) - _LINK_KEYS
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise TopologyProblem(f"{where}: unknown key {_show(key)}: give only "
                              f"{', '.join(sorted(_LINK_KEYS))}", nodes.key(key))
    end_nodes = nodes.child("ends")
    ends = tuple(_list(item["ends"], f"{where} ends", end_nodes.node))
    for index, end in enumerate(ends):
        if not isinstance(end, str):
            raise TopologyProblem(f"{where}: ends lists {_show(end)} "
                                  f"({kind_of(end, yaml=True)}): give host names, e.g. "
                                  "ends: [client, router]", end_nodes.child(index).node)
        if end not in hosts:
            raise TopologyProblem(f"{where}: unknown host {_show(end)} "
                                  f"(hosts: {', '.join(hosts)})", end_nodes.child(index).node)
    if len(ends) < 2 or len(set(ends)) != len(ends) or len(ends) > MAX_ENDS:
        raise TopologyProblem(f"{where}: give 2 to {MAX_ENDS} different hosts as ends",
                              end_nodes.node)
    mtu = item.get("mtu")
    if mtu is not None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
            raise TopologyProblem(f"{where}: bad mtu {_show(mtu)}: give a whole number "
                                  "68..65535", nodes.get("mtu"))
        if ipv6 and mtu < IPV6_MIN_MTU:
            raise TopologyProblem(f"{where}: mtu {mtu} is below IPv6's minimum of "
                                  f"{IPV6_MIN_MTU}: raise it or set ipv6: false",
                                  nodes.get("mtu"))
    delay = _netem(item.get("delay"), _DELAY, f"{where}: bad delay", "e.g. 5ms, 200us, 1s",
                   nodes.get("delay"))
    loss = item.get("loss")
    if loss is not None:
        try:
            parse_loss(loss if isinstance(loss, str) else "")
        except ValueError as exc:
            raise TopologyProblem(f"{where}: bad loss {_show(loss)}: {exc}",
                                  nodes.get("loss")) from None
    return LinkSpec(number, ends, mtu, delay, loss)


# nft(8) reads other files only through `include` (shell wildcards allowed); the lab runs
# `nft -f` on a ruleset as root, so an include would let a topology file read any file.
_NFT_FILE_STATEMENTS = frozenset({"include"})
_NFT_STRING = re.compile(r'"[^"\n]*"?')
_NFT_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_ruleset(host: str, ruleset: str, node: Any) -> None:
    """Refuse statements that make nft read files: rulesets are inline text only."""
    for number, line in enumerate(ruleset.splitlines(), 1):
        code = _NFT_STRING.sub('""', line).split("#", 1)[0]
        for word in _NFT_WORD.findall(code):
            if word.lower() in _NFT_FILE_STATEMENTS:
                raise TopologyProblem(
                    f"nftables: {host}'s ruleset line {number} has {word!r}: a lab ruleset "
                    "may not read files (nft runs it as root); write the rules inline",
                    line=_text_line(node, number))


def _text_line(node: Any, number: int) -> int | None:
    """The file line of line `number` of a scalar's text: a `|` or `>` block starts on the
    line after its indicator; a one-line scalar is all on its own line."""
    line = safe_yaml.line_of(node)
    if line is None:
        return None
    return line + number if getattr(node, "style", None) in ("|", ">") else line


def _netem(value: Any, pattern: re.Pattern[str], what: str, example: str,
           node: Any = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise TopologyProblem(f"{what} {_show(value)}: {example}", node)
    return value
