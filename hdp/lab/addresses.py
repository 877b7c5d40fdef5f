"""The lab's address plan: the one place that says which addresses a lab uses.

IPv4 comes from 198.18.0.0/15, the range RFC 2544 sets aside for benchmarking, which is
never routed on the Internet. Link N of a topology (1-based, in the order of its file) is
198.18.N.0/24, and the hosts on it are .1, .2, ... in the order of the link's `ends`.

IPv6 comes from the unique local prefix fd68:6470::/32 (0x68 0x64 0x70 spell "hdp"):
link N is fd68:6470:0:N::/64 and its hosts ::1, ::2, ..., with N and the host number
written in decimal digits, so both families read alike (link 12, third end:
198.18.12.3 and fd68:6470:0:12::3).

Hence a topology has at most 255 links and a link at most 254 ends (checked when it
loads). Routes are computed from the link graph (routing.py), never declared. Every one
of these addresses lives only on interfaces inside the lab's own namespaces: the root
namespace gets no address, route or rule, and nothing is sent anywhere else.
"""

from __future__ import annotations

import ipaddress

MAX_LINKS = 255
MAX_ENDS = 254
IPV4_SPACE = ipaddress.ip_network("198.18.0.0/15")
IPV6_SPACE = ipaddress.ip_network("fd68:6470::/32")
PREFIX_LENGTH = {4: 24, 6: 64}


def _check(link: int, host: int = 1) -> None:
    if not 1 <= link <= MAX_LINKS or not 1 <= host <= MAX_ENDS:
        raise ValueError(f"link {link} host {host} is outside the address plan "
                         f"(links 1..{MAX_LINKS}, hosts 1..{MAX_ENDS})")


def subnet(link: int, family: int) -> str:
    """The subnet of link `link` (1-based), e.g. 198.18.2.0/24 or fd68:6470:0:2::/64."""
    _check(link)
    if family == 4:
        return f"198.18.{link}.0/24"
    return str(ipaddress.ip_network(f"fd68:6470:0:{link}::/64"))


def host_address(link: int, position: int, family: int) -> str:
    """The address of the `position`-th end (1-based) of link `link`, without a prefix."""
    _check(link, position)
    if family == 4:
        return f"198.18.{link}.{position}"
    return str(ipaddress.ip_address(f"fd68:6470:0:{link}::{position}"))


def interface_address(link: int, position: int, family: int) -> str:
    """The address with its prefix length, as `ip address add` takes it."""
    return f"{host_address(link, position, family)}/{PREFIX_LENGTH[family]}"


def in_plan(address: str) -> bool:
    """Whether `address` is one the lab may use (inside 198.18.0.0/15 or fd68:6470::/32)."""
    ip = ipaddress.ip_address(address.split("/")[0])
    return ip in (IPV4_SPACE if ip.version == 4 else IPV6_SPACE)
