"""An ICMP/ICMPv6 listener that reports errors quoting our probes."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from hdp import rawsock
from hdp.errors import DecodeError
from hdp.wire import hdp as hdp_wire
from hdp.wire import icmp, ipv4

_PROTOCOL = {4: 1, 6: 58}
_QUIRK = ipv4.raw_quirk_for(platform.system(), platform.release())


@dataclass
class IcmpWatch:
    family: int
    raw: rawsock.RawSocket

    @classmethod
    def open(cls, family: int) -> IcmpWatch | rawsock.OsRefusal:
        raw = rawsock.open_listener(family, _PROTOCOL[family])
        if isinstance(raw, rawsock.OsRefusal):
            return raw
        return cls(family, raw)

    def read(self, runs: set[int]) -> dict[str, Any] | None:
        """The next packet as an `icmp` event, or None if it is not an error about a probe."""
        return icmp_event(self.raw.receive(), runs)


def icmp_event(received: rawsock.Received, runs: set[int]) -> dict[str, Any] | None:
    """An `icmp` event for an error quoting one of our runs' probes (or an untagged one)."""
    try:
        if received.family == 4:
            outer = ipv4.decode(received.data, _QUIRK)
            sender, data = str(outer.header.src), outer.payload
        else:
            sender, data = received.src, received.data
        message = icmp.decode(data, received.family)
        if not message.is_error:
            return None
        quoted = icmp.quoted_probe(message)
    except DecodeError:
        return None
    found = hdp_wire.find_tag(quoted.payload)
    tag = found[1].tag if found is not None else None
    if tag is not None and tag.run_id not in runs:
        return None
    return {
        "event": "icmp", "family": received.family, "type": message.type,
        "code": message.code, "from": sender, "mtu": message.mtu,
        "run": tag.run_id if tag else None, "case": tag.case if tag else None,
        "quoted_protocol": quoted.protocol, "quoted_dst": str(quoted.dst),
        "quoted_ident": quoted.identification, "quoted_flow": quoted.flow_label,
        "kernel_time_ns": received.kernel_time_ns,
    }
