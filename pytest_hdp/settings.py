"""The plugin's settings: each option has an ini twin and an HDP_* environment variable.

Resolution order is the command line, then the environment, then the ini file, then
the default. A bad value is a usage error, one line, that names the option and the fix.
The one table below gives each option's name, metavar, default and help to `--help`,
to the ini file's help (`pytest --help` lists both) and to the README's option table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import pytest

from hdp.address import literal_address
from hdp.errors import HdpError, UsageError
from hdp.selection import parse_protocols

DEFAULT_TARGETS = ("127.0.0.1", "::1")
PRIVILEGES = ("auto", "direct", "sudo", "userns")
PAYLOADS = ("hdp", "udp", "raw")
PCAP_WHEN = ("none", "failed", "all")
AUTO_LAB = "routed"


# pytest marks UsageError final for type checkers only; at run time this is both.
class HdpUsageError(pytest.UsageError, pytest.Collector.CollectError):  # type: ignore[misc]
    """A bad marker, target or profile found while collecting: a usage error that pytest
    shows as one line where it collects the test (a collection error, so that xdist
    workers report it too), not as a traceback; raised before collection, one line too."""


@dataclass(frozen=True)
class Option:
    name: str  # the option without dashes, e.g. "hdp-target"
    metavar: str
    help: str
    default: str | None = None
    multiple: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return self.dest.upper()

    @property
    def full_help(self) -> str:
        default = f" (default: {self.default})" if self.default is not None else ""
        return f"{self.help}{default} [env {self.env}, ini {self.dest}]"


OPTIONS = (
    Option("hdp-target", "TARGET",
           "target to probe: host name, IPv4/IPv6 address, ssh://[user@]host, netns://NAME, "
           "@IFACE (that interface's addresses) or @local; repeatable (default: loopback, "
           "127.0.0.1 and ::1)", multiple=True),
    Option("hdp-protocols", "SPEC", "protocol numbers to probe, e.g. 253, 1,6,17 or -1-300",
           "0-255"),
    Option("hdp-family", "FAMILIES", "address families: 4, 6 or 4,6", "4,6"),
    Option("hdp-payload", "PAYLOADS", "what probes carry after the IP header: hdp, udp, raw "
           "or a list", "hdp,udp"),
    Option("hdp-listener", "AGENT",
           "who listens at the target: auto (the target's own agent: the sender's on "
           "loopback, the lab server's, the ssh host's; nobody for a plain host), none "
           "(verdicts from ICMP alone, like nmap -sO), or an agent: child, sudo, "
           "netns:NAME, ssh://[user@]host", "auto"),
    Option("hdp-profile", "PROFILE",
           "quirk profile: a YAML file, 'auto' (the one that applies to this platform and "
           "path, from conformance/profiles or profiles beside the tests, else the shipped "
           "ones) or 'none'", "auto"),
    Option("hdp-record-profile", "PATH", "record what this run observed as a profile at PATH"),
    Option("hdp-report", "PATH", "write the quirk report to PATH (.md or .json)"),
    Option("hdp-timeout", "SECONDS", "seconds to wait after the last probe for late evidence",
           "1.0"),
    Option("hdp-privilege", "MODE", "how to get raw sockets: auto, direct, sudo or userns",
           "auto"),
    Option("hdp-lab", "LAB",
           "bring a lab topology up for the session (direct, routed, nat, firewall-drop, ... "
           "or a topology YAML file) and probe its servers from its clients; 'auto': the "
           "routed lab when no target is given and the machine allows it, else loopback",
           "none"),
    Option("hdp-pcap", "WHEN",
           "keep each hdp case's own packets as a pcap: failed (cases of failing tests) or "
           "all; Linux only (AF_PACKET)", "none"),
    Option("hdp-pcap-dir", "DIR", "the folder for --hdp-pcap files", "hdp-pcap"),
)
BY_DEST = {option.dest: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    targets_given: bool = False
    protocols: tuple[int, ...] = tuple(range(256))
    families: tuple[int, ...] = (4, 6)
    payloads: tuple[str, ...] = ("hdp", "udp")
    listener: str | None = None  # None: each target's own (auto)
    profile: str = "auto"
    record_profile: str | None = None
    report: str | None = None
    timeout: float = 1.0
    privilege: str = "auto"
    lab: str | None = None  # a topology name or file, "auto", or None
    pcap: str = "none"
    pcap_dir: str = "hdp-pcap"
    given: frozenset[str] = frozenset()  # the options set on the command line, env or ini

    @property
    def explicit_profile(self) -> bool:
        return self.profile not in ("auto", "none")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("hdp", "network-path conformance (pytest-hdp)")
    for option in OPTIONS:
        group.addoption(f"--{option.name}", dest=option.dest, metavar=option.metavar,
                        action="append" if option.multiple else "store", default=None,
                        help=option.full_help)
        kind: Literal["linelist", "string"] = "linelist" if option.multiple else "string"
        # No ini default: an unset key must read as not given (see Settings.given).
        parser.addini(option.dest, option.full_help, type=kind,
                      default=[] if option.multiple else "")


def _raw(config: pytest.Config, option: Option) -> tuple[list[str], str]:
    """The option's values and where they came from (for error messages)."""
    cli = config.getoption(option.dest)
    if cli:
        return (list(cli) if option.multiple else [cli]), f"--{option.name}"
    env = os.environ.get(option.env)
    if env:
        values = env.split() if option.multiple else [env]
        return values, f"{option.env}"
    ini = config.getini(option.dest)
    if option.multiple:
        return [str(v) for v in ini], f"ini {option.dest}"
    return ([str(ini)] if ini not in (None, "") else []), f"ini {option.dest}"


