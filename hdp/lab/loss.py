"""Link loss without sch_netem: a topology's rate (`loss: 0.5%`) as nftables rules.

Each end of a lossy link drops, at the rate, the IP packets that arrive from the link, in a
netdev ingress chain of its own namespace: each direction loses independently, as with netem
on each end's way out, and the packet has left its sender in full (the send succeeds and
gets its transmit timestamp), as on a lossy wire. Dropping on the way out instead would be
seen by a local sender: an output or postrouting drop fails its send with EPERM.

The rate is exact: `numgen random mod N < K` with N = 100 x 10^decimals, so 5% is 5 of 100
and 0.5% is 5 of 1000. ARP and IPv6 neighbour discovery are never dropped: a lost
solicitation would hold a flow's first packets for a second of retries, a stall no measured
rate should contain (netem, which drops every frame alike, does not spare them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction

from hdp.lab.netns import in_namespace

TABLE = "hdp-loss"
MAX_DECIMALS = 4  # 0.0001%: one in a million, numgen modulus 10^6
_RATE = re.compile(r"([0-9]+)(?:\.([0-9]+))?%")
_NEIGHBOUR_DISCOVERY = ("nd-router-solicit, nd-router-advert, nd-neighbor-solicit, "
                        "nd-neighbor-advert, nd-redirect")


@dataclass(frozen=True)
class LossRate:
    """`dropped` of every `modulus` packets: the rate a topology wrote, exactly."""

    dropped: int
    modulus: int

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.dropped, self.modulus)

    @property
    def expression(self) -> str:
        """The nftables match that is true for `dropped` of every `modulus` packets."""
        return f"numgen random mod {self.modulus} < {self.dropped}"


def parse_loss(text: str) -> LossRate:
    """`5%`, `0.5%`, `12.3456%` -> LossRate; ValueError naming the fix otherwise."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError("give a percentage, e.g. 0%, 5%, 0.5%")
    whole, decimals = match.group(1), match.group(2) or ""
    if len(decimals) > MAX_DECIMALS:
        raise ValueError(f"give at most {MAX_DECIMALS} decimal places (0.0001% is one packet "
                         "in a million)")
    rate = LossRate(int(whole + decimals), 100 * 10 ** len(decimals))
    if rate.ratio >= 1:
        raise ValueError("give 0% up to, not including, 100% (a link that loses everything "
                         "is no link: leave it out)")
    return rate


def ruleset(interfaces: list[tuple[str, LossRate]]) -> str:
    """One netdev table for a namespace: a chain on each lossy interface's ingress."""
    chains = []
    for interface, rate in interfaces:
        # -500: before any ingress chain a topology's own ruleset may add, as a wire is.
        chains.append(f"""\
  chain {interface} {{
    type filter hook ingress device "{interface}" priority -500; policy accept;
    icmpv6 type {{ {_NEIGHBOUR_DISCOVERY} }} accept
    meta protocol {{ ip, ip6 }} {rate.expression} counter drop
  }}
""")
    return f"table netdev {TABLE} {{\n{''.join(chains)}}}\n"


def dropped(namespace: str) -> dict[str, int]:
    """Packets the loss rules of `namespace` have dropped, per interface (none: {})."""
    listing = in_namespace(namespace, "nft", "-j", "list", "ruleset", "netdev")
    counts: dict[str, int] = {}
    for item in json.loads(listing or "{}").get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != TABLE:
            continue
        for statement in rule.get("expr", []):
            if "counter" in statement:
                counts[rule["chain"]] = int(statement["counter"]["packets"])
    return counts
