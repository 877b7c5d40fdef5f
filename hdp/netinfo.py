"""Which interfaces and local addresses this host has, as the OS lists them (netifaces).

Code that needs a second local address, or an interface's addresses, asks here instead
of assuming: 127.0.0.2 is local on Linux, whose loopback device owns its whole prefix
(net/ipv4/fib_frontend.c:fib_add_ifaddr adds a local route for 127.0.0.0/8), but not on
macOS, where lo0 answers only for the addresses assigned to it (127.0.0.1 unless
`ifconfig lo0 alias 127.0.0.2` adds another). IPv6 link-local addresses carry their
zone (`fe80::1%lo0`), since without it they name no interface.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import netifaces

from hdp.osnet import current

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LocalAddress:
    interface: str
    family: int  # 4 or 6
    address: str  # with %zone for an IPv6 link-local address
    network: Network  # the prefix the address was configured with
    loopback: bool  # on a loopback interface

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.address.partition("%")[0])


def interfaces() -> list[str]:
    return list(netifaces.interfaces())


def local_addresses(interface: str | None = None) -> list[LocalAddress]:
    """Every IPv4/IPv6 address of `interface` (all interfaces when None), in the OS's
    order; ValueError for an interface the OS does not have."""
    names = interfaces() if interface is None else [interface]
    found: list[LocalAddress] = []
    for name in names:
        try:
            entries = netifaces.ifaddresses(name)
        except ValueError:
            raise ValueError(f"no interface {name!r}") from None
        addresses = [(family, entry) for family, key in ((4, netifaces.AF_INET),
                                                         (6, netifaces.AF_INET6))
                     for entry in entries.get(key, []) if entry.get("addr")]
        loopback = any(_plain(entry["addr"]).is_loopback for _, entry in addresses)
        for family, entry in addresses:
            address = _with_zone(str(entry["addr"]), name)
            network = _network(address, entry.get("netmask"), family)
            found.append(LocalAddress(name, family, address, network, loopback))
    return found


def is_local(address: str) -> bool:
    """Whether packets to `address` stay on this host (an address of one of its
    interfaces, or on Linux any address in a loopback interface's prefix)."""
    try:
        wanted = _plain(address)
    except ValueError:
        return False
    if wanted.is_loopback and wanted.version == 6:
        return True
    for local in local_addresses():
        if local.ip == wanted:
            return True
        if local.loopback and current().loopback_prefix_local and wanted in local.network:
            return True
    return False


def other_loopback(family: int, besides: str) -> str | None:
    """A loopback address of this host other than `besides`, or None when it has none."""
    taken = _plain(besides)
    candidates = [a for a in local_addresses() if a.loopback and a.family == family]
    for local in candidates:
        if local.ip != taken and not local.ip.is_link_local:
            return local.address
    if current().loopback_prefix_local:
        for local in candidates:
            for host in local.network.hosts():
                if host != taken:
                    return str(host)
    return None


def _plain(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.strip("[]").partition("%")[0])


def _with_zone(address: str, interface: str) -> str:
    plain, _, zone = address.partition("%")
    ip = ipaddress.ip_address(plain)
    if ip.version == 6 and ip.is_link_local:
        return f"{plain}%{zone or interface}"
    return plain


def _network(address: str, netmask: object, family: int) -> Network:
    plain = address.partition("%")[0]
    bits = 32 if family == 4 else 128
    mask = str(netmask) if netmask else ""
    if "/" in mask:  # netifaces writes IPv6 masks as "ffff:ffff::/64"
        mask = mask.rpartition("/")[2]
    try:
        return ipaddress.ip_network(f"{plain}/{mask or bits}", strict=False)
    except ValueError:
        return ipaddress.ip_network(f"{plain}/{bits}")