def resolve_settings(config: pytest.Config) -> Settings:
    """Settings from the command line, environment and ini; usage errors name the option."""
    values: dict[str, tuple[list[str], str]] = {o.dest: _raw(config, o) for o in OPTIONS}

    def one(dest: str) -> tuple[str, str]:
        items, origin = values[dest]
        return (items[0] if items else BY_DEST[dest].default or ""), origin

    protocols_text, origin = one("hdp_protocols")
    try:
        protocols = tuple(parse_protocols(protocols_text))
    except UsageError as exc:
        raise pytest.UsageError(f"{origin}: {exc}") from None
    families = tuple(_families(*one("hdp_family")))
    targets, origin = values["hdp_target"]
    check_targets(targets, families, origin)
    payload_text, origin = one("hdp_payload")
    payloads = tuple(dict.fromkeys(p.strip() for p in payload_text.split(",")))
    for payload in payloads:
        if payload not in PAYLOADS:
            raise pytest.UsageError(f"{origin}: unknown payload {payload!r}: give "
                                    f"{', '.join(PAYLOADS)} or a comma-separated list")
    timeout = _seconds(*one("hdp_timeout"))
    privilege, origin = one("hdp_privilege")
    if privilege not in PRIVILEGES:
        raise pytest.UsageError(f"{origin}: unknown privilege mode {privilege!r}: give "
                                f"{', '.join(PRIVILEGES)}")
    report, origin = one("hdp_report")
    if report and not report.endswith((".md", ".json")):
        raise pytest.UsageError(f"{origin}: {report!r} must end in .md or .json "
                                "(the report's format follows the extension)")
    lab, origin = one("hdp_lab")
    if lab != "none" and (not lab.replace("-", "").replace("_", "").isalnum()
                          and not lab.endswith((".yaml", ".yml"))):
        raise pytest.UsageError(f"{origin}: invalid lab {lab!r}: give a topology name such as "
                                "routed (see hdp lab list) or a topology YAML file")
    pcap, origin = one("hdp_pcap")
    if pcap not in PCAP_WHEN:
        raise pytest.UsageError(f"{origin}: invalid value {pcap!r}: give failed, all or none")
    return Settings(
        targets=tuple(targets) or DEFAULT_TARGETS, targets_given=bool(targets),
        protocols=protocols, families=families, payloads=payloads,
        listener=check_listener(*one("hdp_listener")),
        profile=one("hdp_profile")[0], record_profile=one("hdp_record_profile")[0] or None,
        report=report or None, timeout=timeout, privilege=privilege,
        lab=_lab_choice(lab, bool(targets)), pcap=pcap, pcap_dir=one("hdp_pcap_dir")[0],
        given=frozenset(dest for dest, (items, _) in values.items() if items))


def _families(text: str, origin: str) -> list[int]:
    families = []
    for part in text.split(","):
        part = part.strip().lower().removeprefix("ipv")
        if part not in ("4", "6"):
            raise pytest.UsageError(f"{origin}: invalid family {text!r}: give 4, 6 or 4,6")
        families.append(int(part))
    return list(dict.fromkeys(families))


def _seconds(text: str, origin: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise pytest.UsageError(f"{origin}: invalid timeout {text!r}: give seconds, e.g. 1.5")
    return seconds


def check_listener(text: str, origin: str) -> str | None:
    """None for `auto`; `none`; or an agent spec hdp.agent.launch can start."""
    if text in ("", "auto"):
        return None
    problem = listener_problem(text)
    if problem is not None:
        raise pytest.UsageError(f"{origin}: {problem}")
    return text


def listener_problem(text: str) -> str | None:
    """What is wrong with a listener choice, or None (auto, none, or an agent spec)."""
    if text in ("auto", "none"):
        return None
    # Loaded only for a listener given: the agent launcher is no light import.
    from hdp.agent.launch import AgentSpec

    try:
        AgentSpec.parse(text)
    except HdpError as exc:
        return f"{exc}, or auto, or none"
    return None


def check_targets(targets: list[str], families: tuple[int, ...], origin: str) -> None:
    """Reject what can never be a target, and a host that does not resolve, before any
    test is collected: one line, no traceback."""
    for target in targets:
        _check_syntax(target, origin)
    if not targets:
        return
    # Loaded only when targets are given: planning reads interfaces and resolves names.
    from hdp.target import expand, plan_target

    try:
        for text in expand(targets, families):
            plan_target(text, families)
    except UsageError as exc:
        raise pytest.UsageError(f"{origin}: {exc}") from None


def _check_syntax(target: str, origin: str) -> None:
    if target.startswith(("ssh://", "netns://")):
        rest = target.split("://", 1)[1]
        if not rest or "/" in rest:
            raise pytest.UsageError(f"{origin}: invalid target {target!r}: give "
                                    "ssh://[user@]host or netns://NAME")
        if target.startswith("ssh://"):
            # Loaded only for an ssh target: the same check as --agent and `hdp sweep`.
            from hdp.agent.launch import check_ssh_destination

            try:
                check_ssh_destination(rest)
            except UsageError as exc:
                raise pytest.UsageError(f"{origin}: {exc}") from None
    elif "://" in target:
        raise pytest.UsageError(f"{origin}: unknown target scheme in {target!r}: give a host, "
                                "an address, ssh://[user@]host or netns://NAME")
    elif literal_address(target) is None and not target.startswith("@") and (
            not target or any(c.isspace() for c in target) or len(target) > 253):
        raise pytest.UsageError(f"{origin}: invalid target {target!r}: give a host name or an "
                                "IPv4/IPv6 address")


def _lab_choice(lab: str, targets_given: bool) -> str | None:
    """'auto' means a lab only for the suite's default target, never beside given ones."""
    if lab in ("", "none"):
        return None
    if lab == "auto":
        return None if targets_given else "auto"
    return lab
