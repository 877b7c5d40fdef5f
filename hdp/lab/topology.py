"""Topologies: the short YAML files in conformance/labs/, loaded and checked into values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from hdp.lab.addresses import MAX_ENDS, MAX_LINKS
from hdp.lab.errors import LabError
from hdp.resources import lab_folders

ROLES = ("client", "router", "server", "host")
IPV6_MIN_MTU = 1280
_HOST_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_RESERVED = re.compile(r"lan[0-9]+")  # the namespaces of links with more than two ends
_DELAY = re.compile(r"[0-9]+(\.[0-9]+)?(us|ms|s)")
_LOSS = re.compile(r"[0-9]+(\.[0-9]+)?%")
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
    loss: str | None = None  # netem, each direction, e.g. "1%"


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
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
                       ) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LabError(f"{path}: bad YAML{line}: {problem}") from None
    try:
        return parse_topology(data, path)
    except ValueError as exc:
        raise LabError(f"{path}: {exc}") from None


def parse_topology(data: Any, path: Path) -> Topology:
    """Check a loaded YAML document; a problem raises ValueError naming it."""
    if not isinstance(data, dict):
        raise ValueError("a topology is a mapping with hosts: and links:")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(map(str, unknown))[0]!r}: "
                         f"give only {', '.join(sorted(_TOP_KEYS))}")
    name = data.get("lab", path.stem)
    if name != path.stem:
        raise ValueError(f"lab: {name!r} differs from the file name {path.stem!r}")
    ipv6 = data.get("ipv6", True)
    if not isinstance(ipv6, bool):
        raise ValueError(f"ipv6: {ipv6!r} is not true or false")
    hosts = _hosts(data.get("hosts"))
    links = tuple(_link(number, item, hosts, ipv6)
                  for number, item in enumerate(_list(data.get("links"), "links"), 1))
    if not links or len(links) > MAX_LINKS:
        raise ValueError(f"links: give 1 to {MAX_LINKS} links")
    for host in hosts:
        if not any(host in link.ends for link in links):
            raise ValueError(f"host {host} is on no link: add it to a link's ends")
    nftables = data.get("nftables") or {}
    if not isinstance(nftables, dict):
        raise ValueError("nftables: give a mapping of host name to ruleset text")
    for host, ruleset in nftables.items():
        if host not in hosts:
            raise ValueError(f"nftables: unknown host {host!r} (hosts: {', '.join(hosts)})")
        if not isinstance(ruleset, str):
            raise ValueError(f"nftables: {host}'s ruleset is not text: write it as a | block")
    description = data.get("description", "")
    return Topology(str(name), str(description), hosts, links, dict(nftables), ipv6,
                    str(path))


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: give a list")
    return value


def _hosts(value: Any) -> dict[str, HostSpec]:
    if not isinstance(value, dict) or not value:
        raise ValueError("hosts: give a mapping of host name to {role: ...}")
    hosts = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _HOST_NAME.fullmatch(name) or len(name) > 32:
            raise ValueError(f"host name {name!r}: use lower-case letters, digits and '-', "
                             "starting with a letter, at most 32 characters")
        if _RESERVED.fullmatch(name):
            raise ValueError(f"host name {name!r} is reserved for a link's switch namespace")
        spec = {} if spec is None else spec
        if isinstance(spec, dict) and set(spec) - {"role"}:
            raise ValueError(f"host {name}: unknown key {sorted(map(str, spec))[0]!r}: "
                             "give only role")
        role = spec.get("role", "host") if isinstance(spec, dict) else spec
        if role not in ROLES:
            raise ValueError(f"host {name}: role {role!r} is not one of {', '.join(ROLES)}")
        hosts[name] = HostSpec(name, role)
    return hosts


def _link(number: int, item: Any, hosts: dict[str, HostSpec], ipv6: bool) -> LinkSpec:
    where = f"link {number}"
    if not isinstance(item, dict) or "ends" not in item:
        raise ValueError(f"{where}: give a mapping with ends: [host, host, ...]")
    unknown = set(item) - _LINK_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r}: "
                         f"give only {', '.join(sorted(_LINK_KEYS))}")
    ends = tuple(_list(item["ends"], f"{where} ends"))
    for end in ends:
        if end not in hosts:
            raise ValueError(f"{where}: unknown host {end!r} (hosts: {', '.join(hosts)})")
    if len(ends) < 2 or len(set(ends)) != len(ends) or len(ends) > MAX_ENDS:
        raise ValueError(f"{where}: give 2 to {MAX_ENDS} different hosts as ends")
    mtu = item.get("mtu")
    if mtu is not None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
            raise ValueError(f"{where}: bad mtu {mtu!r}: give a whole number 68..65535")
        if ipv6 and mtu < IPV6_MIN_MTU:
            raise ValueError(f"{where}: mtu {mtu} is below IPv6's minimum of {IPV6_MIN_MTU}: "
                             "raise it or set ipv6: false")
    delay = _netem(item.get("delay"), _DELAY, f"{where}: bad delay", "e.g. 5ms, 200us, 1s")
    loss = _netem(item.get("loss"), _LOSS, f"{where}: bad loss", "e.g. 0%, 1.5%")
    if loss is not None and float(loss[:-1]) > 100:
        raise ValueError(f"{where}: bad loss {loss!r}: give 0% to 100%")
    return LinkSpec(number, ends, mtu, delay, loss)


def _netem(value: Any, pattern: re.Pattern[str], what: str, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r}: {example}")
    return value
