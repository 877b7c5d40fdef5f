"""The plugin's settings: each option has an ini twin and an HDP_* environment variable.

Resolution order is the command line, then the environment, then the ini file, then
the default. A bad value is a usage error that names the option and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from hdp.address import literal_address
from hdp.errors import UsageError
from hdp.selection import parse_protocols

DEFAULT_TARGETS = ("127.0.0.1", "::1")
PRIVILEGES = ("auto", "direct", "sudo", "userns")
PAYLOADS = ("hdp", "udp", "raw")


@dataclass(frozen=True)
class Option:
    name: str  # the option without dashes, e.g. "hdp-target"
    help: str
    default: str | None = None
    multiple: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return self.dest.upper()


OPTIONS = (
    Option("hdp-target", "target to probe: host name, IPv4/IPv6 address, ssh://[user@]host, "
           "or netns://NAME; repeatable (default: loopback, 127.0.0.1 and ::1)", multiple=True),
    Option("hdp-protocols", "protocol numbers to probe, e.g. 0-255, 1,6,17 or -1-300",
           "0-255"),
    Option("hdp-family", "address families: 4, 6 or 4,6", "4,6"),
    Option("hdp-payload", "what probes carry after the IP header: hdp, udp, raw or a list",
           "hdp,udp"),
    Option("hdp-profile", "quirk profile: a YAML file, 'auto' (the one that applies to this "
           "platform, from conformance/profiles or profiles beside the tests, else the "
           "shipped ones) or 'none'", "auto"),
    Option("hdp-record-profile", "record what this run observed as a profile at PATH"),
    Option("hdp-report", "write the quirk report to PATH (.md or .json)"),
    Option("hdp-timeout", "seconds to wait after the last probe for late evidence", "1.0"),
    Option("hdp-privilege", "how to get raw sockets: auto, direct, sudo or userns", "auto"),
    Option("hdp-lab", "bring a lab topology up for the session (direct, routed, nat, "
           "firewall-drop, ...) and probe its servers from its clients; 'auto': the routed "
           "lab when no target is given and the machine allows it, else loopback; 'none'",
           "none"),
)


@dataclass(frozen=True)
class Settings:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    targets_given: bool = False
    protocols: tuple[int, ...] = tuple(range(256))
    families: tuple[int, ...] = (4, 6)
    payloads: tuple[str, ...] = ("hdp", "udp")
    profile: str = "auto"
    record_profile: str | None = None
    report: str | None = None
    timeout: float = 1.0
    privilege: str = "auto"
    lab: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("hdp", "network-path conformance (pytest-hdp)")
    for option in OPTIONS:
        group.addoption(f"--{option.name}", dest=option.dest, metavar="VALUE",
                        action="append" if option.multiple else "store", default=None,
                        help=f"{option.help} [env {option.env}, ini {option.dest}]")
        kind: Literal["linelist", "string"] = "linelist" if option.multiple else "string"
        parser.addini(option.dest, option.help, type=kind,
                      default=[] if option.multiple else option.default)


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


def resolve(config: pytest.Config) -> Settings:
    """Settings from the command line, environment and ini; usage errors name the option."""
    values: dict[str, tuple[list[str], str]] = {o.dest: _raw(config, o) for o in OPTIONS}

    def one(dest: str) -> tuple[str | None, str]:
        items, origin = values[dest]
        return (items[0] if items else None), origin

    targets, origin = values["hdp_target"]
    for target in targets:
        check_target(target, origin)
    protocols_text, origin = one("hdp_protocols")
    try:
        protocols = tuple(parse_protocols(protocols_text or "0-255"))
    except UsageError as exc:
        raise pytest.UsageError(f"{origin}: {exc}") from None
    family_text, origin = one("hdp_family")
    families = tuple(_families(family_text or "4,6", origin))
    payload_text, origin = one("hdp_payload")
    payloads = tuple(dict.fromkeys(p.strip() for p in (payload_text or "hdp,udp").split(",")))
    for payload in payloads:
        if payload not in PAYLOADS:
            raise pytest.UsageError(f"{origin}: unknown payload {payload!r}: give "
                                    f"{', '.join(PAYLOADS)} or a comma-separated list")
    timeout_text, origin = one("hdp_timeout")
    try:
        timeout = float(timeout_text or "1.0")
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise pytest.UsageError(f"{origin}: invalid timeout {timeout_text!r}: give seconds, "
                                "e.g. 1.5")
    privilege, origin = one("hdp_privilege")
    if (privilege or "auto") not in PRIVILEGES:
        raise pytest.UsageError(f"{origin}: unknown privilege mode {privilege!r}: give "
                                f"{', '.join(PRIVILEGES)}")
    report, origin = one("hdp_report")
    if report and not report.endswith((".md", ".json")):
        raise pytest.UsageError(f"{origin}: {report!r} must end in .md or .json "
                                "(the report's format follows the extension)")
    lab, origin = one("hdp_lab")
    if lab and lab != "none" and (not lab.replace("-", "").replace("_", "").isalnum()
                                  and not lab.endswith((".yaml", ".yml"))):
        raise pytest.UsageError(f"{origin}: invalid lab {lab!r}: give a topology name such as "
                                "routed (see hdp lab list) or a topology YAML file")
    profile, _ = one("hdp_profile")
    record, _ = one("hdp_record_profile")
    return Settings(
        targets=tuple(targets) or DEFAULT_TARGETS, targets_given=bool(targets),
        protocols=protocols, families=families, payloads=payloads,
        profile=profile or "auto", record_profile=record or None, report=report or None,
        timeout=timeout, privilege=privilege or "auto",
        lab=_lab_choice(lab, bool(targets)))


def _families(text: str, origin: str) -> list[int]:
    families = []
    for part in text.split(","):
        part = part.strip().lower().removeprefix("ipv")
        if part not in ("4", "6"):
            raise pytest.UsageError(f"{origin}: invalid family {text!r}: give 4, 6 or 4,6")
        families.append(int(part))
    return list(dict.fromkeys(families))


def check_target(target: str, origin: str) -> None:
    """Reject what can never be a target, before any probe is planned."""
    if target.startswith(("ssh://", "netns://")):
        rest = target.split("://", 1)[1]
        if not rest or "/" in rest:
            raise pytest.UsageError(f"{origin}: invalid target {target!r}: give "
                                    "ssh://[user@]host or netns://NAME")
        if target.startswith("ssh://"):
            from hdp.agent.launch import check_ssh_destination

            try:
                check_ssh_destination(rest)  # the same check as --agent and hdp sweep
            except UsageError as exc:
                raise pytest.UsageError(f"{origin}: {exc}") from None
        return
    if "://" in target:
        raise pytest.UsageError(f"{origin}: unknown target scheme in {target!r}: give a host, "
                                "an address, ssh://[user@]host or netns://NAME")
    if literal_address(target) is not None:
        return
    if target.startswith("@"):  # @IFACE / @local: the interface must exist now
        from hdp.target import expand

        try:
            expand([target], (4, 6))
        except UsageError as exc:
            raise pytest.UsageError(f"{origin}: {exc}") from None
        return
    if not target or any(c.isspace() for c in target) or len(target) > 253:
        raise pytest.UsageError(f"{origin}: invalid target {target!r}: give a host name or an "
                                "IPv4/IPv6 address")


def check_profile(path: str) -> None:
    """Load an explicit --hdp-profile now, so a bad file is a usage error before collection."""
    from hdp.errors import HdpError
    from hdp.profile import load_profile

    try:
        load_profile(path)
    except HdpError as exc:
        raise pytest.UsageError(f"--hdp-profile: {exc}") from None


AUTO_LAB = "routed"


def _lab_choice(lab: str | None, targets_given: bool) -> str | None:
    """'auto' means a lab only for the suite's default target, never beside given ones."""
    if not lab or lab == "none":
        return None
    if lab == "auto":
        return None if targets_given else "auto"
    return lab
